"""Kernels of run-grid.sh, compiled without a GPU into one cache folder (~4 min on 2 cores): the fp8 bench
grid (fp8 cells and their bf16-cache twins, planner's plans), the drawn-case GPU test's fp8 variants whose
default plan is now the seesaw, the fp8 seesaw plan variants, and heads_n on two MMA warpgroups of 32
columns (the previous default) at the five fp8 cells above 32 rows, for the same-run sweep.

    python docs/perf/experiments/2026-12-06g/prebuild_grid.py CACHE
"""

import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from prebuild import build_one  # noqa: E402  (the same worker: one kernel into the cache)

SUITE = ("h128_p64_fp8", "h40_p64_q2_causal_fp8", "h32_kv2_p128_q4_causal_fp8", "h16_p32_q3_causal_fp16_fp8")
WIDE_CELLS = ((128, 1), (64, 1), (128, 2), (64, 2), (32, 2))


def main():
    from mlagen.bench import GRIDS, cell_spec
    from mlagen.variants import kernel_variants, plan_variants

    cache = str(Path(sys.argv[1]).resolve())
    variants = kernel_variants()
    specs = {cell_spec(cell).key: cell_spec(cell) for cell in GRIDS["fp8"]()}
    items = [(spec.to_dict(), {}, cache) for spec in specs.values()]
    items += [(variants[name].to_dict(), {}, cache) for name in SUITE]
    items += [(variants[base].to_dict(), knobs, cache) for name, (base, knobs) in plan_variants().items()
              if "fp8_seesaw" in name]
    items += [(cell_spec(dict(h_q=h, s_q=q, page=64, cache="fp8_e4m3")).to_dict(),
               {"schedule": "heads_n", "consumer_wgs": 2}, cache) for h, q in WIDE_CELLS]
    failed = 0
    with ProcessPoolExecutor(max_workers=2) as pool:
        for future in as_completed([pool.submit(build_one, item) for item in items]):
            try:
                print(future.result(), flush=True)
            except Exception as e:  # report and go on: the other kernels still build
                failed += 1
                print(f"FAILED: {str(e).splitlines()[0] if str(e) else type(e).__name__}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
