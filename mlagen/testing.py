"""Test helpers shared by the CPU tests and the GPU tests of the kernels.

- :func:`make_problem` builds a deterministic, adversarial paged-decode
  problem: shuffled pages, unused pages, NaN everywhere the kernel must not
  read, and garbage in the unused block-table entries.
- :func:`specs`, :func:`seqlens` and :func:`problems` are Hypothesis
  strategies (Hypothesis is imported only when they are called).
- :func:`assert_close_mla` is the accuracy bar: every element checked, NaN
  always fails, ``-inf`` LSE must match exactly.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch

from mlagen.dtypes import TORCH_DTYPES
from mlagen.reference import mla_decode_reference
from mlagen.fp8_cache import quantize_cache
from mlagen.spec import ARCHS, DTYPES, FP8_BLOCK, FP8_CACHE, ROPE_LAYOUTS, MLASpec, _FIELDS

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "MLAProblem",
    "assert_close_mla",
    "make_problem",
    "problems",
    "seqlens",
    "specs",
    "torch_dtype",
    "with_score_jumps",
]

# Block-table garbage beyond a request's pages: any read of it is a bug.
_BIG_GARBAGE = 2**31 - 1


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a spec dtype name (``"bf16"``, ``"fp16"``)."""
    try:
        return TORCH_DTYPES[name]
    except KeyError:
        raise ValueError(f"no torch dtype for {name!r} (known: {', '.join(TORCH_DTYPES)})") from None


