"""Run one bench cell's decode call a few times, for a profiler (ncu, nsys, compute-sanitizer).

    ncu --kernel-name regex:MLADecode --launch-skip 2 --launch-count 1 --set detailed \\
        python tools/profile_cell.py --h-q 16 --s-k 16384 [--cache fp8_e4m3] [--s-q 1] [--batch 128]

``--flashmla LIB`` runs FlashMLA's call (``tools/flashmla_ref/``) on the same inputs instead, for the
same profile of its decode kernel (``--kernel-name regex:flash_fwd_splitkv_mla``).

Inputs are the bench's (lengths normal(s_k, s_k/2), page 64, causal 576/512); kernels come from
MLAGEN_CACHE_DIR (prebuild them with tools/prebuild.py --bench on a machine without a GPU).
"""

from __future__ import annotations

import argparse

import torch

import mlagen.jit
from mlagen.bench import cell_spec, make_inputs, seqlens_for
from mlagen.plan import parse_knobs, plan_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--h-q", type=int, default=128)
    ap.add_argument("--s-q", type=int, default=1)
    ap.add_argument("--s-k", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--page", type=int, default=64)
    ap.add_argument("--cache", default=None, help="fp8_e4m3 for the packed fp8 cache")
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--plan", default="", help='plan knobs, knob=value[,knob=value] ("" = heuristic)')
    ap.add_argument("--flashmla", metavar="LIB", default=None,
                    help="run FlashMLA's decode (a library built by tools/flashmla_ref/build.sh) instead of ours")
    args = ap.parse_args()
    spec = cell_spec(dict(h_q=args.h_q, s_q=args.s_q, page=args.page, cache=args.cache))
    if args.flashmla:
        from mlagen import flashmla_ref

        kernel = flashmla_ref.load(spec, args.flashmla)
    else:
        kernel = mlagen.jit.compile(spec, plan_for(spec, **parse_knobs(args.plan)), tuned=False)
    lens = seqlens_for(args.batch, args.s_q, args.s_k)
    q, cache, bt, ln = make_inputs(spec, args.batch, args.s_q, lens, sets=1)[0]
    for _ in range(args.calls):
        kernel(q, cache, bt, ln, validate=False)
    torch.cuda.synchronize()
    print(f"{spec.key} plan {kernel.plan.tag}: {args.calls} calls done")


if __name__ == "__main__":
    main()
