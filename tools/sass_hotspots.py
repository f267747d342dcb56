"""Summarise ncu's per-instruction source page: where the warps' time goes and what loads shared memory.

Collect on the GPU host (the report is large, the CSV ~2 MB; summarise there or copy the CSV back):

    ncu --kernel-name regex:MLADecode --launch-skip 2 --launch-count 1 \\
        --section SourceCounters --section WarpStateStats \\
        --metrics group:smsp__pcsamp_warp_stall_reasons --export rep -f \\
        python tools/profile_cell.py --h-q 16 --s-k 16384 --cache fp8_e4m3
    ncu --import rep.ncu-rep --page source --csv --print-source sass > sass.csv
    python tools/sass_hotspots.py sass.csv [--top 30] [--ranges tma=560:780,convert=780:2100,mma=2400:3300]

Prints the warp-stall samples of the hottest instructions (with their three main stall reasons),
samples and instruction counts per index range (``--ranges``: the warp roles, found by reading the
SASS: an instruction's execution count tells whose loop it is in), and shared-memory wavefronts by
instruction kind (LDS / STS / HGMMA operand reads; TMA writes are not in this page).
"""

from __future__ import annotations

import argparse
import collections
import csv
import sys

ALL = "Warp Stall Sampling (All Samples)"


def _int(text: str) -> int:
    return int(text.replace(",", "") or 0) if text else 0


def load(path: str):
    rows = list(csv.reader(open(path, newline="")))
    # ncu writes a "Kernel Name" line first, then the header
    start = next(i for i, r in enumerate(rows) if r and r[0] == "Address")
    header, data = rows[start], rows[start + 1:]
    col = {name: i for i, name in enumerate(header)}
    stalls = [h for h in header if h.startswith("stall_") and "(Not Issued)" not in h]
    return data, col, stalls


def opcode(source: str) -> str:
    words = source.split()
    if not words:
        return ""
    word = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
    return word.split(".")[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--ranges", default="", help="name=lo:hi,... instruction index ranges to total")
    args = ap.parse_args(argv)
    data, col, stalls = load(args.csv)
    total = sum(_int(r[col[ALL]]) for r in data) or 1
    print(f"{len(data)} instructions, {total} warp-stall samples")

    print(f"\nhottest {args.top} instructions (index, samples, share, executions, SASS, main stall reasons):")
    ranked = sorted(range(len(data)), key=lambda n: -_int(data[n][col[ALL]]))[:args.top]
    for n in ranked:
        r = data[n]
        reasons = sorted(((_int(r[col[s]]), s[len("stall_"):]) for s in stalls), reverse=True)[:3]
        print(f"{n:5d} {_int(r[col[ALL]]):7d} {100 * _int(r[col[ALL]]) / total:5.1f}% "
              f"{_int(r[col['Instructions Executed']]):10d}  {r[col['Source']][:58]:58s} "
              + " ".join(f"{name}={v}" for v, name in reasons if v))

    if args.ranges:
        print("\nby range (samples, share, warp instructions executed, main stall reasons):")
        for item in args.ranges.split(","):
            name, span = item.split("=")
            lo, hi = map(int, span.split(":"))
            part = data[lo:hi]
            samples = sum(_int(r[col[ALL]]) for r in part)
            executed = sum(_int(r[col["Instructions Executed"]]) for r in part)
            by_reason = collections.Counter()
            for r in part:
                for s in stalls:
                    by_reason[s[len("stall_"):]] += _int(r[col[s]])
            top = ", ".join(f"{k} {100 * v / max(samples, 1):.0f}%" for k, v in by_reason.most_common(5))
            print(f"  {name:10s} {samples:7d} {100 * samples / total:5.1f}% {executed:12d}  {top}")

    if "L1 Wavefronts Shared" in col:
        print("\nshared-memory wavefronts by instruction kind:")
        waves = collections.Counter()
        for r in data:
            w = _int(r[col["L1 Wavefronts Shared"]])
            if w:
                waves[opcode(r[col["Source"]])] += w
        for kind, w in waves.most_common():
            print(f"  {kind:8s} {w:12d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
