#!/usr/bin/env bash
# Compile, without a GPU, the kernels run-roles.sh needs: headsn-roles.patch applied to a scratch worktree
# of this checkout, then the GPU suite's role-split plan variants, and for each timed cell the default
# plan and the role split. Usage (from the project root):
#   bash docs/perf/experiments/2026-12-06c/prebuild_roles.sh .gpu-cache-roles
set -euo pipefail
cd "$(dirname "$0")/../../../.."
cache=$(realpath -m "${1:?cache folder}")
bash tools/with_patch_tree.sh docs/perf/experiments/2026-12-06c/headsn-roles.patch python3 - "$cache" <<'PY'
import sys
from concurrent.futures import ProcessPoolExecutor

ROLES = "schedule=heads_n,mma_roles=s_o"
CELLS = ["32,1,fp8_e4m3", "16,2,fp8_e4m3", "16,1,fp8_e4m3", "32,1"]


def one(item):
    import mlagen.jit
    from mlagen.bench import cell_spec
    from mlagen.plan import parse_knobs, plan_for
    from mlagen.variants import kernel_variants
    kind, what, cache = item
    if kind == "variant":
        spec, knobs = kernel_variants()[what[0]], what[1]
    else:
        h, s_q, *c = what[0].split(",")
        spec = cell_spec(dict(h_q=int(h), s_q=int(s_q), page=64, cache=c[0] if c else None))
        knobs = parse_knobs(what[1])
    return mlagen.jit.build(spec, plan_for(spec, **knobs), cache_dir=cache).identity.name


from mlagen.variants import plan_variants  # noqa: E402

items = [("variant", v, sys.argv[1]) for n, v in plan_variants().items() if n.endswith("headsnso")]
items += [("cell", (c, k), sys.argv[1]) for c in CELLS for k in ("", ROLES)]
with ProcessPoolExecutor(2) as pool:
    for name in pool.map(one, items):
        print("built", name, flush=True)
PY
find "$cache" \( -name kernel.ptx -o -name kernel.py \) -delete
