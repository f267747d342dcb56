#!/usr/bin/env bash
# Prepared in the sixteenth session for the next one, one call (~3 min): the many-pieces merge as a PDL
# dependent behind every schedule (many-pdl-all-schedules.patch): the seesaw and split kernels keep letting their
# dependents launch right after the work split only where the merge is the few-pieces kernel (parts < 4 x batch),
# so the many-pieces merge launches as their CTAs exit, as behind heads_n since 52871b1 (README §4).
# A/B on seesaw cells at batch 1-8 (h_q 128, h_q 64/128 s_q 2, fp8) with heads_n and batch-128 controls, the
# kernels' durations (call_breakdown), then the GPU tests with the patch in the tree (tools/patch_trial.sh).
cd "$(dirname "$0")/../../../.."
BREAKDOWN="128,1,1,32768 128,1,4,32768 16,1,1,32768" MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-p} \
  bash tools/patch_trial.sh docs/perf/experiments/2026-12-07p/many-pdl-all-schedules.patch \
  128,1,1,32768:131072 128,1,4,32768 128,1,8,32768 64,2,1,32768 128,2,1,32768 128,1,1,32768,fp8_e4m3 \
  16,1,1,32768 128,1,128,4096 64,2,128,4096
