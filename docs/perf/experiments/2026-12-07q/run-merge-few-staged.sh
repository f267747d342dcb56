#!/usr/bin/env bash
# Prepared in the seventeenth session for the next one, one call (~3 min): the few-pieces merge (batch 128) online
# and staged by cp.async, two pieces a round, copying only the pieces there are (merge-few-staged.patch, README §6):
# §4's version staged four pieces a round, re-reading the last one where a request had fewer, and was x1.009-x1.038
# slower. A/B on the batch-128 cells (the few-pieces merge), a batch-1 control (the many-pieces merge, unchanged),
# kernel durations, the GPU tests with the patch in the tree (tools/patch_trial.sh).
cd "$(dirname "$0")/../../../.."
export MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-q}
TESTS_K=${TESTS_K:-"variants_against_reference or split_count or long_context or large_batch or beyond_one_scan or graph_replay"} \
BREAKDOWN="16,1,128,4096 16,1,128,4096,fp8_e4m3 128,1,128,4096" \
  bash tools/patch_trial.sh docs/perf/experiments/2026-12-07q/merge-few-staged.patch \
  16,1,128,4096 32,1,128,4096 16,1,128,4096,fp8_e4m3 128,1,128,4096 64,2,128,4096 16,1,1,32768
