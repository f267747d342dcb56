"""Summarise ncu's per-SASS-instruction warp stall samples (source page CSV)."""
import csv, sys, re
rows = list(csv.reader(open(sys.argv[1], errors="replace")))
hdr_i = next(i for i, r in enumerate(rows) if any("Source" == c.strip() for c in r))
hdr = rows[hdr_i]; body = [r for r in rows[hdr_i + 1:] if len(r) == len(hdr)]
print("columns:", " | ".join(hdr)[:3000])
def col(name):
    return next((i for i, h in enumerate(hdr) if h.strip() == name), None)
src = col("Source"); addr = col("Address") if col("Address") is not None else col("# Address")
allc = next(i for i, h in enumerate(hdr) if "Sampling (All" in h)
nic = next((i for i, h in enumerate(hdr) if "Sampling (Not" in h), None)
exe = next((i for i, h in enumerate(hdr) if h.strip() == "Instructions Executed"), None)
def num(x):
    try: return float(x.replace(",", ""))
    except Exception: return 0.0
tot = sum(num(r[allc]) for r in body)
print(f"instructions {len(body)}, samples {tot:.0f}")
# stall-reason columns, if any: totals
reason_cols = [i for i, h in enumerate(hdr) if h.startswith("stall_") or "Stall" in h and i not in (allc, nic)]
for i in reason_cols:
    s = sum(num(r[i]) for r in body)
    if s: print(f"  {hdr[i]}: {s:.0f}")
order = sorted(range(len(body)), key=lambda i: -num(body[i][allc]))
print("\ntop instructions (samples, %, not-issued, executed): with the 3 before")
for i in order[:45]:
    r = body[i]
    print(f"{num(r[allc]):7.0f} {100*num(r[allc])/tot:5.1f}% {num(r[nic]) if nic is not None else 0:7.0f} "
          f"{num(r[exe]) if exe is not None else 0:9.0f}  [{i:5d}] {r[src].strip()[:90]}")
    for j in range(max(0, i - 3), i):
        print(f"{'':40s}   [{j:5d}] {body[j][src].strip()[:90]}")
# coarse profile: samples per block of 64 instructions
print("\nsamples per 100-instruction block:")
for b in range(0, len(body), 100):
    s = sum(num(r[allc]) for r in body[b:b + 100])
    if s > tot * 0.005:
        print(f"  [{b:5d}..{b+99:5d}] {s:8.0f} {100*s/tot:5.1f}%")
