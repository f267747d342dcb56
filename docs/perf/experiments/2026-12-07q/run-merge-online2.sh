#!/usr/bin/env bash
# Seventeenth session, one call (~5 min): the many-pieces merge in two shapes (merge-online2.patch, README §2):
# wide (8 warps x 17 pieces, one round at batch 1) up to 64 merged rows, narrow (4 x 8 a round) above. The steps of
# run-merge-online.sh (trial, then the long grid three times with the patched templates) on other cells.
NAME=merge-online2 \
CELLS="16,1,1,32768:131072 16,1,4,32768 16,1,8,32768 32,1,1,32768 16,1,1,32768,fp8_e4m3
  128,1,1,32768:131072 128,1,4,32768 128,1,8,32768 64,2,1,32768 128,2,1,32768 16,1,128,4096" \
TESTS_K="many_pieces or variants_against_reference or long_context or split_count or graph_replay or fp8_blocks" \
BREAKDOWN="16,1,8,32768 128,1,1,32768 128,1,4,32768" \
  exec bash "$(dirname "$0")/run-merge-online.sh"
