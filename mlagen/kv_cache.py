"""The paged cache a spec's kernel reads: allocating it and writing new tokens into it.

A serving engine keeps one pool per layer, ``(num_pages, page, kv_heads, row)``, and at every step writes
the new tokens' ``[c_kv | k_rope]`` rows at their slots (``slot = page_index * page + offset``, vLLM's
``slot_mapping``). For a 16-bit cache the row is stored as it is; for an ``fp8_e4m3`` cache it is quantized
on the way in into FlashMLA's packed row (:mod:`mlagen.fp8_cache`: one scale per 128 latent values, so
each token quantizes on its own and appending never touches older tokens).

::

    kv = mlagen.kv_cache.empty_cache(spec, num_pages, device="cuda")
    mlagen.kv_cache.write_cache(kv, slot_mapping, rows)   # rows: (tokens, latent + rope), 16-bit
"""

from __future__ import annotations

import torch

from mlagen.dtypes import DTYPE_NAMES, PACKED_ROW_DTYPES, TORCH_DTYPES
from mlagen.fp8_cache import quantize_cache, row_bytes
from mlagen.spec import FP8_CACHE, MLASpec

__all__ = ["empty_cache", "write_cache"]


def empty_cache(spec: MLASpec, num_pages: int, *, device=None) -> torch.Tensor:
    """A zeroed pool of ``num_pages`` pages in the layout ``spec``'s kernel reads: ``(num_pages, page,
    kv_heads, d_qk)`` in the spec's dtype, or packed fp8 rows ``(num_pages, page, kv_heads, row_bytes)``
    as ``torch.uint8`` for an ``fp8_e4m3`` cache."""
    if not isinstance(spec, MLASpec):
        raise TypeError(f"empty_cache: expected an MLASpec, got {type(spec).__name__}")
    if type(num_pages) is not int or num_pages < 1:
        raise ValueError(f"empty_cache: num_pages = {num_pages!r}, expected an int >= 1")
    if spec.cache_dtype == FP8_CACHE:
        shape = (num_pages, spec.page, spec.kv_heads, row_bytes(spec.latent, spec.rope))
        return torch.zeros(shape, dtype=torch.uint8, device=device)
    return torch.zeros((num_pages, spec.page, spec.kv_heads, spec.d_qk), dtype=TORCH_DTYPES[spec.dtype], device=device)


def _packed_latent(width: int, row: int, latent: int | None) -> int:
    """The latent width of packed rows of ``row`` bytes holding ``width`` values (latent + rope).

    ``row = latent + latent / 32 + 2 * rope`` and ``width = latent + rope`` give ``latent = 32 (2 width - row) / 31``.
    """
    inferred = 32 * (2 * width - row) // 31
    if latent is None:
        latent = inferred
    if latent < 128 or latent % 128 or latent > width or row_bytes(latent, width - latent) != row:
        raise ValueError(f"write_cache: rows of {width} values do not pack into the cache's {row}-byte rows"
                         + (f" with latent = {latent}" if latent != inferred else "")
                         + " (packed row: latent fp8 bytes + 4 per 128 latent values + 2 per RoPE value)")
    return latent


def write_cache(kv_cache: torch.Tensor, slot_mapping: torch.Tensor, rows: torch.Tensor, *,
                latent: int | None = None, validate: bool = True) -> None:
    """Write token rows into a paged cache in place.

    - ``kv_cache``: ``(num_pages, page, kv_heads, d_qk)`` floating point, or packed fp8 rows
      ``(num_pages, page, kv_heads, row_bytes)`` as ``torch.uint8`` / ``torch.float8_e4m3fn``; a view into a
      larger pool is fine.
    - ``slot_mapping``: ``(tokens,)`` integers on the cache's device, ``page_index * page + offset``; a
      negative slot skips its token (padding).
    - ``rows``: ``(tokens, kv_heads, latent + rope)`` or, with one KV head, ``(tokens, latent + rope)``, in the
      cache's dtype, or bf16 / fp16 (the RoPE part's dtype, which is also the query dtype) for a packed cache,
      which they are quantized into (``latent``: inferred from the two widths, or given to be checked).

    ``validate=True`` reads the smallest and largest slot on the host (one synchronisation): a slot past the
    pool raises, negative slots are skipped. ``validate=False`` reads nothing, so it can be captured in a CUDA
    graph; every slot must then be a slot of the pool (a negative one would index from the end).
    """
    for name, t in (("kv_cache", kv_cache), ("slot_mapping", slot_mapping), ("rows", rows)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"write_cache: {name} must be a torch.Tensor, got {type(t).__name__}")
    if kv_cache.dim() != 4:
        raise ValueError(f"write_cache: kv_cache must be (num_pages, page, kv_heads, row), got {tuple(kv_cache.shape)}")
    num_pages, page, kv_heads, row = kv_cache.shape
    if rows.dim() == 2 and kv_heads == 1:
        rows = rows[:, None]
    if rows.dim() != 3 or rows.shape[1] != kv_heads:
        raise ValueError(f"write_cache: rows {tuple(rows.shape)}, expected (tokens, {kv_heads}, width)"
                         + (" or (tokens, width)" if kv_heads == 1 else ""))
    if slot_mapping.dim() != 1 or slot_mapping.shape[0] != rows.shape[0] or slot_mapping.is_floating_point():
        raise ValueError(f"write_cache: slot_mapping must be ({rows.shape[0]},) integers (one per row), got "
                         f"{tuple(slot_mapping.shape)} {slot_mapping.dtype}")
    if slot_mapping.device != kv_cache.device or rows.device != kv_cache.device:
        raise ValueError(f"write_cache: kv_cache on {kv_cache.device}, slot_mapping on {slot_mapping.device}, "
                         f"rows on {rows.device}: all must be on one device")
    if kv_cache.dtype in PACKED_ROW_DTYPES:
        if rows.dtype not in DTYPE_NAMES:
            raise TypeError(f"write_cache: rows are {rows.dtype}; a packed fp8 cache takes bf16 or fp16 rows "
                            f"(the RoPE part is stored in their dtype)")
        values = quantize_cache(rows, _packed_latent(rows.shape[2], row, latent)).view(torch.uint8)
        target = kv_cache.view(torch.uint8)
    else:
        if not kv_cache.is_floating_point() or rows.dtype != kv_cache.dtype:
            raise TypeError(f"write_cache: rows are {rows.dtype}, the cache {kv_cache.dtype}: a 16-bit cache takes "
                            f"rows of its own dtype, a packed fp8 cache (uint8 / float8_e4m3fn) 16-bit rows")
        if rows.shape[2] != row:
            raise ValueError(f"write_cache: rows of {rows.shape[2]} values for a cache of {row}-value rows")
        values, target = rows, kv_cache
    slots = slot_mapping.long()
    if validate and slots.numel():
        low, top = (int(v) for v in torch.aminmax(slots))
        if top >= num_pages * page:
            raise IndexError(f"write_cache: slot {top} is outside the pool ({num_pages} pages of {page} tokens)")
        if low < 0:
            keep = slots >= 0
            slots, values = slots[keep], values[keep]
    target[slots // page, slots % page] = values
