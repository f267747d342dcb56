"""The reference decode, split-KV merging, model-level MLA, and the test helpers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mlagen.reference import (
    merge_partials,
    mla_attention_absorbed,
    mla_attention_naive,
    mla_decode_reference,
    mla_decode_reference_range,
)
from mlagen.spec import MLASpec
from mlagen.testing import (
    SCORE_JUMP_GAINS,
    MLAProblem,
    assert_close_mla,
    make_problem,
    problems,
    seqlens,
    specs,
    with_score_jumps,
)

F64 = torch.float64
EXACT = dict(atol_out=1e-12, rtol_out=1e-10, atol_lse=1e-12, rtol_lse=1e-12)

# Small dims keep the CPU suite fast; the edge cases are in the lengths.
small_specs = specs(
    q_heads=st.sampled_from([1, 2, 3, 4, 6, 8, 16]),
    latent=st.sampled_from([64, 128]),
    rope=st.sampled_from([0, 16, 32]),
    cache_dtype=None,
    page=st.sampled_from([1, 2, 4, 16, 64]),
)
small_problems = problems(small_specs, max_batch=4, max_len=80)


def _dense_reference(p: MLAProblem) -> tuple[torch.Tensor, torch.Tensor]:
    """An independent implementation: gather each request's tokens one by one,
    then a plain per-row softmax."""
    spec = p.spec
    page, group = spec.page, spec.heads_per_kv
    value_cols = slice(0, spec.latent) if spec.rope_at == "tail" else slice(spec.rope, spec.d_qk)
    out = torch.zeros(p.batch, p.s_q, spec.q_heads, spec.d_v, dtype=F64)
    lse = torch.full((p.batch, spec.q_heads, p.s_q), -math.inf, dtype=F64)
    kv_of_head = torch.arange(spec.q_heads) // group
    for b, length in enumerate(p.seqlens):
        rows = [p.kv_cache[int(p.block_table[b, t // page]), t % page] for t in range(length)]
        if not rows:
            continue
        keys = torch.stack(rows).to(F64)[:, kv_of_head]  # (L, q_heads, d_qk)
        for i in range(p.s_q):
            n = length - p.s_q + i + 1 if spec.causal and p.s_q > 1 else length
            if n <= 0:
                continue
            k = keys[:n]
            logits = torch.einsum("thd,hd->ht", k, p.q[b, i].to(F64)) * spec.scale
            top = logits.max(dim=1, keepdim=True).values
            e = torch.exp(logits - top)
            total = e.sum(dim=1, keepdim=True)
            lse[b, :, i] = (top + torch.log(total)).squeeze(1)
            out[b, i] = torch.einsum("ht,thv->hv", e / total, k[..., value_cols])
    return out, lse


@given(p=small_problems)
def test_matches_dense_implementation(p):
    out, lse = p.reference(F64)
    ref_out, ref_lse = _dense_reference(p)
    assert_close_mla(out, lse, ref_out, ref_lse, **EXACT, context=p.describe())


def test_matches_dense_on_fixed_cases():
    cases = [
        (MLASpec(q_heads=16, page=64), [0, 1, 63, 64, 65, 200], 1),
        (MLASpec(q_heads=8, kv_heads=2, page=4, max_q=3, causal=True), [0, 1, 2, 3, 9], 3),
        (MLASpec(q_heads=4, latent=128, rope=32, page=1, rope_at="head", max_q=2), [5, 0, 3], 2),
    ]
    for spec, lens, s_q in cases:
        p = make_problem(spec, batch=len(lens), seqlens=lens, s_q=s_q, seed=7)
        assert_close_mla(*p.reference(F64), *_dense_reference(p), **EXACT, context=p.describe())


def test_float32_close_to_float64():
    p = make_problem(MLASpec(q_heads=16, page=16, max_q=2, causal=True), batch=3, seqlens=[1, 40, 100], s_q=2, seed=3)
    assert_close_mla(*p.reference(torch.float32), *p.reference(F64), atol_out=1e-6, rtol_out=1e-5, atol_lse=1e-6, rtol_lse=1e-6)


# ------------------------------------------------------------ split KV
@given(p=small_problems, data=st.data())
def test_split_kv_merge_equals_whole(p, data):
    splits = [data.draw(st.integers(0, n), label=f"split[{b}]") for b, n in enumerate(p.seqlens)]
    args = (p.q, p.kv_cache, p.block_table, p.cache_seqlens, p.spec)
    left = mla_decode_reference_range(*args, 0, splits, compute_dtype=F64)
    right = mla_decode_reference_range(*args, splits, None, compute_dtype=F64)
    merged = merge_partials([left[0], right[0]], [left[1], right[1]])
    assert_close_mla(*merged, *p.reference(F64), **EXACT, context=f"{p.describe()} splits={splits}")


@given(p=small_problems, data=st.data())
def test_split_kv_three_ways_in_any_order(p, data):
    cut = data.draw(st.integers(0, max(p.seqlens)), label="cut1")
    cut2 = data.draw(st.integers(cut, max(p.seqlens)), label="cut2")
    args = (p.q, p.kv_cache, p.block_table, p.cache_seqlens, p.spec)
    parts = [mla_decode_reference_range(*args, lo, hi, compute_dtype=F64) for lo, hi in ((cut2, None), (0, cut), (cut, cut2))]
    merged = merge_partials([o for o, _ in parts], [l for _, l in parts])
    assert_close_mla(*merged, *p.reference(F64), **EXACT, context=p.describe())


def test_range_keeps_causal_rule_relative_to_full_length():
    spec = MLASpec(q_heads=1, latent=64, rope=0, page=4, max_q=2, causal=True)
    p = make_problem(spec, batch=1, seqlens=[6], s_q=2, seed=0)
    # Row 0 sees keys 0..4, row 1 keys 0..5; the range [5, 6) holds only key 5.
    out, lse = mla_decode_reference_range(p.q, p.kv_cache, p.block_table, p.cache_seqlens, spec, 5, 6, compute_dtype=F64)
    assert lse[0, 0, 0] == -math.inf and torch.all(out[0, 0] == 0)
    key5 = p.kv_cache[int(p.block_table[0, 1]), 1, 0].to(F64)
    torch.testing.assert_close(out[0, 1, 0], key5[:64], rtol=0, atol=0)
    expected = spec.scale * torch.dot(p.q[0, 1, 0].to(F64), key5)
    torch.testing.assert_close(lse[0, 0, 1], expected, rtol=1e-14, atol=0)


def test_merge_partials_edge_cases():
    b, s, h, d = 2, 3, 4, 5
    out = torch.randn(b, s, h, d, dtype=F64)
    lse = torch.randn(b, h, s, dtype=F64)
    empty_out = torch.full_like(out, math.nan)  # garbage a kernel may leave in an empty split
    empty_lse = torch.full_like(lse, -math.inf)
    o, l = merge_partials([empty_out, out, empty_out], [empty_lse, lse, empty_lse])
    torch.testing.assert_close(o, out, rtol=1e-15, atol=0)
    torch.testing.assert_close(l, lse, rtol=1e-15, atol=0)
    o, l = merge_partials([empty_out, empty_out], [empty_lse, empty_lse])
    assert torch.all(o == 0) and torch.all(l == -math.inf)
    # Two halves with equal lse: the result is their mean and lse + log 2.
    o, l = merge_partials([out, 2 * out], [lse, lse])
    torch.testing.assert_close(o, 1.5 * out)
    torch.testing.assert_close(l, lse + math.log(2))
    with pytest.raises(ValueError):
        merge_partials([out], [])
    with pytest.raises(ValueError):
        merge_partials([out], [lse.transpose(1, 2)])


# ---------------------------------------------- poison and empty rows
@given(p=small_problems)
def test_poison_never_reaches_the_output(p):
    out, lse = p.reference(F64)
    assert not torch.isnan(out).any() and not torch.isnan(lse).any(), p.describe()
    assert torch.all(torch.isfinite(lse) | (lse == -math.inf))
    # Overwrite everything the reference must not read with other values:
    # NaN cache entries with numbers, block-table garbage with real page numbers.
    kv = torch.where(torch.isnan(p.kv_cache), torch.full_like(p.kv_cache, 0.5), p.kv_cache)
    bt = p.block_table.clone()
    for b, n in enumerate(p.seqlens):
        used = math.ceil(n / p.spec.page)
        bt[b, used:] = torch.arange(bt.shape[1] - used) % p.num_pages
    out2, lse2 = mla_decode_reference(p.q, kv, bt, p.cache_seqlens, p.spec, compute_dtype=F64)
    assert torch.equal(out, out2) and torch.equal(lse, lse2), p.describe()


@given(spec=small_specs, data=st.data())
def test_empty_rows_give_zero_and_minus_inf(spec, data):
    s_q = data.draw(st.integers(1, spec.max_q), label="s_q")
    lens = data.draw(seqlens(spec.page, 12, 3), label="seqlens")
    p = make_problem(spec, batch=3, seqlens=lens, s_q=s_q, seed=data.draw(st.integers(0, 999), label="seed"))
    out, lse = p.reference(F64)
    for b, n in enumerate(lens):
        for i in range(s_q):
            visible = n - s_q + i + 1 if spec.causal and s_q > 1 else n
            if visible <= 0:
                assert torch.all(lse[b, :, i] == -math.inf) and torch.all(out[b, i] == 0), (b, i, p.describe())
            else:
                assert torch.all(torch.isfinite(lse[b, :, i])), (b, i, p.describe())


def test_single_visible_key_returns_its_value():
    spec = MLASpec(q_heads=4, latent=64, rope=16, page=2, max_q=4, causal=True)
    p = make_problem(spec, batch=1, seqlens=[2], s_q=4, seed=5)
    out, lse = p.reference(F64)
    # Rows 0 and 1 see no key, row 2 sees key 0 only, row 3 keys 0 and 1.
    assert torch.all(lse[0, :, :2] == -math.inf) and torch.all(out[0, :2] == 0)
    key0 = p.kv_cache[int(p.block_table[0, 0]), 0, 0].to(F64)
    for h in range(4):
        torch.testing.assert_close(out[0, 2, h], key0[:64], rtol=0, atol=1e-15)
        torch.testing.assert_close(lse[0, h, 2], spec.scale * torch.dot(p.q[0, 2, h].to(F64), key0))
    assert torch.all(torch.isfinite(lse[0, :, 3]))


def test_rope_at_head_is_a_column_permutation_of_tail():
    tail = MLASpec(q_heads=4, latent=64, rope=32, page=4, max_q=2, causal=True)
    p = make_problem(tail, batch=3, seqlens=[3, 8, 13], s_q=2, seed=11)
    head = tail.replace(rope_at="head")
    to_head = torch.cat([torch.arange(64, 96), torch.arange(0, 64)])
    out_t, lse_t = p.reference(F64)
    out_h, lse_h = mla_decode_reference(
        p.q[..., to_head], p.kv_cache[..., to_head], p.block_table, p.cache_seqlens, head, compute_dtype=F64
    )
    assert_close_mla(out_h, lse_h, out_t, lse_t, **EXACT)


def test_heads_use_their_kv_head():
    spec = MLASpec(q_heads=4, kv_heads=2, latent=64, rope=0, page=8)
    p = make_problem(spec, batch=1, seqlens=[1], s_q=1, seed=2)
    out, _ = p.reference(F64)
    row = p.kv_cache[int(p.block_table[0, 0]), 0].to(F64)  # (kv_heads, 64)
    for h in range(4):
        torch.testing.assert_close(out[0, 0, h], row[h // 2], rtol=0, atol=0)


def test_input_validation():
    spec = MLASpec(q_heads=4, latent=64, rope=16, page=4, max_q=2)
    p = make_problem(spec, batch=2, seqlens=[3, 5], s_q=2, seed=0)
    args = [p.q, p.kv_cache, p.block_table, p.cache_seqlens, spec]
    with pytest.raises(ValueError, match="q: shape"):
        mla_decode_reference(p.q[..., :64], *args[1:])
    with pytest.raises(ValueError, match="s_q = 2"):
        mla_decode_reference(*args[:4], spec.replace(max_q=1))
    with pytest.raises(ValueError, match="kv_cache: shape"):
        mla_decode_reference(*args[:4], spec.replace(page=8))
    too_long = p.block_table.shape[1] * spec.page + 1
    with pytest.raises(ValueError, match=rf"cache_seqlens\[1\] = {too_long}"):
        mla_decode_reference(*args[:3], torch.tensor([3, too_long], dtype=torch.int32), spec)
    with pytest.raises(ValueError, match=r"cache_seqlens\[0\] = -1"):
        mla_decode_reference(*args[:3], torch.tensor([-1, 5], dtype=torch.int32), spec)
    bad = p.block_table.clone()
    bad[1, 1] = p.num_pages
    with pytest.raises(ValueError, match=r"block_table\[1, 1\]"):
        mla_decode_reference(p.q, p.kv_cache, bad, p.cache_seqlens, spec)
    # byte rows are packed fp8 rows: only for an fp8_e4m3 spec, and only of its row width
    with pytest.raises(TypeError, match="packed fp8 rows"):
        mla_decode_reference(p.q, p.kv_cache.to(torch.uint8), *args[2:])
    with pytest.raises(TypeError, match="float cache"):
        mla_decode_reference(p.q, p.kv_cache.to(torch.int32), *args[2:])
    fp8 = MLASpec(q_heads=4, latent=1024, rope=16, page=4, max_q=2, cache_dtype="fp8_e4m3")
    with pytest.raises(ValueError, match=r"packed fp8 rows \(num_pages, 4, 1, 1088\)"):
        mla_decode_reference(torch.zeros(2, 2, 4, 1040), p.kv_cache.to(torch.uint8), p.block_table,
                             p.cache_seqlens, fp8)


# -------------------------------------------------------- model-level MLA
@st.composite
def mla_layers(draw):
    """Random inputs of one MLA attention layer (float64)."""
    b = draw(st.integers(1, 3), label="batch")
    s_q = draw(st.integers(1, 4), label="s_q")
    h = draw(st.sampled_from([1, 2, 3, 8]), label="heads")
    nope = draw(st.integers(1, 40), label="nope")
    v_head = draw(st.integers(1, 40), label="v_head")
    kv_lora = draw(st.sampled_from([64, 128]), label="kv_lora")
    rope = draw(st.sampled_from([0, 16, 32]), label="rope")
    T = draw(st.integers(0, 40), label="T")
    lens = draw(st.lists(st.integers(0, T), min_size=b, max_size=b), label="seqlens")
    causal = draw(st.booleans(), label="causal")
    page = draw(st.sampled_from([1, 4, 16, 64]), label="page")
    seed = draw(st.integers(0, 2**31), label="seed")
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, std=1.0):
        return torch.randn(*shape, generator=g, dtype=F64) * std

    inputs = dict(
        q_nope=randn(b, s_q, h, nope),
        q_rope=randn(b, s_q, h, rope),
        c_kv=randn(b, T, kv_lora),
        k_rope=randn(b, T, rope),
        cache_seqlens=torch.tensor(lens, dtype=torch.int32),
        w_uk=randn(h, nope, kv_lora, std=kv_lora**-0.5),
        w_uv=randn(h, v_head, kv_lora, std=kv_lora**-0.5),
    )
    return inputs, dict(scale=(nope + rope) ** -0.5, causal=causal), page


@given(layer=mla_layers())
def test_absorbed_equals_naive_mla(layer):
    inputs, kw, page = layer
    naive = mla_attention_naive(**inputs, **kw)
    absorbed = mla_attention_absorbed(**inputs, **kw, page=page)
    assert_close_mla(*absorbed, *naive, atol_out=1e-12, rtol_out=1e-9, atol_lse=1e-12, rtol_lse=1e-10)


def test_naive_is_standard_attention():
    g = torch.Generator().manual_seed(0)
    b, s_q, h, nope, rope, v_head, kv_lora, T = 2, 3, 2, 8, 4, 6, 64, 7
    q_nope, q_rope = torch.randn(b, s_q, h, nope, generator=g, dtype=F64), torch.randn(b, s_q, h, rope, generator=g, dtype=F64)
    c_kv, k_rope = torch.randn(b, T, kv_lora, generator=g, dtype=F64), torch.randn(b, T, rope, generator=g, dtype=F64)
    w_uk, w_uv = torch.randn(h, nope, kv_lora, generator=g, dtype=F64), torch.randn(h, v_head, kv_lora, generator=g, dtype=F64)
    lens = torch.tensor([7, 4], dtype=torch.int32)
    out, lse = mla_attention_naive(q_nope, q_rope, c_kv, k_rope, lens, w_uk, w_uv, scale=0.3, causal=True)
    for bi in range(b):
        n = int(lens[bi])
        for hi in range(h):
            k = torch.cat([c_kv[bi, :n] @ w_uk[hi].T, k_rope[bi, :n]], dim=-1)  # (n, nope + rope)
            v = c_kv[bi, :n] @ w_uv[hi].T
            q = torch.cat([q_nope[bi, :, hi], q_rope[bi, :, hi]], dim=-1)  # (s_q, nope + rope)
            logits = 0.3 * q @ k.T
            mask = torch.arange(n)[None, :] > (n - s_q + torch.arange(s_q))[:, None]
            logits = logits.masked_fill(mask, -math.inf)
            torch.testing.assert_close(out[bi, :, hi], torch.softmax(logits, dim=-1) @ v)
            torch.testing.assert_close(lse[bi, hi], torch.logsumexp(logits, dim=-1))


# ------------------------------------------------------------ make_problem
@given(spec=small_specs, data=st.data())
def test_make_problem_layout(spec, data):
    batch = data.draw(st.integers(1, 4), label="batch")
    lens = data.draw(seqlens(spec.page, 70, batch), label="seqlens")
    p = make_problem(spec, batch=batch, seqlens=lens, s_q=spec.max_q, seed=data.draw(st.integers(0, 99), label="seed"))
    page, num_pages = spec.page, p.num_pages
    used = [math.ceil(n / page) for n in lens]
    assert p.block_table.dtype == torch.int32 and p.cache_seqlens.dtype == torch.int32
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[spec.dtype]
    assert p.seqlens == lens and p.q.dtype == p.kv_cache.dtype == dtype
    assert max(1, max(used)) <= p.block_table.shape[1] <= max(used) + 2
    owned = [int(x) for b, n in enumerate(used) for x in p.block_table[b, :n]]
    assert len(set(owned)) == len(owned) and all(0 <= x < num_pages for x in owned)
    assert num_pages > len(owned), "the pool must have unused pages"
    for b, n in enumerate(used):
        garbage = p.block_table[b, n:]
        assert torch.all((garbage == -1) | (garbage >= num_pages))
    # NaN exactly where the reference must not read.
    row = spec.kv_heads * spec.d_qk
    expected = sum((u * page - n) * row for u, n in zip(used, lens)) + (num_pages - len(owned)) * page * row
    assert int(torch.isnan(p.kv_cache).sum()) == expected
    for b, n in enumerate(lens):
        for t in range(n):
            assert not torch.isnan(p.kv_cache[int(p.block_table[b, t // page]), t % page]).any()
    assert not torch.isnan(p.q).any() and float(p.q.abs().max()) <= 1.0


def test_make_problem_is_deterministic_and_reproducible():
    spec = MLASpec(q_heads=8, page=4, max_q=2, causal=True)
    a = make_problem(spec, batch=3, seqlens=[0, 5, 9], s_q=2, seed=42)
    b = make_problem(spec, batch=3, seqlens=[0, 5, 9], s_q=2, seed=42)
    c = make_problem(spec, batch=3, seqlens=[0, 5, 9], s_q=2, seed=43)
    for name in ("q", "kv_cache", "block_table", "cache_seqlens"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0, equal_nan=True)
    assert not torch.equal(a.q, c.q)
    rebuilt = eval(a.repro(), {"make_problem": make_problem, "MLASpec": MLASpec})
    torch.testing.assert_close(rebuilt.kv_cache, a.kv_cache, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(rebuilt.block_table, a.block_table)
    assert "seed=42" in a.describe() and spec.key in a.describe()
    moved = a.to("cpu")
    assert torch.equal(moved.q, a.q) and moved.spec == spec


def test_make_problem_rejects():
    with pytest.raises(ValueError, match="s_q"):
        make_problem(MLASpec(q_heads=8), batch=1, seqlens=[4], s_q=2, seed=0)
    with pytest.raises(ValueError, match="num_pages"):
        make_problem(MLASpec(q_heads=8, page=4), batch=1, seqlens=[9], s_q=1, seed=0, num_pages=2)
    with pytest.raises(ValueError, match="lengths"):
        make_problem(MLASpec(q_heads=8), batch=2, seqlens=[4], s_q=1, seed=0)


@given(page=st.sampled_from([1, 16, 64]), max_len=st.integers(0, 300), batch=st.integers(1, 5), data=st.data())
def test_seqlens_strategy(page, max_len, batch, data):
    lens = data.draw(seqlens(page, max_len, batch))
    assert len(lens) == batch and all(0 <= n <= max_len for n in lens)


# -------------------------------------------------------- assert_close_mla
def _pair():
    out = torch.tensor([[[[0.5, -0.25]]]], dtype=F64)  # (1, 1, 1, 2)
    lse = torch.tensor([[[1.0, -math.inf]]], dtype=F64)  # (1, 1, 2)
    return out, lse


def test_assert_close_mla_accepts_within_tolerance():
    out, lse = _pair()
    assert_close_mla(out, lse, out, lse)
    tol = 8e-4 + (2 / 128) * 0.5
    assert_close_mla(out + torch.tensor([tol * 0.99, 0.0], dtype=F64), lse, out, lse)
    assert_close_mla(out.to(torch.bfloat16), None, out, None)


def test_assert_close_mla_rejects():
    out, lse = _pair()
    tol = 8e-4 + (2 / 128) * 0.5
    with pytest.raises(AssertionError, match=r"out: 1 of 2 elements .*index \(0, 0, 0, 0\)"):
        assert_close_mla(out + torch.tensor([tol * 1.01, 0.0], dtype=F64), lse, out, lse)
    nan_out = out.clone()
    nan_out[0, 0, 0, 1] = math.nan
    with pytest.raises(AssertionError, match=r"1 NaN.*index \(0, 0, 0, 1\)"):
        assert_close_mla(nan_out, lse, out, lse)
    with pytest.raises(AssertionError, match=r"lse: .*1 infinity mismatches"):
        assert_close_mla(out, torch.tensor([[[1.0, -1e30]]], dtype=F64), out, lse)
    with pytest.raises(AssertionError, match=r"lse: .*index \(0, 0, 0\)"):
        assert_close_mla(out, torch.tensor([[[-math.inf, -math.inf]]], dtype=F64), out, lse)
    with pytest.raises(AssertionError, match="shape"):
        assert_close_mla(out[..., :1], lse, out, lse)
    with pytest.raises(AssertionError, match="context here"):
        assert_close_mla(nan_out, lse, out, lse, context="context here")


@pytest.mark.parametrize("spec", [MLASpec(q_heads=4, page=16, max_q=2, causal=True),
                                  MLASpec(q_heads=4, page=16, cache_dtype="fp8_e4m3")])
def test_score_jumps_move_the_max_of_even_heads(spec):
    """with_score_jumps: the last spike sets the even heads' LSE; odd heads never see a large score; the
    poison past every length survives (fp8: the rows are packed again from the spiked source)."""
    base = make_problem(spec, batch=3, seqlens=[300, 0, 41], s_q=spec.max_q, seed=2)
    p = with_score_jumps(base)
    assert torch.equal(p.block_table, base.block_table) and torch.equal(p.cache_seqlens, base.cache_seqlens)
    _, lse = p.reference(torch.float64)
    top = 32 * max(SCORE_JUMP_GAINS) * spec.scale  # the last spike's score, against O(0.1) for the rest
    for b in (0, 2):
        last_q = p.s_q - 1  # sees every key
        assert torch.all((lse[b, 0::2, last_q] - top).abs() < 1.0)
        assert torch.all(lse[b, 1::2, last_q] < 0.2 * top)
    assert torch.isinf(lse[1]).all()
    cache = p.kv_source if spec.cache_dtype == "fp8_e4m3" else p.kv_cache
    page = int(p.block_table[2, 41 // spec.page])
    assert torch.isnan(cache[page, 41 % spec.page:].float()).all()
    if spec.cache_dtype == "fp8_e4m3":
        raw = p.kv_cache[page, 41 % spec.page:, :, spec.latent:spec.latent + 16].contiguous()
        assert torch.isnan(raw.view(torch.float32)).all()  # NaN scales
