#!/usr/bin/env bash
# Next GPU call(s): the correct variants of retime.txt timed again with the fixed tools/ab_templates.py
# (each checked against the reference first), grouped by the cells they change; then the default and fp8
# bench grids at this commit (the seesaw's lazy rescaling has no full-grid run yet). From the project
# root after `. ./.devkit/prelude.sh`; results under $OUT.
# Superseded for the variants by ../2026-12-06b/run-next-6.sh: on 2026-12-06 GROUP=headsn hung past its
# timeout (the variants had never run on a GPU; one of them most likely never finishes), and its output
# name held a comma, which the device tool drops (fixed here).
# GROUP=headsn|seesaw|bench|suite picks one part (default: the first three, ~8 minutes with the
# kernels compiled on the host, JOBS=15); `suite` compiles
# the GPU suite's kernels on the host with 15 jobs, then runs it (the seesaw's lazy rescaling on the H100).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=docs/perf/experiments/2026-12-06
OUT=${OUT:-next-out-1206g}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache}
GROUP=${GROUP:-all}
w=$(mktemp -d)
ab() {  # ab NAME-FILTER: the variants of retime.txt whose first cell matches, against main
  local pick=$1 variants="" cells=""
  while read -r name patch c1 c2; do
    [[ -z $name || $name == \#* ]] && continue
    [[ $c1 == $pick* ]] || continue
    cp -r templates "$w/$name" && patch -s -d "$w/$name" -p1 < "$patch" && find "$w/$name" -name "*.orig" -delete
    variants+="${variants:+,}$name=$w/$name"; cells="$c1 $c2"
  done < $HERE/retime.txt
  JOBS=15 ROUNDS=${ROUNDS:-3} VARIANTS=$variants NEW_CACHE=$MLAGEN_CACHE_DIR timeout 540 \
    python tools/ab_templates.py $cells 2>&1 | tee -a "$OUT/ab-h${pick%,}.txt" | grep -v "^built" | tail -4
}
if [[ $GROUP == suite ]]; then
  python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 15 --variants 2>&1 | tail -2
  MLAGEN_GPU_EXAMPLES=${EXAMPLES:-100} OUT=$OUT/suite timeout 500 bash tools/gpu-suite.sh 2>&1 | tail -6
  exit
fi
[[ $GROUP == all || $GROUP == headsn ]] && ab 16,
[[ $GROUP == all || $GROUP == seesaw ]] && ab 128,
if [[ $GROUP == all || $GROUP == bench ]]; then
  for g in default fp8; do
    timeout 120 python -m mlagen bench --grid $g --rep-ms 20 --out "$OUT" --name "h100-$g" 2>&1 | tail -3
  done
fi
