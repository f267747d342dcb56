#!/usr/bin/env bash
# Issue 4 part 3 at the committed templates (not re-run since 62c44cd): the pages, dtypes, long and mtp4 grids,
# three runs each with FlashMLA timed live where its shape allows. Everything in one tarball, rewritten after
# each run. ~6 min.
#   FLASHMLA_LIB   tools/flashmla_ref/build.sh's library (carried with the call)
#   MLAGEN_COMMIT  the commit under test (the GPU host gets no .git)
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206k-part3}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-k}
LIB=${FLASHMLA_LIB:?set FLASHMLA_LIB}
GRIDS=${GRIDS:-pages,dtypes,long,mtp4}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit,temperature.gpu --format=csv > "$RES/gpu.txt" 2>&1
timeout 240 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --bench "$GRIDS" > "$RES/prebuild.txt" 2>&1
echo "prebuild rc=$?"
for run in 1 2 3; do
  name=h100-1206k-part3-run$run
  timeout 150 python -m mlagen bench --grid "$GRIDS" --flashmla "$LIB" --rep-ms 20 --out "$RES" --name "$name" 2>&1 \
    | grep -v Warning > "$RES/$name.txt"
  echo "== $name rc=${PIPESTATUS[0]}"; grep -c "^mlagen" "$RES/$name.txt"
  tar -C "$RES" -cJf "$OUT/results.tar.xz" .
done
ls -la "$OUT"
