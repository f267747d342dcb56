"""Kernels of run-final.sh, compiled on the GPU host before anything is timed (JOBS workers, default 15):
with the checkout's templates the fp8 bench grid (fp8 cells and their bf16-cache twins), the drawn-case
GPU test's fp8 variants and the fp8 seesaw plan variants; with the templates in PAIRS_TMPL (the checkout's
plus seesaw-fp8-pairs.patch) the same GPU-test kernels and the three seesaw cells of the A/B.

    JOBS=15 PAIRS_TMPL=/tmp/pairs python docs/perf/experiments/2026-12-06h/prebuild.py CACHE
"""

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

SUITE = ("h128_p64_fp8", "h40_p64_q2_causal_fp8", "h32_kv2_p128_q4_causal_fp8", "h16_p32_q3_causal_fp16_fp8")
AB_CELLS = ((128, 1), (64, 2), (32, 2))


def build_one(item):
    spec, knobs, cache, template_dir = item
    if template_dir:
        os.environ["MLAGEN_TEMPLATE_DIR"] = template_dir
    else:
        os.environ.pop("MLAGEN_TEMPLATE_DIR", None)
    from mlagen.jit import build
    from mlagen.plan import plan_for
    from mlagen.spec import MLASpec

    spec = MLASpec.from_dict(spec)
    result = build(spec, plan_for(spec, **knobs), cache_dir=cache)
    return f"{'built' if result.cold else 'cached'} {result.identity.name} ({result.seconds:.0f} s, {template_dir or 'templates/'})"


def main():
    from mlagen.bench import GRIDS, cell_spec
    from mlagen.variants import kernel_variants, plan_variants

    cache = str(Path(sys.argv[1]).resolve())
    pairs = os.environ.get("PAIRS_TMPL")
    variants = kernel_variants()
    suite = [(variants[name].to_dict(), {}) for name in SUITE]
    suite += [(variants[base].to_dict(), knobs) for name, (base, knobs) in plan_variants().items()
              if "fp8_seesaw" in name]
    grid = {cell_spec(cell).key: cell_spec(cell) for cell in GRIDS["fp8"]()}
    items = [(spec, knobs, cache, None) for spec, knobs in suite]
    items += [(spec.to_dict(), {}, cache, None) for spec in grid.values()]
    if pairs:
        items += [(spec, knobs, cache, pairs) for spec, knobs in suite]
        items += [(cell_spec(dict(h_q=h, s_q=q, page=64, cache="fp8_e4m3")).to_dict(), {}, cache, pairs)
                  for h, q in AB_CELLS]
    failed = 0
    with ProcessPoolExecutor(max_workers=int(os.environ.get("JOBS", 15))) as pool:
        for future in as_completed([pool.submit(build_one, item) for item in items]):
            try:
                print(future.result(), flush=True)
            except Exception as e:  # report and go on: the other kernels still build
                failed += 1
                print(f"FAILED: {str(e).splitlines()[0] if str(e) else type(e).__name__}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
