import random, sys, time, traceback
import torch
import mlagen.jit
from mlagen.plan import plan_for
from mlagen.testing import assert_close_mla, make_problem
from mlagen.variants import kernel_variants

N = int(sys.argv[1]) if len(sys.argv) > 1 else 30
fails = 0
from mlagen.bench import cell_spec
todo = [(n, s) for n, s in kernel_variants().items() if s.cache_dtype == "fp8_e4m3" and plan_for(s).schedule == "heads_n"]
todo += [(f"cell_h{h}_q{q}", cell_spec(dict(h_q=h, s_q=q, page=64, cache="fp8_e4m3", max_q=q))) for h, q in ((16, 2), (32, 1), (16, 1))]
for name, spec in todo:
    k = mlagen.jit.compile(spec, plan_for(spec))
    rng = random.Random(hash(name) & 0xffff)
    t0 = time.time()
    for it in range(N):
        if it < 5:
            lens, s_q, parts, seed = [197, 0, 1000, 77], spec.max_q, None, 3
            p = make_problem(spec, batch=4, seqlens=lens, s_q=s_q, seed=seed, device="cuda")
        batch = rng.choice([1, 2, 3, rng.randint(1, 64)])
        lens = [rng.choice([0, 1, spec.page - 1, spec.page + 1, 63, 64, 65, 127, rng.randint(0, 3000), rng.randint(0, 300)]) for _ in range(batch)]
        lens = [max(0, l) for l in lens]
        s_q = rng.randint(1, spec.max_q)
        parts = rng.choice([None, 1, 1, 1, 2, 3, rng.randint(1, 200)])
        if it >= 5:
            p = make_problem(spec, batch=batch, seqlens=lens, s_q=s_q, seed=rng.randint(0, 2**31 - 1), device="cuda")
        else:
            parts = None
        out = torch.full((p.batch, p.s_q, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda")
        lse = torch.full((p.batch, spec.q_heads, p.s_q), float("nan"), device="cuda") if spec.lse else None
        try:
            k(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse, num_parts=parts)
            ref_out, ref_lse = p.reference(torch.float32)
            assert_close_mla(out, lse, ref_out, ref_lse if spec.lse else None, context=p.describe())
        except Exception as e:
            fails += 1
            print(f"FAIL {name} it={it} lens={lens[:8]} s_q={s_q} parts={parts}: {str(e)[:600]}", flush=True)
            if fails > 6:
                sys.exit(1)
    torch.cuda.synchronize()
    print(f"{name} {k.plan.tag}: {N} cases done in {time.time()-t0:.1f}s", flush=True)
print("FAILS", fails)
sys.exit(1 if fails else 0)
