"""Runs the planner's kernel for an fp8 cell (default h_q 128, s_q 1; batch 128, s_k 16384) five times, for ncu
to sample one launch of: run-ncu.sh (H_Q, S_Q environment variables pick the cell)."""

import os

import torch

import mlagen.jit
from mlagen.bench import cell_spec, make_inputs, seqlens_for
from mlagen.plan import plan_for

h_q, s_q = int(os.environ.get("H_Q", 128)), int(os.environ.get("S_Q", 1))
spec = cell_spec(dict(h_q=h_q, s_q=s_q, page=64, cache="fp8_e4m3"))
plan = plan_for(spec)
kernel = mlagen.jit.compile(spec, plan, tuned=False)
print(f"{spec.key} plan {plan.tag}", flush=True)
q, cache, bt, lens = make_inputs(spec, 128, s_q, seqlens_for(128, s_q, 16384), 1)[0]
for _ in range(5):
    kernel(q, cache, bt, lens, validate=False)
torch.cuda.synchronize()
