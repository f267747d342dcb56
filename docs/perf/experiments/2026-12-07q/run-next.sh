#!/usr/bin/env bash
# The next device session's first call (~7 min), both prepared trials on one machine start: run-kv-evict.sh into
# $OUT/evict, then run-merge-few-staged.sh into $OUT/few. Each leaves one results.tar.xz.
OUT=$(realpath -m "${OUT:-out-1207q-next}")
cd "$(dirname "$0")"
for step in evict:run-kv-evict.sh few:run-merge-few-staged.sh; do
  name=${step%%:*}
  mkdir -p "$OUT/$name"
  OUT=$OUT/$name bash "${step#*:}"
  echo "== $name done at ${SECONDS}s"
done
