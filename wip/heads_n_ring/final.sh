. ./.devkit/prelude.sh
export MLAGEN_CACHE_DIR=$PWD/.gpu-cache PYTHONUNBUFFERED=1 MLAGEN_COMMIT=$(cat wip/heads_n_ring/COMMIT 2>/dev/null || echo unknown)
timeout 40 python scratch/diag4.py ring > $OUT/diag4.log 2>&1; echo "diag4 rc=$?"; tail -1 $OUT/diag4.log
timeout 50 python scratch/check_hn.py 15 > $OUT/check.log 2>&1; echo "check rc=$?"; grep -E "FAIL|done|FAILS" $OUT/check.log | cut -c1-300
MLAGEN_GPU_EXAMPLES=60 MLAGEN_GPU_SHRINK=0 timeout 100 python -m pytest -m gpu tests/gpu/test_decode_gpu.py -q -x -p no:cacheprovider -k "variants_against_reference or fp8" > $OUT/suite.log 2>&1; echo "suite rc=$?"; tail -3 $OUT/suite.log | cut -c1-300
for a in "--h-q 16 --max-q 1 --cache fp8_e4m3" "--h-q 16 --s-q 2 --max-q 2 --cache fp8_e4m3" "--h-q 32 --max-q 1 --cache fp8_e4m3" "--h-q 16 --max-q 1"; do timeout 25 python tools/sweep_cell.py $a --s-k 4096 8192 16384 --rep-ms 15 > $OUT/s.log 2>&1; grep -E "ceilings|mlagen h=|Error" $OUT/s.log | cut -c1-210; done
