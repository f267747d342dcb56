"""Probe for the fp8 register-dequant design (docs/design/fp8-heads-n-register-dequant.md): both products
of a tile with their A operand built in registers from fp8 bytes in shared memory, by RS wgmma, in two
MMA warpgroups that run the same code on different tiles:
  S^T = K.Q^T (A = K, Q's columns permuted), one float32 accumulator per 128-column scale group;
  O^T = V^T.P^T (A = V^T, the value columns permuted, undone in the epilogue), the per-token scale
  applied in the conversion (one packed multiply by a token pair's scales).

It checks the design's first two risks before the kernel is written:
  1. ptxas keeps the RS wgmmas pipelined (no C751x serialisation warning) -- CPU only:
         python tools/probes/rs_dequant_probe.py --compile-only
  2. the fragment mapping and the column permutation of Q give S^T = K.Q^T exactly as the reference,
     with the scale applied to the float32 accumulators per 128-column group -- on a GPU:
         python tools/probes/rs_dequant_probe.py

The mapping: for a 64-column latent chunk, wgmma's A fragment of quad lane q (lane % 4) holds, per
16-column k-step s, contraction indices 2q, 2q+1, 2q+8, 2q+9. They are mapped to the chunk's bytes
16q + 4s + {0, 1, 2, 3}, so a thread's A values for all four k-steps of a chunk are one 16-byte run of
the token's fp8 row (one 128-bit shared load per row, two rows per thread); Q's columns are permuted
the same way when staged (``permute_q_columns``). The e4m3 -> bf16 conversion is exact (bit moves and
one multiply by 2^120 in bf16), and the per-token scale multiplies the float32 accumulator of its
128-column group afterwards.

For O^T, row m = 16w + r + 8h of m-block b (warp w, r = lane // 4, h in {0, 1}) is value column
16 (8w + r) + 2b + h (``value_column``): a thread's 16 rows over the 8 m-blocks are 16 consecutive
bytes of a token's row, all in scale group w, so a k-step (tokens 2q, 2q+1, 2q+8, 2q+9) is four
128-bit loads for all 8 m-blocks, and each pair of tokens shares one packed scale multiplier.
"""


import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

TOKENS = 64
LATENT = 512
GROUP = 128
Q_ROWS = 16
WARPGROUPS = 2
# The e4m3 -> bf16 bit moves (per 16-bit half; the kernel's PTX applies them to a pair at once):
# the sign to bit 15, the other 7 bits shifted by 4 into bf16's exponent and mantissa
SIGN_SHIFT, SIGN_MASK = 8, 0x8000
MAG_SHIFT, MAG_MASK = 4, 0x07F0


