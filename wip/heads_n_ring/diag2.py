import random, sys, torch
import mlagen.jit
from mlagen.bench import cell_spec, measure_ceilings
from mlagen.plan import plan_for
from mlagen.testing import make_problem
spec = cell_spec(dict(h_q=16, s_q=2, page=64, cache="fp8_e4m3", max_q=2))
k = mlagen.jit.compile(spec, plan_for(spec))
measure_ceilings()
rng = random.Random(5)
for mode in ("nanfirst", "parts1", "parts1000", "plain"):
    nf = nbad = 0
    for it in range(25):
        lens = [rng.choice([0, 1, 63, 64, 65, 127, rng.randint(0, 3000)]) for _ in range(rng.randint(1, 40))]
        p = make_problem(spec, batch=len(lens), seqlens=lens, s_q=2, seed=rng.randint(0, 2**31 - 1), device="cuda")
        parts = {"parts1": 1, "parts1000": 1000}.get(mode)
        if mode == "nanfirst":
            qn = torch.full_like(p.q, float("nan"))
            kvn = p.kv_cache.clone()
            kvn.view(torch.uint8)[..., 528:] = 0xFF  # rope bytes -> NaN
            k(qn, kvn, p.block_table, p.cache_seqlens)
        out = torch.full((p.batch, 2, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda")
        lse = torch.full((p.batch, spec.q_heads, 2), float("nan"), device="cuda")
        k(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse, num_parts=parts)
        ro, rl = p.reference(torch.float32)
        d = (lse - rl).abs()
        fin = torch.isfinite(rl)
        bad = ((d > 1e-6 + 1.2e-4 * rl.abs()) & fin) | (torch.isnan(lse) & fin)
        if bad.any():
            nbad += 1
            idx = bad.nonzero().tolist()
            rows = sorted({b for b, h, t in idx})
            print(f"{mode} it {it}: {len(idx)} bad lse, nan {torch.isnan(lse[fin]).sum().item()}, requests {[(b, lens[b]) for b in rows][:6]}, out nan {torch.isnan(out).sum().item()}", flush=True)
    print(mode, "bad problems", nbad, "of 25", flush=True)
