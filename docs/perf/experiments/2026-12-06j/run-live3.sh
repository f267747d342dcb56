#!/usr/bin/env bash
# After seesaw-bt-early.patch went into the templates: three default-grid runs with FlashMLA live and one fp8-grid
# run at the new commit (MLAGEN_COMMIT names it in the JSON: the GPU host gets no .git), everything in one
# tarball, rewritten after each run. ~3 min.
#   FLASHMLA_LIB   tools/flashmla_ref/build.sh's library (carried with the call)
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206j-live3}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-live}
LIB=${FLASHMLA_LIB:?set FLASHMLA_LIB}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit,temperature.gpu --format=csv > "$RES/gpu.txt" 2>&1
timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --bench default,fp8 > "$RES/prebuild.txt" 2>&1
echo "prebuild rc=$?"
for run in 1 2 3; do
  name=h100-1206j-live-c-run$run
  timeout 150 python -m mlagen bench --grid default --flashmla "$LIB" --rep-ms 20 --out "$RES" --name "$name" 2>&1 \
    | grep -v Warning > "$RES/$name.txt"
  echo "== $name"; tail -2 "$RES/$name.txt" | head -1
  tar -C "$RES" -cJf "$OUT/results.tar.xz" .   # after each run: a call cut short still returns what ran
done
timeout 120 python -m mlagen bench --grid fp8 --rep-ms 20 --out "$RES" --name h100-1206j-fp8-c 2>&1 | grep -v Warning \
  > "$RES/h100-1206j-fp8-c.txt"
echo "== fp8"; grep "fp8 graph" "$RES/h100-1206j-fp8-c.txt" | grep "h= 16 s_q=1\|h= 32 s_q=1" | cut -c1-60,100-200
tar -C "$RES" -cJf "$OUT/results.tar.xz" . && ls -la "$OUT"