def permute_q_columns(latent: int = LATENT) -> np.ndarray:
    """perm[L] = the cache column that logical contraction index L multiplies (per 64-column chunk)."""
    perm = np.empty(latent, dtype=np.int64)
    for chunk in range(latent // 64):
        for s in range(4):
            for p in range(16):
                q, j = (p // 2, p % 2) if p < 8 else ((p - 8) // 2, 2 + p % 2)
                perm[chunk * 64 + s * 16 + p] = chunk * 64 + 16 * q + 4 * s + j
    return perm


def e4m3_to_bf16_bits(byte: np.ndarray) -> np.ndarray:
    """What the probe's conversion computes per byte, before the multiply by 2^120: bf16 bits reading
    2^-120 times the e4m3 value (sign to bit 15, the 7 other bits shifted by 4)."""
    byte = byte.astype(np.uint32)
    return (((byte << SIGN_SHIFT) & SIGN_MASK) | ((byte << MAG_SHIFT) & MAG_MASK)).astype(np.uint16)


def value_column(block: int, m: int) -> int:
    """The value column that row ``m`` (0..63) of O^T's m-block ``block`` holds."""
    w, r, h = m // 16, m % 8, (m % 16) // 8
    return 16 * (8 * w + r) + 2 * block + h


def dequantized(k_fp8_bytes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """float64 latent (wg, token, LATENT) from e4m3 bytes and per-token scales (wg, token, LATENT // GROUP)."""
    import torch

    vals = torch.from_numpy(k_fp8_bytes).view(torch.float8_e4m3fn).to(torch.float64).numpy()
    return vals * np.repeat(scales.astype(np.float64), GROUP, axis=-1)


def reference_ov(k_fp8_bytes: np.ndarray, scales: np.ndarray, p: np.ndarray) -> np.ndarray:
    """float64 O^T per warpgroup: (wg, q_row, value column) = P (wg, q_row, token) . (scaled V)."""
    return np.einsum("wnt,wtc->wnc", p.astype(np.float64), dequantized(k_fp8_bytes, scales))


def reference(k_fp8_bytes: np.ndarray, scales: np.ndarray, q: np.ndarray) -> np.ndarray:
    """float64 S^T per warpgroup: (wg, token, q_row) from e4m3 bytes (wg, token, LATENT), scales (wg, token, 4)."""
    return np.einsum("wtc,nc->wtn", dequantized(k_fp8_bytes, scales), q.astype(np.float64))


def build():
    import cutlass
    import cutlass.cute as cute
    import cutlass.utils.hopper_helpers as sm90_utils
    from cutlass import BFloat16, Float32, Int32
    from cutlass._mlir.dialects import llvm
    from cutlass.cute.nvgpu import warpgroup
    from cutlass.cute.nvgpu import OperandMajorMode
    from cutlass.cute.nvgpu.warpgroup import OperandSource
    from cutlass.cutlass_dsl import T

    # e4m3 bytes in bytes 0 and 2 of t (bytes 1 and 3 are ignored: the masks drop them) -> two bf16
    # reading 2^-120 of their values (sign to bit 15, the 7 other bits shifted by 4: exact, subnormals
    # too), then one packed multiply by the pair's multipliers (2^120 times a scale, as bf16)
    CONVERT = (f"shl.b32 s, t, {SIGN_SHIFT};\n"
               f"shl.b32 m, t, {MAG_SHIFT};\n"
               f"and.b32 s, s, {SIGN_MASK | SIGN_MASK << 16:#010x};\n"
               f"and.b32 m, m, {MAG_MASK | MAG_MASK << 16:#010x};\n"
               "or.b32 t, s, m;\n"
               "mul.rn.bf16x2 $0, t, $3;\n")

    def convert_pair(a, b, sel: int, mult):
        """Bytes selected by ``prmt(a, b, sel)`` (into bytes 0 and 2) -> a bf16 pair times ``mult``."""
        asm = "{\n.reg .b32 t, s, m;\n" + f"prmt.b32 t, $1, $2, {sel:#x};\n" + CONVERT + "}"
        return Int32(llvm.inline_asm(T.i32(), [Int32(a).ir_value(), Int32(b).ir_value(), Int32(mult).ir_value()],
                                     asm, "=r,r,r,r"))

    def scale_pair(lo, hi):
        """(lo, hi) float32 scales -> a bf16 pair of 2^120 * scale (the low half multiplies the first)."""
        asm = ("{\n.reg .f32 x, y;\n"
               "mul.f32 x, $1, 0f7B800000;\n"
               "mul.f32 y, $2, 0f7B800000;\n"
               "cvt.rn.bf16x2.f32 $0, y, x;\n}")
        return Int32(llvm.inline_asm(T.i32(), [Float32(lo).ir_value(), Float32(hi).ir_value()], asm, "=r,f,f"))

    def pick(x: int, y: int) -> int:
        """prmt selector: byte x of the first operand into byte 0, byte y of the second into byte 2."""
        return x | (x << 4) | ((4 + y) << 8) | ((4 + y) << 12)

    class Probe:
        @cute.jit
        def __call__(self, k_ptr: cute.Pointer, sc_ptr: cute.Pointer, q_ptr: cute.Pointer,
                     out_ptr: cute.Pointer, p_ptr: cute.Pointer, o_ptr: cute.Pointer, stream):
            mma = sm90_utils.make_trivial_tiled_mma(
                BFloat16, BFloat16, OperandMajorMode.K, OperandMajorMode.K, Float32, (1, 1, 1),
                (TOKENS, Q_ROWS), a_source=OperandSource.RMEM)
            atom = warpgroup.make_smem_layout_atom(
                sm90_utils.get_smem_layout_atom(cutlass.utils.LayoutEnum.ROW_MAJOR, BFloat16, 64), BFloat16)
            sQ_layout = cute.tile_to_shape(atom, (Q_ROWS, LATENT), order=(0, 1))
            # P (query row, token) per warpgroup: O^T's B operand, K-major (tokens contiguous)
            sP_layout = cute.tile_to_shape(atom, (Q_ROWS, TOKENS, WARPGROUPS), order=(0, 1, 2))

            @cute.struct
            class Storage:
                sK: cute.struct.Align[cute.struct.MemRange[Int32, WARPGROUPS * TOKENS * LATENT // 4], 1024]
                sQ: cute.struct.Align[cute.struct.MemRange[BFloat16, cute.cosize(sQ_layout)], 1024]
                sP: cute.struct.Align[cute.struct.MemRange[BFloat16, cute.cosize(sP_layout)], 1024]

            self.storage = Storage
            self.kernel(mma, k_ptr, sc_ptr, q_ptr, out_ptr, p_ptr, o_ptr, sQ_layout, sP_layout).launch(
                grid=[1, 1, 1], block=[128 * WARPGROUPS, 1, 1], stream=stream)

        @cute.kernel
        def kernel(self, mma: cute.TiledMma, k_ptr: cute.Pointer, sc_ptr: cute.Pointer, q_ptr: cute.Pointer,
                   out_ptr: cute.Pointer, p_ptr: cute.Pointer, o_ptr: cute.Pointer,
                   sQ_layout: cute.ComposedLayout, sP_layout: cute.ComposedLayout):
            tidx, _, _ = cute.arch.thread_idx()
            smem = cutlass.utils.SmemAllocator()
            st = smem.allocate(self.storage)
            sQ = st.sQ.get_tensor(sQ_layout.outer, swizzle=sQ_layout.inner)
            sP = st.sP.get_tensor(sP_layout.outer, swizzle=sP_layout.inner)
            gP = cute.make_tensor(p_ptr, cute.make_layout((Q_ROWS, TOKENS, WARPGROUPS),
                                                          stride=(TOKENS, 1, Q_ROWS * TOKENS)))
            ROW_WORDS = LATENT // 4
            sK = st.sK.get_tensor(cute.make_layout((WARPGROUPS * TOKENS, ROW_WORDS), stride=(ROW_WORDS, 1)))
            gK = cute.make_tensor(k_ptr, cute.make_layout((WARPGROUPS * TOKENS, ROW_WORDS), stride=(ROW_WORDS, 1)))
            gQ = cute.make_tensor(q_ptr, cute.make_layout((Q_ROWS, LATENT), stride=(LATENT, 1)))
            for i in cutlass.range(tidx, WARPGROUPS * TOKENS * ROW_WORDS, 128 * WARPGROUPS, unroll=1):
                sK[i // ROW_WORDS, i % ROW_WORDS] = gK[i // ROW_WORDS, i % ROW_WORDS]
            for i in cutlass.range(tidx, Q_ROWS * LATENT, 128 * WARPGROUPS, unroll=1):
                sQ[i // LATENT, i % LATENT] = gQ[i // LATENT, i % LATENT]   # already permuted by the host
            for i in cutlass.range(tidx, WARPGROUPS * Q_ROWS * TOKENS, 128 * WARPGROUPS, unroll=1):
                n, tok, w = i % Q_ROWS, (i // Q_ROWS) % TOKENS, i // (Q_ROWS * TOKENS)
                sP[n, tok, w] = gP[n, tok, w]
            cute.arch.fence_proxy("async.shared", space="cta")
            cute.arch.barrier()

            wg = tidx // 128
            ctid = tidx % 128
            lane = ctid % 32
            row = (ctid // 32) * 16 + lane // 4    # this thread's tokens: row and row + 8
            quad = lane % 4
            thr = mma.get_slice(ctid)
            tSrQ = mma.make_fragment_B(thr.partition_B(sQ))
            tSrK = mma.make_fragment_A(thr.partition_shape_A((TOKENS, LATENT)))
            acc_shape = thr.partition_shape_C((TOKENS, Q_ROWS))
            accs = [thr.make_fragment_C(acc_shape) for _ in range(LATENT // GROUP)]
            # one 16-byte run per row per 64-column chunk: words w0..w3 of rows row, row + 8
            tok0 = wg * TOKENS + row
            one = scale_pair(Float32(1.0), Float32(1.0))
            for c in cutlass.range_constexpr(LATENT // 64):
                lo = cute.make_rmem_tensor((4,), Int32)
                hi = cute.make_rmem_tensor((4,), Int32)
                cute.autovec_copy(cute.local_tile(sK[tok0, None], (4,), (c * 4 + quad,)), lo)
                cute.autovec_copy(cute.local_tile(sK[tok0 + 8, None], (4,), (c * 4 + quad,)), hi)
                for s in cutlass.range_constexpr(4):
                    frag = cute.recast_tensor(tSrK[None, 0, c * 4 + s], Int32)
                    frag[0] = convert_pair(lo[s], lo[s], pick(0, 1), one)   # (row, 2q..2q+1)
                    frag[1] = convert_pair(hi[s], hi[s], pick(0, 1), one)   # (row + 8, 2q..2q+1)
                    frag[2] = convert_pair(lo[s], lo[s], pick(2, 3), one)   # (row, 2q+8..2q+9)
                    frag[3] = convert_pair(hi[s], hi[s], pick(2, 3), one)   # (row + 8, 2q+8..2q+9)
            warpgroup.fence()
            for g in cutlass.range_constexpr(LATENT // GROUP):
                for k in cutlass.range_constexpr(GROUP // 16):
                    mma.set(warpgroup.Field.ACCUMULATE, k != 0)
                    step = g * (GROUP // 16) + k
                    cute.gemm(mma, accs[g], tSrK[None, None, step], tSrQ[None, None, step], accs[g])
            warpgroup.commit_group()
            warpgroup.wait_group(0)
            # S = sum_g scale[token, g] * acc_g; an accumulator element i is row (i // 2) % 2 * 8 + row
            tScS = thr.partition_C(cute.make_identity_tensor((TOKENS, Q_ROWS)))
            gSc = cute.make_tensor(sc_ptr, cute.make_layout((WARPGROUPS * TOKENS, LATENT // GROUP),
                                                            stride=(LATENT // GROUP, 1)))
            gOut = cute.make_tensor(out_ptr, cute.make_layout((WARPGROUPS * TOKENS, Q_ROWS), stride=(Q_ROWS, 1)))
            for i in cutlass.range_constexpr(cute.size(accs[0])):
                t, n = tScS[i]
                total = Float32(0.0)
                for g in cutlass.range_constexpr(LATENT // GROUP):
                    total = total + gSc[wg * TOKENS + t, g] * accs[g][i]
                gOut[wg * TOKENS + t, n] = total

            # O^T = V^T.P^T: this thread's value columns are 16 (8 warp + lane // 4) + 0..15, all in
            # scale group `warp`; a k-step's tokens are 16 s + 2q + {0, 1, 8, 9}
            warp = ctid // 32
            thr_pv = mma.get_slice(ctid)
            tOrP = mma.make_fragment_B(thr_pv.partition_B(sP[None, None, wg]))
            # one A fragment per m-block: ((2,2,2), 1, 4 k-steps), all live until the wgmmas complete
            tOrV = [mma.make_fragment_A(thr_pv.partition_shape_A((64, TOKENS))) for _ in range(LATENT // 64)]
            accs_o = [thr_pv.make_fragment_C(acc_shape) for _ in range(LATENT // 64)]
            col_word = (8 * warp + lane // 4) * 4   # the thread's 16 bytes of a token row, as words
            for s in cutlass.range_constexpr(TOKENS // 16):
                toks = [wg * TOKENS + 16 * s + 2 * quad + d for d in (0, 1, 8, 9)]
                words = [cute.make_rmem_tensor((4,), Int32) for _ in range(4)]
                for j in cutlass.range_constexpr(4):
                    cute.autovec_copy(cute.local_tile(sK[toks[j], None], (4,), (col_word // 4,)), words[j])
                m01 = scale_pair(gSc[toks[0], warp], gSc[toks[1], warp])
                m89 = scale_pair(gSc[toks[2], warp], gSc[toks[3], warp])
                for b in cutlass.range_constexpr(LATENT // 64):
                    frag = cute.recast_tensor(tOrV[b][None, 0, s], Int32)
                    x, y = 2 * b, 2 * b + 1   # the block's two value columns (rows h = 0, 1) in the 16 bytes
                    frag[0] = convert_pair(words[0][x // 4], words[1][x // 4], pick(x % 4, x % 4), m01)
                    frag[1] = convert_pair(words[0][y // 4], words[1][y // 4], pick(y % 4, y % 4), m01)
                    frag[2] = convert_pair(words[2][x // 4], words[3][x // 4], pick(x % 4, x % 4), m89)
                    frag[3] = convert_pair(words[2][y // 4], words[3][y // 4], pick(y % 4, y % 4), m89)
            warpgroup.fence()
            for b in cutlass.range_constexpr(LATENT // 64):
                for s in cutlass.range_constexpr(TOKENS // 16):
                    mma.set(warpgroup.Field.ACCUMULATE, s != 0)
                    cute.gemm(mma, accs_o[b], tOrV[b][None, None, s], tOrP[None, None, s], accs_o[b])
            warpgroup.commit_group()
            warpgroup.wait_group(0)
            gO = cute.make_tensor(o_ptr, cute.make_layout((WARPGROUPS, Q_ROWS, LATENT),
                                                          stride=(Q_ROWS * LATENT, LATENT, 1)))
            for b in cutlass.range_constexpr(LATENT // 64):
                for i in cutlass.range_constexpr(cute.size(accs_o[b])):
                    m, n = tScS[i]
                    col = 16 * (8 * (m // 16) + m % 8) + 2 * b + (m % 16) // 8
                    gO[wg, n, col] = accs_o[b][i]

    import cutlass.cute.runtime as rt

    gmem = cute.AddressSpace.gmem
    fake = (rt.make_ptr(Int32, 0, gmem, assumed_align=16), rt.make_ptr(Float32, 0, gmem, assumed_align=16),
            rt.make_ptr(BFloat16, 0, gmem, assumed_align=16), rt.make_ptr(Float32, 0, gmem, assumed_align=16),
            rt.make_ptr(BFloat16, 0, gmem, assumed_align=16), rt.make_ptr(Float32, 0, gmem, assumed_align=16),
            rt.make_fake_stream())
    dump = tempfile.mkdtemp(prefix="rs-probe-")
    compiled = cute.compile(Probe(), *fake, options=f"--keep-ptx --dump-dir={dump}")
    ptx = sorted(Path(dump).glob("*.ptx"))
    if not ptx:
        return compiled, None
    # the dumped PTX may end in NUL padding, which ptxas refuses
    clean = Path(dump) / "probe.clean.ptx"
    clean.write_bytes(ptx[-1].read_bytes().rstrip(b"\0"))
    return compiled, clean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compile-only", action="store_true", help="compile for sm_90a and run ptxas; no GPU needed")
    args = ap.parse_args()
    os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")
    os.environ.setdefault("CUTE_DSL_DISABLE_FILE_CACHING", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from mlagen.ptxas import check_ptx

    compiled, ptx = build()
    if ptx is None:
        raise SystemExit("rs_dequant_probe: the DSL wrote no PTX")
    report = check_ptx(ptx)
    print(f"ptxas: {report}")
    text = ptx.read_text()
    # the design's budget per tile and thread: 16 + 16 128-bit loads for the two products' A operands
    print(f"PTX: {text.count('wgmma.mma_async')} wgmma, {text.count('ld.shared.v4')} ld.shared.v4, "
          f"{text.count('prmt.b32')} prmt, {text.count('mul.rn.bf16x2')} mul.rn.bf16x2")
    if report.serialized:
        raise SystemExit("rs_dequant_probe: ptxas serialises the RS wgmmas: " + "; ".join(report.serialized))
    if args.compile_only:
        return

    import torch

    rng = np.random.default_rng(0)
    vals = torch.from_numpy(rng.standard_normal((WARPGROUPS, TOKENS, LATENT)).astype(np.float32))
    k_bytes = vals.to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    # powers of two over a wide range, small ones too, so that every product is exact and the check
    # can be tight (2^120 * scale must stay a finite bf16: scale <= 2^7)
    scales = np.exp2(rng.integers(-20, 8, size=(WARPGROUPS, TOKENS, LATENT // GROUP))).astype(np.float32)
    q_bf16 = torch.from_numpy(rng.standard_normal((Q_ROWS, LATENT)).astype(np.float32)).to(torch.bfloat16)
    p_bf16 = torch.from_numpy(rng.random((WARPGROUPS, Q_ROWS, TOKENS)).astype(np.float32)).to(torch.bfloat16)
    want_s = reference(k_bytes, scales, q_bf16.float().numpy())
    want_o = reference_ov(k_bytes, scales, p_bf16.float().numpy())
    perm = torch.from_numpy(permute_q_columns())
    dev = torch.device("cuda")
    k_dev = torch.from_numpy(k_bytes).to(dev).view(torch.int32).contiguous()
    sc_dev = torch.from_numpy(scales).to(dev)
    q_dev = q_bf16.to(dev)[:, perm.to(dev)].contiguous()
    p_dev = p_bf16.to(dev).contiguous()
    # poisoned outputs: a slot the kernel does not write stays NaN and fails the check
    s_out = torch.full((WARPGROUPS * TOKENS, Q_ROWS), float("nan"), device=dev)
    o_out = torch.full((WARPGROUPS, Q_ROWS, LATENT), float("nan"), device=dev)
    import cuda.bindings.driver as cuda_driver
    import cutlass.cute as cute
    from cutlass import BFloat16, Float32, Int32
    from cutlass.cute.runtime import make_ptr

    gmem = cute.AddressSpace.gmem
    compiled(make_ptr(Int32, k_dev.data_ptr(), gmem, assumed_align=16),
             make_ptr(Float32, sc_dev.data_ptr(), gmem, assumed_align=16),
             make_ptr(BFloat16, q_dev.data_ptr(), gmem, assumed_align=16),
             make_ptr(Float32, s_out.data_ptr(), gmem, assumed_align=16),
             make_ptr(BFloat16, p_dev.data_ptr(), gmem, assumed_align=16),
             make_ptr(Float32, o_out.data_ptr(), gmem, assumed_align=16),
             cuda_driver.CUstream(torch.cuda.current_stream().cuda_stream))
    torch.cuda.synchronize()
    failed = []
    # exact products accumulated in float32: relative to the largest reference value
    for name, got, want in (("S^T", s_out.cpu().numpy().reshape(want_s.shape), want_s),
                            ("O^T", o_out.cpu().numpy(), want_o)):
        err = np.abs(got - want).max() / np.abs(want).max() if np.isfinite(got).all() else float("inf")
        print(f"{name}: max |kernel - reference| / max |reference| = {err:.3g}")
        if err > 1e-5:
            failed.append(name)
    if failed:
        raise SystemExit(f"rs_dequant_probe: {', '.join(failed)} does not match the reference")
    print("rs_dequant_probe: S^T and O^T match the reference")

if __name__ == "__main__":
    main()
