#!/usr/bin/env bash
# Runs mlagen's GPU test suite on a Hopper host that has Python 3.12, PyTorch and CUDA but no package
# registry. Prepare on a machine with one (see tools/README.md):
#   bash ../shared/gpu/pack-cutedsl.sh .devkit && cp ../shared/gpu/prelude.sh .devkit/
#   python tools/prebuild.py --cache .gpu-cache --variants --specs specs --bench
# then, on the GPU host, from the project root:
#   bash tools/gpu-suite.sh [PYTEST_ARGS...]        e.g.  bash tools/gpu-suite.sh -k split_count -x
#
# Environment:
#   MLAGEN_CACHE_DIR     kernel cache to load from (default: $PWD/.gpu-cache, the prebuilt one)
#   MLAGEN_GPU_EXAMPLES  Hypothesis cases per GPU property test (default: 320, see tests/gpu/conftest.py)
#   MLAGEN_GPU_VARIANTS  the variants the drawn-case test samples (default: all of mlagen.variants.kernel_variants)
#   SANITIZE=1           afterwards run compute-sanitizer on a small subset of the suite
#   SANITIZE_TOOLS       the sanitizer tools to run (default: "memcheck synccheck"; racecheck reports hazards
#                        on the seesaw schedule between accesses its named barriers order, see docs/perf/README.md; to racecheck
#                        the split schedule instead, MLAGEN_TEST_PLAN=schedule=split)
#   SANITIZE_K           pytest -k expression of that subset (default: "split_count and h128 and 3")
#   SKIP_SUITE=1         run only the sanitizer part
#   OUT                  folder for the logs and the JUnit report (default: none, console only)
# Exit status: 0 when every part that ran passed; otherwise the first failing part's status.
set -uo pipefail
cd "$(dirname "$0")/.."

pytest_args=("$@")
set --  # the prelude reads its archive from $1: give it none

log_dir=${OUT:-}
if [[ -n $log_dir ]]; then mkdir -p "$log_dir"; fi

# Runs a command, its output also going to $OUT/<name>.log when OUT is set.
logged() {
  local name=$1; shift
  if [[ -n $log_dir ]]; then
    "$@" 2>&1 | tee "$log_dir/$name.log"
    return "${PIPESTATUS[0]}"
  fi
  "$@"
}

# shellcheck disable=SC1091
. ./.devkit/prelude.sh || { echo "gpu-suite: the prelude failed (see tools/README.md)" >&2; exit 1; }
export MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}

# What runs here: the GPU, the DSL, and how many of the suite's kernels the cache already holds
# (a missing one is compiled on first use, which works but takes ~10 s each).
logged environment python3 - <<'EOF'
import torch
from mlagen.jit import cache_root, cutedsl_version, identity_for
from mlagen.variants import kernel_variants

print(f"gpu-suite: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"CuTe DSL {cutedsl_version()}")
specs = kernel_variants()
missing = [name for name, spec in specs.items() if not (identity_for(spec).entry_dir() / "meta.json").exists()]
print(f"gpu-suite: cache {cache_root()}: {len(specs) - len(missing)} of {len(specs)} suite kernels prebuilt"
      + (f"; missing (compiled on first use): {', '.join(missing)}" if missing else ""))
EOF

status=0
if [[ ${SKIP_SUITE:-0} != 1 ]]; then
  junit=()
  if [[ -n $log_dir ]]; then junit=(--junitxml "$log_dir/gpu-junit.xml"); fi
  logged gpu-suite python3 -m pytest -m gpu tests/gpu -q -p no:cacheprovider "${junit[@]}" "${pytest_args[@]}"
  rc=$?
  echo "gpu-suite: pytest -m gpu tests/gpu exited with $rc"
  (( status == 0 )) && status=$rc
fi

if [[ ${SANITIZE:-0} == 1 ]]; then
  if ! command -v compute-sanitizer >/dev/null; then
    echo "gpu-suite: compute-sanitizer is not on PATH" >&2
    (( status == 0 )) && status=127
  else
    subset=${SANITIZE_K:-split_count and h128 and 3}
    for tool in ${SANITIZE_TOOLS:-memcheck synccheck}; do
      # PyTorch's caching allocator hides out-of-bounds accesses inside its pools: allocate exactly.
      # --error-exitcode makes a finding fail the run even when the tests themselves pass; CUDA API
      # errors are left out (cuda-python probes the driver with cuGetProcAddress calls that fail by design).
      PYTORCH_NO_CUDA_MEMORY_CACHING=1 logged "sanitizer-$tool" \
        compute-sanitizer --tool "$tool" --error-exitcode 86 --print-limit 50 --report-api-errors no \
        python3 -m pytest -m gpu tests/gpu -q -p no:cacheprovider -k "$subset"
      rc=$?
      echo "gpu-suite: compute-sanitizer --tool $tool on -k '$subset' exited with $rc (86: errors found)"
      (( status == 0 )) && status=$rc
    done
  fi
fi

exit "$status"
