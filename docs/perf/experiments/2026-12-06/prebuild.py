"""Prebuild, on a machine without a GPU, the kernels run-next.sh times: each cell's default plan and its heads_n
column-block plan, and the GPU suite's new plan variants.

    python docs/perf/experiments/2026-12-06/prebuild.py .gpu-cache-cb     (about 80 s on 2 cores)
"""
import sys, time
from concurrent.futures import ProcessPoolExecutor
CELLS = [(64, 1, "fp8_e4m3"), (32, 2, "fp8_e4m3"), (128, 1, "fp8_e4m3"), (64, 2, "fp8_e4m3"), (64, 1, None), (128, 1, None)]
PV = ["h128_p64_fp8_headsn", "h32_kv2_p128_q4_causal_fp8_headsn", "h128_p64_q2_causal_headsn"]
def one(item):
    from mlagen.bench import cell_spec
    from mlagen.plan import plan_for
    from mlagen.jit import build
    from mlagen.variants import kernel_variants, plan_variants
    kind, a = item
    if kind == "cell":
        h, s_q, cache, knobs = a
        spec = cell_spec(dict(h_q=h, s_q=s_q, cache=cache))
    else:
        base, knobs = plan_variants()[a]
        spec = kernel_variants()[base]
    plan = plan_for(spec, **knobs)
    t = time.time()
    r = build(spec, plan, cache_dir=sys.argv[1])
    return f"{a} {plan.tag} {'cold' if r.cold else 'cached'} {time.time()-t:.1f}s"
items = [("cell", (h, q, c, k)) for h, q, c in CELLS for k in ({}, {"schedule": "heads_n"})] + [("pv", n) for n in PV]
with ProcessPoolExecutor(2) as ex:
    for line in ex.map(one, items):
        print(line, flush=True)
