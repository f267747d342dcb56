"""The fp8_e4m3 latent cache: FlashMLA's packed token row, written and read back.

One row per token and KV head, ``latent + 4 * latent / 128 + 2 * rope`` bytes
(656 for DeepSeek's 512 + 64):

====================  =====================================================
bytes                 contents
====================  =====================================================
``[0, latent)``       the latent ``c_kv`` as float8_e4m3fn, quantized per
                      block of 128 values
``[latent, +4*nb)``   ``nb = latent / 128`` float32 scales, one per block:
                      ``value = fp8 * scale``, ``scale = amax(block) / 448``
``[.., +2*rope)``     the RoPE key, unquantized, in the query dtype
====================  =====================================================

This is the layout of FlashMLA's ``quant.py`` (its sparse kernel's cache), so
caches are interchangeable: FlashMLA keeps ``(num_pages, page, row_bytes)``
with one KV head; unsqueeze dimension 2 to pass such a cache here.

A block whose values are all zero gets scale 0 and fp8 zeros (no 0/0). A block
holding NaN or inf quantizes to NaN: poison stays poison.

Reading a row back (:func:`dequantize_cache`, the reference and the kernels alike):

* the scale is first rounded to the query dtype's precision (8 significant bits
  for bf16, 11 for fp16; round to nearest even on the float32 bits, keeping
  float32's exponent range), so that the kernels can multiply in packed 16-bit
  arithmetic. That adds at most 2^-9 (bf16) or 2^-12 (fp16) relative error, a
  small fraction of e4m3's own 2^-4;
* ``value = e4m3 * rounded scale`` is exact in float32 and rounded once to the
  query dtype;
* the byte patterns 0x7f / 0xff (NaN in float8_e4m3fn, never written by
  :func:`quantize_cache`) read as +480 / -480: the kernels decode e4m3 with
  integer bit operations that have no NaN case. A NaN or infinite *scale*
  still poisons its block.
"""

from __future__ import annotations

import torch

from mlagen.dtypes import DTYPE_NAMES, PACKED_ROW_DTYPES

__all__ = ["FP8_MAX", "dequantize_cache", "quantize_cache", "round_scale", "row_bytes"]

FP8_MAX = 448.0  # largest finite float8_e4m3fn
_BLOCK = 128


