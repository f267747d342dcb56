#!/usr/bin/env bash
# Where the fp8 seesaw's time goes and three ways to cut its conversion, on the H100 (~6 min):
#  1. tools/timeline_seesaw.py on the committed templates and on halves+sx, fp8 h_q 128 s_q 1 s_k 16384:
#     per group, TMA issue -> landed -> converted (warp 0) -> seen full by the MMA warpgroup.
#  2. tools/ab_templates.py, same process, alternating, the seesaw pinned, fp8 batch 128 s_k 16384:
#     base (the committed templates) against fp8-sx.patch (3 integer ops per value pair instead of 4),
#     seesaw-fp8-halves.patch (half-chunk units dealt round robin), both (hsx), and
#     ../2026-12-06g/seesaw-fp8-groupwide.patch (gw: all three warps on each chunk pair).
#  3. The same for fp8-sx.patch on heads_n (the fp8 default at 16 and 32 query rows).
# Kernels are compiled on the GPU host (JOBS=15). Results under $OUT. It ran on tree 8e82b70 (templates
# before fp8-sx.patch, which is in the product since eca981d); the timeline's fp8 stamps come from
# timeline-seesaw-fp8.patch, applied here to a copy of tools/ (the product's tool has no --cache).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206h-ab}
mkdir -p "$OUT"
HERE=docs/perf/experiments/2026-12-06h
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-h}
for v in sx halves hsx gw; do rm -rf "/tmp/$v" && cp -r templates "/tmp/$v"; done
(cd /tmp/sx && patch -s -p1 < "$OLDPWD/$HERE/fp8-sx.patch") || exit 1
(cd /tmp/halves && patch -s -p1 < "$OLDPWD/$HERE/seesaw-fp8-halves.patch") || exit 1
(cd /tmp/hsx && patch -s -p1 < "$OLDPWD/$HERE/seesaw-fp8-halves.patch" && patch -s -p1 < "$OLDPWD/$HERE/fp8-sx.patch") || exit 1
(cd /tmp/gw && patch -s -p1 < "$OLDPWD/docs/perf/experiments/2026-12-06g/seesaw-fp8-groupwide.patch") || exit 1
rm -rf /tmp/tools-tl && cp -r tools /tmp/tools-tl && (cd /tmp/tools-tl && patch -s -p1 < "$OLDPWD/$HERE/timeline-seesaw-fp8.patch") || exit 1
TL=/tmp/tools-tl/timeline_seesaw.py
for v in base hsx; do
  src=templates; [ "$v" = base ] || src=/tmp/$v
  rm -rf "/tmp/tl-$v" && cp -r "$src" "/tmp/tl-$v" && python $TL patch "/tmp/tl-$v" >/dev/null || exit 1
done
# the stamped kernels build while the A/B's kernels do
(for v in base hsx; do MLAGEN_TEMPLATE_DIR=/tmp/tl-$v python -c "
import mlagen.jit
from mlagen.bench import cell_spec
from mlagen.plan import plan_for
s = cell_spec(dict(h_q=128, s_q=1, page=64, cache='fp8_e4m3'))
mlagen.jit.build(s, plan_for(s))" > "$OUT/tl-build-$v.txt" 2>&1 & done; wait) &
VARIANTS=sx=/tmp/sx,halves=/tmp/halves,hsx=/tmp/hsx,gw=/tmp/gw AB_PLAN=schedule=seesaw NEW_CACHE=$MLAGEN_CACHE_DIR \
  JOBS=13 ROUNDS=2 REP_MS=20 timeout 300 python tools/ab_templates.py 128,1,128,16384,fp8_e4m3 \
  64,2,128,16384,fp8_e4m3 32,2,128,16384,fp8_e4m3 2>&1 | grep -v Warning | tee "$OUT/ab-seesaw.txt" | grep -v "^built" | tail -30
wait
for v in base hsx; do
  echo "== timeline $v"
  MLAGEN_TEMPLATE_DIR=/tmp/tl-$v timeout 90 python $TL run --cache fp8_e4m3 --h-q 128 --s-k 16384 2>&1 \
    | grep -v Warning | tee "$OUT/timeline-$v.txt"
done
VARIANTS=sx=/tmp/sx NEW_CACHE=$MLAGEN_CACHE_DIR JOBS=4 ROUNDS=2 REP_MS=20 timeout 150 python tools/ab_templates.py \
  16,1,128,16384,fp8_e4m3 32,1,128,16384,fp8_e4m3 2>&1 | grep -v Warning | tee "$OUT/ab-headsn.txt" | grep -v "^built" | tail -12
