#!/usr/bin/env bash
# Time a template patch against the checkout's templates on bench cells, in one process.
#
#   bash tools/ab_patch.sh docs/perf/experiments/2026-12-04/seesaw-lazy-rescale.patch 128,1,128,4096:16384 128,2,128,8192
#
# The patch applies to a copy of templates/ (`patch -p1` from inside it, as the files of
# docs/perf/experiments/ are written); each cell is checked against the float32 reference for both
# kernels, then timed alternately (tools/ab_templates.py, cell syntax there). Kernels missing from
# the cache ($NEW_CACHE, else $MLAGEN_CACHE_DIR, else .gpu-cache) are compiled first. On a GPU host
# without a registry, source .devkit/prelude.sh before.
set -euo pipefail
cd "$(dirname "$0")/.."
if (( $# < 2 )); then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
patch_file=$1
shift
[[ -f $patch_file ]] || { echo "ab_patch: no such patch: $patch_file" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r templates "$work/templates"
if ! patch -s -d "$work/templates" -p1 < "$patch_file"; then
  echo "ab_patch: $patch_file does not apply to this checkout's templates" >&2
  exit 2
fi
name=$(basename "$patch_file" .patch)
VARIANTS="$name=$work/templates" NEW_CACHE=${NEW_CACHE:-${MLAGEN_CACHE_DIR:-.gpu-cache}} \
  python3 tools/ab_templates.py "$@"
