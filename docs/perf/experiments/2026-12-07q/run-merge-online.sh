#!/usr/bin/env bash
# Seventeenth session, one call (~7 min): the many-pieces merge in one round (merge-online.patch, README §1).
#  1. tools/patch_trial.sh: A/B on the cells that take the many-pieces merge (batch 1-8, long requests) with a
#     batch-128 control (the few-pieces merge, unchanged), per-kernel durations, the GPU tests with the patch;
#  2. the long grid three times with the patched templates (what main would measure if the patch is adopted).
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07q
OUT=$(realpath -m "${OUT:-out-1207q-merge}")
mkdir -p "$OUT/trial" "$OUT/long"
export MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-q}
BREAKDOWN="16,1,1,32768 16,1,4,32768 128,1,1,32768" OUT=$OUT/trial \
  bash tools/patch_trial.sh $HERE/merge-online.patch \
  16,1,1,32768:131072 16,1,4,32768 16,1,8,32768 16,2,1,32768 32,1,1,32768 16,1,1,32768,fp8_e4m3 \
  128,1,1,32768:131072 128,1,4,32768 64,2,1,32768 16,1,128,4096
echo "== trial done at ${SECONDS}s"
[ -n "${SKIP_LONG:-}" ] && exit 0
RES=$(mktemp -d)
tdir=$(mktemp -d)
cp -r templates "$tdir/templates" && patch -s -d "$tdir/templates" -p1 < $HERE/merge-online.patch || exit 1
export MLAGEN_TEMPLATE_DIR=$tdir/templates MLAGEN_COMMIT="${MLAGEN_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}+merge-online"
( timeout 120 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 12 --bench long > "$RES/prebuild.txt" 2>&1 )
for r in 1 2 3; do
  timeout 110 python -m mlagen bench --grid long --rep-ms 20 --out "$RES" --name h100-1207q-long-r$r 2>&1 \
    | grep -v Warning > "$RES/long-r$r.txt"; rm -f "$RES"/*.png
  grep "^mlagen " "$RES/long-r$r.txt" | sed -E 's/ +/ /g; s/ call.* ratio / ratio /; s/ FlashMLA.*//; s/ \[.*//'
  echo "== long r$r at ${SECONDS}s"
  tar -C "$RES" -cJf "$OUT/long/results.tar.xz" .
done
