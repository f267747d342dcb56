#!/usr/bin/env bash
# Twelfth session: issue 4 part 3's pages and dtypes grids at the templates with seesaw-bt-lanes.patch adopted
# (9a3b2a2), three runs each with FlashMLA timed live where its shape allows. One tarball under $OUT, rewritten after
# each run. ~4 min.
#   MLAGEN_COMMIT  the commit under test (the GPU host gets no .git)
#   FLASHMLA_XZ    tools/flashmla_ref/build.sh's library, xz-compressed (carried inside .devkit: the call's 64 MiB)
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206l-part3}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-l}
LIB=/tmp/libflashmla_ref.so
xz -dc "${FLASHMLA_XZ:?set FLASHMLA_XZ}" > $LIB || exit 1
GRIDS=${GRIDS:-pages,dtypes}
TAG=${TAG:-h100-1206l-part3}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit,temperature.gpu --format=csv > "$RES/gpu.txt" 2>&1
cat "$RES/gpu.txt"
timeout 240 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --bench "$GRIDS" > "$RES/prebuild.txt" 2>&1
echo "prebuild rc=$? at ${SECONDS}s"
for run in 1 2 3; do
  name=$TAG-run$run
  timeout 150 python -m mlagen bench --grid "$GRIDS" --flashmla "$LIB" --rep-ms 20 --out "$RES" --name "$name" 2>&1 \
    | grep -v Warning > "$RES/$name.txt"
  echo "== $name rc=${PIPESTATUS[0]} at ${SECONDS}s"; grep "^target" "$RES/$name.txt"
  rm -f "$RES"/*.png   # the charts are redrawn from the JSON; the tarball stays small
  tar -C "$RES" -cJf "$OUT/results.tar.xz" .
done
ls -la "$OUT"
