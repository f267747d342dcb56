"""Median over several `mlagen bench` JSON runs of the same grid, mlagen beside FlashMLA timed live.

    python tools/compare_runs.py docs/perf/h200-final-run{1,2,3}-default.json

Prints one markdown row per cell: our plan, our median ratio, FlashMLA's median ratio (where the runs
timed it), the per-run ratios, how many cells are at or above FlashMLA, and the issues' other targets
(mlagen.targets: pages, fp16, long context, 16k, fp8) checked on the medians.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

from mlagen.targets import check, median_cells, summary_lines


def main(paths: list[str]) -> int:
    runs = [json.load(open(p)) for p in paths]
    ours, theirs, plans = defaultdict(list), defaultdict(list), {}
    for run in runs:
        for c in run["cells"]:
            key = (c["h_q"], c["s_q"], c["s_k"], c["batch"], c["page"], c["dtype"], c.get("cache_dtype", ""))
            if c["kind"] == "mlagen":
                ours[key].append(c["ratio"])
                plans[key] = c["plan"]
            elif c["kind"] == "flashmla":
                theirs[key].append(c["ratio"])
    ceilings = [(r["ceilings"]["copy_gbps"], r["ceilings"]["matmul_tflops"]) for r in runs]
    meta = runs[0]["meta"]
    print(f"{meta['gpu']}, commit {meta['commit']}, {len(runs)} runs; ceilings (GB/s, TFLOP/s): {ceilings}")
    print("| h_q | s_q | s_k | batch | plan | mlagen | FlashMLA | mlagen runs | FlashMLA runs |")
    print("|---|---|---|---|---|---|---|---|---|")
    wins = compared = 0
    for key in ours:
        mine = statistics.median(ours[key])
        ref = statistics.median(theirs[key]) if theirs.get(key) else None
        if ref is not None:
            compared += 1
            wins += mine >= ref
        mark = " **>=**" if ref is not None and mine >= ref else ""
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {plans[key]} | {mine:.3f}{mark} | "
              f"{'-' if ref is None else f'{ref:.3f}'} | {', '.join(f'{x:.3f}' for x in ours[key])} | "
              f"{', '.join(f'{x:.3f}' for x in theirs.get(key, []))} |")
    print(f"\nmlagen at or above FlashMLA on {wins} of {compared} cells")
    # the issues' other targets, on the medians (mlagen.targets)
    for line in summary_lines(check(median_cells([run["cells"] for run in runs]))):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
