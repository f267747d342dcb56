import random, sys, torch
import mlagen.jit
from mlagen.bench import cell_spec, measure_ceilings
from mlagen.plan import plan_for
from mlagen.spec import MLASpec
from mlagen.testing import make_problem
measure_ceilings()
flush = torch.empty(200 * 2**20, dtype=torch.uint8, device="cuda")
def bad_rows(k, p, spec):
    out = torch.full((p.batch, p.s_q, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda")
    lse = torch.full((p.batch, spec.q_heads, p.s_q), float("nan"), device="cuda")
    k(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse)
    ro, rl = p.reference(torch.float32)
    fin = torch.isfinite(rl)
    d = (lse - rl).abs()
    return int((((d > 1e-6 + 1.2e-4 * rl.abs()) & fin) | (torch.isnan(lse) & fin)).sum())
for h, q, causal in ((16, 2, True), (16, 2, False), (16, 1, False), (32, 1, False)):
    spec = cell_spec(dict(h_q=h, s_q=q, page=64, cache="fp8_e4m3", max_q=q))
    if not causal and spec.causal:
        spec = MLASpec.from_dict({**spec.to_dict(), "causal": False})
    k = mlagen.jit.compile(spec, plan_for(spec))
    rng = random.Random(7)
    counts = [0, 0, 0]
    for it in range(25):
        lens = [rng.choice([0, 1, 63, 64, 65, 127, rng.randint(0, 3000)]) for _ in range(rng.randint(1, 40))]
        p = make_problem(spec, batch=len(lens), seqlens=lens, s_q=q, seed=rng.randint(0, 2**31 - 1), device="cuda")
        a = bad_rows(k, p, spec)          # cold
        b = bad_rows(k, p, spec)          # warm
        flush.fill_(1); torch.cuda.synchronize()
        c = bad_rows(k, p, spec)          # after an L2 flush
        counts[0] += a > 0; counts[1] += b > 0; counts[2] += c > 0
    print(f"h{h} q{q} causal={causal} {k.plan.tag}: problems with bad lse: first call {counts[0]}, repeat {counts[1]}, after L2 flush {counts[2]} (of 25)", flush=True)
