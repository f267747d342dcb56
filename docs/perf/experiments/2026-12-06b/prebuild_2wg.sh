#!/usr/bin/env bash
# Compile, without a GPU, the kernels run-next-7.sh needs: headsn-2wg.patch applied to a scratch worktree
# of this checkout, then the GPU suite's four two-warpgroup plan variants and, for each timed cell, the
# default plan and the two-warpgroup plan. Usage (from the project root):
#   bash docs/perf/experiments/2026-12-06b/prebuild_2wg.sh .gpu-cache-2wg
set -euo pipefail
cd "$(dirname "$0")/../../../.."
cache=$(realpath -m "${1:?cache folder}")
root=$PWD
tree=$(mktemp -d)/tree
git worktree add -q --detach "$tree" HEAD
trap 'git -C "$root" worktree remove --force "$tree"' EXIT
(cd "$tree" && patch -s -p1 < "$root/docs/perf/experiments/2026-12-06b/headsn-2wg.patch")
cd "$tree"
PYTHONPATH="$tree" python3 - "$cache" <<'PY'
import sys
from concurrent.futures import ProcessPoolExecutor

CELLS = [dict(h_q=32, s_q=1, cache="fp8_e4m3"), dict(h_q=16, s_q=2, cache="fp8_e4m3"),
         dict(h_q=32, s_q=1, cache=None), dict(h_q=16, s_q=2, cache=None)]
TWO = {"schedule": "heads_n", "consumer_wgs": 2}


def one(item):
    import mlagen.jit
    from mlagen.bench import cell_spec
    from mlagen.plan import plan_for
    from mlagen.variants import kernel_variants, plan_variants
    kind, what, cache = item
    if kind == "suite":
        base, knobs = plan_variants()[what]
        spec = kernel_variants()[base]
    else:
        spec, knobs = cell_spec(dict(page=64, **what[0])), what[1]
    return mlagen.jit.build(spec, plan_for(spec, **knobs), cache_dir=cache).identity.name


from mlagen.variants import plan_variants  # noqa: E402

items = [("suite", n, sys.argv[1]) for n in plan_variants() if n.endswith("2wg")]
items += [("cell", (c, k), sys.argv[1]) for c in CELLS for k in ({}, TWO)]
with ProcessPoolExecutor(2) as pool:
    for name in pool.map(one, items):
        print("built", name, flush=True)
PY
find "$cache" -name kernel.ptx -delete
