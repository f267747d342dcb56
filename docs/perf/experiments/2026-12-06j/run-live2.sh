#!/usr/bin/env bash
# Second call: three more default-grid runs with FlashMLA live (the first call's runs 2 and 3 came back as
# their printed summaries only: a call returns at most 8 files, so everything now travels as one tarball),
# then ncu of both kernels on the cell where FlashMLA leads most (h_q 128, s_q 2, b 128, s_k 16384) at the
# base clock (ncu's default clock control), so the two compare in cycles, not in power. ~5 min.
#   FLASHMLA_LIB   tools/flashmla_ref/build.sh's library (carried with the call)
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206j-live2}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-live}
LIB=${FLASHMLA_LIB:?set FLASHMLA_LIB}
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit,temperature.gpu --format=csv > "$RES/gpu.txt" 2>&1
timeout 200 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --bench default > "$RES/prebuild.txt" 2>&1
echo "prebuild rc=$?"
for run in 1 2 3; do
  name=h100-1206j-live-b-run$run
  timeout 150 python -m mlagen bench --grid default --flashmla "$LIB" --rep-ms 20 --out "$RES" --name "$name" 2>&1 \
    | grep -v Warning > "$RES/$name.txt"
  echo "== $name"; tail -2 "$RES/$name.txt" | head -1
done
SECTIONS=(--section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis
          --section SchedulerStats --section WarpStateStats --section Occupancy --section LaunchStats)
CELL=(--h-q 128 --s-q 2 --s-k 16384)
timeout 120 ncu "${SECTIONS[@]}" -k regex:MLADecode --launch-skip 2 --launch-count 1 \
  python tools/profile_cell.py "${CELL[@]}" > "$RES/ncu-h128q2-16k-mlagen.txt" 2>&1
timeout 120 ncu "${SECTIONS[@]}" -k regex:flash_fwd_splitkv_mla --launch-skip 2 --launch-count 1 \
  python tools/profile_cell.py "${CELL[@]}" --flashmla "$LIB" > "$RES/ncu-h128q2-16k-flashmla.txt" 2>&1
for k in mlagen flashmla; do
  echo "== ncu $k"; grep -E "^    (Duration|Elapsed Cycles|SM Frequency|Compute \(SM\) Throughput|Memory Throughput|Issue Slots Busy|Executed Ipc Active|Warp Cycles Per Issued|Registers Per|Shared Memory Configuration Size|Block Size|Grid Size)" \
    "$RES/ncu-h128q2-16k-$k.txt" | head -14
done
tar -C "$RES" -cJf "$OUT/results.tar.xz" . && ls -la "$OUT"
