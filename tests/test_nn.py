"""mlagen.nn without a GPU: the paged latent cache, the layer's shapes, and its reference paths.

The decode paths are checked against an independent full recomputation: every step, the
whole token history of each sequence is pushed through the layer's weights with plain
(non-absorbed, non-cached) causal attention written here from DeepSeek's formulas, with
RoPE in complex form and torch's rms_norm, in float64.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlagen.models import DEEPSEEK_V2_LITE, DEEPSEEK_V3, MINICPM3_4B
from mlagen.nn import CacheFullError, MultiHeadLatentAttention, PagedLatentCache, apply_rope
from mlagen.spec import MLASpec

F64 = torch.float64
SMALL = dict(hidden=32, heads=4, q_lora=16, kv_lora=64, rope=16, nope=8, v_head=12, page=4, dtype=F64)


def small_layer(seed=0, **overrides) -> MultiHeadLatentAttention:
    torch.manual_seed(seed)
    layer = MultiHeadLatentAttention(**{**SMALL, **overrides})
    with torch.no_grad():  # non-trivial norms
        for module in (layer.kv_norm, getattr(layer, "q_norm", None)):
            if module is not None:
                module.weight.uniform_(0.5, 1.5)
    return layer


# ------------------------------------------------------------------ the cache
def test_cache_pages_grow_free_and_reuse():
    cache = PagedLatentCache(num_pages=6, page=4, latent=8, rope=4, dtype=F64)
    a, b = cache.add_sequence(), cache.add_sequence()
    assert (cache.width, cache.num_free_pages, cache.sequences) == (12, 6, [a, b])
    rows = torch.arange(5 * 12, dtype=F64).reshape(5, 12)
    assert cache.append([a], [rows]) == [0]
    assert cache.length(a) == 5 and cache.pages(a) == [0, 1] and cache.num_free_pages == 4
    assert cache.append([a, b], torch.stack([rows[:3], rows[:3] + 100])) == [5, 0]  # a: 5 -> 8 fills page 1
    assert cache.pages(a) == [0, 1] and cache.pages(b) == [2] and cache.lengths([a, b]) == [8, 3]
    cache.append([a], [rows[:1]])  # token 8 opens a third page
    assert cache.pages(a) == [0, 1, 3]
    table, lens = cache.kernel_inputs([b, a])
    assert table.dtype == lens.dtype == torch.int32
    assert table.tolist() == [[2, 0, 0], [0, 1, 3]] and lens.tolist() == [3, 9]
    assert cache.block_table([b], width=5).tolist() == [[2, 0, 0, 0, 0]]
    with pytest.raises(ValueError, match="width"):
        cache.block_table([a], width=2)
    gathered = cache.gather([a, b])
    assert gathered.shape == (2, 9, 12)
    assert torch.equal(gathered[0], torch.cat([rows, rows[:3], rows[:1]]))
    assert torch.equal(gathered[1, :3], rows[:3] + 100) and not gathered[1, 3:].any()
    # pages are where the block table says
    assert torch.equal(cache.kv[3, 0, 0], rows[0]) and torch.equal(cache.kv[2, 2, 0], rows[2] + 100)

    cache.free(a)
    assert cache.num_free_pages == 5 and cache.sequences == [b]
    with pytest.raises(KeyError):
        cache.length(a)
    c = cache.add_sequence()
    cache.append([c], [rows[:4]])
    assert cache.pages(c) == [0]  # the freed pages come back first, in order
    cache.append([c], [rows])
    assert cache.pages(c) == [0, 1, 3]


def test_cache_full_appends_nothing():
    cache = PagedLatentCache(num_pages=3, page=2, latent=4, rope=0, dtype=F64)
    a, b = cache.add_sequence(), cache.add_sequence()
    cache.append([a], [torch.ones(3, 4, dtype=F64)])
    with pytest.raises(CacheFullError, match="needs 2 new pages"):
        cache.append([a, b], [torch.ones(1, 4, dtype=F64), torch.ones(3, 4, dtype=F64)])
    assert cache.lengths([a, b]) == [3, 0] and cache.num_free_pages == 1
    cache.append([b], [torch.ones(2, 4, dtype=F64)])
    assert cache.num_free_pages == 0
    with pytest.raises(ValueError, match="repeat"):
        cache.append([a, a], [torch.ones(1, 4, dtype=F64)] * 2)
    with pytest.raises(ValueError, match="shape"):
        cache.append([a], [torch.ones(1, 5, dtype=F64)])


def test_empty_sequences_in_block_tables():
    cache = PagedLatentCache(num_pages=2, page=8, latent=4, rope=0, dtype=F64)
    ids = [cache.add_sequence(), cache.add_sequence()]
    table, lens = cache.kernel_inputs(ids)
    assert table.shape == (2, 1) and lens.tolist() == [0, 0] and cache.gather(ids).shape == (2, 0, 4)


# ------------------------------------------------------------------ the layer's shapes
def test_deepseek_v3_shapes_and_spec():
    layer = MultiHeadLatentAttention.from_model(DEEPSEEK_V3, device="meta")
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    assert shapes == {
        "wq_a.weight": (1536, 7168), "q_norm.weight": (1536,), "wq_b.weight": (128 * 192, 1536),
        "wkv_a.weight": (576, 7168), "kv_norm.weight": (512,), "wkv_b.weight": (128 * 256, 512),
        "wo.weight": (7168, 128 * 128),
    }
    assert layer.spec == DEEPSEEK_V3.decode_spec(page=64)
    assert layer.spec.scale == DEEPSEEK_V3.softmax_scale != 1 / math.sqrt(576)
    assert layer.w_uk.shape == (128, 128, 512) and layer.w_uv.shape == (128, 128, 512)
    # default constructor: DeepSeek-V3's dimensions with the plain 1/sqrt(nope + rope) scale
    default = MultiHeadLatentAttention(device="meta")
    assert default.spec == DEEPSEEK_V3.decode_spec(page=64, scale=192 ** -0.5)


def test_v2_lite_direct_query_and_tensor_parallel_shard():
    lite = MultiHeadLatentAttention.from_model(DEEPSEEK_V2_LITE, page=16, device="meta")
    assert not hasattr(lite, "wq_a") and tuple(lite.wq.weight.shape) == (16 * 192, 2048)
    assert lite.spec == DEEPSEEK_V2_LITE.decode_spec(page=16)
    shard = MultiHeadLatentAttention.from_model(DEEPSEEK_V3, tp=8, device="meta")
    assert shard.heads == 16 and shard.spec == DEEPSEEK_V3.decode_spec(tp=8)
    assert tuple(shard.wo.weight.shape) == (7168, 16 * 128)
    cpm = MultiHeadLatentAttention.from_model(MINICPM3_4B, max_q=2, dtype=torch.float16, device="meta")
    assert cpm.spec == MINICPM3_4B.decode_spec(max_q=2, causal=True, dtype="fp16")
    with pytest.raises(ValueError, match="tp"):
        MultiHeadLatentAttention.from_model(DEEPSEEK_V3, tp=3, device="meta")


def test_kernel_path_wiring_on_meta_tensors():
    """The kernel path end to end on meta tensors: absorbed q layout, the op's fake, W_UV, wo."""
    layer = MultiHeadLatentAttention.from_model(DEEPSEEK_V3, max_q=2, device="meta")
    cache = layer.make_cache(32)
    assert cache.kv.shape == (32, 64, 1, 576) and cache.kv.dtype == torch.bfloat16
    ids = [cache.add_sequence() for _ in range(3)]
    for s in (1, 2):
        out = layer(torch.empty(3, s, 7168, dtype=torch.bfloat16, device="meta"), ids, cache)
        assert out.shape == (3, s, 7168) and out.dtype == torch.bfloat16
    assert cache.lengths(ids) == [3, 3, 3]
    with pytest.raises(ValueError, match="max_q"):
        layer(torch.empty(3, 3, 7168, dtype=torch.bfloat16, device="meta"), ids, cache)
    with pytest.raises(ValueError, match="path"):
        layer(torch.empty(3, 1, 7168, dtype=torch.bfloat16, device="meta"), ids, cache, path="flash")


