#!/usr/bin/env bash
# The seesaw over fp8 caches (schedule=seesaw, three producer warps converting each latent chunk in
# place): first the GPU tests of its plan variants (drawn problems, long context, score jumps, blocks
# outside the fast dequantization range), then per fp8 grid cell (batch 128, page 64, 4k-16k) the
# planner's plan against the seesaw (tools/sweep_cell.py: each checked against the float32 reference
# first, ceilings measured in the same process), then the bf16-cache twins' planner plans at h_q 16 and
# 32, s_q 1 (issue 7's tokens-per-second cells). Kernels prebuilt with prebuild.py into .gpu-cache-s8.
# Results under $OUT (~6 min; a 60-second probe first, which stops the run if it fails).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206g}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-s8}
# a 60-second probe first: one small problem on the h_q 128 kernel (a hang or a wrong result stops here)
timeout 60 python - <<'PY' 2>&1 | grep -v Warning | tee "$OUT/probe.txt" | tail -3
import torch
import mlagen.jit
from mlagen.plan import plan_for
from mlagen.testing import assert_close_mla, make_problem
from mlagen.variants import kernel_variants
spec = kernel_variants()["h128_p64_fp8"]
kernel = mlagen.jit.compile(spec, plan_for(spec, schedule="seesaw"))
p = make_problem(spec, batch=4, seqlens=[64 * 3 + 5, 0, 1000, 77], s_q=1, seed=3, device="cuda")
out = torch.full((p.batch, 1, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda")
lse = torch.full((p.batch, spec.q_heads, 1), float("nan"), device="cuda")
kernel(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse)
torch.cuda.synchronize()
ref_out, ref_lse = p.reference(torch.float32)
assert_close_mla(out, lse, ref_out, ref_lse, context=p.describe())
print("probe: fp8 seesaw h_q 128 matches the reference")
PY
grep -q "matches the reference" "$OUT/probe.txt" || { echo "probe failed: nothing more run"; exit 1; }
MLAGEN_GPU_EXAMPLES=40 OUT=$OUT/suite timeout 150 bash tools/gpu-suite.sh -k "fp8_seesaw" 2>&1 | tail -4
for cell in "128 1" "64 1" "128 2" "64 2" "32 2" "32 1" "16 1" "16 2"; do
  set -- $cell
  timeout 75 python tools/sweep_cell.py --cache fp8_e4m3 --rep-ms 20 --check-timeout 40 --plan "" \
    --plan schedule=seesaw --h-q "$1" --s-q "$2" --s-k 4096 8192 16384 2>&1 | grep -v Warning \
    | tee "$OUT/sweep-fp8-h$1-q$2.txt" | tail -6
done
for h in 16 32; do
  timeout 50 python tools/sweep_cell.py --rep-ms 20 --check-timeout 40 --plan "" --h-q "$h" --s-q 1 \
    --s-k 4096 8192 16384 2>&1 | grep -v Warning | tee "$OUT/sweep-bf16-h$h-q1.txt" | tail -3
done
