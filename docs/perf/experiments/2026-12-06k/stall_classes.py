"""Warp-stall samples of the two kernels' ncu source pages (run-stalls.sh), summed by stall reason and by SASS
opcode, so the two schedules compare by where their warps wait, not only by total cycles.

    python stall_classes.py h100-stalls/source-mlagen.csv.xz h100-stalls/source-flashmla.csv.xz
"""

from __future__ import annotations

import csv
import lzma
import sys
from collections import Counter


def load(path: str):
    with lzma.open(path, "rt") as f:
        rows = list(csv.reader(f))
    header = rows[1]
    return header, rows[2:]


def summarise(path: str, top: int = 14) -> None:
    header, rows = load(path)
    col = {name: i for i, name in enumerate(header)}
    stall_cols = [n for n in header if n.startswith("stall_") and "(Not Issued)" not in n]
    by_reason, by_op, executed = Counter(), Counter(), Counter()
    total = 0
    for r in rows:
        samples = int(r[col["Warp Stall Sampling (All Samples)"]] or 0)
        total += samples
        op = r[col["Source"]].strip().split()
        op = op[1] if op and op[0].startswith("@") else (op[0] if op else "?")
        by_op[op.split(".")[0]] += samples
        executed[op.split(".")[0]] += int(r[col["Instructions Executed"]] or 0)
        for n in stall_cols:
            by_reason[n] += int(r[col[n]] or 0)
    inst = sum(executed.values())
    print(f"== {path}: {total} samples, {inst} warp instructions executed")
    print("  by stall reason:", ", ".join(f"{k[6:]} {v / total:.1%}" for k, v in by_reason.most_common(top) if v))
    print("  by opcode (samples share, executed):")
    for op, v in by_op.most_common(top):
        print(f"    {op:10s} {v / total:6.1%}  {executed[op]:>10d}")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        summarise(p)