# ------------------------------------------------------------------ RoPE
def _rope_complex(x: torch.Tensor, positions: torch.Tensor, theta=10000.0) -> torch.Tensor:
    """DeepSeek-V3's apply_rotary_emb: pairs as complex numbers times exp(i * pos * freq)."""
    rope = x.shape[-1]
    freqs = 1.0 / theta ** (torch.arange(0, rope, 2, dtype=F64) / rope)
    cis = torch.polar(torch.ones(len(positions), rope // 2, dtype=F64), torch.outer(positions.to(F64), freqs))
    z = torch.view_as_complex(x.to(F64).reshape(*x.shape[:-1], rope // 2, 2).contiguous())
    cis = cis.view(len(positions), *([1] * (x.dim() - 2)), rope // 2)
    return torch.view_as_real(z * cis).flatten(-2)


def test_rope_matches_the_complex_form_and_keeps_norms():
    x = torch.randn(2, 5, 3, 16, dtype=F64)
    pos = torch.tensor([[0, 1, 2, 3, 4], [7, 8, 9, 10, 11]])
    got = apply_rope(x, pos)
    for b in range(2):
        assert torch.allclose(got[b], _rope_complex(x[b], pos[b]), atol=1e-12)
    assert torch.allclose(got.norm(dim=-1), x.norm(dim=-1))
    assert torch.equal(apply_rope(x[:, :1], torch.zeros(2, 1, dtype=torch.long)), x[:, :1])


# ------------------------------------------------------------------ reference paths vs recomputation
def full_recompute(layer: MultiHeadLatentAttention, tokens: torch.Tensor) -> torch.Tensor:
    """Causal attention over a whole history (T, hidden), no cache, no absorption."""
    T = tokens.shape[0]
    pos = torch.arange(T)
    H, nope, rope, vh = layer.heads, layer.nope, layer.rope, layer.v_head
    if layer.q_lora is None:
        q = tokens @ layer.wq.weight.T
    else:
        qa = tokens @ layer.wq_a.weight.T
        q = F.rms_norm(qa, (layer.q_lora,), layer.q_norm.weight, 1e-6) @ layer.wq_b.weight.T
    q = q.view(T, H, nope + rope)
    q_nope, q_pe = q[..., :nope], _rope_complex(q[..., nope:], pos)
    kv = tokens @ layer.wkv_a.weight.T
    c = F.rms_norm(kv[:, : layer.kv_lora], (layer.kv_lora,), layer.kv_norm.weight, 1e-6)
    k_pe = _rope_complex(kv[:, layer.kv_lora :], pos)
    kvb = (c @ layer.wkv_b.weight.T).view(T, H, nope + vh)
    k = torch.cat([kvb[..., :nope], k_pe[:, None, :].expand(T, H, rope)], dim=-1)
    v = kvb[..., nope:]
    scores = torch.einsum("shd,thd->hst", torch.cat([q_nope, q_pe], dim=-1), k) * layer.softmax_scale
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    o = torch.einsum("hst,thv->shv", scores.softmax(dim=-1), v)
    return o.reshape(T, H * vh) @ layer.wo.weight.T


@pytest.mark.parametrize("q_lora", [16, None])
@pytest.mark.parametrize("max_q", [1, 2])
@torch.no_grad()
def test_prefill_then_decode_equals_full_recomputation(q_lora, max_q):
    layer = small_layer(q_lora=q_lora, max_q=max_q)
    cache = layer.make_cache(64)
    cache.kv.fill_(float("nan"))  # nothing outside the sequences may be read
    prompts = [torch.randn(n, 32, dtype=F64) for n in (5, 0, 9, 4)]
    ids = [cache.add_sequence() for _ in prompts]
    history = [p.clone() for p in prompts]
    outs = layer.prefill(prompts, ids, cache)
    for h, o in zip(history, outs):
        assert o.shape == h.shape
        if len(h):
            assert torch.allclose(o, full_recompute(layer, h), atol=1e-12, rtol=1e-10)
    gen = torch.Generator().manual_seed(1)
    for step in range(7):
        s = 1 + step % max_q
        x = torch.randn(len(ids), s, 32, dtype=F64, generator=gen)
        got = layer.decode_paths(x, ids, cache, paths=("naive", "absorbed"))
        for i in range(len(ids)):
            history[i] = torch.cat([history[i], x[i]])
            want = full_recompute(layer, history[i])[-s:]
            for path in ("naive", "absorbed"):
                assert torch.allclose(got[path][i], want, atol=1e-12, rtol=1e-10), (step, i, path)
        if step == 3:  # a sequence leaves, a new one arrives and reuses its pages
            freed = cache.pages(ids[2])
            cache.free(ids[2])
            ids[2] = cache.add_sequence()
            history[2] = torch.randn(6, 32, dtype=F64, generator=gen)
            layer.prefill([history[2]], [ids[2]], cache)
            assert cache.pages(ids[2]) == freed[:2]
    assert cache.lengths(ids) == [len(h) for h in history]


@torch.no_grad()
def test_chunked_prefill_equals_one_prefill():
    layer = small_layer()
    prompt = torch.randn(11, 32, dtype=F64)
    one = layer.make_cache(16)
    a = one.add_sequence()
    whole = layer.prefill([prompt], [a], one)[0]
    two = layer.make_cache(16)
    b = two.add_sequence()
    parts = [layer.prefill([prompt[:6]], [b], two)[0], layer.prefill([prompt[6:]], [b], two)[0]]
    assert torch.allclose(torch.cat(parts), whole, atol=1e-12)
    assert torch.allclose(one.gather([a]), two.gather([b]), atol=1e-14, rtol=0)


@torch.no_grad()
def test_absorbed_equals_naive_in_bf16_layers_too():
    """The module-dtype paths (bf16 weights, float32 attention) agree to float32 accuracy."""
    layer = MultiHeadLatentAttention(hidden=64, heads=8, q_lora=32, kv_lora=128, rope=32, nope=16, v_head=16,
                                     page=16, dtype=torch.bfloat16, max_q=2)
    cache = layer.make_cache(16)
    ids = [cache.add_sequence() for _ in range(3)]
    layer.prefill([torch.randn(n, 64) for n in (3, 17, 30)], ids, cache)
    for s in (1, 2):
        got = layer.decode_paths(torch.randn(3, s, 64), ids, cache, paths=("naive", "absorbed"))
        assert torch.allclose(got["naive"].float(), got["absorbed"].float(), atol=2e-2, rtol=2e-2)
        assert got["naive"].dtype == torch.bfloat16 and got["naive"].shape == (3, s, 64)


def test_fp8_cache_stores_packed_rows_and_gathers_them_dequantized():
    from mlagen.fp8_cache import dequantize_cache, quantize_cache

    cache = PagedLatentCache(num_pages=4, page=4, latent=128, rope=16, dtype=torch.bfloat16, cache_dtype="fp8_e4m3")
    assert cache.kv.shape == (4, 4, 1, 128 + 4 + 32) and cache.kv.dtype == torch.uint8 and cache.width == 144
    a, b = cache.add_sequence(), cache.add_sequence()
    rows = torch.randn(6, 144, generator=torch.Generator().manual_seed(0))
    cache.append([a, b], [rows[:5], rows[5:]])
    packed = quantize_cache(rows.bfloat16(), 128).view(torch.uint8)
    assert torch.equal(cache.kv[0, 0, 0], packed[0]) and torch.equal(cache.kv[1, 0, 0], packed[4])
    assert torch.equal(cache.kv[2, 0, 0], packed[5])  # b's first page
    gathered = cache.gather([a, b])
    assert gathered.dtype == torch.bfloat16 and gathered.shape == (2, 5, 144)
    assert torch.equal(gathered[0], dequantize_cache(packed[:5], 128)) and not gathered[1, 1:].any()
    with pytest.raises(ValueError, match="keeps its RoPE part in bf16 or fp16, got dtype torch.float64"):
        PagedLatentCache(num_pages=2, page=4, latent=128, rope=16, dtype=F64, cache_dtype="fp8_e4m3")
    with pytest.raises(ValueError, match="cache_dtype = 'fp8', expected None"):
        PagedLatentCache(num_pages=2, page=4, latent=128, rope=16, cache_dtype="fp8")


@torch.no_grad()
def test_fp8_cache_layer_paths_agree_and_follow_the_16bit_layer():
    """With an fp8 cache both reference paths read the same quantized rows (agreeing to float64 accuracy), and
    the layer stays within e4m3's precision of the same weights over an unquantized cache."""
    layer = small_layer(kv_lora=128, cache_dtype="fp8_e4m3", max_q=2)
    exact = small_layer(kv_lora=128, max_q=2)
    exact.load_state_dict(layer.state_dict())
    assert layer.spec == exact.spec.replace(cache_dtype="fp8_e4m3") and "fp8_e4m3" in repr(layer)
    caches = {"fp8": layer.make_cache(32), "exact": exact.make_cache(32)}
    assert caches["fp8"].kv.dtype == torch.uint8 and caches["fp8"].dtype == torch.bfloat16
    prompts = [torch.randn(n, 32, dtype=F64) for n in (5, 0, 9)]
    ids = {k: [c.add_sequence() for _ in prompts] for k, c in caches.items()}
    layer.prefill(prompts, ids["fp8"], caches["fp8"])
    exact.prefill(prompts, ids["exact"], caches["exact"])
    gen = torch.Generator().manual_seed(2)
    for step in range(4):
        x = torch.randn(3, 1 + step % 2, 32, dtype=F64, generator=gen)
        got = layer.decode_paths(x, ids["fp8"], caches["fp8"], paths=("naive", "absorbed"))
        want = exact(x, ids["exact"], caches["exact"], path="naive")
        assert torch.allclose(got["naive"], got["absorbed"], atol=1e-12, rtol=1e-10), step
        err = (got["naive"] - want).abs().max() / want.abs().max()
        assert 1e-5 < err < 0.1, (step, err)  # quantized (not the exact rows), within e4m3's few percent


def test_kernel_path_needs_a_half_precision_layer():
    layer = small_layer()
    cache = layer.make_cache(8)
    ids = [cache.add_sequence()]
    with pytest.raises(TypeError, match="bf16 or fp16"):
        layer(torch.randn(1, 1, 32, dtype=F64), ids, cache)


def test_layer_spec_is_a_valid_decode_spec():
    layer = small_layer(max_q=2)
    assert layer.spec == MLASpec(q_heads=4, latent=64, rope=16, page=4, scale=(8 + 16) ** -0.5, max_q=2, causal=True)
