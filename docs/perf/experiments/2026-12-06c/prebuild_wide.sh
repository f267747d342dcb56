#!/usr/bin/env bash
# Compile, without a GPU, the kernels run-wide.sh needs: headsn-wide.patch applied to a scratch worktree
# of this checkout, then the GPU suite's heads_n plan variants and the split-count test's kernels
# (default and heads_n-pinned), and for each timed cell the default plan and heads_n on two MMA
# warpgroups of 32 columns at both register splits. Usage (from the project root):
#   bash docs/perf/experiments/2026-12-06c/prebuild_wide.sh .gpu-cache-wide
set -euo pipefail
cd "$(dirname "$0")/../../../.."
cache=$(realpath -m "${1:?cache folder}")
bash tools/with_patch_tree.sh docs/perf/experiments/2026-12-06c/headsn-wide.patch python3 - "$cache" <<'PY'
import sys
from concurrent.futures import ProcessPoolExecutor

WIDE = "schedule=heads_n,consumer_wgs=2"
CELLS = ["64,1,fp8_e4m3", "32,2,fp8_e4m3", "128,1,fp8_e4m3", "64,1"]
KNOBS = ["", WIDE, WIDE + ",producer_regs=72,consumer_regs=216"]


def one(item):
    import mlagen.jit
    from mlagen.bench import cell_spec
    from mlagen.plan import parse_knobs, plan_for
    from mlagen.variants import kernel_variants, plan_variants
    kind, what, cache = item
    if kind == "variant":
        spec, knobs = kernel_variants()[what[0]], what[1]
    else:
        h, s_q, *c = what[0].split(",")
        spec = cell_spec(dict(h_q=int(h), s_q=int(s_q), page=64, cache=c[0] if c else None))
        knobs = parse_knobs(what[1])
    return mlagen.jit.build(spec, plan_for(spec, **knobs), cache_dir=cache).identity.name


from mlagen.variants import plan_variants  # noqa: E402

items = [("variant", v, sys.argv[1]) for n, v in plan_variants().items() if "headsn" in n]
items += [("variant", (n, {}), sys.argv[1]) for n in ("h128_p64_q2_causal", "h32_kv2_p64_q2_causal")]
items += [("variant", ("h128_p64_q2_causal", {"schedule": "heads_n"}), sys.argv[1])]
items += [("cell", (c, k), sys.argv[1]) for c in CELLS for k in KNOBS if not (k and c == "64,1" and "80" in k)]
with ProcessPoolExecutor(2) as pool:
    for name in pool.map(one, items):
        print("built", name, flush=True)
PY
find "$cache" \( -name kernel.ptx -o -name kernel.py \) -delete
