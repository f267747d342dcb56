"""FlashMLA's Python interface for dense decode, served by mlagen's generated kernels.

Code written against FlashMLA's dense decode runs on mlagen by changing one import::

    # from flash_mla import get_mla_metadata, flash_mla_with_kvcache
    from mlagen.flash_mla import get_mla_metadata, flash_mla_with_kvcache

    sched_meta, _ = get_mla_metadata()
    for layer in range(num_layers):
        out, lse = flash_mla_with_kvcache(q[layer], k_cache[layer], block_table, cache_seqlens, 512,
                                          sched_meta, None, softmax_scale=scale, causal=True)

The calls follow FlashMLA's interface since its 2025 rework (``get_mla_metadata`` returns
``(FlashMLASchedMeta, None)`` and the second element is passed back as ``num_splits``), with the same
tensors: ``q`` ``(batch, s_q, h_q, d_qk)``, ``k_cache`` ``(num_blocks, page, h_kv, d_qk)`` (or FlashMLA's
656-byte fp8 rows with ``is_fp8_kvcache=True``), int32 ``block_table`` and ``cache_seqlens``; they return
``out`` ``(batch, s_q, h_q, head_dim_v)`` and ``lse`` ``(batch, h_q, s_q)`` float32.

What differs from FlashMLA:

- **Any variant mlagen generates**, not only page 64 and 576 / 512: the tensors' shapes, dtypes and the
  arguments make an :class:`~mlagen.spec.MLASpec` (:func:`flash_mla_spec`), whose kernel is compiled on the
  first call of a process (or loaded from the kernel cache; build it ahead of time with ``mlagen build``
  on a spec file of :func:`flash_mla_spec`'s result).
- **The schedule is computed on the GPU at each call** from the lengths, so one metadata object serves
  every batch size and every set of lengths; it pins the variant (s_q, heads, widths, page, dtypes,
  causality, scale) of the call that first used it and rejects a call of another variant, as FlashMLA
  rejects inconsistent arguments.
- **Inputs are checked before anything is launched** (:class:`~mlagen.runtime.MLAInputError`), including
  the block table's entries and the lengths, which costs one host synchronisation per call outside CUDA-graph
  capture; ``validate=False`` (an mlagen keyword) skips the content checks in a serving loop.
- A ``q`` that is not contiguous is copied first (FlashMLA takes any q whose last dimension is contiguous).
- FlashMLA's sparse attention (``indices``, ``attn_sink``, ``extra_k_cache``, ...) is not generated here;
  passing any of its arguments raises.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from mlagen.dtypes import DTYPE_NAMES, PACKED_ROW_DTYPES
from mlagen.fp8_cache import row_bytes
from mlagen.runtime import MLAInputError
from mlagen.spec import FP8_CACHE, MLASpec, SpecError

__all__ = ["FlashMLASchedMeta", "flash_mla_spec", "flash_mla_with_kvcache", "get_mla_metadata"]

_SPARSE_ARGS = ("indices", "attn_sink", "extra_k_cache", "extra_indices_in_kvcache", "topk_length",
                "extra_topk_length")


@dataclasses.dataclass(frozen=True)
class CallVariant:
    """What of a call fixes its kernel: the tensors' per-call-invariant shapes, dtypes and the arguments."""

    s_q: int
    h_q: int
    d_qk: int
    head_dim_v: int
    page: int
    h_kv: int
    dtype: str
    is_fp8_kvcache: bool
    causal: bool
    softmax_scale: Optional[float]


@dataclasses.dataclass(eq=False)
class FlashMLASchedMeta:
    """The first element of :func:`get_mla_metadata`'s result, passed to every
    :func:`flash_mla_with_kvcache` call of one variant (e.g. all layers of a decode step, and later steps).

    mlagen's kernels compute their split-KV schedule on the GPU from the lengths at each call, so nothing
    is precomputed here. The first call records its variant and the kernel it resolved; later calls are
    checked against that variant and go straight to the kernel.
    """

    variant: Optional[CallVariant] = None
    spec: Optional[MLASpec] = None
    kernel: object = dataclasses.field(default=None, repr=False)

    @property
    def have_initialized(self) -> bool:
        """FlashMLA's name: whether a call has used this object yet."""
        return self.variant is not None


