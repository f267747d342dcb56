#!/usr/bin/env bash
# ncu of the two-MMA-warpgroup fp8_regs kernel (one-acc.patch; h_q 16, s_q 1, 16k): speed of light, scheduler
# and warp-state statistics, warp-stall samples per SASS instruction (summarised by tools/sass_hotspots.py).
# Does it leave issue slots for a third MMA warpgroup? Both patches applied first (README.md); ~2 min.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206f-ncu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-rs4}
grep -q fold_group templates/sm90/_heads_n_regs.py.j2 || { echo "apply fp8-regs-f16.patch and one-acc.patch first"; exit 1; }
for plan in loader=fp8_regs,schedule=heads_n,consumer_wgs=2 ""; do
  tag=${plan:+rs2}; tag=${tag:-default}
  timeout 200 ncu --kernel-name regex:MLADecode --launch-skip 2 --launch-count 1 --section SpeedOfLight \
    --section SchedulerStats --section WarpStateStats --section SourceCounters \
    --metrics group:smsp__pcsamp_warp_stall_reasons --export /tmp/prof-$tag -f \
    python tools/profile_cell.py --h-q 16 --s-k 16384 --cache fp8_e4m3 --plan "$plan" > "$OUT/ncu-$tag.log" 2>&1
  ncu --import /tmp/prof-$tag.ncu-rep --print-summary none > "$OUT/ncu-$tag-sections.txt" 2>&1
  ncu --import /tmp/prof-$tag.ncu-rep --page source --csv --print-source sass > /tmp/sass-$tag.csv 2>>"$OUT/ncu-$tag.log"
  python tools/sass_hotspots.py /tmp/sass-$tag.csv --top 30 > "$OUT/hotspots-$tag.txt" 2>&1
  xz -c /tmp/sass-$tag.csv > "$OUT/sass-$tag.csv.xz"
  grep -E "Duration|Issue Slots Busy|Executed Ipc A|Eligible Warps|Active Warps Per|No Eligible|Warp Cycles Per Issued" \
    "$OUT/ncu-$tag-sections.txt" | head -12
done
