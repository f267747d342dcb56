#!/usr/bin/env bash
# Where the two kernels' warps stall on the cell where FlashMLA leads most (h_q 128, s_q 2, b128, s_k 16384): ncu's
# warp-state sampling per SASS instruction (source page, CSV) of one launch of each, at ncu's base clock, for an
# offline comparison by instruction class (stall_classes.py). ~3 min. Results (one tarball) under $OUT.
#   FLASHMLA_LIB   tools/flashmla_ref/build.sh's library (carried with the call)
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206j-stalls}
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-stalls}
LIB=${FLASHMLA_LIB:?set FLASHMLA_LIB}
CELL=(--h-q 128 --s-q 2 --s-k 16384)
timeout 120 python tools/profile_cell.py "${CELL[@]}" --calls 1 2>&1 | grep -v Warning | tail -1   # compiles ours
for k in mlagen flashmla; do
  if [ $k = mlagen ]; then name=regex:MLADecode; extra=(); else name=regex:flash_fwd_splitkv_mla; extra=(--flashmla "$LIB"); fi
  timeout 150 ncu --section WarpStateStats --section SourceCounters --section SpeedOfLight -k "$name" --launch-skip 2 \
    --launch-count 1 -f -o "$RES/$k" python tools/profile_cell.py "${CELL[@]}" "${extra[@]}" > "$RES/ncu-run-$k.txt" 2>&1
  tail -1 "$RES/ncu-run-$k.txt"
  ncu -i "$RES/$k.ncu-rep" --page source --csv --print-source sass > "$RES/source-$k.csv" 2> "$RES/source-err-$k.txt"
  echo "$k source page: $(wc -l < "$RES/source-$k.csv") lines"
  xz -9 "$RES/source-$k.csv" && rm -f "$RES/$k.ncu-rep"
done
tar -C "$RES" -cJf "$OUT/results.tar.xz" . && ls -la "$OUT"
