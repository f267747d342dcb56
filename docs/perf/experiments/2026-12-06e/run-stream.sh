#!/usr/bin/env bash
# The fp8 load stream by itself, two ways, on fp8 h_q 16 and 32 (s_q 1, 16k), each A/B'd against its full
# kernel in one process (tools/ab_templates.py, ablations unchecked):
#   stream:   heads_n's 16-bit chunk ring, no conversion, no wgmma (../2026-12-04/ablate-headsn-stream.patch);
#   rsstream: loader=fp8_regs' whole-tile fp8 buffers, one wait per tile, the MMA warpgroup only waiting and
#             releasing (ablate-rs-stream.patch).
# Then ncu warp-stall samples of the fp8_regs kernel (h_q 16, 16k), and the named-barrier racecheck probe
# of 2026-12-06d (~20 s).
# Needs fp8-regs.patch applied (on the GPU host: patch -p1 < docs/perf/experiments/2026-12-06e/fp8-regs.patch).
# Prebuild into .gpu-cache-rs: the template folders with PREBUILD=1 (ABL_DIR to choose where), then the base and
# ablated kernels of both cells with MLAGEN_TEMPLATE_DIR set to each (see README.md). Results under $OUT (~2 min).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
here=docs/perf/experiments/2026-12-06e
OUT=${OUT:-out-1206e-stream}
mkdir -p "$OUT"
grep -q fp8_regs mlagen/plan.py || { echo "apply $here/fp8-regs.patch first"; exit 1; }
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-rs}
T=${ABL_DIR:-/tmp/ab-1206e}
if [[ ! -d $T/stream ]]; then
  mkdir -p "$T"
  cp -r templates "$T/rsstream" && patch -s -d "$T/rsstream" -p2 < "$here/ablate-rs-stream.patch"
  cp -r templates "$T/stream" && patch -s -d "$T/stream" -p1 < docs/perf/experiments/2026-12-04/ablate-headsn-stream.patch
fi
[[ ${PREBUILD:-0} == 1 ]] && exit 0
CELLS="16,1,128,16384,fp8_e4m3 32,1,128,16384,fp8_e4m3"
VARIANTS=stream=$T/stream AB_NO_CHECK=stream ROUNDS=3 timeout 200 python tools/ab_templates.py $CELLS 2>&1 \
  | grep -v Warning | tee "$OUT/ab-stream.txt" | tail -12
VARIANTS=rsstream=$T/rsstream AB_PLAN=loader=fp8_regs AB_NO_CHECK=rsstream ROUNDS=3 timeout 200 \
  python tools/ab_templates.py $CELLS 2>&1 | grep -v Warning | tee "$OUT/ab-rsstream.txt" | tail -12
# where the fp8_regs kernel's MMA warpgroup spends its time (warp-stall samples per SASS instruction)
timeout 240 ncu --kernel-name regex:MLADecode --launch-skip 2 --launch-count 1 --section SourceCounters \
  --section WarpStateStats --metrics group:smsp__pcsamp_warp_stall_reasons --export /tmp/rs-prof -f \
  python tools/profile_cell.py --h-q 16 --s-k 16384 --cache fp8_e4m3 --plan loader=fp8_regs > "$OUT/rs-ncu.log" 2>&1
ncu --import /tmp/rs-prof.ncu-rep --page source --csv --print-source sass > /tmp/rs-sass.csv 2>>"$OUT/rs-ncu.log"
python tools/sass_hotspots.py /tmp/rs-sass.csv --top 40 > "$OUT/rs-hotspots.txt" 2>&1; tail -45 "$OUT/rs-hotspots.txt"
xz -c /tmp/rs-sass.csv > "$OUT/rs-sass.csv.xz"
OUT=$OUT timeout 90 bash docs/perf/experiments/2026-12-06d/run-racecheck-probe.sh
