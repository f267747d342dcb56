"""Issue 4 part 3 from three runs of the pages, dtypes, long and mtp4 grids (run-part3.sh): median time and ratio per
cell, and each target's comparison (page 16/32/128 against page 64 at s_k >= 8192; fp16 against bf16; ratio at small
batch and long context; s_q 4 causal).

    python part3_summary.py h100-part3 h100-mtp4

(Written for this session's tables; the same checks now live in mlagen/targets.py, which `mlagen bench` prints after
each grid and `python tools/compare_runs.py RUN1.json RUN2.json RUN3.json` on the medians.)
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def load(folders):
    cells = defaultdict(list)
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")):
            grid = path.stem.rsplit("-", 1)[1]
            for c in json.load(open(path))["cells"]:
                if c["kind"] != "mlagen":
                    continue
                key = (grid, c["h_q"], c["s_q"], c["s_k"], c["batch"], c["page"], c["dtype"])
                cells[key].append((c["graph_ms"], c["ratio"], c.get("flashmla_ratio")))
    return {k: (statistics.median(t for t, _, _ in v), statistics.median(r for _, r, _ in v),
                statistics.median(f for _, _, f in v) if all(f is not None for _, _, f in v) else None, len(v))
            for k, v in cells.items()}


def main(folders):
    m = load(folders)
    print("| grid | h_q | s_q | s_k | batch | page | dtype | median ms | ratio | FlashMLA live | runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in sorted(m):
        t, r, f, n = m[k]
        print(f"| {' | '.join(map(str, k))} | {t:.4f} | {r:.3f} | {'' if f is None else f'{f:.3f}'} | {n} |")
    print("\npages against page 64 (same h_q, s_q, s_k, batch), s_k >= 8192, target within +10%:")
    for k in sorted(m):
        grid, h, s_q, s_k, b, page, dt = k
        if grid == "pages" and page != 64 and s_k >= 8192:
            base = m.get((grid, h, s_q, s_k, b, 64, dt))
            if base:
                d = m[k][0] / base[0] - 1
                print(f"  h_q {h} s_q {s_q} s_k {s_k} page {page}: {d:+.1%} {'ok' if d <= 0.10 else 'MISSED'}")
    print("\nfp16 against bf16, target within +3%:")
    for k in sorted(m):
        grid, h, s_q, s_k, b, page, dt = k
        if grid == "dtypes" and dt == "fp16":
            base = m.get((grid, h, s_q, s_k, b, page, "bf16"))
            if base:
                d = m[k][0] / base[0] - 1
                print(f"  h_q {h} s_q {s_q} s_k {s_k}: {d:+.1%} {'ok' if d <= 0.03 else 'MISSED'}")
    print("\nlong context, small batch, target ratio >= 0.80:")
    for k in sorted(m):
        if k[0] == "long":
            print(f"  h_q {k[1]} batch {k[4]} s_k {k[3]}: {m[k][1]:.3f} {'ok' if m[k][1] >= 0.80 else 'missed'}"
                  f" (FlashMLA {m[k][2] if m[k][2] is None else f'{m[k][2]:.3f}'})")


if __name__ == "__main__":
    main(sys.argv[1:])
