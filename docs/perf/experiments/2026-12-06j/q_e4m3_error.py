"""CPU only: what quantizing the query's latent part to e4m3 would cost in accuracy (the input to an fp8 wgmma for
Q.K^T over an fp8 cache, issue 7's 64+-row cells), next to the error the fp8 cache itself already brings.

    python docs/perf/experiments/2026-12-06j/q_e4m3_error.py

For each case: out / lse of the float32 reference over (a) the 16-bit cache the fp8 one was made from, (b) the fp8
cache dequantized exactly (what the kernels are checked against today), (c) as (b) with q's latent part rounded to
e4m3 with one scale per (query row, 128 latent values) = amax / 448 and its RoPE part kept. Printed: max and mean
|out| errors of (b) against (a) -- the cache's own error, which users of an fp8 cache accept -- and of (c) against
(b) and (a), and the same for lse.
"""

import dataclasses

import torch

from mlagen.fp8_cache import dequantize_cache
from mlagen.models import DEEPSEEK_V3
from mlagen.reference import mla_decode_reference
from mlagen.testing import make_problem

E4M3_MAX = 448.0


def e4m3_round(x: torch.Tensor) -> torch.Tensor:
    """x rounded to float8_e4m3fn and back (float32)."""
    return x.to(torch.float8_e4m3fn).to(torch.float32)


def quantize_q_latent(q: torch.Tensor, latent: int, block: int = 128) -> torch.Tensor:
    qf = q.float()
    lat = qf[..., :latent].reshape(*qf.shape[:-1], latent // block, block)
    scale = lat.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30) / E4M3_MAX
    lat = (e4m3_round(lat / scale) * scale).reshape(*qf.shape[:-1], latent)
    return torch.cat([lat, qf[..., latent:]], dim=-1)


def run(h_q: int, s_q: int, seqlen: int, outlier_gain: float, q_gain: float = 1.0, seed: int = 0) -> None:
    spec = DEEPSEEK_V3.decode_spec(page=64, cache_dtype="fp8_e4m3")
    spec = dataclasses.replace(spec, q_heads=h_q, max_q=s_q, causal=s_q > 1)
    p = make_problem(spec, batch=4, seqlens=[seqlen, seqlen // 2, seqlen - 37, 65], s_q=s_q, seed=seed)
    # q_gain sets the logits' spread: make_problem's N(0, 0.1^2) values give scores of std ~0.03 (softmax nearly
    # flat); x60 gives ~2, as attention in a trained model has
    q = (p.q.float() * q_gain).to(p.q.dtype)
    if outlier_gain != 1.0:
        # a few heavy latent channels, as absorbed q_nope . W_UK has
        gen = torch.Generator().manual_seed(seed + 1)
        idx = torch.randperm(spec.latent, generator=gen)[:8]
        q = q.clone()
        q[..., idx] = (q[..., idx].float() * outlier_gain).to(q.dtype)
    bf16_spec = dataclasses.replace(spec, cache_dtype=spec.dtype)
    lens = p.cache_seqlens
    out_a, lse_a = mla_decode_reference(q, p.kv_source, p.block_table, lens, bf16_spec)
    cache_b = dequantize_cache(p.kv_cache, spec.latent, torch.bfloat16, out_dtype=torch.float32)
    out_b, lse_b = mla_decode_reference(q.float(), cache_b, p.block_table, lens, bf16_spec)
    out_c, lse_c = mla_decode_reference(quantize_q_latent(q, spec.latent), cache_b, p.block_table, lens, bf16_spec)

    def err(x, y):
        d = (x - y).abs()
        d = d[torch.isfinite(d)]
        return f"max {d.max():.2e} mean {d.mean():.2e}"

    print(f"h_q {h_q} s_q {s_q} L {seqlen} q x{q_gain:g}, outliers x{outlier_gain:g}: |out| mean {out_a.abs().mean():.2e}")
    print(f"   out  cache (b-a) {err(out_b, out_a)} | q e4m3 (c-b) {err(out_c, out_b)} | both (c-a) {err(out_c, out_a)}")
    print(f"   lse  cache (b-a) {err(lse_b, lse_a)} | q e4m3 (c-b) {err(lse_c, lse_b)} | both (c-a) {err(lse_c, lse_a)}")


if __name__ == "__main__":
    for h_q, s_q in ((16, 1), (64, 2)):
        for q_gain in (1.0, 60.0):
            for gain in (1.0, 20.0):
                run(h_q, s_q, 2048, gain, q_gain)
