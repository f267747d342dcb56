"""Run one decode call of one kernel variant, for compute-sanitizer (memcheck, racecheck, synccheck).

    compute-sanitizer --tool racecheck python tools/sanitize_one.py h128_p64_q2_causal \\
        --plan schedule=seesaw --lens 100 --s-q 2 --parts 1

Builds the problem like the GPU suite (NaN poison, shuffled pages), checks the
result against the reference, and exits non-zero if it differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", help="a name from mlagen.variants.kernel_variants()")
    parser.add_argument("--plan", action="append", default=[], metavar="KNOB=VALUE")
    parser.add_argument("--lens", default="100", help="comma-separated sequence lengths")
    parser.add_argument("--s-q", type=int, default=1)
    parser.add_argument("--parts", type=int, default=None)
    args = parser.parse_args()
    import torch

    import mlagen.jit
    from mlagen.plan import parse_knob, plan_for
    from mlagen.testing import assert_close_mla, make_problem
    from mlagen.variants import kernel_variants

    spec = kernel_variants()[args.variant]
    overrides = dict(parse_knob(item) for item in args.plan)
    kernel = mlagen.jit.compile(spec, plan_for(spec, **overrides))
    lens = [int(x) for x in args.lens.split(",")]
    p = make_problem(spec, batch=len(lens), seqlens=lens, s_q=args.s_q, seed=3, device="cuda")
    result = kernel(p.q, p.kv_cache, p.block_table, p.cache_seqlens, num_parts=args.parts)
    out, lse = result if spec.lse else (result, None)
    torch.cuda.synchronize()
    ref_out, ref_lse = p.reference(torch.float32)
    assert_close_mla(out, lse, ref_out, ref_lse if spec.lse else None, context=p.describe())
    print(f"ok: {kernel!r} {p.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
