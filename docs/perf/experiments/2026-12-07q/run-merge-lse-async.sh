#!/usr/bin/env bash
# Seventeenth session, one call (~4 min): both merges with their pieces' LSEs brought by cp.async beside the
# columns (merge-lse-async.patch, README §4): the few-pieces merge also online and staged in shared memory.
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-07q
export MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-q}
TESTS_K="many_pieces or variants_against_reference or split_count or long_context or large_batch or beyond_one_scan" \
BREAKDOWN="16,1,128,4096 16,1,1,32768 128,1,128,4096" \
  bash tools/patch_trial.sh $HERE/merge-lse-async.patch \
  16,1,128,4096 32,1,128,4096 16,1,128,4096,fp8_e4m3 128,1,128,4096 64,2,128,4096 \
  16,1,1,32768 16,1,8,32768 128,1,1,32768
