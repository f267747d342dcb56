"""Compile kernels into an mlagen cache folder ahead of a GPU run.

The GPU host has no registry and little time: kernels are compiled here (no
GPU needed) into a cache folder that travels with the run, so the GPU suite
only loads them.

    python tools/prebuild.py --cache .gpu-cache [--jobs 2] [--variants] [--specs specs] [--bench fp8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _build_one(item):
    name, spec_dict, cache, overrides = item
    from mlagen.jit import build
    from mlagen.plan import PlanError, UnsupportedSpecError, plan_for
    from mlagen.spec import MLASpec

    spec = MLASpec.from_dict(spec_dict)

    def plan_of(s_q):
        try:
            return plan_for(spec, s_q=s_q, **overrides)
        except UnsupportedSpecError:
            raise
        except PlanError:
            return plan_for(spec, s_q=s_q)   # the pinned knobs do not fit this spec: the planner's choice

    try:
        # every s_q's plan: a spec whose plan depends on s_q (fp8 pairs) runs one kernel per plan
        plans = dict.fromkeys([plan_of(None), *(plan_of(q) for q in range(1, spec.max_q + 1))])
        results = [build(spec, plan, cache_dir=cache) for plan in plans]
    except UnsupportedSpecError as e:
        return name, None, str(e)
    return name, [(r.cold, r.seconds, r.identity.name) for r in results], None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True, help="cache folder to fill (becomes MLAGEN_CACHE_DIR on the GPU host)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--variants", action="store_true", help="the GPU suite's kernel variants")
    parser.add_argument("--specs", default=None, help="a folder of spec files to build too")
    parser.add_argument("--bench", nargs="?", const="all", default=None, metavar="GRIDS",
                        help="the specs of the bench grids: comma-separated names (default: every grid); "
                             "a GPU call carries 64 MiB, so build only the grids it runs")
    parser.add_argument("--plan", action="append", default=[], metavar="KNOB=VALUE",
                        help="pin a plan knob where it fits, e.g. --plan schedule=seesaw (repeatable)")
    args = parser.parse_args(argv)
    from mlagen.variants import kernel_variants, spec_file_variants

    todo = {}
    if args.variants:
        todo.update(kernel_variants())
    if args.specs:
        todo.update(spec_file_variants(args.specs))
    if args.bench:
        from mlagen.bench import GRIDS, cell_spec

        names = list(GRIDS) if args.bench == "all" else args.bench.split(",")
        unknown = [n for n in names if n not in GRIDS]
        if unknown:
            parser.error(f"--bench: unknown grid(s) {', '.join(unknown)}; known: {', '.join(GRIDS)}")
        for name in names:
            for cell in GRIDS[name]():
                spec = cell_spec(cell)
                todo[f"bench_{spec.name}"] = spec
    from mlagen.plan import parse_knob

    overrides = dict(parse_knob(entry) for entry in args.plan)
    items = [(name, spec.to_dict(), os.path.abspath(args.cache), overrides) for name, spec in todo.items()]
    if args.variants:
        # the opt-in plans the GPU suite checks besides the planner's choices
        from mlagen.variants import plan_variants
        variants = kernel_variants()
        items += [(name, variants[base].to_dict(), os.path.abspath(args.cache), knobs)
                  for name, (base, knobs) in plan_variants().items()]
    start = time.time()
    failed = kernels = 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for fut in as_completed([pool.submit(_build_one, it) for it in items]):
            name, res, skipped = fut.result()
            if skipped:
                print(f"skip  {name}: {skipped}", flush=True)
            else:
                for cold, secs, entry in res:
                    print(f"{'built' if cold else 'cached'} {name} ({secs:.1f}s) -> {entry}", flush=True)
                kernels += len(res)
    print(f"{kernels} kernels of {len(items)} specs and plan variants in {time.time() - start:.0f}s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
