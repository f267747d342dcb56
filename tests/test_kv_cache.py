"""mlagen.kv_cache: allocating a spec's paged cache and writing token rows into it (16-bit and packed fp8)."""

from __future__ import annotations

import pytest
import torch

from mlagen.fp8_cache import dequantize_cache, quantize_cache
from mlagen.kv_cache import empty_cache, write_cache
from mlagen.reference import mla_decode_reference
from mlagen.spec import MLASpec

NAN = float("nan")


@pytest.mark.parametrize("spec, shape, dtype", [
    (MLASpec(q_heads=16), (5, 64, 1, 576), torch.bfloat16),
    (MLASpec(q_heads=16, dtype="fp16", kv_heads=2, page=16), (5, 16, 2, 576), torch.float16),
    (MLASpec(q_heads=16, cache_dtype="fp8_e4m3"), (5, 64, 1, 656), torch.uint8),
    (MLASpec(q_heads=40, latent=256, rope=32, cache_dtype="fp8_e4m3", page=8), (5, 8, 1, 328), torch.uint8),
])
def test_empty_cache_is_the_kernels_layout(spec, shape, dtype):
    kv = empty_cache(spec, 5)
    assert kv.shape == shape and kv.dtype == dtype and not kv.any()


def test_16bit_rows_land_at_their_slots_and_nothing_else_changes():
    pool = torch.full((4, 8, 2, 40), NAN, dtype=torch.bfloat16)
    kv = pool[..., :36]  # a view with a longer page stride, as a slice of a bigger allocation
    rows = torch.randn(5, 2, 36).bfloat16()
    slots = torch.tensor([3, 8, -1, 31, 12])
    write_cache(kv, slots, rows)
    for slot, row in zip(slots.tolist(), rows):
        if slot >= 0:
            assert torch.equal(kv[slot // 8, slot % 8], row)
    written = {3, 8, 31, 12}
    untouched = [s for s in range(32) if s not in written]
    assert kv.reshape(32, 2, 36)[untouched].isnan().all() and pool[..., 36:].isnan().all()


@pytest.mark.parametrize("cache_dtype", [torch.uint8, torch.float8_e4m3fn])
def test_fp8_rows_are_quantized_as_quantize_cache_packs_them(cache_dtype):
    kv = torch.zeros(3, 4, 1, 656, dtype=cache_dtype)
    rows = torch.randn(6, 576, generator=torch.Generator().manual_seed(0)).bfloat16()
    rows[:, 128:256] *= 40  # blocks of different magnitudes get different scales
    slots = torch.tensor([0, 5, 6, 11, 2, 7])
    write_cache(kv, slots, rows)
    packed = quantize_cache(rows, 512).view(torch.uint8)
    raw = kv.view(torch.uint8)
    for i, slot in enumerate(slots.tolist()):
        assert torch.equal(raw[slot // 4, slot % 4, 0], packed[i])
    assert not raw.reshape(12, 656)[[1, 3, 4, 8, 9, 10]].any()
    back = dequantize_cache(kv, 512, out_dtype=torch.float32).reshape(12, 576)[slots]
    # e4m3 keeps 3 mantissa bits (half an ulp: 2^-4 relative), the scale is read rounded to bf16 (2^-9), and
    # below 2^-6 e4m3's subnormal steps are 2^-9 of a scale
    scale = rows[:, :512].float().abs().reshape(6, 4, 128).amax(-1).repeat_interleave(128, dim=1) / 448
    err = (back[:, :512] - rows[:, :512].float()).abs()
    assert (err <= rows[:, :512].float().abs() * (2 ** -4 + 2 ** -8) + scale * 2 ** -10).all()
    assert torch.equal(back[:, 512:], rows[:, 512:].float())  # RoPE kept as it was


def test_a_cache_written_token_by_token_is_the_packed_whole():
    """Appending one token at a time gives the bytes of quantizing the finished 16-bit cache at once: scales are
    per token, so the kernel and the reference read the same values either way."""
    spec = MLASpec(q_heads=8, latent=256, rope=32, page=4, cache_dtype="fp8_e4m3")
    source = torch.randn(3, 4, 1, 288).bfloat16()
    kv = empty_cache(spec, 3)
    for slot in torch.randperm(12).tolist():
        write_cache(kv, torch.tensor([slot]), source.reshape(12, 288)[slot : slot + 1])
    assert torch.equal(kv, quantize_cache(source, 256).view(torch.uint8))
    q = torch.randn(2, 1, 8, 288).bfloat16()
    table, lens = torch.tensor([[2, 0], [1, 0]], dtype=torch.int32), torch.tensor([7, 3], dtype=torch.int32)
    got = mla_decode_reference(q, kv, table, lens, spec)
    want = mla_decode_reference(q, quantize_cache(source, 256), table, lens, spec)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_the_latent_width_is_inferred_or_checked():
    kv = torch.zeros(2, 4, 1, 328, dtype=torch.uint8)  # latent 256 + 8 scale bytes + 32 RoPE values
    write_cache(kv, torch.tensor([1]), torch.randn(1, 288).half(), latent=256)
    with pytest.raises(ValueError, match="rows of 288 values do not pack into the cache's 328-byte rows with latent = 128"):
        write_cache(kv, torch.tensor([1]), torch.randn(1, 288).half(), latent=128)
    with pytest.raises(ValueError, match="rows of 576 values do not pack into the cache's 328-byte rows"):
        write_cache(kv, torch.tensor([1]), torch.randn(1, 576).half())


@pytest.mark.parametrize("kv, slots, rows, error, message", [
    (torch.zeros(2, 4, 1, 8), torch.tensor([8]), torch.zeros(1, 8), IndexError,
     "slot 8 is outside the pool (2 pages of 4 tokens)"),
    (torch.zeros(2, 4, 1, 8), torch.tensor([0]), torch.zeros(1, 8).double(), TypeError,
     "rows are torch.float64, the cache torch.float32"),
    (torch.zeros(2, 4, 1, 8), torch.tensor([0]), torch.zeros(1, 9), ValueError, "rows of 9 values for a cache of 8"),
    (torch.zeros(2, 4, 2, 8), torch.tensor([0]), torch.zeros(1, 8), ValueError, "expected (tokens, 2, width)"),
    (torch.zeros(2, 4, 1, 8), torch.tensor([0.0]), torch.zeros(1, 8), ValueError, "slot_mapping must be (1,) integers"),
    (torch.zeros(2, 4, 1, 8), torch.tensor([0, 1]), torch.zeros(1, 8), ValueError, "slot_mapping must be (1,)"),
    (torch.zeros(2, 4, 8), torch.tensor([0]), torch.zeros(1, 8), ValueError, "kv_cache must be (num_pages, page"),
    (torch.zeros(2, 4, 1, 656, dtype=torch.uint8), torch.tensor([0]), torch.zeros(1, 576), TypeError,
     "a packed fp8 cache takes bf16 or fp16 rows"),
    (torch.zeros(2, 4, 1, 8, dtype=torch.int32), torch.tensor([0]), torch.zeros(1, 8, dtype=torch.int32), TypeError,
     "a 16-bit cache takes rows of its own dtype"),
])
def test_bad_writes_raise_and_write_nothing(kv, slots, rows, error, message):
    before = kv.clone()
    with pytest.raises(error) as err:
        write_cache(kv, slots, rows)
    assert str(err.value).startswith("write_cache: ") and message in str(err.value)
    assert torch.equal(kv, before)
