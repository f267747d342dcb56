"""Median over several `mlagen bench` JSON runs of the same grid, mlagen beside FlashMLA (timed live, or its H100 table).

    python tools/compare_runs.py docs/perf/h200-final-run{1,2,3}-default.json

Files ending in .xz are read through lzma (committed runs are kept compressed).

Prints one markdown row per cell: our plan, our median ratio, FlashMLA's median ratio (where the runs
timed it; otherwise, on the H100, the committed FlashMLA table's ratio the bench put beside the cell, marked
"table"), the per-run ratios, how many cells are at or above FlashMLA, and the issues' other targets
(mlagen.targets: pages, fp16, long context, 16k, fp8) checked on the medians.
"""

from __future__ import annotations

import argparse
import json
import lzma
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from mlagen.targets import check, median_cells, summary_lines


def load_runs(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        try:
            raw = Path(p).read_bytes()
            run = json.loads(lzma.decompress(raw) if p.endswith(".xz") else raw)
        except FileNotFoundError:
            raise SystemExit(f"compare_runs: no such file: {p}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SystemExit(f"compare_runs: {p} is not JSON ({e})")
        except lzma.LZMAError as e:
            raise SystemExit(f"compare_runs: {p} is not an xz file ({e})")
        if not isinstance(run, dict) or "cells" not in run or "ceilings" not in run:
            raise SystemExit(f"compare_runs: {p} is not an `mlagen bench` result (no cells or ceilings)")
        runs.append(run)
    return runs


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="mlagen bench JSON files of the same grid")
    paths = ap.parse_args(argv).runs
    runs = load_runs(paths)
    # runs without the field came before `mlagen bench --chain`: one call per graph
    chains = sorted({r["meta"].get("calls_per_graph", 1) for r in runs})
    if len(chains) > 1:
        raise SystemExit(f"compare_runs: the runs were timed with different calls per graph ({chains}, "
                         "`mlagen bench --chain`): their medians would mix two protocols")
    ours, theirs, plans, table = defaultdict(list), defaultdict(list), {}, {}
    for run in runs:
        for c in run["cells"]:
            key = (c["h_q"], c["s_q"], c["s_k"], c["batch"], c["page"], c["dtype"], c.get("cache_dtype", ""))
            if c["kind"] == "mlagen":
                ours[key].append(c["ratio"])
                plans[key] = c["plan"]
                # the bench puts FlashMLA's H100 table beside its cells where it did not time FlashMLA
                if c.get("flashmla_source", "") not in ("", "live") and c.get("flashmla_ratio") is not None:
                    table[key] = c["flashmla_ratio"]
            elif c["kind"] == "flashmla":
                theirs[key].append(c["ratio"])
    ceilings = [(r["ceilings"]["copy_gbps"], r["ceilings"]["matmul_tflops"]) for r in runs]
    sources = sorted({(r["meta"].get("gpu", "?"), str(r["meta"].get("commit", "?"))) for r in runs})
    origin = "; ".join(f"{gpu}, commit {commit}" for gpu, commit in sources)
    chain = f", {chains[0]} calls per graph" if chains[0] != 1 else ""
    print(f"{origin}, {len(runs)} runs{chain}; ceilings (GB/s, TFLOP/s): {ceilings}")
    if len({gpu for gpu, _ in sources}) > 1:
        print("warning: the runs come from different GPU models; their medians mix them")
    print("| h_q | s_q | s_k | batch | plan | mlagen | FlashMLA | mlagen runs | FlashMLA runs |")
    print("|---|---|---|---|---|---|---|---|---|")
    wins = {"live": [0, 0], "table": [0, 0]}
    for key in ours:
        mine = statistics.median(ours[key])
        source = "live" if theirs.get(key) else "table" if key in table else None
        ref = statistics.median(theirs[key]) if source == "live" else table.get(key)
        if source is not None:
            wins[source][1] += 1
            wins[source][0] += mine >= ref
        mark = " **>=**" if ref is not None and mine >= ref else ""
        shown = "-" if ref is None else f"{ref:.3f}" + (" (table)" if source == "table" else "")
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {plans[key]} | {mine:.3f}{mark} | {shown} | "
              f"{', '.join(f'{x:.3f}' for x in ours[key])} | {', '.join(f'{x:.3f}' for x in theirs.get(key, []))} |")
    print(f"\nmlagen at or above FlashMLA on {wins['live'][0]} of {wins['live'][1]} cells (FlashMLA timed in the runs)")
    if wins["table"][1]:
        print(f"mlagen at or above FlashMLA's H100 table on {wins['table'][0]} of {wins['table'][1]} cells")
    # the issues' other targets, on the medians (mlagen.targets)
    for line in summary_lines(check(median_cells([run["cells"] for run in runs]))):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
