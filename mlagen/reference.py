"""Reference implementations: paged MLA decode, split-KV merging, and the
model-level proof that the absorbed decode computes real MLA.

Tensor conventions (FlashMLA-compatible; the generated kernels use the same):

- ``q``: ``(batch, s_q, q_heads, d_qk)``, any float dtype here.
- ``kv_cache``: ``(num_pages, page, kv_heads, d_qk)``. A token row is
  ``[latent | rope]`` with ``rope_at="tail"`` and ``[rope | latent]`` with
  ``"head"``; the value is the latent part. For an ``fp8_e4m3`` spec the cache
  may also be the packed rows ``(num_pages, page, kv_heads, row_bytes)`` of
  :func:`mlagen.quantize_cache`: the reference reads them as the kernels do,
  ``fp8 * scale`` in float32 rounded once to the query dtype.
- ``block_table``: ``(batch, max_pages_per_seq)`` integer; ``cache_seqlens``:
  ``(batch,)`` integer.
- ``out``: ``(batch, s_q, q_heads, d_v)``; ``lse``: ``(batch, q_heads, s_q)``,
  the natural log of ``sum_j exp(scale * q·k_j)``.
- Query head ``h`` uses KV head ``h // (q_heads // kv_heads)``.
- With ``spec.causal`` and ``s_q > 1``, query token ``i`` of a request with
  ``L`` cached tokens sees keys ``0 .. L - s_q + i``; otherwise all ``L``.
- A row that sees no key (``L == 0``, or a causal row with ``L - s_q + i < 0``)
  has ``out = 0`` and ``lse = -inf``.
- Only pages ``0 .. ceil(L / page) - 1`` of a request's block-table row and
  only tokens ``< L`` are read; anything else may hold garbage.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

# _DTYPES: the name that the prepared patches of docs/perf/experiments/2026-12-06e edit around
from mlagen.dtypes import PACKED_ROW_DTYPES, TORCH_DTYPES as _DTYPES
from mlagen.fp8_cache import dequantize_cache
from mlagen.spec import FP8_CACHE, MLASpec


__all__ = [
    "merge_partials",
    "mla_attention_absorbed",
    "mla_attention_naive",
    "mla_decode_reference",
    "mla_decode_reference_range",
]

_NEG_INF = float("-inf")


def mla_decode_reference(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    block_table: torch.Tensor,
    cache_seqlens: torch.Tensor,
    spec: MLASpec,
    *,
    compute_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paged MLA decode (see the module docstring for the conventions).

    Computes in ``compute_dtype`` on the inputs' device and returns ``(out,
    lse)`` in ``compute_dtype``; rows that see no key get ``out = 0`` and
    ``lse = -inf``.
    """
    return mla_decode_reference_range(
        q, kv_cache, block_table, cache_seqlens, spec, 0, None, compute_dtype=compute_dtype
    )


