#!/usr/bin/env bash
# Seventeenth session, one call (~5 min): the many-pieces merge in two shapes (merge-online2.patch, README §2):
# wide (8 warps x 17 pieces, one round at batch 1) up to 64 merged rows, narrow (4 x 8 a round) above.
#  1. tools/patch_trial.sh: A/B on the cells that take the many-pieces merge (batch 1-8, long requests) with a
#     batch-128 control (the few-pieces merge, unchanged), per-kernel durations, the GPU tests with the patch;
#  2. the long grid three times with the patched templates (what main would measure if the patch is adopted).
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07q
OUT=$(realpath -m "${OUT:-out-1207q-merge2}")
mkdir -p "$OUT/trial" "$OUT/long"
export MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-q}
TESTS_K="many_pieces or variants_against_reference or long_context or split_count or graph_replay or fp8_blocks" \
BREAKDOWN="16,1,8,32768 128,1,1,32768 128,1,4,32768" OUT=$OUT/trial \
  bash tools/patch_trial.sh $HERE/merge-online2.patch \
  16,1,1,32768:131072 16,1,4,32768 16,1,8,32768 32,1,1,32768 16,1,1,32768,fp8_e4m3 \
  128,1,1,32768:131072 128,1,4,32768 128,1,8,32768 64,2,1,32768 128,2,1,32768 16,1,128,4096
echo "== trial done at ${SECONDS}s"
[ -n "${SKIP_LONG:-}" ] && exit 0
RES=$(mktemp -d)
tdir=$(mktemp -d)
cp -r templates "$tdir/templates" && patch -s -d "$tdir/templates" -p1 < $HERE/merge-online2.patch || exit 1
export MLAGEN_TEMPLATE_DIR=$tdir/templates MLAGEN_COMMIT="${MLAGEN_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}+merge-online2"
( timeout 120 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 12 --bench long > "$RES/prebuild.txt" 2>&1 )
for r in 1 2 3; do
  timeout 110 python -m mlagen bench --grid long --rep-ms 20 --out "$RES" --name h100-1207q-long2-r$r 2>&1 \
    | grep -v Warning > "$RES/long2-r$r.txt"; rm -f "$RES"/*.png
  grep "^mlagen " "$RES/long2-r$r.txt" | sed -E 's/ +/ /g; s/ call.* ratio / ratio /; s/ FlashMLA.*//; s/ \[.*//'
  echo "== long r$r at ${SECONDS}s"
  tar -C "$RES" -cJf "$OUT/long/results.tar.xz" .
done
