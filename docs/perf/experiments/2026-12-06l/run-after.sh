#!/usr/bin/env bash
# Twelfth session, second call (right behind run-next.sh on the warm machine): the default grid twice with FlashMLA
# live and the pages grid once, all with the template folder TEMPLATES (a copy of templates/ with one or both of
# seesaw-bt-lanes.patch / seesaw-qk-behind-pv.patch applied, named by PATCHES), to see run-next.sh's A/B on whole
# grids before the templates change. One tarball under $OUT, rewritten after each run. ~5 min.
#   FLASHMLA_LIB   tools/flashmla_ref/build.sh's library (carried with the call)
#   PATCHES        the patches to apply, space separated file names in this folder
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06k
OUT=${OUT:-out-1206l-after}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-k}
LIB=${FLASHMLA_LIB:?set FLASHMLA_LIB}
T=/tmp/after-templates
rm -rf $T && cp -r templates $T
for p in ${PATCHES:?}; do (cd $T && patch -s -p1 < "$OLDPWD/$HERE/$p") || exit 1; done
echo "$PATCHES" > "$RES/patches.txt"
export MLAGEN_TEMPLATE_DIR=$T
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit,temperature.gpu --format=csv > "$RES/gpu.txt" 2>&1
timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --bench default,pages > "$RES/prebuild.txt" 2>&1
echo "prebuild rc=$? at ${SECONDS}s"
for run in 1 2; do
  name=h100-1206l-after-run$run
  timeout 150 python -m mlagen bench --grid default --flashmla "$LIB" --rep-ms 20 --out "$RES" --name "$name" 2>&1 \
    | grep -v Warning > "$RES/$name.txt"
  echo "== $name at ${SECONDS}s"; tail -14 "$RES/$name.txt"
  tar -C "$RES" -cJf "$OUT/results.tar.xz" .
done
timeout 120 python -m mlagen bench --grid pages --flashmla "$LIB" --rep-ms 20 --out "$RES" --name h100-1206l-after-pages 2>&1 \
  | grep -v Warning > "$RES/h100-1206l-after-pages.txt"
echo "== pages at ${SECONDS}s"; tail -14 "$RES/h100-1206l-after-pages.txt"
tar -C "$RES" -cJf "$OUT/results.tar.xz" . && ls -la "$OUT"
