import random, sys, torch
import mlagen.jit
from mlagen.bench import cell_spec, measure_ceilings
from mlagen.plan import plan_for
from mlagen.testing import assert_close_mla, make_problem
N = int(sys.argv[1])
spec = cell_spec(dict(h_q=16, s_q=2, page=64, cache="fp8_e4m3", max_q=2))
k = mlagen.jit.compile(spec, plan_for(spec))
if N > 1:
    measure_ceilings()
rng = random.Random(5)
fails = 0
for it in range(N):
    if it % 2 == 0:
        lens, seed = [197, 0, 1000, 77], 3
    else:
        lens = [rng.choice([0, 1, 63, 64, 65, 127, rng.randint(0, 3000)]) for _ in range(rng.randint(1, 40))]
        seed = rng.randint(0, 2**31 - 1)
    p = make_problem(spec, batch=len(lens), seqlens=lens, s_q=2, seed=seed, device="cuda")
    out = torch.full((p.batch, 2, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda")
    lse = torch.full((p.batch, spec.q_heads, 2), float("nan"), device="cuda")
    k(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse)
    ref_out, ref_lse = p.reference(torch.float32)
    try:
        assert_close_mla(out, lse, ref_out, ref_lse)
    except AssertionError as e:
        fails += 1
        if fails <= 2:
            print("  fail", it, str(e).splitlines()[-1][:200])
print(sys.argv[2], "fails", fails, "of", N, flush=True)
