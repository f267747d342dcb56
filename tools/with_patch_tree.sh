#!/usr/bin/env bash
# Run a command in a scratch git worktree of HEAD with a repo-level patch applied (for compiling an
# experiment's kernels without touching the checkout), then remove the worktree. The command runs in
# the worktree with PYTHONPATH pointing at it; standard input passes through (a heredoc script).
#   bash tools/with_patch_tree.sh docs/perf/experiments/X/variant.patch python3 - ARGS <<'PY' ... PY
set -euo pipefail
patch_file=$(realpath "${1:?patch file}"); shift
root=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
tree=$(mktemp -d)/tree
git -C "$root" worktree add -q --detach "$tree" HEAD
trap 'git -C "$root" worktree remove --force "$tree"' EXIT
(cd "$tree" && patch -s -p1 < "$patch_file")
cd "$tree"
PYTHONPATH="$tree" "$@"