def row_bytes(latent: int, rope: int) -> int:
    """Bytes of one packed token row (one KV head)."""
    if latent <= 0 or latent % _BLOCK:
        raise ValueError(f"latent = {latent}: must be a positive multiple of {_BLOCK} (one scale per {_BLOCK} values)")
    if rope < 0:
        raise ValueError(f"rope = {rope}: must be >= 0")
    return latent + 4 * (latent // _BLOCK) + 2 * rope


def quantize_cache(cache: torch.Tensor, latent: int = 512) -> torch.Tensor:
    """Pack a 16-bit cache ``(..., latent + rope)`` into fp8 rows ``(..., row_bytes)``.

    ``cache`` is bf16 or fp16 with the RoPE part last (``[c_kv | k_rope]``), e.g.
    ``(num_pages, page, kv_heads, 576)``. Returns a ``torch.float8_e4m3fn`` tensor
    of the same leading shape whose last dimension holds the packed bytes (view it
    as ``torch.uint8`` to read them). Works on any device.
    """
    if not isinstance(cache, torch.Tensor):
        raise TypeError(f"cache: expected a torch.Tensor, got {type(cache).__name__}")
    if cache.dtype not in DTYPE_NAMES:
        raise TypeError(f"cache: dtype {cache.dtype}; expected bfloat16 or float16 (the RoPE part is kept in it)")
    if cache.dim() < 1 or cache.shape[-1] < latent:
        raise ValueError(f"cache: shape {tuple(cache.shape)}; the last dimension must hold latent ({latent}) + rope")
    rope = cache.shape[-1] - latent
    nbytes = row_bytes(latent, rope)
    lead = cache.shape[:-1]
    blocks = cache[..., :latent].float().reshape(*lead, latent // _BLOCK, _BLOCK)
    amax = blocks.abs().amax(dim=-1)
    scale = amax / FP8_MAX
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    scaled = torch.where((scale > 0)[..., None], blocks / safe[..., None], torch.zeros_like(blocks))
    # x / (amax / 448) can round a hair above 448; e4m3fn has no inf, so clamp (NaN passes through)
    fp8 = scaled.clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).reshape(*lead, latent)

    out = torch.empty((*lead, nbytes), dtype=torch.uint8, device=cache.device)
    out[..., :latent] = fp8.view(torch.uint8)
    scale_end = latent + 4 * (latent // _BLOCK)
    out[..., latent:scale_end] = scale.contiguous().view(torch.uint8).reshape(*lead, scale_end - latent)
    if rope:
        out[..., scale_end:] = cache[..., latent:].contiguous().view(torch.uint8).reshape(*lead, 2 * rope)
    return out.view(torch.float8_e4m3fn)


def _split_rows(packed: torch.Tensor, latent: int):
    if not isinstance(packed, torch.Tensor):
        raise TypeError(f"packed: expected a torch.Tensor, got {type(packed).__name__}")
    if packed.dtype not in PACKED_ROW_DTYPES:
        raise TypeError(f"packed: dtype {packed.dtype}; expected float8_e4m3fn or uint8 packed rows")
    raw = packed.contiguous().view(torch.uint8)
    nbytes = raw.shape[-1] if raw.dim() else 0
    scale_end = latent + 4 * (latent // _BLOCK)
    rope_bytes = nbytes - scale_end
    if raw.dim() < 1 or rope_bytes < 0 or rope_bytes % 2:
        raise ValueError(
            f"packed: last dimension {nbytes} is not a packed row for latent {latent} "
            f"(expected {scale_end} + 2 * rope bytes)"
        )
    return raw, scale_end, rope_bytes // 2


# float32 mantissa bits a scale loses when rounded to the query dtype's precision
_SCALE_DROP_BITS = {torch.bfloat16: 16, torch.float16: 13}


def round_scale(scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """float32 scales rounded (to nearest even) to ``dtype``'s significant bits, float32 range kept.

    Bit-exactly what the kernels compute before their packed 16-bit multiply.
    """
    if dtype not in _SCALE_DROP_BITS:
        raise TypeError(f"dtype: {dtype}; the query dtype is bfloat16 or float16")
    drop = _SCALE_DROP_BITS[dtype]
    bits = scale.to(torch.float32).contiguous().view(torch.int32).to(torch.int64)
    bits = (bits + ((1 << (drop - 1)) - 1) + ((bits >> drop) & 1)) & ~((1 << drop) - 1)
    # wrap to int32 as the kernel's 32-bit add does (a sum past 2^31 only comes from NaN patterns)
    bits = torch.where(bits >= 2**31, bits - 2**32, bits)
    return bits.to(torch.int32).view(torch.float32)


def _e4m3_values(device) -> torch.Tensor:
    """The 256 byte patterns as the kernels decode them: float8_e4m3fn, NaN codes as +-480."""
    lut = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(torch.float8_e4m3fn).float()
    lut[0x7F] = 480.0
    lut[0xFF] = -480.0
    return lut.to(device)


def dequantize_cache(packed: torch.Tensor, latent: int = 512, dtype: torch.dtype = torch.bfloat16,
                     out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The inverse of :func:`quantize_cache`: packed rows -> ``(..., latent + rope)``.

    ``dtype`` is the type the RoPE part was stored in (the query dtype); it also
    sets the precision the scales are rounded to (see the module docstring). The
    result has ``out_dtype`` (default ``dtype``). With ``out_dtype=torch.float32``
    it holds the exact products ``e4m3 * rounded scale``; rounded to ``dtype`` they
    are what the kernels' MMAs read.
    """
    if dtype not in DTYPE_NAMES:
        raise TypeError(f"dtype: {dtype}; the RoPE part is bfloat16 or float16")
    raw, scale_end, rope = _split_rows(packed, latent)
    lead = raw.shape[:-1]
    fp8 = _e4m3_values(raw.device)[raw[..., :latent].long()]
    scale = round_scale(raw[..., latent:scale_end].contiguous().view(torch.float32), dtype)
    values = (fp8.reshape(*lead, latent // _BLOCK, _BLOCK) * scale[..., None]).reshape(*lead, latent)
    if rope:
        k_rope = raw[..., scale_end:].contiguous().view(dtype).float()
        values = torch.cat([values, k_rope], dim=-1)
    return values.to(out_dtype or dtype)
