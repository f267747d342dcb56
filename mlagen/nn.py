"""A DeepSeek-style MLA attention layer whose decode runs on the generated kernel.

:class:`MultiHeadLatentAttention` holds the weights of one MLA layer the way
DeepSeek-V2/V3 name them (``wq_a``/``q_norm``/``wq_b`` or ``wq``, ``wkv_a``,
``kv_norm``, ``wkv_b``, ``wo``) and :class:`PagedLatentCache` holds the
latent cache of many sequences in fixed-size pages. Three attention paths
compute the same thing:

- ``"kernel"``: the decode kernel. ``q_nope`` is absorbed into latent space
  with W_UK (``q_latent = q_nope · W_UK``), ``[q_latent | q_rope]`` attends over
  the paged ``[c_kv | k_rope]`` rows through ``torch.ops.mlagen.mla_decode``
  (the spec's scale is the model's softmax scale, not ``1/sqrt(kv_lora +
  rope)``), and the latent output goes through W_UV and ``wo``.
- ``"absorbed"``: the same absorbed computation in plain PyTorch
  (:func:`mlagen.reference.mla_decode_reference` on the same paged cache); runs
  anywhere.
- ``"naive"``: the model as written: decompress ``k_nope = W_UK · c_kv`` and
  ``v = W_UV · c_kv`` per head and attend
  (:func:`mlagen.reference.mla_attention_naive`); runs anywhere. Prefill always
  uses it.

Conventions:

- RoPE is DeepSeek's: the rope part of q and k is rotated as interleaved pairs
  ``(x[2i], x[2i+1])`` by ``position * theta^(-2i/rope)`` (the complex-number
  form of DeepSeek-V3's ``apply_rotary_emb``; the Hugging Face port permutes to
  the same result). YaRN's frequency interpolation is not implemented (it only
  changes the frequencies beyond the original context); its attention
  temperature belongs in ``softmax_scale`` (see :mod:`mlagen.models`).
- RMSNorm is computed in float32 (float64 for float64 modules).
- The position of a new token is its index in its sequence: the cache length
  before the token was appended.
- Projections run in the module dtype; the attention core of the reference
  paths runs in float32 (float64 for float64 modules).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

import mlagen.ops  # noqa: F401  (defines torch.ops.mlagen.mla_decode)
from mlagen.dtypes import DTYPE_NAMES, TORCH_DTYPES
from mlagen.fp8_cache import dequantize_cache, row_bytes
from mlagen.kv_cache import write_cache
from mlagen.spec import FP8_CACHE, MLASpec

__all__ = [
    "CacheFullError",
    "MultiHeadLatentAttention",
    "PagedLatentCache",
    "RMSNorm",
    "apply_rope",
]

PATHS = ("kernel", "absorbed", "naive")


class CacheFullError(RuntimeError):
    """The cache has too few free pages for an append."""


# ------------------------------------------------------------------ building blocks
class RMSNorm(nn.Module):
    """``x / sqrt(mean(x²) + eps) * weight``, computed in float32 (float64 for float64 inputs)."""

    def __init__(self, dim: int, eps: float = 1e-6, *, dtype=None, device=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cd = torch.promote_types(x.dtype, torch.float32)
        xf = x.to(cd)
        y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return (y * self.weight.to(cd)).to(x.dtype)


def apply_rope(x: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Rotate interleaved pairs of the last dim of ``x`` (DeepSeek's convention).

    ``x``: ``(b, T, rope)`` or ``(b, T, heads, rope)``; ``positions``: ``(b, T)``
    integers. Pair ``i`` = ``(x[..., 2i], x[..., 2i+1])`` turns by
    ``positions * theta^(-2i/rope)``.
    """
    rope = x.shape[-1]
    if rope == 0:
        return x
    cd = torch.promote_types(x.dtype, torch.float32)
    inv_freq = theta ** (-torch.arange(0, rope, 2, device=x.device, dtype=torch.float64) / rope)
    angles = positions.to(device=x.device, dtype=torch.float64)[..., None] * inv_freq  # (b, T, rope/2)
    cos, sin = angles.cos().to(cd), angles.sin().to(cd)
    if x.dim() == 4:
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    pairs = x.to(cd).unflatten(-1, (rope // 2, 2))
    re, im = pairs[..., 0], pairs[..., 1]
    out = torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1)
    return out.flatten(-2).to(x.dtype)


# ------------------------------------------------------------------ paged latent cache
class PagedLatentCache:
    """Pages of ``[c_kv | k_rope]`` token rows shared by many sequences.

    ``kv`` is the pool, ``(num_pages, page, 1, latent + rope)``: the kernel's
    ``kv_cache`` layout (one latent KV head, rope at the tail). With
    ``cache_dtype="fp8_e4m3"`` it holds FlashMLA's packed fp8 rows instead,
    ``(num_pages, page, 1, row_bytes)`` uint8 (656 bytes for 512 + 64): rows are
    quantized as they are appended (:func:`mlagen.kv_cache.write_cache`; ``dtype``,
    bf16 or fp16, is then the RoPE part's and the query's) and :meth:`gather`
    returns them dequantized. A sequence is an
    integer id from :meth:`add_sequence`; its pages are taken from a free list
    as it grows and go back with :meth:`free`. :meth:`kernel_inputs` gives the
    padded ``block_table`` and ``cache_seqlens`` (int32, on the pool's device).
    """

    def __init__(self, num_pages: int, page: int, latent: int, rope: int, *,
                 dtype: torch.dtype = torch.bfloat16, cache_dtype: str | None = None, device=None):
        if num_pages < 1 or page < 1 or latent < 1 or rope < 0:
            raise ValueError(f"PagedLatentCache: need num_pages, page, latent >= 1 and rope >= 0, "
                             f"got {num_pages}, {page}, {latent}, {rope}")
        if cache_dtype not in (None, FP8_CACHE):
            raise ValueError(f"PagedLatentCache: cache_dtype = {cache_dtype!r}, expected None (rows in dtype) "
                             f"or {FP8_CACHE!r}")
        self.fp8 = cache_dtype == FP8_CACHE
        if self.fp8 and dtype not in DTYPE_NAMES:
            raise ValueError(f"PagedLatentCache: an {FP8_CACHE} cache keeps its RoPE part in bf16 or fp16, "
                             f"got dtype {dtype}")
        self.page, self.latent, self.rope, self.dtype = page, latent, rope, dtype
        row = row_bytes(latent, rope) if self.fp8 else latent + rope
        self.kv = torch.zeros((num_pages, page, 1, row), dtype=torch.uint8 if self.fp8 else dtype, device=device)
        self._free: list[int] = list(range(num_pages - 1, -1, -1))  # pop() hands out page 0 first
        self._pages: dict[int, list[int]] = {}
        self._lengths: dict[int, int] = {}
        self._next_id = 0

    # ---- sizes
    @property
    def width(self) -> int:
        """Values per token row (latent + rope), whatever the storage."""
        return self.latent + self.rope

    @property
    def num_pages(self) -> int:
        return self.kv.shape[0]

    @property
    def num_free_pages(self) -> int:
        return len(self._free)

    @property
    def sequences(self) -> list[int]:
        return list(self._lengths)

    def length(self, seq_id: int) -> int:
        return self._lengths[self._check(seq_id)]

    def lengths(self, seq_ids: Sequence[int]) -> list[int]:
        return [self.length(s) for s in seq_ids]

    def pages(self, seq_id: int) -> list[int]:
        """The pages of ``seq_id`` in token order (a copy)."""
        return list(self._pages[self._check(seq_id)])

    def _check(self, seq_id: int) -> int:
        if seq_id not in self._lengths:
            raise KeyError(f"sequence {seq_id} is not in the cache")
        return seq_id

    # ---- sequences
    def add_sequence(self) -> int:
        """A new empty sequence; returns its id."""
        seq_id = self._next_id
        self._next_id += 1
        self._pages[seq_id] = []
        self._lengths[seq_id] = 0
        return seq_id

    def free(self, seq_id: int) -> None:
        """Drop a sequence; its pages go back to the free list (reused first)."""
        pages = self._pages.pop(self._check(seq_id))
        del self._lengths[seq_id]
        self._free.extend(reversed(pages))

    def append(self, seq_ids: Sequence[int], rows) -> list[int]:
        """Append token rows to sequences; returns each sequence's length before the append.

        ``rows``: a tensor ``(len(seq_ids), T, width)`` (T new tokens each) or a
        list of ``(T_i, width)`` tensors. Pages are allocated as needed; when the
        free pages do not suffice nothing is appended and :class:`CacheFullError`
        is raised.
        """
        seq_ids = list(seq_ids)
        if len(set(seq_ids)) != len(seq_ids):
            raise ValueError(f"append: sequence ids repeat: {seq_ids}")
        rows = list(rows) if not isinstance(rows, torch.Tensor) else list(rows.unbind(0))
        if len(rows) != len(seq_ids):
            raise ValueError(f"append: {len(rows)} row blocks for {len(seq_ids)} sequences")
        starts = self.lengths(seq_ids)
        need = []
        for s, r, start in zip(seq_ids, rows, starts):
            if r.dim() != 2 or r.shape[1] != self.width:
                raise ValueError(f"append: rows of sequence {s} have shape {tuple(r.shape)}, expected (T, {self.width})")
            need.append(max(0, math.ceil((start + r.shape[0]) / self.page) - len(self._pages[s])))
        if sum(need) > len(self._free):
            raise CacheFullError(f"append: needs {sum(need)} new pages of {self.page} tokens, {len(self._free)} free")
        index = []
        for s, r, start, n in zip(seq_ids, rows, starts, need):
            self._pages[s].extend(self._free.pop() for _ in range(n))
            pages = torch.tensor(self._pages[s], dtype=torch.long)
            pos = torch.arange(start, start + r.shape[0])
            index.append(pages[pos // self.page] * self.page + pos % self.page)
            self._lengths[s] = start + r.shape[0]
        # the slots were computed here from the page lists: nothing to validate on the GPU
        write_cache(self.kv, torch.cat(index).to(self.kv.device),
                    torch.cat(rows).to(device=self.kv.device, dtype=self.dtype), latent=self.latent, validate=False)
        return starts

    # ---- kernel inputs
    def block_table(self, seq_ids: Sequence[int], width: int | None = None) -> torch.Tensor:
        """``(len(seq_ids), width)`` int32 page numbers, padded with 0 (never read)."""
        pages = [self._pages[self._check(s)] for s in seq_ids]
        need = max([len(p) for p in pages] + [1])
        width = need if width is None else width
        if width < need:
            raise ValueError(f"block_table: width {width} < {need} pages of the longest sequence")
        table = torch.zeros((len(pages), width), dtype=torch.int32)
        for i, p in enumerate(pages):
            table[i, : len(p)] = torch.tensor(p, dtype=torch.int32)
        return table.to(self.kv.device)

    def seqlens(self, seq_ids: Sequence[int]) -> torch.Tensor:
        return torch.tensor(self.lengths(seq_ids), dtype=torch.int32, device=self.kv.device)

    def kernel_inputs(self, seq_ids: Sequence[int], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(block_table, cache_seqlens)`` of the kernel for these sequences."""
        return self.block_table(seq_ids, width), self.seqlens(seq_ids)

    def gather(self, seq_ids: Sequence[int], length: int | None = None) -> torch.Tensor:
        """The rows of each sequence in token order, ``(b, length, width)``, zero past each length (an fp8
        cache's dequantized as the kernel reads them, in ``dtype``)."""
        lens = self.lengths(seq_ids)
        length = max(lens + [0]) if length is None else length
        row = self.kv.shape[-1]
        out = torch.zeros((len(lens), length, row), dtype=self.kv.dtype, device=self.kv.device)
        flat = self.kv.view(-1, row)
        for i, (s, n) in enumerate(zip(seq_ids, lens)):
            if n:
                pos = torch.arange(n)
                pages = torch.tensor(self._pages[s], dtype=torch.long)
                out[i, :n] = flat[(pages[pos // self.page] * self.page + pos % self.page).to(flat.device)]
        # zero bytes are zero values (scale 0, RoPE 0), so the padding stays zero
        return dequantize_cache(out, self.latent, dtype=self.dtype) if self.fp8 else out


# ------------------------------------------------------------------ the layer
class MultiHeadLatentAttention(nn.Module):
    """One MLA attention layer (DeepSeek-V2/V3 weights) with a paged latent cache.

    ``q_lora=None`` gives the direct query projection ``wq`` (DeepSeek-V2-Lite);
    otherwise ``wq_a -> q_norm -> wq_b``. ``softmax_scale=None`` means
    ``1/sqrt(nope + rope)``. ``max_q`` is the most new tokens per sequence in a
    decode step (speculative decoding; causal among them when > 1).
    ``cache_dtype="fp8_e4m3"`` keeps the cache as FlashMLA's packed fp8 rows (656
    bytes a token instead of 1152 for 512 + 64; RoPE part and queries in bf16, or
    fp16 for an fp16 layer): every path then reads the same quantized values. The kernel
    path needs ``dtype`` bf16 or fp16, a CUDA device and a spec the generator
    supports; the reference paths run in any float dtype on any device.

    Use: ``cache = attn.make_cache(num_pages)``, ``ids = [cache.add_sequence()
    ...]``, ``attn.prefill(prompts, ids, cache)``, then ``attn(x, ids, cache)``
    per step (``x``: ``(len(ids), s, hidden)``).
    """

    def __init__(
        self,
        hidden: int = 7168,
        heads: int = 128,
        q_lora: int | None = 1536,
        kv_lora: int = 512,
        rope: int = 64,
        nope: int = 128,
        v_head: int = 128,
        page: int = 64,
        dtype: torch.dtype = torch.bfloat16,
        softmax_scale: float | None = None,
        *,
        max_q: int = 1,
        cache_dtype: str | None = None,
        rope_theta: float = 10000.0,
        norm_eps: float = 1e-6,
        device=None,
    ):
        super().__init__()
        self.hidden, self.heads, self.q_lora, self.kv_lora = hidden, heads, q_lora, kv_lora
        self.rope, self.nope, self.v_head, self.page = rope, nope, v_head, page
        self.dtype, self.max_q, self.rope_theta = dtype, max_q, rope_theta
        self.softmax_scale = float(softmax_scale) if softmax_scale is not None else (nope + rope) ** -0.5
        # The decode spec; fp16 modules get an fp16 kernel, every other dtype describes a bf16 one.
        self.spec = MLASpec(
            q_heads=heads, latent=kv_lora, rope=rope, page=page, dtype=DTYPE_NAMES.get(dtype, "bf16"),
            scale=self.softmax_scale, max_q=max_q, causal=max_q > 1, cache_dtype=cache_dtype,
        )
        kw = {"dtype": dtype, "device": device, "bias": False}
        qk = nope + rope
        if q_lora is None:
            self.wq = nn.Linear(hidden, heads * qk, **kw)
        else:
            self.wq_a = nn.Linear(hidden, q_lora, **kw)
            self.q_norm = RMSNorm(q_lora, norm_eps, dtype=dtype, device=device)
            self.wq_b = nn.Linear(q_lora, heads * qk, **kw)
        self.wkv_a = nn.Linear(hidden, kv_lora + rope, **kw)
        self.kv_norm = RMSNorm(kv_lora, norm_eps, dtype=dtype, device=device)
        self.wkv_b = nn.Linear(kv_lora, heads * (nope + v_head), **kw)
        self.wo = nn.Linear(heads * v_head, hidden, **kw)
        self._op_key: str | None = None

    @classmethod
    def from_model(cls, model, *, tp: int = 1, page: int = 64, dtype: torch.dtype = torch.bfloat16,
                   max_q: int = 1, device=None, **kwargs) -> "MultiHeadLatentAttention":
        """A layer with the dimensions and softmax scale of an :class:`mlagen.models.MLAModel`.

        ``tp > 1`` gives one tensor-parallel shard: ``q_heads // tp`` heads (the
        caller sums the shards' ``wo`` outputs).
        """
        if tp < 1 or model.q_heads % tp:
            raise ValueError(f"from_model: tp = {tp} must divide q_heads = {model.q_heads}")
        return cls(
            hidden=model.hidden, heads=model.q_heads // tp, q_lora=model.q_lora, kv_lora=model.kv_lora,
            rope=model.rope, nope=model.nope, v_head=model.v_head, page=page, dtype=dtype,
            softmax_scale=model.softmax_scale, max_q=max_q, device=device, **kwargs,
        )

    def extra_repr(self) -> str:
        return (f"hidden={self.hidden}, heads={self.heads}, q_lora={self.q_lora}, kv_lora={self.kv_lora}, "
                f"rope={self.rope}, nope={self.nope}, v_head={self.v_head}, page={self.page}, "
                f"softmax_scale={self.softmax_scale:.6g}, max_q={self.max_q}"
                + (f", cache_dtype={self.spec.cache_dtype!r}" if self.spec.cache_dtype == FP8_CACHE else ""))

    # ---- weights
    def _wkv_b(self) -> torch.Tensor:
        return self.wkv_b.weight.view(self.heads, self.nope + self.v_head, self.kv_lora)

    @property
    def w_uk(self) -> torch.Tensor:
        """``(heads, nope, kv_lora)``: ``k_nope = W_UK · c_kv``."""
        return self._wkv_b()[:, : self.nope]

    @property
    def w_uv(self) -> torch.Tensor:
        """``(heads, v_head, kv_lora)``: ``v = W_UV · c_kv``."""
        return self._wkv_b()[:, self.nope :]

    def make_cache(self, num_pages: int, *, device=None) -> PagedLatentCache:
        """An empty paged cache for this layer (the layer's dtype and device)."""
        device = device if device is not None else self.wkv_a.weight.device
        if self.spec.cache_dtype == FP8_CACHE:
            # packed rows keep the RoPE part in the spec's (the kernel's query) dtype
            row_dtype = TORCH_DTYPES[self.spec.dtype]
            return PagedLatentCache(num_pages, self.page, self.kv_lora, self.rope, dtype=row_dtype,
                                    cache_dtype=FP8_CACHE, device=device)
        return PagedLatentCache(num_pages, self.page, self.kv_lora, self.rope, dtype=self.dtype, device=device)

    # ---- projections
    def project(self, x: torch.Tensor, positions: torch.Tensor):
        """``(q_nope, q_rope, rows)`` of tokens ``x`` (b, T, hidden) at ``positions`` (b, T).

        ``q_nope`` (b, T, heads, nope), ``q_rope`` (b, T, heads, rope) rotated,
        ``rows`` (b, T, kv_lora + rope) = ``[RMSNorm(c_kv) | rotated k_rope]``, the cache rows.
        """
        b, T, _ = x.shape
        x = x.to(self.dtype)
        q = self.wq(x) if self.q_lora is None else self.wq_b(self.q_norm(self.wq_a(x)))
        q = q.view(b, T, self.heads, self.nope + self.rope)
        q_nope, q_rope = q.split([self.nope, self.rope], dim=-1)
        q_rope = apply_rope(q_rope, positions, self.rope_theta)
        c_kv, k_rope = self.wkv_a(x).split([self.kv_lora, self.rope], dim=-1)
        rows = torch.cat([self.kv_norm(c_kv), apply_rope(k_rope, positions, self.rope_theta)], dim=-1)
        return q_nope, q_rope, rows

    def append_tokens(self, x: torch.Tensor, seq_ids: Sequence[int], cache: PagedLatentCache):
        """Project new tokens ``x`` (b, s, hidden), append their cache rows; returns ``(q_nope, q_rope)``.

        With :meth:`attend` this splits a step in two, e.g. to time the paths separately.
        """
        if x.dim() != 3 or x.shape[0] != len(seq_ids) or x.shape[2] != self.hidden:
            raise ValueError(f"x: shape {tuple(x.shape)}, expected ({len(seq_ids)}, tokens, {self.hidden})")
        starts = torch.tensor(cache.lengths(seq_ids), dtype=torch.long)
        positions = starts[:, None] + torch.arange(x.shape[1])[None, :]
        q_nope, q_rope, rows = self.project(x, positions.to(x.device))
        cache.append(seq_ids, rows)
        return q_nope, q_rope

    def attend(self, q_nope, q_rope, seq_ids: Sequence[int], cache: PagedLatentCache, *,
               path: str = "kernel") -> torch.Tensor:
        """Attention of already appended tokens' queries over the cache, then ``wo``: ``(b, s, hidden)``."""
        return self._output(self._attend(path, q_nope, q_rope, seq_ids, cache))

    # ---- attention cores: (b, s, heads, v_head) in the module dtype
    def _attend(self, path: str, q_nope, q_rope, seq_ids, cache: PagedLatentCache) -> torch.Tensor:
        if path == "naive":
            return self._attend_naive(q_nope, q_rope, seq_ids, cache)
        if path in ("kernel", "absorbed"):
            return self._attend_absorbed(q_nope, q_rope, seq_ids, cache, kernel=path == "kernel")
        raise ValueError(f"path {path!r}: expected one of {PATHS}")

    def _attend_naive(self, q_nope, q_rope, seq_ids, cache):
        from mlagen.reference import mla_attention_naive

        rows = cache.gather(seq_ids)
        lens = torch.tensor(cache.lengths(seq_ids), dtype=torch.long, device=rows.device)
        out, _ = mla_attention_naive(
            q_nope, q_rope, rows[..., : self.kv_lora], rows[..., self.kv_lora :], lens, self.w_uk, self.w_uv,
            scale=self.softmax_scale, causal=q_nope.shape[1] > 1,
        )
        return out.to(self.dtype)

    def _attend_absorbed(self, q_nope, q_rope, seq_ids, cache, *, kernel: bool):
        s = q_nope.shape[1]
        if not 1 <= s <= self.max_q:
            raise ValueError(f"decode: {s} new tokens per sequence; this layer takes 1..{self.max_q} (max_q)")
        block_table, seqlens = cache.kernel_inputs(seq_ids)
        if kernel:
            if self.dtype not in DTYPE_NAMES:
                raise TypeError(f"the kernel path needs a bf16 or fp16 layer, this one is {self.dtype}")
            q_latent = torch.einsum("bshn,hnc->bshc", q_nope, self.w_uk)
            q = torch.cat([q_latent, q_rope], dim=-1).contiguous()
            out_latent, _ = torch.ops.mlagen.mla_decode(q, cache.kv, block_table, seqlens, self.op_key)
            return torch.einsum("bshc,hvc->bshv", out_latent, self.w_uv)
        from mlagen.reference import mla_decode_reference

        cd = torch.promote_types(self.dtype, torch.float32)
        q_latent = torch.einsum("bshn,hnc->bshc", q_nope.to(cd), self.w_uk.to(cd))
        q = torch.cat([q_latent, q_rope.to(cd)], dim=-1)
        out_latent, _ = mla_decode_reference(q, cache.kv, block_table, seqlens, self.spec, compute_dtype=cd)
        return torch.einsum("bshc,hvc->bshv", out_latent, self.w_uv.to(cd)).to(self.dtype)

    @property
    def op_key(self) -> str:
        """This layer's spec key in :mod:`mlagen.ops` (registered on first use)."""
        if self._op_key is None:
            self._op_key = mlagen.ops.register(self.spec)
        return self._op_key

    def _output(self, attn: torch.Tensor) -> torch.Tensor:
        b, s = attn.shape[:2]
        return self.wo(attn.reshape(b, s, self.heads * self.v_head).to(self.dtype))

    # ---- public steps
    def forward(self, x: torch.Tensor, seq_ids: Sequence[int], cache: PagedLatentCache, *,
                path: str = "kernel") -> torch.Tensor:
        """One decode step: append ``x``'s tokens (``(b, s, hidden)``, ``s <= max_q``) and attend.

        Returns ``(b, s, hidden)``. ``path`` picks the attention core (module doc).
        """
        return self.decode_paths(x, seq_ids, cache, paths=(path,))[path]

    def decode_paths(self, x: torch.Tensor, seq_ids: Sequence[int], cache: PagedLatentCache, *,
                     paths: Sequence[str] = PATHS) -> dict[str, torch.Tensor]:
        """One decode step computed by several paths on the same cache (the rows are appended once)."""
        for p in paths:
            if p not in PATHS:
                raise ValueError(f"path {p!r}: expected one of {PATHS}")
        if not 1 <= x.shape[1] <= self.max_q:
            raise ValueError(f"decode: {x.shape[1]} new tokens per sequence; this layer takes 1..{self.max_q} (max_q)")
        q_nope, q_rope = self.append_tokens(x, seq_ids, cache)
        return {p: self.attend(q_nope, q_rope, seq_ids, cache, path=p) for p in paths}

    def prefill(self, x, seq_ids: Sequence[int], cache: PagedLatentCache):
        """Append prompts and return their outputs (plain PyTorch, non-absorbed, causal).

        ``x``: ``(b, T, hidden)`` or a list of ``(T_i, hidden)`` tensors (``T_i``
        may differ and be 0); the output has the same form. A sequence that
        already holds tokens continues: its new tokens attend to everything
        before them (chunked prefill).
        """
        as_list = not isinstance(x, torch.Tensor)
        prompts = list(x) if as_list else list(x.unbind(0))
        if len(prompts) != len(seq_ids):
            raise ValueError(f"prefill: {len(prompts)} prompts for {len(seq_ids)} sequences")
        outs = []
        for s, prompt in zip(seq_ids, prompts):
            if prompt.shape[0] == 0:
                outs.append(prompt.new_zeros((0, self.hidden), dtype=self.dtype))
                continue
            q_nope, q_rope = self.append_tokens(prompt[None], [s], cache)
            outs.append(self._output(self._attend_naive(q_nope, q_rope, [s], cache))[0])
        return outs if as_list else torch.stack(outs)
