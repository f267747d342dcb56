"""Build run-rs.sh's kernels (the fp8 cells' default heads_n plan and loader=fp8_regs, the four fp8_regs suite
variants) into a cache folder, two at a time, printing ptxas's report and any local memory in a tile loop.
Run in a tree with fp8-regs.patch applied: bash tools/with_patch_tree.sh docs/perf/experiments/2026-12-06e/fp8-regs.patch
python docs/perf/experiments/2026-12-06e/prebuild_rs.py $PWD/.gpu-cache-rs [NAME ...]"""
import sys, os
os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")
from concurrent.futures import ProcessPoolExecutor
def one(item):
    kind, name, knobs, cache = item
    from mlagen.jit import build
    from mlagen.plan import plan_for
    from mlagen.bench import cell_spec
    from mlagen.variants import kernel_variants
    if kind == 'cell':
        h, sq = name
        spec = cell_spec(dict(h_q=h, s_q=sq, page=64, cache='fp8_e4m3'))
    else:
        spec = kernel_variants()[name]
    r = build(spec, plan_for(spec, **knobs), cache_dir=cache)
    from mlagen.sass import mma_loops
    loops = mma_loops(r.object_path)
    bad = [l.describe() for l in loops if l.local_memory]
    return f"{name} {knobs} {r.identity.name} {r.meta['ptxas']} local-in-loop={bad}"
if __name__ == '__main__':
    cache = sys.argv[1]
    items = []
    for cell in ((16,1),(32,1),(16,2)):
        items.append(('cell', cell, {}, cache)); items.append(('cell', cell, {'loader':'fp8_regs'}, cache))
    for v in ('h16_p16_q2_causal_fp8', 'h3_p32_q8_causal_fp8', 'h16_kv2_p128_q3_causal_fp16_fp8'):
        items.append(('var', v, {'loader':'fp8_regs'}, cache))
    only = sys.argv[2:] 
    if only: items = [it for it in items if str(it[1]) in only or it[1] in only]
    with ProcessPoolExecutor(2) as ex:
        for line in ex.map(one, items):
            print(line, flush=True)
