#!/usr/bin/env bash
# Twenty-fifth session: the GPU tests of what this session added, none of which ran yet (no device machine).
# One call, ~4 min:
#   . ./.devkit/prelude.sh && MLAGEN_COMMIT=<commit> OUT=$OUT bash docs/perf/experiments/2026-12-08x/run-embed.sh
# 1. prebuild the GPU suite's variants and the embedding tests' kernels (no C exports: not run here);
# 2. FlashMLA's interface (mlagen.flash_mla) against the kernel's bits and the reference; the tiny MLA model
#    over a bf16 and an fp8 cache (mlagen.nn, rows written by mlagen.kv_cache.write_cache);
# 3. the cache as one layer of a two-layer pool past 4 GiB, on every schedule and cache kind;
# 4. examples/tiny_decode.py over an fp8 cache (what a user runs first).
set -uo pipefail
: "${MLAGEN_COMMIT:?name the commit sent}"
cd "$(dirname "$0")/../../../.."
OUT=$(realpath -m "${OUT:-out-1208x}")
mkdir -p "$OUT"
RES=$(mktemp -d)
export PYTHONUNBUFFERED=1 MLAGEN_CACHE_DIR=${MLAGEN_CACHE_DIR:-$PWD/.gpu-cache-x} MLAGEN_COMMIT
pack() { tar -C "$RES" -cJf "$OUT/results-embed.tar.xz" .; }
echo "commit $MLAGEN_COMMIT" > "$RES/commit.txt"
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv > "$RES/gpu.txt" 2>&1; cat "$RES/gpu.txt"
timeout 240 python tools/prebuild.py --cache "$MLAGEN_CACHE_DIR" --jobs 16 --variants > "$RES/prebuild.txt" 2>&1
timeout 120 python - >> "$RES/prebuild.txt" 2>&1 <<'PY'
import os, sys
sys.path.insert(0, "tests/gpu")
os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")
from test_embed_gpu import embed_specs
from mlagen.jit import build
for name, spec in embed_specs().items():
    r = build(spec, cache_dir=os.environ["MLAGEN_CACHE_DIR"])
    print(("built" if r.cold else "cached"), name, r.identity.name, f"{r.seconds:.1f} s")
PY
tail -3 "$RES/prebuild.txt"; echo "== prebuild at ${SECONDS}s"; pack
timeout 150 python -m pytest -q -p no:cacheprovider tests/gpu/test_embed_gpu.py -k "flash_mla or tiny_model" 2>&1 \
  | tail -20 > "$RES/tests-embed.txt"
tail -3 "$RES/tests-embed.txt"; echo "== embed tests at ${SECONDS}s"; pack
timeout 150 python -m pytest -q -p no:cacheprovider tests/gpu/test_decode_gpu.py -k "pool_past" 2>&1 \
  | tail -20 > "$RES/tests-pool.txt"
tail -3 "$RES/tests-pool.txt"; echo "== pool tests at ${SECONDS}s"; pack
timeout 120 python examples/tiny_decode.py --steps 8 --cache-dtype fp8_e4m3 > "$RES/tiny-decode-fp8.txt" 2>&1
echo "tiny_decode fp8: exit $?"; tail -1 "$RES/tiny-decode-fp8.txt"; pack
