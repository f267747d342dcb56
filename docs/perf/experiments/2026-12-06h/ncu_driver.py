"""Runs the fp8 seesaw (the planner's kernel for fp8, h_q 128, s_q 1, batch 128, s_k 16384) five times, for
ncu to sample one launch of: run-ncu.sh."""

import torch

import mlagen.jit
from mlagen.bench import cell_spec, make_inputs, seqlens_for
from mlagen.plan import plan_for

spec = cell_spec(dict(h_q=128, s_q=1, page=64, cache="fp8_e4m3"))
plan = plan_for(spec)
kernel = mlagen.jit.compile(spec, plan, tuned=False)
print(f"{spec.key} plan {plan.tag}", flush=True)
q, cache, bt, lens = make_inputs(spec, 128, 1, seqlens_for(128, 1, 16384), 1)[0]
for _ in range(5):
    kernel(q, cache, bt, lens, validate=False)
torch.cuda.synchronize()
