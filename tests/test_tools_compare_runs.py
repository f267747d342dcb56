"""tools/compare_runs.py on committed bench results: medians per cell, FlashMLA beside them, clear errors."""

import json
import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNS = sorted((REPO / "docs" / "perf" / "experiments" / "2026-12-07n" / "h100-next").glob("h100-1207m-next-run*-long.json"))


def _main():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        return runpy.run_path(str(REPO / "tools" / "compare_runs.py"))["main"]
    finally:
        sys.path.remove(str(REPO / "tools"))


def test_medians_of_three_long_runs(capsys):
    assert len(RUNS) == 3
    assert _main()([str(p) for p in RUNS]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 16 | 1 | 131072 | 1 |")]
    assert len(rows) == 1
    # the middle of the three runs' ratios, FlashMLA's too (timed live in the same runs)
    ours = sorted(c["ratio"] for p in RUNS for c in json.loads(p.read_text())["cells"]
                  if c["kind"] == "mlagen" and (c["h_q"], c["batch"], c["s_k"]) == (16, 1, 131072))
    assert f"| {ours[1]:.3f} **>=** |" in rows[0]
    assert "mlagen at or above FlashMLA on 13 of 18 cells" in out
    assert "3 runs" in out and "warning" not in out


def test_mixed_gpus_are_flagged(tmp_path, capsys):
    run = json.loads(RUNS[0].read_text())
    run["meta"]["gpu"] = "NVIDIA H200"
    other = tmp_path / "h200.json"
    other.write_text(json.dumps(run))
    _main()([str(RUNS[1]), str(other)])
    assert "warning: the runs come from different GPU models" in capsys.readouterr().out


def test_bad_inputs_say_what_is_wrong(tmp_path):
    main = _main()
    with pytest.raises(SystemExit, match="no such file"):
        main([str(tmp_path / "missing.json")])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="is not JSON"):
        main([str(bad)])
    bad.write_text(json.dumps({"cells": []}))
    with pytest.raises(SystemExit, match="not an `mlagen bench` result"):
        main([str(bad)])


def test_xz_compressed_runs_read_like_plain_ones(tmp_path, capsys):
    import lzma

    packed = []
    for i, p in enumerate(RUNS):
        out = tmp_path / f"run{i}.json.xz"
        out.write_bytes(lzma.compress(p.read_bytes()))
        packed.append(str(out))
    main = _main()
    assert main([str(p) for p in RUNS]) == 0
    plain = capsys.readouterr().out
    assert main(packed) == 0
    assert capsys.readouterr().out == plain
    broken = tmp_path / "broken.json.xz"
    broken.write_bytes(b"not xz at all")
    with pytest.raises(SystemExit, match="not an xz file"):
        main([str(broken)])


def test_runs_without_flashmla_compare_with_its_h100_table(capsys):
    """Runs that did not time FlashMLA: the H100 table the bench put beside each default-grid cell is the
    reference, marked as such (nineteenth session's two default runs)."""
    runs = sorted((REPO / "docs" / "perf" / "experiments" / "2026-12-07s" / "h100-adopted").glob("run*-default.json.xz"))
    assert len(runs) == 2
    assert _main()([str(p) for p in runs]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| 128 | 1 | 4096 | 128 |"))
    assert "| 0.680 (table) |" in row and "**>=**" in row
    behind = next(line for line in out.splitlines() if line.startswith("| 64 | 2 | 4096 | 128 |"))
    assert "| 0.680 (table) |" in behind and "**>=**" not in behind
    assert "mlagen at or above FlashMLA on 0 of 0 cells (FlashMLA timed in the runs)" in out
    assert "mlagen at or above FlashMLA's H100 table on 21 of 24 cells" in out


def test_runs_of_different_calls_per_graph_are_refused(tmp_path, capsys):
    """`mlagen bench --chain N` writes calls_per_graph into the meta; older runs (none) count as one call."""
    chained = []
    for i, p in enumerate(RUNS[:2]):
        run = json.loads(p.read_text())
        run["meta"]["calls_per_graph"] = 4
        chained.append(tmp_path / f"chain{i}.json")
        chained[-1].write_text(json.dumps(run))
    assert _main()([str(p) for p in chained]) == 0
    assert "2 runs, 4 calls per graph" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="different calls per graph"):
        _main()([str(RUNS[2]), str(chained[0])])
