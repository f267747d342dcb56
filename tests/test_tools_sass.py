"""tools/sass_hotspots.py on a small CSV in the shape ncu writes (kernel-name line, header, rows)."""

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import sass_hotspots  # noqa: E402

HEADER = ["Address", "Source", "Warp Stall Sampling (All Samples)", "Instructions Executed",
          "L1 Wavefronts Shared", "stall_long_sb", "stall_wait", "stall_long_sb (Not Issued)"]
ROWS = [
    ["0x0", "SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [R1], R2", "10", "1,000", "", "1", "9", "1"],
    ["0x10", "@!P0  BRA 0x100", "600", "1,000", "", "590", "10", "590"],
    ["0x20", "LDS.128 R4, [R8]", "30", "2,000", "8,000", "0", "30", "0"],
    ["0x30", "HGMMA.64x16x16.F32.BF16 R24, gdesc[UR4], R24", "60", "500", "2,500", "0", "60", "0"],
]


def write_csv(path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Kernel Name", "kernel_x", ""])
        w.writerow(HEADER)
        w.writerows(ROWS)


def test_summary_ranks_instructions_and_totals_ranges(tmp_path, capsys):
    path = tmp_path / "sass.csv"
    write_csv(path)
    assert sass_hotspots.main([str(path), "--top", "2", "--ranges", "wait=0:2,work=2:4"]) == 0
    out = capsys.readouterr().out
    assert "4 instructions, 700 warp-stall samples" in out
    lines = out.splitlines()
    hottest = lines[next(i for i, l in enumerate(lines) if l.startswith("hottest")) + 1]
    assert hottest.split()[:2] == ["1", "600"] and "long_sb=590" in hottest
    # the "(Not Issued)" copy of a reason is not counted twice
    wait_line = next(l for l in lines if l.strip().startswith("wait "))
    assert wait_line.split()[1] == "610" and "long_sb 97%" in wait_line
    work_line = next(l for l in lines if l.strip().startswith("work "))
    assert work_line.split()[1] == "90" and work_line.split()[3] == "2500"
    assert any(l.split() == ["LDS", "8000"] for l in lines)
    assert any(l.split() == ["HGMMA", "2500"] for l in lines)


def test_opcode_skips_the_predicate():
    assert sass_hotspots.opcode("@!P0  BRA 0x100") == "BRA"
    assert sass_hotspots.opcode("LDS.128 R4, [R8]") == "LDS"
    assert sass_hotspots.opcode("") == ""
