#!/usr/bin/env bash
# The "correct" variants of ../2026-12-06/retime.txt, none of which has run on a GPU yet (the broken
# VARIANTS mode ran the base kernel in their place, its reference check included), so any may hang:
# each runs in its own A/B under its own timeout (and tools/ab_templates.py runs every kernel in a child
# process first, AB_CHECK_TIMEOUT), checked against the float32 reference first,
# then timed against main on the cells retime.txt lists. Output files: ab-retime-NAME.txt (no commas:
# the device tool drops such names). NAMES="stilp bt1" picks some (default: all); PICK=16 or 128 the
# heads_n or seesaw ones. Kernels prebuilt on a machine without a GPU:
#   python docs/perf/experiments/2026-12-06b/prebuild_retime.py .gpu-cache-rt [PICK]
# From the project root after `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
RETIME=docs/perf/experiments/2026-12-06/retime.txt
OUT=${OUT:-next-out-1206b6}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
while read -r name patch c1 c2; do
  [[ -z $name || $name == \#* ]] && continue
  [[ -n ${PICK:-} && $c1 != ${PICK},* ]] && continue
  [[ -n ${NAMES:-} && " $NAMES " != *" $name "* ]] && continue
  cp -r templates "$w/$name" && patch -s -d "$w/$name" -p1 < "$patch" && find "$w/$name" -name "*.orig" -delete
  ROUNDS=${ROUNDS:-3} VARIANTS=$name=$w/$name NEW_CACHE=$MLAGEN_CACHE_DIR \
    AB_CHECK_TIMEOUT=${AB_CHECK_TIMEOUT:-60} timeout ${EACH_TIMEOUT:-240} \
    python tools/ab_templates.py $c1 $c2 > "$OUT/ab-retime-$name.txt" 2>&1
  rc=$?
  (( rc == 124 )) && echo "$name: TIMED OUT after ${EACH_TIMEOUT:-240} s (a hang?)" | tee -a "$OUT/ab-retime-$name.txt"
  (( rc != 0 && rc != 124 )) && echo "$name: exit $rc: $(grep -m1 -E 'Error|assert|mismatch' "$OUT/ab-retime-$name.txt")"
  grep -E "^(fp8|bf16) |left out" "$OUT/ab-retime-$name.txt"
done < $RETIME
