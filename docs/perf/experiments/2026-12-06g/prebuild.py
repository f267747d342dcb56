"""Kernels of run-seesaw-fp8.sh, compiled without a GPU into one cache folder (~6 min on 2 cores):
the GPU suite's fp8 seesaw plan variants, and per fp8 grid cell (h_q 16-128, s_q 1-2) the planner's
plan and the seesaw, plus the bf16-cache twins' planner plans for the tokens-per-second comparison.

    python docs/perf/experiments/2026-12-06g/prebuild.py CACHE
"""

import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))


def build_one(item):
    from mlagen.jit import build
    from mlagen.plan import plan_for
    from mlagen.spec import MLASpec

    spec, knobs, cache = item
    spec = MLASpec.from_dict(spec)
    result = build(spec, plan_for(spec, **knobs), cache_dir=cache)
    return f"{'built' if result.cold else 'cached'} {result.identity.name} ({result.seconds:.0f} s)"


def main():
    from mlagen.bench import cell_spec
    from mlagen.variants import kernel_variants, plan_variants

    cache = str(Path(sys.argv[1]).resolve())
    variants = kernel_variants()
    items = [(variants[base].to_dict(), knobs, cache) for name, (base, knobs) in plan_variants().items()
             if "fp8_seesaw" in name]
    for h_q in (16, 32, 64, 128):
        for s_q in (1, 2):
            fp8 = cell_spec(dict(h_q=h_q, s_q=s_q, page=64, cache="fp8_e4m3"))
            bf16 = cell_spec(dict(h_q=h_q, s_q=s_q, page=64))
            items += [(fp8.to_dict(), {}, cache), (fp8.to_dict(), {"schedule": "seesaw"}, cache),
                      (bf16.to_dict(), {}, cache)]
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