@dataclass
class MLAProblem:
    """One paged decode problem (inputs only) and how it was made."""

    spec: MLASpec
    q: torch.Tensor
    kv_cache: torch.Tensor
    block_table: torch.Tensor
    cache_seqlens: torch.Tensor
    s_q: int
    seed: int
    value_std: float = 0.1
    # fp8_e4m3 specs: the 16-bit cache that kv_cache (packed rows) was quantized from
    kv_source: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.q.shape[0]

    @property
    def seqlens(self) -> list[int]:
        return [int(v) for v in self.cache_seqlens.tolist()]

    @property
    def num_pages(self) -> int:
        return self.kv_cache.shape[0]

    def reference(self, compute_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """``(out, lse)`` of :func:`mlagen.reference.mla_decode_reference`."""
        return mla_decode_reference(
            self.q, self.kv_cache, self.block_table, self.cache_seqlens, self.spec, compute_dtype=compute_dtype
        )

    def to(self, device: str | torch.device) -> MLAProblem:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(
            self,
            q=self.q.to(device),
            kv_cache=self.kv_cache.to(device),
            block_table=self.block_table.to(device),
            cache_seqlens=self.cache_seqlens.to(device),
        )

    def describe(self) -> str:
        """A short summary for failure messages."""
        lens = self.seqlens
        shown = str(lens) if len(lens) <= 12 else f"[{', '.join(map(str, lens[:12]))}, ...] (max {max(lens)})"
        return (
            f"MLAProblem(spec={self.spec.key}, batch={self.batch}, s_q={self.s_q}, seqlens={shown}, "
            f"num_pages={self.num_pages}, seed={self.seed})"
        )

    def repro(self) -> str:
        """Python code that rebuilds this problem."""
        return (
            f"make_problem(MLASpec.from_dict({self.spec.to_dict()!r}), batch={self.batch}, "
            f"seqlens={self.seqlens!r}, s_q={self.s_q}, seed={self.seed}, num_pages={self.num_pages}, "
            f"value_std={self.value_std!r})"
        )


def make_problem(
    spec: MLASpec,
    *,
    batch: int,
    seqlens: int | Sequence[int],
    s_q: int,
    seed: int,
    device: str | torch.device = "cpu",
    num_pages: int | None = None,
    value_std: float = 0.1,
) -> MLAProblem:
    """A deterministic paged decode problem for ``spec``.

    - ``q`` and the cache hold N(0, value_std²) values clamped to ±1, in the
      spec's dtype (drawn on the CPU from ``seed``, so every device gets the
      same numbers).
    - Request ``b`` owns ``ceil(L_b / page)`` distinct pages taken from a random
      permutation of the pool; the pool has unused pages unless ``num_pages``
      says otherwise.
    - The block table is ``max_b ceil(L_b / page)`` plus 0..2 columns wide (at
      least 1); entries beyond a request's pages hold -1 or page numbers
      ``>= num_pages``.
    - Every cache entry at a position ``>= L`` inside a used page, and every
      unused page, is NaN.
    - fp8_e4m3 specs: the latent's 128-value blocks get gains of 1/4..4 (so
      their scales differ), then the cache is packed with
      :func:`mlagen.quantize_cache` into uint8 rows (NaN rows stay NaN);
      ``kv_source`` keeps the 16-bit cache it came from.
    """
    if not isinstance(spec, MLASpec):
        raise TypeError(f"spec: expected an MLASpec, got {type(spec).__name__}")
    if isinstance(seqlens, int):
        seqlens = [seqlens] * batch
    lens = [int(v) for v in seqlens]
    if batch < 1 or len(lens) != batch or min(lens) < 0:
        raise ValueError(f"make_problem: need batch >= 1 and {batch} lengths >= 0, got {lens}")
    if not 1 <= s_q <= spec.max_q:
        raise ValueError(f"make_problem: s_q = {s_q}, expected 1..{spec.max_q} (spec.max_q)")

    gen = torch.Generator().manual_seed(seed)
    page = spec.page
    used = [math.ceil(n / page) for n in lens]
    total = sum(used)
    # Drawn even when num_pages is given, so that passing the num_pages a
    # problem got by default rebuilds the same problem (see repro()).
    extra = 1 + _randint(gen, 0, max(1, total // 4))
    if num_pages is None:
        num_pages = total + extra
    elif num_pages < max(total, 1):
        raise ValueError(f"make_problem: num_pages = {num_pages}, but the requests need {total} (and at least 1)")
    perm = torch.randperm(num_pages, generator=gen).tolist()
    width = max(1, max(used) + _randint(gen, 0, 2))

    kind = torch.randint(0, 3, (batch, width), generator=gen)
    beyond = num_pages + torch.randint(0, 1 << 16, (batch, width), generator=gen)
    garbage = torch.where(kind == 0, -1, torch.where(kind == 1, beyond, _BIG_GARBAGE))
    block_table = garbage.to(torch.int32)
    pages_of: list[list[int]] = []
    for b, n in enumerate(used):
        mine, perm = perm[:n], perm[n:]
        pages_of.append(mine)
        block_table[b, :n] = torch.tensor(mine, dtype=torch.int32)

    dtype = torch_dtype(spec.dtype)
    q = _values(gen, (batch, s_q, spec.q_heads, spec.d_qk), value_std).to(dtype)
    kv = _values(gen, (num_pages, page, spec.kv_heads, spec.d_qk), value_std).to(dtype)
    fp8 = spec.cache_dtype == FP8_CACHE
    if fp8:
        # latent blocks of different magnitudes (x 1/4 .. 4), so the per-block scales differ
        blocks = spec.latent // FP8_BLOCK
        gain = torch.exp2(torch.rand((num_pages, page, spec.kv_heads, blocks), generator=gen) * 4 - 2)
        latent = kv[..., : spec.latent].float().reshape(num_pages, page, spec.kv_heads, blocks, FP8_BLOCK)
        kv[..., : spec.latent] = (latent * gain[..., None]).reshape(num_pages, page, spec.kv_heads, -1).to(dtype)
    if perm:  # the pages nobody owns
        kv[torch.tensor(perm, dtype=torch.long)] = float("nan")
    for mine, n in zip(pages_of, lens):
        if mine and n % page:
            kv[mine[-1], n % page :] = float("nan")
    source = None
    if fp8:
        # packed rows (uint8); NaN rows quantize to NaN latents and scales: poison stays poison
        source = kv
        kv = quantize_cache(kv, spec.latent).view(torch.uint8)

    return MLAProblem(
        spec=spec,
        q=q.to(device),
        kv_cache=kv.to(device),
        block_table=block_table.to(device),
        cache_seqlens=torch.tensor(lens, dtype=torch.int32, device=device),
        s_q=s_q,
        seed=seed,
        value_std=value_std,
        kv_source=None if source is None else source.to(device),
    )


# Key gains of with_score_jumps: each step but one raises the max score of the even heads by
# 32 * 6 = 192 (raw q.k) or more, i.e. by >= 192 * scale * log2(e) >= 8 in exp2 units for every
# scale >= 1/36 (d_qk <= 1296); 12 -> 12.5 is a step of 16 (about 1 unit) that moves no max by much.
SCORE_JUMP_GAINS = (6.0, 12.0, 12.5, 18.0, 24.0)


def with_score_jumps(problem: MLAProblem, gains: Sequence[float] = SCORE_JUMP_GAINS) -> MLAProblem:
    """A copy of ``problem`` whose running softmax maxima jump mid-sequence.

    Query columns 0..63 become +0.5 for even heads and -0.5 for odd heads. In a
    request of length L, token ``L * (k + 1) // (len(gains) + 1)`` gets key
    columns 0..63 equal to ``gains[k]`` (every KV head), so each spike moves the
    even heads' score by 32 * gain: later spikes dominate earlier ones by factors
    of up to e^(32 * 6 * scale) and more. Odd heads see the spikes as very
    negative scores. Kernels that defer or skip rescaling (heads_n moves a
    column's running max only when a score exceeds it by 2^8) must still get
    every weight right. fp8 specs: the spikes go into ``kv_source`` and the rows
    are packed again.
    """
    spec = problem.spec
    fp8 = spec.cache_dtype == FP8_CACHE
    q = problem.q.clone()
    sign = torch.where(torch.arange(spec.q_heads) % 2 == 0, 0.5, -0.5).to(q.dtype).to(q.device)
    q[..., :64] = sign[:, None]
    cache = (problem.kv_source if fp8 else problem.kv_cache).clone()
    rows = problem.block_table.tolist()
    for b, length in enumerate(problem.seqlens):
        for k, gain in enumerate(gains):
            t = length * (k + 1) // (len(gains) + 1)
            if t < length:
                cache[rows[b][t // spec.page], t % spec.page, :, :64] = gain
    if fp8:
        return dataclasses.replace(problem, q=q, kv_cache=quantize_cache(cache, spec.latent).view(torch.uint8),
                                   kv_source=cache)
    return dataclasses.replace(problem, q=q, kv_cache=cache)


def _randint(gen: torch.Generator, lo: int, hi: int) -> int:
    """A uniform int in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, (1,), generator=gen))


def _values(gen: torch.Generator, shape: tuple[int, ...], std: float) -> torch.Tensor:
    return (torch.randn(shape, generator=gen) * std).clamp_(-1.0, 1.0)


# ------------------------------------------------------------------ strategies
def specs(**fixed: Any) -> SearchStrategy[MLASpec]:
    """Random valid specs. Keyword arguments fix fields to a value
    (``specs(q_heads=128)``) or draw them from a strategy
    (``specs(latent=st.sampled_from([64, 128]))``); the other fields are drawn
    consistently with them."""
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy

    unknown = sorted(set(fixed) - set(_FIELDS))
    if unknown:
        raise TypeError(f"specs(): unknown field(s) {unknown}")

    @st.composite
    def draw_spec(draw) -> MLASpec:
        def pick(name: str, strategy):
            value = fixed.get(name, strategy)
            return draw(value) if isinstance(value, SearchStrategy) else value

        q_heads = pick("q_heads", st.one_of(st.sampled_from([1, 16, 64, 128]), st.integers(1, 128)))
        divisors = [d for d in range(1, q_heads + 1) if q_heads % d == 0]
        kv_heads = pick("kv_heads", st.one_of(st.just(1), st.sampled_from(divisors)))
        latent = pick("latent", st.one_of(st.just(512), st.sampled_from(range(64, 1025, 64))))
        rope = pick("rope", st.one_of(st.sampled_from([0, 64]), st.sampled_from(range(0, 257, 16))))
        dtype = pick("dtype", st.sampled_from(DTYPES))
        caches = [None, dtype] + ([FP8_CACHE] if latent % FP8_BLOCK == 0 else [])
        return MLASpec(
            q_heads=q_heads,
            latent=latent,
            rope=rope,
            kv_heads=kv_heads,
            dtype=dtype,
            cache_dtype=pick("cache_dtype", st.sampled_from(caches)),
            page=pick("page", st.sampled_from([1 << i for i in range(9)])),
            max_q=pick("max_q", st.integers(1, 8)),
            causal=pick("causal", st.booleans()),
            scale=pick("scale", st.one_of(st.none(), st.floats(1e-3, 2.0, allow_nan=False, allow_infinity=False))),
            lse=pick("lse", st.booleans()),
            rope_at=pick("rope_at", st.sampled_from(ROPE_LAYOUTS)),
            arch=pick("arch", st.sampled_from(ARCHS)),
        )

    return draw_spec()


def seqlens(page: int, max_len: int, batch: int) -> SearchStrategy[list[int]]:
    """``batch`` cache lengths in ``0..max_len`` that favour page edges:
    0, 1, page-1, page, page+1, two pages ±1 and ``max_len`` itself."""
    from hypothesis import strategies as st

    edges = {0, 1, page - 1, page, page + 1, 2 * page - 1, 2 * page, 2 * page + 1, 3 * page + page // 2, max_len}
    edges = sorted(n for n in edges if 0 <= n <= max_len)
    one = st.one_of(st.sampled_from(edges), st.integers(0, max_len))
    return st.lists(one, min_size=batch, max_size=batch)


def problems(
    spec: MLASpec | SearchStrategy[MLASpec],
    max_batch: int = 64,
    max_len: int = 4096,
    device: str | torch.device = "cpu",
) -> SearchStrategy[MLAProblem]:
    """Random problems for a spec (or a strategy of specs): batch in
    ``1..max_batch`` (small ones often), ``s_q`` in ``1..spec.max_q``, lengths
    from :func:`seqlens`, and a random seed."""
    from hypothesis import strategies as st

    @st.composite
    def draw_problem(draw) -> MLAProblem:
        sp = spec if isinstance(spec, MLASpec) else draw(spec)
        batch = draw(st.one_of(st.integers(1, min(4, max_batch)), st.integers(1, max_batch)))
        s_q = draw(st.integers(1, sp.max_q))
        lens = draw(seqlens(sp.page, max_len, batch))
        seed = draw(st.integers(0, 2**32 - 1))
        return make_problem(sp, batch=batch, seqlens=lens, s_q=s_q, seed=seed, device=device)

    return draw_problem()


# ------------------------------------------------------------------ checking
def assert_close_mla(
    out: torch.Tensor,
    lse: torch.Tensor | None,
    ref_out: torch.Tensor,
    ref_lse: torch.Tensor | None,
    *,
    atol_out: float = 8e-4,
    rtol_out: float = 2 / 128,
    atol_lse: float = 1e-6,
    rtol_lse: float = 1.2e-4,
    context: str = "",
) -> None:
    """Check a result against the reference, element by element.

    An element passes when ``|x - ref| <= atol + rtol * |ref|``; NaN anywhere
    fails; infinities (``lse = -inf`` for rows that see no key) must match
    exactly. Pass ``lse=None`` for kernels built without LSE. The message gives
    the failure counts and the worst element with its index; ``context`` (e.g.
    ``problem.describe()``) is prepended.
    """
    failures = [_compare("out", out, ref_out, atol_out, rtol_out)]
    if lse is not None:
        if ref_lse is None:
            raise ValueError("assert_close_mla: got an lse to check but no ref_lse")
        failures.append(_compare("lse", lse, ref_lse, atol_lse, rtol_lse))
    failures = [f for f in failures if f]
    if failures:
        raise AssertionError("\n".join(([context] if context else []) + failures))


def _compare(name: str, got: torch.Tensor, want: torch.Tensor, atol: float, rtol: float) -> str:
    """'' when close, else a description of what differs."""
    if tuple(got.shape) != tuple(want.shape):
        return f"{name}: shape {tuple(got.shape)} differs from the reference's {tuple(want.shape)}"
    g = got.detach().to("cpu", torch.float64)
    w = want.detach().to("cpu", torch.float64)
    if torch.isnan(w).any():
        return f"{name}: the reference itself has {int(torch.isnan(w).sum())} NaN"
    tol = atol + rtol * w.abs()
    finite = torch.isfinite(w)
    diff = (g - w).abs()
    nan = torch.isnan(g)
    inf_bad = ~finite & (g != w)
    value_bad = finite & ~(torch.isfinite(g) & (diff <= tol))
    bad = nan | inf_bad | value_bad
    count = int(bad.sum())
    if count == 0:
        return ""
    # Rank failures by how far past their tolerance they are; non-finite first.
    excess = torch.where(finite & torch.isfinite(g), diff - tol, torch.full_like(diff, math.inf))
    excess = torch.where(bad, excess, torch.full_like(diff, -math.inf))
    flat = int(torch.argmax(excess))
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), g.shape)) if g.dim() else ()
    gv, wv = g[index].item(), w[index].item()
    both = finite & torch.isfinite(g)
    max_diff = float(diff[both].max()) if both.any() else float("nan")
    return (
        f"{name}: {count} of {g.numel()} elements differ beyond {atol:g} + {rtol:g}*|ref| "
        f"({int(nan.sum())} NaN, {int(inf_bad.sum())} infinity mismatches); "
        f"worst at index {index}: got {gv!r}, reference {wv!r} "
        f"(|diff| {abs(gv - wv):.4g}, allowed {float(tol[index]):.4g}); "
        f"max |diff| over finite elements {max_diff:.4g}"
    )
