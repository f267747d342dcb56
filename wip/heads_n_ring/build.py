import os, sys, time
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, os.getcwd())
CACHE = os.path.abspath(".gpu-cache")

def todo():
    from mlagen.bench import cell_spec
    from mlagen.plan import plan_for, parse_knobs
    from mlagen.variants import kernel_variants
    items = []
    which = sys.argv[1] if len(sys.argv) > 1 else "hn"
    for name, s in kernel_variants().items():
        if which == "all" or (s.cache_dtype == "fp8_e4m3" and plan_for(s).schedule == "heads_n"):
            items.append((s, {}))
    cells = [dict(h_q=16, s_q=1, cache="fp8_e4m3", max_q=1, plans=["", "raw_stages=2", "stages=18"]),
             dict(h_q=16, s_q=2, cache="fp8_e4m3", max_q=2, plans=[""]),
             dict(h_q=32, s_q=1, cache="fp8_e4m3", max_q=1, plans=[""]),
             dict(h_q=16, s_q=1, cache=None, max_q=1, plans=[""])]
    for c in cells:
        spec = cell_spec(dict(h_q=c["h_q"], s_q=c["s_q"], page=64, cache=c["cache"], max_q=c["max_q"]))
        for p in c["plans"]:
            items.append((spec, parse_knobs(p)))
    return items

def one(item):
    spec, kw = item
    from mlagen.jit import build
    from mlagen.plan import plan_for
    t = time.time()
    r = build(spec, plan_for(spec, **kw), cache_dir=CACHE)
    return f"{spec.name} {r.identity.name} {time.time()-t:.1f}s"

if __name__ == "__main__":
    os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")
    with ProcessPoolExecutor(2) as ex:
        for line in ex.map(one, todo()):
            print(line, flush=True)
