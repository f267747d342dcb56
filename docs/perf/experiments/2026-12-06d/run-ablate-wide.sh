#!/usr/bin/env bash
# Where the wide fp8 heads_n kernel (two MMA warpgroups of 32 columns, three converting warps; the fp8
# default above 32 query rows since 1f2b22b) spends its ~4.3 us per tile: main against three ablations of
# ../2026-12-04/ (timed unchecked, AB_NO_CHECK: they drop work on purpose) at fp8 h_q 64 s_q 1 16k:
#   noconv  the converting warps only wait and arrive (the MMAs read raw bytes);
#   stream  neither conversion nor wgmma (the loads and the barrier skeleton);
#   nost    no S^T wgmma (O^T and the conversion stay).
# Prebuild (no GPU): bash docs/perf/experiments/2026-12-06d/run-ablate-wide.sh --prebuild .gpu-cache-aw
# From the project root after `. ./.devkit/prelude.sh`; results under $OUT (~2 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
CELLS=${CELLS:-64,1,128,16384,fp8_e4m3}
w=$(mktemp -d)
variants=""
for n in noconv stream nost; do
  cp -r templates "$w/$n" && patch -s -d "$w/$n" -p1 < docs/perf/experiments/2026-12-04/ablate-headsn-$n.patch || exit 1
  find "$w/$n" -name "*.orig" -delete
  variants+="${variants:+,}$n=$w/$n"
done
if [[ ${1:-} == --prebuild ]]; then
  cache=$(realpath -m "${2:?cache folder}")
  VARIANTS=$variants python3 - "$cache" $CELLS <<'PY'
import os, sys
sys.path.insert(0, "tools")
import ab_templates
cache = sys.argv[1]
for cell in sys.argv[2:]:
    spec = ab_templates._spec_of(cell)
    for folder in [None] + [v.split("=", 1)[1] for v in os.environ["VARIANTS"].split(",")]:
        ab_templates.kernel_for(spec, folder, cache)
        print("built", cell, folder or "main", flush=True)
PY
  find "$cache" \( -name kernel.ptx -o -name kernel.py \) -delete
  exit 0
fi
OUT=${OUT:-out-1206d-ablate}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
VARIANTS=$variants NEW_CACHE=$MLAGEN_CACHE_DIR AB_NO_CHECK=noconv,stream,nost ROUNDS=${ROUNDS:-2} \
  AB_CHECK_TIMEOUT=${AB_CHECK_TIMEOUT:-60} timeout ${AB_TIMEOUT:-240} python tools/ab_templates.py $CELLS \
  2>&1 | grep -v Warning | tee "$OUT/ab-ablate-wide.txt" | tail -12
