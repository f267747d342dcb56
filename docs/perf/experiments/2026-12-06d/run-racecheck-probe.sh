#!/usr/bin/env bash
# Does racecheck follow a named barrier shared by two of a CTA's three warpgroups? The dims split's
# factor exchange without the kernel (tools/probes/named_barrier_race.cu): mode 0 as the kernel does
# it, mode 1 a real race (control), mode 2 with the CTA-wide barrier. Needs nvcc and compute-sanitizer
# (both on the GPU host), no prebuilt kernels; results under $OUT (~20 s).
set -uo pipefail
cd "$(dirname "$0")/../../../.."
OUT=${OUT:-out-1206d-racecheck-probe}
mkdir -p "$OUT"
nvcc -O3 -arch=sm_90a -o /tmp/nbrace tools/probes/named_barrier_race.cu || exit 1
for m in 0 1 2; do
  timeout 60 compute-sanitizer --tool racecheck /tmp/nbrace $m 2>&1 | grep -E "mode|RACECHECK SUMMARY" \
    | tee -a "$OUT/racecheck-probe.txt"
done
