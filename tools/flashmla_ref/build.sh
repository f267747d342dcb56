#!/usr/bin/env bash
# Build FlashMLA's sm90 dense decode into one shared library with a C entry point (shim.cu), for
# `mlagen bench --flashmla LIB`. Usage: tools/flashmla_ref/build.sh FLASHMLA_CHECKOUT [OUT.so]
# The checkout needs its csrc/cutlass submodule. Needs nvcc >= 12.8; no GPU, no torch.
set -euo pipefail
src=$(cd "${1:?usage: build.sh FLASHMLA_CHECKOUT [OUT.so]}" && pwd)
out=${2:-libflashmla_ref.so}
here=$(cd "$(dirname "$0")" && pwd)
test -d "$src/csrc/cutlass/include/cute" || { echo "build.sh: $src/csrc/cutlass has no include/cute (submodule missing?)" >&2; exit 2; }
jobs=${JOBS:-$(nproc)}
# objects are kept beside the library, so a rebuild after an edit of shim.cu recompiles that alone
tmp="${out%.so}.objs"
mkdir -p "$tmp"
# FlashMLA's own nvcc flags (its setup.py), so the timing is of the kernel as its users build it
flags=(-std=c++20 -O3 -Xcompiler -fPIC -gencode arch=compute_90a,code=sm_90a -DNDEBUG -D_USE_MATH_DEFINES
       -Wno-deprecated-declarations -U__CUDA_NO_HALF_OPERATORS__ -U__CUDA_NO_HALF_CONVERSIONS__
       -U__CUDA_NO_HALF2_OPERATORS__ -U__CUDA_NO_BFLOAT16_CONVERSIONS__
       --expt-relaxed-constexpr --expt-extended-lambda --use_fast_math --ptxas-options=--register-usage-level=10
       -I"$src/csrc" -I"$src/csrc/cutlass/include" -I"$src/csrc/kerutils/include" -I"$src/csrc/sm90")
units=("$here/shim.cu"
       "$src/csrc/sm90/decode/dense/instantiations/bf16.cu"
       "$src/csrc/sm90/decode/dense/instantiations/fp16.cu"
       "$src/csrc/smxx/decode/combine/combine.cu"
       "$src/csrc/smxx/decode/get_decoding_sched_meta/get_decoding_sched_meta.cu")
compile() {  # unit -> object, skipped when the object is newer than the unit
    local obj="$tmp/$(basename "$1" .cu)-$(echo "$1" | md5sum | cut -c1-8).o"
    [ "$obj" -nt "$1" ] || nvcc "${flags[@]}" -c "$1" -o "$obj"
}
export -f compile; export tmp
export FLAGS_STR="${flags[*]}"
printf '%s\n' "${units[@]}" | xargs -P "$jobs" -I{} bash -c 'flags=($FLAGS_STR); compile "$1"' _ {}
# no -lcuda: CUTLASS reaches the driver's TMA-descriptor call through the runtime, so a machine without
# a driver links it
nvcc -shared -Xcompiler -fPIC "$tmp"/*.o -o "$out"
echo "built $out from FlashMLA $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '(no git)')"