def get_mla_metadata(*args, **kwargs) -> tuple[FlashMLASchedMeta, None]:
    """``(FlashMLASchedMeta(), None)``, as FlashMLA's ``get_mla_metadata`` returns since its rework.

    The arguments of FlashMLA's older interface (``cache_seqlens, num_q_tokens_per_head_k, num_heads_k``,
    ...) are accepted and not needed: the schedule is made on the GPU at each call.
    """
    del args, kwargs
    return FlashMLASchedMeta(), None


def _fail(message: str) -> MLAInputError:
    return MLAInputError(f"flash_mla_with_kvcache: {message}")


def _variant(q, k_cache, head_dim_v, softmax_scale, causal, is_fp8_kvcache) -> CallVariant:
    """The call's variant from its tensors' shapes and dtypes (no device access)."""
    for name, t in (("q", q), ("k_cache", k_cache)):
        if not isinstance(t, torch.Tensor):
            raise _fail(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise _fail(f"{name} must be 4-D, got shape {tuple(t.shape)}")
    if q.dtype not in DTYPE_NAMES:
        raise _fail(f"q is {q.dtype}; the kernels take torch.bfloat16 or torch.float16 queries")
    if type(head_dim_v) is not int or head_dim_v < 1:
        raise _fail(f"head_dim_v = {head_dim_v!r}: must be a positive int (the latent width, 512 for DeepSeek-V3)")
    d_qk = q.shape[3]
    if head_dim_v > d_qk:
        raise _fail(f"head_dim_v = {head_dim_v} exceeds q's head dimension {d_qk} (latent + RoPE)")
    if is_fp8_kvcache:
        if k_cache.dtype not in PACKED_ROW_DTYPES:
            raise _fail(f"is_fp8_kvcache=True needs k_cache as packed byte rows (torch.uint8 or "
                        f"torch.float8_e4m3fn, see mlagen.quantize_cache), got {k_cache.dtype}")
        latent, rope = head_dim_v, d_qk - head_dim_v
        row = row_bytes(latent, rope) if latent % 128 == 0 else None  # (other latents: the spec says why not)
        if row is not None and k_cache.shape[3] != row:
            raise _fail(f"k_cache rows of {k_cache.shape[3]} bytes; FlashMLA's fp8 rows for latent {latent} + RoPE "
                        f"{rope} are {row} bytes (latent e4m3, 4 bytes of scale per 128, RoPE in q's dtype)")
    elif k_cache.dtype in PACKED_ROW_DTYPES:
        raise _fail(f"k_cache is {k_cache.dtype}: pass is_fp8_kvcache=True for FlashMLA's fp8 rows "
                    f"(e4m3 latent, float32 scales, 16-bit RoPE)")
    elif k_cache.dtype != q.dtype or k_cache.shape[3] != d_qk:
        raise _fail(f"k_cache is {tuple(k_cache.shape)} {k_cache.dtype}; with q {tuple(q.shape)} {q.dtype} it must "
                    f"hold rows of {d_qk} values in {q.dtype}")
    if softmax_scale is not None:
        if isinstance(softmax_scale, bool) or not isinstance(softmax_scale, (int, float)):
            raise _fail(f"softmax_scale = {softmax_scale!r}: must be a float or None")
        softmax_scale = float(softmax_scale)
    if not isinstance(causal, bool) or not isinstance(is_fp8_kvcache, bool):
        raise _fail(f"causal and is_fp8_kvcache must be bools, got {causal!r} and {is_fp8_kvcache!r}")
    return CallVariant(s_q=q.shape[1], h_q=q.shape[2], d_qk=d_qk, head_dim_v=head_dim_v, page=k_cache.shape[1],
                       h_kv=k_cache.shape[2], dtype=DTYPE_NAMES[q.dtype], is_fp8_kvcache=is_fp8_kvcache,
                       causal=causal, softmax_scale=softmax_scale)


def _spec_of(v: CallVariant) -> MLASpec:
    try:
        return MLASpec(
            q_heads=v.h_q, latent=v.head_dim_v, rope=v.d_qk - v.head_dim_v, kv_heads=v.h_kv, dtype=v.dtype,
            cache_dtype=FP8_CACHE if v.is_fp8_kvcache else v.dtype, page=v.page, max_q=v.s_q,
            causal=v.causal, scale=v.softmax_scale, lse=True,
        )
    except SpecError as err:
        raise _fail(
            f"the tensors describe no MLA variant mlagen generates (q heads {v.h_q}, s_q {v.s_q}, head dim "
            f"{v.d_qk} = latent {v.head_dim_v} (head_dim_v) + RoPE {v.d_qk - v.head_dim_v}, k_cache page "
            f"{v.page} and {v.h_kv} KV heads): {err}"
        ) from err


def flash_mla_spec(q, k_cache, head_dim_v: int, softmax_scale: Optional[float] = None, causal: bool = False,
                   is_fp8_kvcache: bool = False) -> MLASpec:
    """The :class:`~mlagen.spec.MLASpec` whose kernel serves ``flash_mla_with_kvcache`` calls with these
    arguments. Only shapes and dtypes are read, so tensors on the ``meta`` device do: build the kernels a
    deployment will call ahead of time (``mlagen.build(spec)``, or a spec file for ``mlagen build``).

    ``softmax_scale=None`` is FlashMLA's default, ``1 / sqrt(d_qk)``, which is also the spec's; ``causal``
    only matters for ``s_q > 1``.
    """
    return _spec_of(_variant(q, k_cache, head_dim_v, softmax_scale, causal, is_fp8_kvcache))


def _require_cuda(q: torch.Tensor) -> None:
    if q.device.type != "cuda":
        raise _fail(f"q is on {q.device}; the kernels run on CUDA (Hopper) devices only")


def _compile(spec: MLASpec, device: torch.device):
    import mlagen.jit

    return mlagen.jit.compile(spec, device=device)


def _differences(old: CallVariant, new: CallVariant) -> str:
    return "; ".join(f"{f.name} {getattr(new, f.name)!r} (was {getattr(old, f.name)!r})"
                     for f in dataclasses.fields(CallVariant) if getattr(old, f.name) != getattr(new, f.name))


def flash_mla_with_kvcache(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    block_table: Optional[torch.Tensor],
    cache_seqlens: Optional[torch.Tensor],
    head_dim_v: int,
    tile_scheduler_metadata: FlashMLASchedMeta,
    num_splits: None = None,
    softmax_scale: Optional[float] = None,
    causal: bool = False,
    is_fp8_kvcache: bool = False,
    indices: Optional[torch.Tensor] = None,
    attn_sink: Optional[torch.Tensor] = None,
    extra_k_cache: Optional[torch.Tensor] = None,
    extra_indices_in_kvcache: Optional[torch.Tensor] = None,
    topk_length: Optional[torch.Tensor] = None,
    extra_topk_length: Optional[torch.Tensor] = None,
    *,
    validate: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paged MLA decode with FlashMLA's arguments and results (see the module docstring for the few
    differences). Returns ``(out, lse)``: ``out`` ``(batch, s_q, h_q, head_dim_v)`` in q's dtype, ``lse``
    ``(batch, h_q, s_q)`` float32, the natural log of each row's softmax denominator (``-inf`` for a row
    that sees no key, whose output is 0).

    ``validate=True`` (mlagen's keyword) also checks the lengths and block-table entries against the cache,
    one host synchronisation (skipped while a CUDA graph is captured); ``validate=False`` checks only
    shapes, dtypes, strides and devices.
    """
    meta = tile_scheduler_metadata
    if not isinstance(meta, FlashMLASchedMeta):
        raise _fail(f"tile_scheduler_metadata must be the first element of mlagen.flash_mla.get_mla_metadata()'s "
                    f"result, got {type(meta).__name__}")
    if num_splits is not None:
        raise _fail("num_splits must be None (the second element of get_mla_metadata()'s result)")
    sparse = [name for name, value in zip(_SPARSE_ARGS, (indices, attn_sink, extra_k_cache,
                                                         extra_indices_in_kvcache, topk_length,
                                                         extra_topk_length)) if value is not None]
    if sparse:
        raise _fail(f"{', '.join(sparse)}: FlashMLA's sparse attention is not generated by mlagen "
                    f"(dense paged decode only)")
    if block_table is None or cache_seqlens is None:
        raise _fail("dense decode needs block_table and cache_seqlens")
    variant = _variant(q, k_cache, head_dim_v, softmax_scale, causal, is_fp8_kvcache)
    if meta.variant is None:
        spec = _spec_of(variant)
        _require_cuda(q)  # before compiling; later calls' devices are checked by the kernel
        meta.kernel = _compile(spec, q.device)
        meta.spec, meta.variant = spec, variant
    elif variant != meta.variant:
        raise _fail(f"this call's variant differs from the one tile_scheduler_metadata was first used with: "
                    f"{_differences(meta.variant, variant)}; use one get_mla_metadata() object per variant")
    if not q.is_contiguous():
        q = q.contiguous()
    return meta.kernel(q, k_cache, block_table, cache_seqlens, validate=validate)
