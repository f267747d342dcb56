#!/usr/bin/env bash
# Seventeenth session, one call (~7 min): the many-pieces merge in one round (merge-online.patch, README §1).
#  1. tools/patch_trial.sh: A/B on the cells that take the many-pieces merge (batch 1-8, long requests) with a
#     batch-128 control (the few-pieces merge, unchanged), per-kernel durations, the GPU tests with the patch;
#  2. the long grid three times with the patched templates (what main would measure if the patch is adopted).
# run-merge-online2.sh runs the same steps for merge-online2.patch (NAME, CELLS, BREAKDOWN, TESTS_K set there).
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07q
NAME=${NAME:-merge-online}
CELLS=${CELLS:-"16,1,1,32768:131072 16,1,4,32768 16,1,8,32768 16,2,1,32768 32,1,1,32768 16,1,1,32768,fp8_e4m3
  128,1,1,32768:131072 128,1,4,32768 64,2,1,32768 16,1,128,4096"}
OUT=$(realpath -m "${OUT:-out-1207q-$NAME}")
mkdir -p "$OUT/trial" "$OUT/long"
export MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-q}
# shellcheck disable=SC2086
BREAKDOWN=${BREAKDOWN:-"16,1,1,32768 16,1,4,32768 128,1,1,32768"} OUT=$OUT/trial \
  bash tools/patch_trial.sh $HERE/$NAME.patch $CELLS
echo "== trial done at ${SECONDS}s"
[ -n "${SKIP_LONG:-}" ] && exit 0
RES=$(mktemp -d)
tdir=$(mktemp -d)
cp -r templates "$tdir/templates" && patch -s -d "$tdir/templates" -p1 < $HERE/$NAME.patch || exit 1
export MLAGEN_TEMPLATE_DIR=$tdir/templates MLAGEN_COMMIT="${MLAGEN_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null)}+$NAME"
( timeout 120 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 12 --bench long > "$RES/prebuild.txt" 2>&1 )
run_name=${NAME/merge-online/long}   # long, long2: the result files' names as committed
for r in 1 2 3; do
  timeout 110 python -m mlagen bench --grid long --rep-ms 20 --out "$RES" --name h100-1207q-$run_name-r$r 2>&1 \
    | grep -v Warning > "$RES/$run_name-r$r.txt"; rm -f "$RES"/*.png
  grep "^mlagen " "$RES/$run_name-r$r.txt" | sed -E 's/ +/ /g; s/ call.* ratio / ratio /; s/ FlashMLA.*//; s/ \[.*//'
  echo "== long r$r at ${SECONDS}s"
  tar -C "$RES" -cJf "$OUT/long/results.tar.xz" .
done
