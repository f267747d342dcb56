#!/usr/bin/env bash
# Compile, without a GPU, the kernels run-next-8.sh needs: main, the stamped copy of templates/
# (tools/timeline_seesaw.py patch) and the `nocopy` ablation, for h_q 128 s_q 1 and s_q 2. Usage (from
# the project root): bash docs/perf/experiments/2026-12-06b/prebuild_8.sh .gpu-cache-8
set -euo pipefail
cd "$(dirname "$0")/../../../.."
cache=$(realpath -m "${1:?cache folder}")
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cp -r templates "$w/tls" && python tools/timeline_seesaw.py patch "$w/tls" >/dev/null
cp -r templates "$w/nocopy" && patch -s -d "$w/nocopy" -p1 < docs/perf/experiments/2026-12-06b/ablate-seesaw-nocopy.patch
build() {  # template dir ("" for templates/), then s_q values
  local t=$1; shift
  for s_q in "$@"; do
    MLAGEN_TEMPLATE_DIR=$t MLAGEN_CACHE_DIR=$cache python - "$s_q" <<'PY'
import sys
import mlagen.jit
from mlagen.bench import cell_spec
from mlagen.plan import plan_for
spec = cell_spec(dict(h_q=128, s_q=int(sys.argv[1]), page=64, cache=None))
print("built", mlagen.jit.build(spec, plan_for(spec)).identity.name, flush=True)
PY
  done
}
build "" 1 & build "$w/nocopy" 1 & wait
build "$w/tls" 1 & build "$w/tls" 2 & wait
find "$cache" -name kernel.ptx -delete
