"""Warp-stall samples of ncu's source page (CSV, `ncu -i REPORT --page source --csv --print-source sass`) by role:
the converting warps' code (the outermost loop that issues packed multiplies and no wgmma), the MMA warpgroups'
(the outermost loop with wgmmas), and the top instructions of each with their stall reasons.

    python docs/perf/experiments/2026-12-06h/ncu_stalls.py source-sass.csv
"""

import collections
import csv
import re
import sys


def main(path: str) -> None:
    rows = list(csv.reader(open(path)))
    header, data = rows[1], rows[2:]
    col = {h: i for i, h in enumerate(header)}
    stalls = [h for h in header if h.startswith("stall_") and "(Not Issued)" not in h]
    ins = []
    for r in data:
        try:
            address = int(r[0], 16)
        except ValueError:
            continue
        ins.append((address, r[1], int(r[col["Warp Stall Sampling (All Samples)"]] or 0),
                    {s: int(r[col[s]] or 0) for s in stalls}))
    ins.sort()
    total = sum(x[2] for x in ins)
    print(f"{len(ins)} instructions, {total} samples")
    loops = []
    for address, text, _, _ in ins:
        m = re.search(r"BRA\s+(0x[0-9a-f]+)", text)
        if m and int(m.group(1), 16) <= address:
            loops.append((int(m.group(1), 16), address))

    def has(lo, hi, op):
        return any(op in t for a, t, _, _ in ins if lo <= a <= hi)

    roles = {
        "converting warps": [(lo, hi) for lo, hi in loops if has(lo, hi, "HMUL2") and not has(lo, hi, "HGMMA")],
        "MMA warpgroups": [(lo, hi) for lo, hi in loops if has(lo, hi, "HGMMA") and not has(lo, hi, "HMUL2")],
    }
    for name, found in roles.items():
        if not found:
            print(f"{name}: no loop found")
            continue
        lo, hi = min(a for a, _ in found), max(b for _, b in found)
        sel = [x for x in ins if lo <= x[0] <= hi]
        n = sum(x[2] for x in sel)
        reasons = collections.Counter()
        for x in sel:
            reasons.update(x[3])
        print(f"\n{name} ({hex(lo)}-{hex(hi)}): {len(sel)} instructions, {n} samples ({100 * n / total:.1f}%)")
        for k, v in reasons.most_common(6):
            print(f"    {k:24s} {v:8d} {100 * v / max(n, 1):5.1f}%")
        print("  top instructions (samples, text, reasons; the one before it):")
        addresses = [x[0] for x in ins]
        for a, t, s, st in sorted(sel, key=lambda x: -x[2])[:12]:
            top = ", ".join(f"{k[6:]} {v}" for k, v in sorted(st.items(), key=lambda kv: -kv[1])[:2] if v)
            prev = ins[addresses.index(a) - 1][1].strip()[:50]
            print(f"    {s:7d}  {t.strip()[:60]:60s} {top} | {prev}")


if __name__ == "__main__":
    main(sys.argv[1])
