"""The fp8_e4m3 cache format: layout, round trip, poison, and what e4m3 costs an attention output.

e4m3 keeps 3 mantissa bits: a normal value is off by at most 2^-4 of itself after
rounding; below 2^-6 (subnormals) the spacing is 2^-9, so the error is at most
2^-10. In units of a block's scale (amax / 448) that is, per value x,

    |dequant(x) - x| <= 2^-4 |x| + 2^-10 scale.

Reading back first rounds the scale to the query dtype's precision (at most 2^-9
relative for bf16), which adds at most 2^-9 (|x| (1 + 2^-4) + 2^-10 scale): the
bound used is (2^-4 + 2^-8) |x| + 2^-10 (1 + 2^-8) scale.

The attention bound below follows from it (see ``_attention_bound``).
"""

from __future__ import annotations

import math

import pytest
import torch

from mlagen.fp8_cache import FP8_MAX, dequantize_cache, quantize_cache, round_scale, row_bytes
from mlagen.reference import mla_decode_reference
from mlagen.spec import MLASpec
from mlagen.testing import make_problem

REL = 2.0**-4 + 2.0**-8
SUB = 2.0**-10 * (1 + 2.0**-8)


def _cache(shape, seed, dtype=torch.bfloat16, gain_blocks=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 0.1
    if gain_blocks:
        blocks = (shape[-1] - 64) // 128
        gain = torch.exp2(torch.rand((*shape[:-1], blocks), generator=g) * 8 - 4)
        x[..., : blocks * 128] *= gain.repeat_interleave(128, dim=-1)
    return x.to(dtype)


def _scales(packed, latent=512):
    raw = packed.view(torch.uint8)
    return raw[..., latent : latent + 4 * (latent // 128)].contiguous().view(torch.float32)


def test_row_bytes_is_flashmla_layout():
    assert row_bytes(512, 64) == 656
    assert row_bytes(512, 0) == 528
    with pytest.raises(ValueError, match="multiple of 128"):
        row_bytes(500, 64)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_layout_and_round_trip_within_e4m3_precision(dtype):
    x = _cache((5, 16, 2, 576), seed=1, dtype=dtype)
    packed = quantize_cache(x)
    assert packed.dtype == torch.float8_e4m3fn and packed.shape == (5, 16, 2, 656)
    raw = packed.view(torch.uint8)
    # scales: float32 amax / 448 per 128 latent values, bytes 512..527
    amax = x[..., :512].float().reshape(5, 16, 2, 4, 128).abs().amax(-1)
    torch.testing.assert_close(_scales(packed), amax / FP8_MAX, rtol=0, atol=0)
    # the RoPE part is the query dtype's bytes, untouched (bytes 528..655)
    assert torch.equal(raw[..., 528:], x[..., 512:].contiguous().view(torch.uint8))
    # latent bytes are e4m3 of x / scale
    expect = (x[..., :512].float().reshape(5, 16, 2, 4, 128) / (amax / FP8_MAX)[..., None]).reshape(5, 16, 2, 512)
    assert torch.equal(raw[..., :512], expect.to(torch.float8_e4m3fn).view(torch.uint8))

    back = dequantize_cache(packed, dtype=dtype, out_dtype=torch.float32)
    scale = (amax / FP8_MAX).repeat_interleave(128, dim=-1)
    err = (back[..., :512] - x[..., :512].float()).abs()
    assert (err <= REL * x[..., :512].float().abs() + SUB * scale + 1e-12).all()
    assert torch.equal(back[..., 512:], x[..., 512:].float())
    # round to the stored dtype: what the kernel's MMAs see
    assert dequantize_cache(packed, dtype=dtype).dtype == dtype


@pytest.mark.parametrize("dtype, bits", [(torch.bfloat16, 8), (torch.float16, 11)])
def test_scales_round_to_query_precision_and_nan_codes_read_480(dtype, bits):
    g = torch.Generator().manual_seed(7)
    scale = torch.exp2(torch.rand(1000, generator=g) * 40 - 20)
    r = round_scale(scale, dtype)
    # within half a unit in the last of `bits` significant bits, and on that grid
    assert ((r - scale).abs() <= scale * 2.0 ** -bits).all()
    m, _ = torch.frexp(r)
    assert torch.equal(m * 2.0**bits, (m * 2.0**bits).round())
    if dtype == torch.bfloat16:
        assert torch.equal(r, scale.to(torch.bfloat16).float())
    assert torch.isnan(round_scale(torch.tensor([float("nan")]), dtype)).all()
    # a row whose first bytes are e4m3's NaN codes, scale 1
    row = torch.zeros(1, 656, dtype=torch.uint8)
    row[0, 0], row[0, 1], row[0, 2] = 0x7F, 0xFF, 0x38  # 0x38 = 1.0
    row[0, 512:516] = torch.tensor([1.0]).view(torch.uint8)
    back = dequantize_cache(row, dtype=dtype, out_dtype=torch.float32)
    assert back[0, :3].tolist() == [480.0, -480.0, 1.0]


def test_zero_blocks_and_poison():
    x = _cache((2, 8, 1, 576), seed=2)
    x[0, 3, 0, 128:256] = 0
    x[1, 5] = float("nan")
    packed = quantize_cache(x)
    back = dequantize_cache(packed, out_dtype=torch.float32)
    assert _scales(packed)[0, 3, 0, 1] == 0
    assert (back[0, 3, 0, 128:256] == 0).all()
    assert torch.isfinite(back[0]).all()
    assert torch.isnan(back[1, 5]).all()  # NaN in, NaN out: poison stays poison
    assert torch.isfinite(back[1, :5]).all() and torch.isfinite(back[1, 6:]).all()


def test_quantize_saturates_instead_of_overflowing():
    x = torch.zeros(1, 1, 1, 576, dtype=torch.bfloat16)
    x[..., :128] = torch.linspace(-1e38, 1e38, 128).to(torch.bfloat16)
    back = dequantize_cache(quantize_cache(x), out_dtype=torch.float32)
    assert torch.isfinite(back).all()


def test_bad_arguments():
    with pytest.raises(TypeError, match="bfloat16 or float16"):
        quantize_cache(torch.zeros(1, 576))
    with pytest.raises(ValueError, match="last dimension"):
        quantize_cache(torch.zeros(1, 100, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="packed rows"):
        dequantize_cache(torch.zeros(1, 656, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="not a packed row"):
        dequantize_cache(torch.zeros(1, 527, dtype=torch.uint8))


def test_reference_reads_packed_rows_exactly():
    spec = MLASpec(q_heads=16, page=16, max_q=2, causal=True, cache_dtype="fp8_e4m3")
    p = make_problem(spec, batch=3, seqlens=[0, 40, 77], s_q=2, seed=3)
    assert p.kv_cache.dtype == torch.uint8 and p.kv_cache.shape[-1] == 656
    out, lse = p.reference(torch.float64)
    # the same problem through a 16-bit cache holding fp8 * scale rounded once (what the kernel reads)
    deq = dequantize_cache(p.kv_cache, dtype=torch.bfloat16)
    spec16 = spec.replace(cache_dtype=None)
    out2, lse2 = mla_decode_reference(p.q, deq, p.block_table, p.cache_seqlens, spec16, compute_dtype=torch.float64)
    assert torch.equal(out, out2) and torch.equal(lse, lse2)
    assert torch.isfinite(out).all()
    # poison past the ends really is in the packed cache
    assert torch.isnan(deq[p.block_table[1, 2], 40 - 32 :]).all()


def _attention_bound(q, k, v, scale_sm, kscale, vscale):
    """Per-element bound on |O(fp8 cache) - O(16-bit cache)| from e4m3's precision alone.

    Keys: |Δs_j| <= scale_sm * sum_i |q_i| (2^-4 |k_ji| + 2^-10 kscale_ji) =: δ_j; with δ = max δ_j,
    softmax weights move by a factor within e^{±2δ}, so sum_j |p'_j - p_j| |v_jd| <= (e^{2δ} - 1) sum_j p_j |v_jd|.
    Values: |Δv_jd| <= 2^-4 |v_jd| + 2^-10 vscale_jd, weighted by p'_j <= e^{2δ} p_j.
    """
    delta = scale_sm * (q.abs() @ (REL * k.abs() + SUB * kscale).T)      # (rows, tokens)
    d = delta.max(dim=-1, keepdim=True).values
    s = (q @ k.T) * scale_sm
    p = torch.softmax(s, dim=-1)
    grow = torch.exp(2 * d)
    return (grow - 1) * (p @ v.abs()) + grow * (p @ (REL * v.abs() + SUB * vscale))


@pytest.mark.parametrize("seed", range(6))
def test_attention_error_within_e4m3_bound(seed):
    tokens, heads = 300, 8
    src = _cache((tokens, 1, 1, 576), seed=seed).double()
    packed = quantize_cache(src.to(torch.bfloat16))
    deq = dequantize_cache(packed, out_dtype=torch.float64).reshape(tokens, 576)
    src = src.to(torch.bfloat16).double().reshape(tokens, 576)
    g = torch.Generator().manual_seed(100 + seed)
    q = (torch.randn(heads, 576, generator=g) * 0.1).to(torch.bfloat16).double()
    scale_sm = 1 / math.sqrt(576)
    blk = _scales(packed).reshape(tokens, 4).double().repeat_interleave(128, dim=-1)
    kscale = torch.cat([blk, torch.zeros(tokens, 64, dtype=torch.float64)], dim=-1)

    def attend(k):
        return torch.softmax((q @ k.T) * scale_sm, dim=-1) @ k[:, :512]

    err = (attend(deq) - attend(src)).abs()
    bound = _attention_bound(q, src, src[:, :512], scale_sm, kscale, blk)
    assert (err <= bound).all(), float((err - bound).max())
    # and the bound is not vacuous: within a small multiple of the error actually seen
    assert float(bound.max()) < 50 * float(err.max()) + 1e-3


def _prmt(a, b, selector: int):
    """PTX prmt.b32 (default mode) on uint32 arrays: result byte i is byte (nibble i & 7) of {b, a}, or that
    byte's sign replicated when bit 3 of the nibble is set."""
    import numpy as np

    pool = [(a >> (8 * k)) & 0xFF for k in range(4)] + [(b >> (8 * k)) & 0xFF for k in range(4)]
    out = np.zeros_like(a)
    for i in range(4):
        nibble = (selector >> (4 * i)) & 0xF
        byte = pool[nibble & 7]
        if nibble & 8:
            byte = np.where(byte & 0x80, 0xFF, 0).astype(a.dtype)
        out |= byte << (8 * i)
    return out


@pytest.mark.parametrize("dtype, bias", [("bf16", 120), ("fp16", 8)])
def test_kernel_e4m3_bit_trick_reads_every_code(dtype, bias):
    """The kernels' fp8 -> 16-bit step (templates/sm90/_fp8.py.j2: a byte permute, a shift, a mask per pair),
    emulated from the rendered module's own constants over every pair of e4m3 bytes in both pair positions:
    each 16-bit half reads 2^-bias times the e4m3 value (subnormals exact), NaN codes +-480, and the other
    two bytes of the word do not leak in."""
    import re

    import numpy as np

    from mlagen.codegen import render
    from mlagen.plan import plan_for

    spec = MLASpec(q_heads=16, dtype=dtype, cache_dtype="fp8_e4m3")
    source = render(spec, plan_for(spec)).source
    shift = int(re.search(r"^_SHIFT = (\d+)", source, re.M).group(1))
    mask = int(re.search(r'^_MASK = "(0x[0-9A-Fa-f]+)"', source, re.M).group(1), 16)
    selects = [int(s, 16) for s in re.search(r'^_PAIR_SELECT = \("(0x\w+)", "(0x\w+)"\)', source, re.M).groups()]
    body = source[source.index("def _e4m3_pair_bits("):source.index("def _fp8x2_fast(")]
    # the emulation below is what the PTX does only if these are its three operations
    assert re.search(r"prmt\.b32 t, \$1, \$1, \{select\}", body) and "shl.b32 t, t, {_SHIFT}" in body
    assert "and.b32 t, t, {_MASK}" in body and body.count(".b32 t") == 4  # the .reg line and the three ops

    codes = np.arange(256, dtype=np.uint32)
    b0, b1 = np.meshgrid(codes, codes, indexing="ij")
    b0, b1 = b0.ravel(), b1.ravel()
    junk = np.random.default_rng(0).integers(0, 1 << 16, b0.size, dtype=np.uint32)
    words = (b0 | (b1 << 8) | (junk << 16), junk | (b0 << 16) | (b1 << 24))
    e4m3 = torch.arange(256, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    expected = torch.where(torch.isnan(e4m3), torch.where(torch.arange(256) >= 128, -480.0, 480.0), e4m3)
    half = torch.bfloat16 if dtype == "bf16" else torch.float16
    for word, select in zip(words, selects):
        out = (_prmt(word, word, select) << shift & 0xFFFFFFFF) & mask
        for halves, code in ((out & 0xFFFF, b0), (out >> 16, b1)):
            got = torch.from_numpy(halves.astype(np.int32)).to(torch.int16).view(half).double() * 2.0**bias
            assert torch.equal(got, expected[torch.from_numpy(code.astype(np.int64))].double())
