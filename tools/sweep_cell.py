"""Time one bench cell under several plans, with the roofline ceilings measured in the same run.

For exploring plan knobs on the GPU before they go into the planner or `mlagen tune`:

    python tools/sweep_cell.py --h-q 16 --s-k 16384 --cache fp8_e4m3 \\
        --plan "" --plan schedule=split --plan schedule=split,stages=2,raw_stages=6

Each ``--plan`` is a comma-separated list of knob=value overrides for ``plan_for`` ("" is the
heuristic plan). Every kernel is first checked against the float32 reference on a small
problem (NaN-poisoned tails, a length 0 and a non-multiple of the page), so a fast wrong plan
is reported as wrong, not as fast. Inputs are the bench's (lengths normal(s_k, s_k/2), page 64).
Kernels come from MLAGEN_CACHE_DIR (prebuild them with tools/prebuild.py on a machine without a GPU).
"""

from __future__ import annotations

import argparse

import torch

import mlagen.jit
from mlagen.bench import cell_spec, format_cell, measure_ceilings, run_cell
from mlagen.plan import parse_knobs, plan_for
from mlagen.testing import assert_close_mla, make_problem


def check(kernel, spec) -> None:
    lens = [spec.page * 3 + 5, 0, 1000, 77]
    p = make_problem(spec, batch=len(lens), seqlens=lens, s_q=spec.max_q, seed=3, device="cuda")
    out = torch.full((p.batch, p.s_q, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda")
    lse = torch.full((p.batch, spec.q_heads, p.s_q), float("nan"), device="cuda") if spec.lse else None
    kernel(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse)
    ref_out, ref_lse = p.reference(torch.float32)
    assert_close_mla(out, lse, ref_out, ref_lse if spec.lse else None, context=p.describe())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--h-q", type=int, default=16)
    ap.add_argument("--s-q", type=int, default=1)
    ap.add_argument("--s-k", type=int, nargs="+", default=[16384])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--page", type=int, default=64)
    ap.add_argument("--max-q", type=int, default=None, help="the spec's max_q (default: the bench grid's)")
    ap.add_argument("--cache", default=None, help="fp8_e4m3 for the packed fp8 cache")
    ap.add_argument("--plan", action="append", default=None, help='knob=value[,knob=value] ("" = heuristic)')
    ap.add_argument("--rep-ms", type=float, default=40)
    args = ap.parse_args()
    spec = cell_spec(dict(h_q=args.h_q, s_q=args.s_q, page=args.page, cache=args.cache, max_q=args.max_q))
    ceilings = measure_ceilings()
    print(ceilings.describe(), flush=True)
    for text in args.plan or [""]:
        kernel = mlagen.jit.compile(spec, plan_for(spec, **parse_knobs(text)), tuned=False)
        check(kernel, spec)
        for s_k in args.s_k:
            cell = run_cell(kernel, spec, args.batch, args.s_q, s_k, ceilings, rep_ms=args.rep_ms)[0]
            print(f"[{kernel.plan.tag:>16s}] {format_cell(cell)}", flush=True)


if __name__ == "__main__":
    main()
