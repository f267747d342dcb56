#!/usr/bin/env bash
# The 128-row seesaw cells (issue 4): same-run A/B of main against
#   nocopy: the TMA warp copies only each segment's first pair and then just arrives on the barriers
#           (the MMA warpgroups' work alone: with run-next-5's `nomma`, the loads alone, it says whether
#           the seesaw loses its time to the MMAs or to how they overlap the loads);
#   halves: each warpgroup multiplies its own tile's P first, so half of each KV buffer is freed
#           early and the next pair's Q.K^T start on halves loaded early (FlashMLA's release order);
#   early:  the 2026-12-04 `seesaw-early-release` variant, never timed with the fixed tool;
# then the default and fp8 bench grids at this commit. From the project root after
# `. ./.devkit/prelude.sh`; results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06b
E4=docs/perf/experiments/2026-12-04
OUT=${OUT:-next-out-1206b}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
w=$(mktemp -d)
for v in "nocopy $HERE/ablate-seesaw-nocopy" "halves $HERE/seesaw-halves" "early $E4/seesaw-early-release"; do
  set -- $v
  cp -r templates "$w/$1" && patch -s -d "$w/$1" -p1 < "$2.patch"
done
find "$w" -name "*.orig" -delete
JOBS=15 ROUNDS=${ROUNDS:-3} AB_NO_CHECK=nocopy VARIANTS=nocopy=$w/nocopy,halves=$w/halves,early=$w/early \
  NEW_CACHE=$MLAGEN_CACHE_DIR timeout ${AB_TIMEOUT:-400} python tools/ab_templates.py \
  128,1,128,16384 128,2,128,8192 64,2,128,8192 2>&1 | tee "$OUT/ab-seesaw.txt" | grep -v "^built" | tail -14
[[ ${GRIDS:-default fp8} == none ]] && exit
for g in ${GRIDS:-default fp8}; do
  timeout 150 python -m mlagen bench --grid $g --rep-ms 20 --out "$OUT" --name "h100-$g" 2>&1 | tail -3
done
