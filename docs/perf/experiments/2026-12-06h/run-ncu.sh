#!/usr/bin/env bash
# Where the fp8 seesaw's warps stall: ncu's warp-state sampling over one launch of the planner's kernel for
# fp8, h_q 128, s_q 1, batch 128, s_k 16384 (ncu_driver.py; H_Q=32 S_Q=1 for heads_n's 32-row cell), per SASS
# instruction (the source page as CSV, xz-compressed) and the kernel's warp-state summary. Results under $OUT
# (~2 min); read the CSV with ncu_stalls.py. NCU_SECTIONS adds sections (e.g. "--section MemoryWorkloadAnalysis").
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206h-ncu}
mkdir -p "$OUT"
HERE=docs/perf/experiments/2026-12-06h
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-ncu}
timeout 90 python $HERE/ncu_driver.py 2>&1 | grep -v Warning | tail -2   # compiles the kernel
timeout 150 ncu --clock-control none --section WarpStateStats --section SourceCounters --section SpeedOfLight ${NCU_SECTIONS:-} \
  -k regex:MLADecodeSm90 --launch-skip 2 --launch-count 1 -f -o "$OUT/fp8-seesaw" python $HERE/ncu_driver.py \
  > "$OUT/ncu-run.txt" 2>&1; tail -3 "$OUT/ncu-run.txt"
ncu -i "$OUT/fp8-seesaw.ncu-rep" --page details > "$OUT/details.txt" 2>&1
grep -E "Stall|Warp Cycles|Issued|Duration|Throughput|Active Warps|Eligible|Shared|Bank|Pipe|Utilization" "$OUT/details.txt" | head -60
ncu -i "$OUT/fp8-seesaw.ncu-rep" --page source --csv --print-source sass > "$OUT/source-sass.csv" 2> "$OUT/source-err.txt"
echo "source page: $(wc -l < "$OUT/source-sass.csv") lines; $(head -c 300 "$OUT/source-err.txt")"
head -2 "$OUT/source-sass.csv" | cut -c1-600
xz -9 "$OUT/source-sass.csv"
xz -9 "$OUT/fp8-seesaw.ncu-rep"
ls -la "$OUT"