def mla_decode_reference_range(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    block_table: torch.Tensor,
    cache_seqlens: torch.Tensor,
    spec: MLASpec,
    kv_start: int | Sequence[int] | torch.Tensor,
    kv_end: int | Sequence[int] | torch.Tensor | None,
    *,
    compute_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paged MLA decode restricted to the keys at positions ``[kv_start, kv_end)``.

    ``kv_start`` / ``kv_end`` are one int for every request or one per request
    (``kv_end=None`` means each request's length); the range is clipped to
    ``[0, L)``. The causal rule stays relative to the full length ``L``. The
    partial results of disjoint ranges that cover ``[0, L)`` combine with
    :func:`merge_partials` into the full result, as the kernel's split-KV
    partials do.
    """
    batch, s_q = _check_inputs(q, kv_cache, block_table, cache_seqlens, spec)
    if not compute_dtype.is_floating_point:
        raise TypeError(f"compute_dtype = {compute_dtype}: must be a floating dtype")
    lengths = [int(v) for v in cache_seqlens.tolist()]
    starts = _per_request("kv_start", kv_start, batch, 0)
    ends = _per_request("kv_end", kv_end, batch, None)
    rows = block_table.tolist()
    num_pages, page = kv_cache.shape[0], spec.page
    heads, kv_heads, group = spec.q_heads, spec.kv_heads, spec.heads_per_kv
    latent = slice(0, spec.latent) if spec.rope_at == "tail" else slice(spec.rope, spec.d_qk)
    causal = spec.causal and s_q > 1
    device = q.device

    out = torch.zeros(batch, s_q, heads, spec.d_v, dtype=compute_dtype, device=device)
    lse = torch.full((batch, heads, s_q), _NEG_INF, dtype=compute_dtype, device=device)
    for b in range(batch):
        length = lengths[b]
        lo = max(starts[b], 0)
        hi = length if ends[b] is None else min(ends[b], length)
        if hi <= lo:
            continue
        first, last = lo // page, (hi - 1) // page
        pages = rows[b][first : last + 1]
        for j, p in enumerate(pages, start=first):
            if not 0 <= p < num_pages:
                raise ValueError(
                    f"block_table[{b}, {j}] = {p} is not a page of kv_cache (num_pages = {num_pages}) "
                    f"but request {b} (length {length}) needs it"
                )
        index = torch.tensor(pages, dtype=torch.long, device=kv_cache.device)
        tokens = kv_cache.index_select(0, index)
        if not tokens.is_floating_point() or tokens.dtype == torch.float8_e4m3fn:
            # as the kernels do: fp8 * scale in float32, rounded once to the query dtype
            tokens = dequantize_cache(tokens, spec.latent, dtype=_DTYPES[spec.dtype])
        tokens = tokens.reshape(-1, kv_heads, spec.d_qk)
        tokens = tokens[lo - first * page : hi - first * page].to(device=device, dtype=compute_dtype)
        qb = q[b].to(compute_dtype).reshape(s_q, kv_heads, group, spec.d_qk)
        # (kv_heads, group, s_q, T): every head of a group reads the same keys.
        scores = torch.einsum("skgd,tkd->kgst", qb, tokens) * spec.scale
        if causal:
            pos = torch.arange(lo, hi, device=device)
            limit = length - s_q + torch.arange(s_q, device=device)
            scores = scores.masked_fill(pos[None, :] > limit[:, None], _NEG_INF)
        row_lse = torch.logsumexp(scores, dim=-1)
        probs = torch.exp(scores - _finite_or_zero(row_lse)[..., None])
        out_b = torch.einsum("kgst,tkv->skgv", probs, tokens[..., latent])
        out[b] = out_b.reshape(s_q, heads, spec.d_v)
        lse[b] = row_lse.reshape(heads, s_q)
    return out, lse


def merge_partials(
    outs: Sequence[torch.Tensor], lses: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-sum-exp merge of partial results over disjoint KV ranges.

    ``outs[i]``: ``(batch, s_q, heads, d_v)``; ``lses[i]``: ``(batch, heads,
    s_q)``. A partial with ``lse = -inf`` saw no key and contributes nothing,
    whatever its ``out`` holds; rows where every partial is ``-inf`` come out
    as ``out = 0``, ``lse = -inf``.
    """
    if len(outs) != len(lses) or not outs:
        raise ValueError(f"merge_partials: need as many outs as lses, at least one (got {len(outs)} and {len(lses)})")
    lse_all = torch.stack(list(lses))  # (n, b, h, s)
    out_all = torch.stack(list(outs))  # (n, b, s, h, d)
    if out_all.shape[:2] != lse_all.shape[:2] or out_all.shape[2:4] != lse_all.shape[3:1:-1]:
        raise ValueError(f"merge_partials: outs {tuple(out_all.shape[1:])} do not match lses {tuple(lse_all.shape[1:])}")
    top = _finite_or_zero(lse_all.amax(dim=0))
    weights = torch.exp(lse_all - top)  # exactly 0 for -inf partials
    total = weights.sum(dim=0)
    seen = total > 0
    lse = torch.where(seen, top + torch.log(torch.where(seen, total, 1.0)), _NEG_INF)
    weights = torch.where(seen, weights / torch.where(seen, total, 1.0), 0.0)
    weights = weights.permute(0, 1, 3, 2).unsqueeze(-1)  # (n, b, s, h, 1)
    # 0 * garbage must stay 0, so zero weights select 0 instead of multiplying.
    contrib = torch.where(weights > 0, weights * out_all, torch.zeros((), dtype=out_all.dtype, device=out_all.device))
    return contrib.sum(dim=0), lse


# ----------------------------------------------------------- model-level MLA
def mla_attention_naive(
    q_nope: torch.Tensor,
    q_rope: torch.Tensor,
    c_kv: torch.Tensor,
    k_rope: torch.Tensor,
    cache_seqlens: torch.Tensor,
    w_uk: torch.Tensor,
    w_uv: torch.Tensor,
    *,
    scale: float,
    causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One MLA layer's attention core the way the model is written: decompress
    keys and values per head, then attend.

    Shapes: ``q_nope (b, s_q, h, nope)``, ``q_rope (b, s_q, h, rope)`` (already
    rotated), ``c_kv (b, T, kv_lora)``, ``k_rope (b, T, rope)`` (shared by all
    heads, already rotated), ``cache_seqlens (b,)`` with lengths ``<= T``,
    ``w_uk (h, nope, kv_lora)`` and ``w_uv (h, v_head, kv_lora)`` (k_nope =
    W_UK·c_kv, v = W_UV·c_kv). Returns ``out (b, s_q, h, v_head)`` and ``lse
    (b, h, s_q)`` with the same masking and empty-row rules as the decode
    reference. Entries of ``c_kv``/``k_rope`` at positions ``>= L`` are ignored.
    """
    b, s_q, h, _ = q_nope.shape
    T = c_kv.shape[1]
    dt = _model_dtype(q_nope)
    pos = torch.arange(T, device=q_nope.device)
    lengths = cache_seqlens.to(device=q_nope.device, dtype=torch.long)
    valid = pos[None, :] < lengths[:, None]  # (b, T)
    c = torch.where(valid[..., None], c_kv.to(dt), 0.0)
    kr = torch.where(valid[..., None], k_rope.to(dt), 0.0)
    k_nope = torch.einsum("btc,hnc->bthn", c, w_uk.to(dt))
    v = torch.einsum("btc,hvc->bthv", c, w_uv.to(dt))
    scores = torch.einsum("bshn,bthn->bhst", q_nope.to(dt), k_nope)
    scores = (scores + torch.einsum("bshr,btr->bhst", q_rope.to(dt), kr)) * scale
    visible = valid[:, None, None, :].expand(b, 1, s_q, T)
    if causal and s_q > 1:
        limit = lengths[:, None] - s_q + torch.arange(s_q, device=q_nope.device)[None, :]  # (b, s_q)
        visible = visible & (pos[None, None, None, :] <= limit[:, None, :, None])
    scores = scores.masked_fill(~visible, _NEG_INF)
    lse = torch.logsumexp(scores, dim=-1)  # (b, h, s_q)
    probs = torch.exp(scores - _finite_or_zero(lse)[..., None])
    out = torch.einsum("bhst,bthv->bshv", probs, v)
    return out, lse


def mla_attention_absorbed(
    q_nope: torch.Tensor,
    q_rope: torch.Tensor,
    c_kv: torch.Tensor,
    k_rope: torch.Tensor,
    cache_seqlens: torch.Tensor,
    w_uk: torch.Tensor,
    w_uv: torch.Tensor,
    *,
    scale: float,
    causal: bool = False,
    page: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same computation as :func:`mla_attention_naive`, done the way the
    decode kernel does it.

    ``q_latent = q_nope · W_UK`` moves the query into latent space, ``[q_latent
    | q_rope]`` attends over a paged cache of ``[c_kv | k_rope]`` rows with
    :func:`mla_decode_reference` (d_qk = kv_lora + rope, d_v = kv_lora, one KV
    head, softmax scale unchanged), and ``out = out_latent · W_UV^T``. The
    dimensions must form a valid :class:`MLASpec` (kv_lora a multiple of 64,
    rope of 16, at most 128 heads and 8 query tokens).
    """
    b, s_q, h, _ = q_nope.shape
    T, kv_lora = c_kv.shape[1], c_kv.shape[2]
    rope = k_rope.shape[2]
    dt = _model_dtype(q_nope)
    spec = MLASpec(
        q_heads=h, latent=kv_lora, rope=rope, page=page, max_q=s_q, causal=causal, scale=float(scale)
    )
    q_latent = torch.einsum("bshn,hnc->bshc", q_nope.to(dt), w_uk.to(dt))
    q = torch.cat([q_latent, q_rope.to(dt)], dim=-1)
    per_request = max(1, math.ceil(T / page))
    rows = torch.cat([c_kv.to(dt), k_rope.to(dt)], dim=-1)  # (b, T, d_qk)
    rows = torch.nn.functional.pad(rows, (0, 0, 0, per_request * page - T))
    kv_cache = rows.reshape(b * per_request, page, 1, spec.d_qk)
    block_table = torch.arange(b * per_request, dtype=torch.int32, device=q.device).reshape(b, per_request)
    out_latent, lse = mla_decode_reference(q, kv_cache, block_table, cache_seqlens, spec, compute_dtype=dt)
    out = torch.einsum("bshc,hvc->bshv", out_latent, w_uv.to(dt))
    return out, lse


# ------------------------------------------------------------------- helpers
def _finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    # Subtracting a -inf max would turn -inf scores into NaN; 0 keeps them -inf.
    return torch.where(torch.isfinite(x), x, torch.zeros((), dtype=x.dtype, device=x.device))


def _model_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


def _per_request(name: str, value, batch: int, default):
    if value is None:
        return [default] * batch
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, int) and not isinstance(value, bool):
        return [value] * batch
    value = list(value)
    if len(value) != batch or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{name}: expected an int or {batch} ints, got {value!r}")
    return value


def _check_inputs(q, kv_cache, block_table, cache_seqlens, spec: MLASpec) -> tuple[int, int]:
    if not isinstance(spec, MLASpec):
        raise TypeError(f"spec: expected an MLASpec, got {type(spec).__name__}")
    if q.dim() != 4 or q.shape[2] != spec.q_heads or q.shape[3] != spec.d_qk:
        raise ValueError(f"q: shape {tuple(q.shape)}, expected (batch, s_q, {spec.q_heads}, {spec.d_qk})")
    if not q.is_floating_point():
        raise TypeError(f"q: dtype {q.dtype}, expected a floating dtype")
    batch, s_q = q.shape[0], q.shape[1]
    if not 1 <= s_q <= spec.max_q:
        raise ValueError(f"q: s_q = {s_q} query tokens, expected 1..{spec.max_q} (spec.max_q)")
    packed = kv_cache.dtype in PACKED_ROW_DTYPES
    if packed:
        if spec.cache_dtype != FP8_CACHE:
            raise TypeError(f"kv_cache: dtype {kv_cache.dtype} (packed fp8 rows) but the spec's cache is {spec.cache_dtype}")
        width = spec.cache_bytes_per_token // spec.kv_heads
        if kv_cache.dim() != 4 or tuple(kv_cache.shape[1:]) != (spec.page, spec.kv_heads, width):
            raise ValueError(
                f"kv_cache: shape {tuple(kv_cache.shape)}, expected packed fp8 rows "
                f"(num_pages, {spec.page}, {spec.kv_heads}, {width})"
            )
    elif not kv_cache.is_floating_point():
        raise TypeError(f"kv_cache: dtype {kv_cache.dtype}; expected a float cache or packed fp8 rows (uint8/float8_e4m3fn)")
    elif kv_cache.dim() != 4 or tuple(kv_cache.shape[1:]) != (spec.page, spec.kv_heads, spec.d_qk):
        raise ValueError(
            f"kv_cache: shape {tuple(kv_cache.shape)}, expected (num_pages, {spec.page}, {spec.kv_heads}, {spec.d_qk})"
        )
    if block_table.dim() != 2 or block_table.shape[0] != batch or block_table.is_floating_point():
        raise ValueError(f"block_table: shape {tuple(block_table.shape)} {block_table.dtype}, expected integer ({batch}, pages)")
    if cache_seqlens.dim() != 1 or cache_seqlens.shape[0] != batch or cache_seqlens.is_floating_point():
        raise ValueError(f"cache_seqlens: shape {tuple(cache_seqlens.shape)} {cache_seqlens.dtype}, expected integer ({batch},)")
    width = block_table.shape[1]
    for b, length in enumerate(cache_seqlens.tolist()):
        if length < 0 or math.ceil(length / spec.page) > width:
            raise ValueError(
                f"cache_seqlens[{b}] = {length}: must be in 0..{width * spec.page} "
                f"(block_table has {width} pages of {spec.page} tokens per request)"
            )
    return batch, s_q
