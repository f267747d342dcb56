#!/usr/bin/env bash
# The next device session's first call (~5 min), both prepared experiments on one machine start:
# run-merge-probe.sh (where the batch-1 merge's ~5 us go) into $OUT/probe, then run-many-pdl-all.sh (the many-pieces
# merge with PDL behind every schedule) into $OUT/pdl. Each leaves one results.tar.xz.
OUT=$(realpath -m "${OUT:-out-1207p-next}")
cd "$(dirname "$0")"
mkdir -p "$OUT/probe" "$OUT/pdl"
OUT=$OUT/probe bash run-merge-probe.sh
echo "== probe done at ${SECONDS}s"
OUT=$OUT/pdl bash run-many-pdl-all.sh
echo "== pdl done at ${SECONDS}s"
