#!/usr/bin/env bash
# Twelfth session: issue 4 part 3's pages and dtypes grids at the templates with seesaw-bt-lanes.patch adopted
# (9a3b2a2), three runs each with FlashMLA timed live where its shape allows. One tarball under $OUT, rewritten after
# each run. ~4 min; SWEEP=1 adds cluster=2 on pages 16/32 at h_q 128 (~2 min).
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
# page 16/32 at 128 rows with the two m-block CTAs as a cluster sharing each box by multicast (cluster=2): half the
# copies per CTA, the lever left if the copies themselves are what page 16 waits on (neutral at page 64, 7b57a3b)
if [ -n "${SWEEP:-}" ]; then
  timeout 120 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --bench pages --plan cluster=2 \
    > "$RES/prebuild-c2.txt" 2>&1
  echo "prebuild c2 rc=$? at ${SECONDS}s"
  for page in 16 32; do
    timeout 150 python tools/sweep_cell.py --h-q 128 --s-k 8192 16384 --page $page --plan "" --plan cluster=2 \
      --rep-ms 20 2>&1 | grep -v Warning > "$RES/sweep-c2-p$page.txt"
    echo "== sweep page $page at ${SECONDS}s"; tail -5 "$RES/sweep-c2-p$page.txt"
    tar -C "$RES" -cJf "$OUT/results.tar.xz" .
  done
fi
ls -la "$OUT"
