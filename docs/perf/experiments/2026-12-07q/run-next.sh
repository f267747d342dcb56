#!/usr/bin/env bash
# The next device session's first call (~7 min), both prepared trials on one machine start: run-kv-evict.sh into
# $OUT/evict, then run-merge-few-staged.sh into $OUT/few. Each leaves one results.tar.xz.
OUT=$(realpath -m "${OUT:-out-1207q-next}")
cd "$(dirname "$0")"
mkdir -p "$OUT/evict" "$OUT/few"
OUT=$OUT/evict bash run-kv-evict.sh
echo "== evict done at ${SECONDS}s"
OUT=$OUT/few bash run-merge-few-staged.sh
echo "== few done at ${SECONDS}s"
