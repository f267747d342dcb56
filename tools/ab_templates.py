"""Time the kernels of two template folders against each other, in one process, on bench cells.

For template changes whose effect is smaller than run-to-run drift: both kernels of a cell are
loaded in the same process and timed alternately (base, new, base, new) with the bench's
``run_cell``, after the copy/matmul ceilings are measured once. Each kernel is first checked
against the float32 reference (see tools/sweep_cell.py). On the GPU host:

    BASE_TMPL=path/to/old/templates BASE_CACHE=.gpu-cache-x NEW_CACHE=.gpu-cache \\
        python tools/ab_templates.py 16,1,128,4096:16384 128,2,128,4096 32,1,128,16384,fp8_e4m3

More than two folders: ``VARIANTS=name=path,name=path`` times each of them against the checkout's
templates (``base``), e.g. ``VARIANTS=early=scratch/ab/v6,ahead=scratch/ab/v20``; one cache folder
(``NEW_CACHE``) can hold them all, since the template hash is part of every cache key.

``AB_PLAN=knob=value,...`` pins plan knobs for every kernel (``plan_for``'s overrides, e.g.
``AB_PLAN=schedule=heads_n`` for heads_n's column blocks on more than 32 query rows).

``AB_CHAIN=N`` (default 1) times N calls back to back per graph replay (``mlagen bench --chain``): the
steady state of a serving loop, where a change to how one call follows the previous one (PDL) shows.

``AB_NO_CHECK=name,...`` times those variants without the reference check (ablations that drop
work on purpose, e.g. ``docs/perf/experiments/2026-12-04/ablate-*.patch``).

A template patch can hang its kernel (a barrier that never completes), and a hung kernel stalls the
whole process until an outer timeout kills it with every result unprinted. So each kernel first runs
in a child process (its reference check, then one call at each timed length of the cell, synchronised)
under ``AB_CHECK_TIMEOUT`` seconds (default 90; 0 skips this and checks in-process), all of a cell's
kernels at once: a variant that hangs or fails there is reported and left out of that cell's A/B, the
others are timed. ``ROUNDS`` (default 2)
alternating timings per kernel; ``JOBS=15`` compiles every missing kernel
in parallel before the timing starts (otherwise they are compiled one by one).

A cell is ``h_q,s_q,batch,s_k[:s_k...][,cache][,pPAGE]`` (for example ``128,1,128,8192:16384,p16``;
page 64 unless given; fp8 cells are compiled for max_q = s_q, as in the fp8 grid). The new kernels come from the checkout's templates. Build both caches beforehand on a
machine without a GPU (``MLAGEN_TEMPLATE_DIR=$BASE_TMPL python tools/prebuild.py --cache ...``).
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

import mlagen.jit
from mlagen.bench import cell_spec, measure_ceilings, run_cell
from mlagen.plan import parse_knobs, plan_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_cell import check, run_child  # noqa: E402


def kernel_for(spec, template_dir: str | None, cache_dir: str):
    # the template folder is read when the kernel is built (its hash is part of the cache key)
    if template_dir:
        os.environ["MLAGEN_TEMPLATE_DIR"] = str(Path(template_dir).resolve())
    else:
        os.environ.pop("MLAGEN_TEMPLATE_DIR", None)
    try:
        plan = plan_for(spec, **parse_knobs(os.environ.get("AB_PLAN", "")))
        return mlagen.jit.compile(spec, plan, cache_dir=cache_dir, tuned=False)
    finally:
        os.environ.pop("MLAGEN_TEMPLATE_DIR", None)


def _assert_distinct(kernels: dict) -> None:
    """Every folder must have given its own kernel: two names sharing one kernel object or identity
    would time one kernel against itself (until f2a78c0 the jit memo did that to every variant)."""
    seen = {}
    for name, kernel in kernels.items():
        for key in (id(kernel), kernel.identity.key):
            if key in seen:
                sys.exit(f"{name} and {seen[key]} load the same kernel ({kernel.identity.name}): "
                         "an A/B of them would time one kernel against itself")
            seen[key] = name


def _spec_of(text: str):
    h, s_q, _batch, _s_ks, *rest = text.split(",")
    pages = [int(r[1:]) for r in rest if r.startswith("p")]
    caches_named = [r for r in rest if not r.startswith("p")]
    cache = caches_named[0] if caches_named else None
    # compiled for max_q = s_q, as the bench grids are
    return cell_spec(dict(h_q=int(h), s_q=int(s_q), page=pages[0] if pages else 64, cache=cache))


def _run_one(text: str, template_dir: str | None, cache_dir: str, with_check: bool) -> None:
    """The child process of :func:`_precheck`: load one kernel, check it, call it at each timed length."""
    import torch

    from mlagen.bench import make_inputs, seqlens_for

    spec = _spec_of(text)
    kernel = kernel_for(spec, template_dir, cache_dir)
    if with_check:
        check(kernel, spec)
    _h, s_q, batch, s_ks, *_rest = text.split(",")
    for s_k in map(int, s_ks.split(":")):
        lens = seqlens_for(int(batch), int(s_q), s_k)
        (q, cache, bt, seqlens), = make_inputs(spec, int(batch), int(s_q), lens, 1)
        kernel(q, cache, bt, seqlens)
    torch.cuda.synchronize()


def _precheck(text: str, name: str, template_dir: str | None, cache_dir: str, with_check: bool,
              timeout: float, command: list[str] | None = None) -> str | None:
    """Run ``name``'s kernel of cell ``text`` in a child process: None when it finished, else why not.

    A kernel that hangs is killed with its process after ``timeout`` seconds (``command`` replaces the
    child's command line, for tests)."""
    command = command or [sys.executable, str(Path(__file__).resolve()), "--one", text, template_dir or "",
                          cache_dir, "check" if with_check else "run"]
    return run_child(command, timeout)


def _build(item):
    text, tmpl, cache_dir = item
    kernel_for(_spec_of(text), tmpl, cache_dir)
    return text, tmpl


def _prebuild(cells, folders, jobs: int) -> None:
    # compiling is CPU work and each kernel takes tens of seconds: build every (folder, cell) pair
    # in parallel before the GPU timing starts (JOBS=15 on a 16-core GPU host)
    from concurrent.futures import ProcessPoolExecutor

    items = [(text, tmpl, cache) for text in cells for tmpl, cache in folders.values()]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for text, tmpl in pool.map(_build, items):
            print(f"built {text} ({tmpl or 'templates/'})", flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        text, template_dir, cache_dir, mode = sys.argv[2:6]
        _run_one(text, template_dir or None, cache_dir, mode == "check")
        return
    cells = sys.argv[1:]
    if not cells or "-h" in cells or "--help" in cells:
        print(__doc__)
        return
    variants = os.environ.get("VARIANTS")
    if variants:
        # name -> (template folder, cache folder); "base" is the checkout's templates
        folders = {"base": (None, os.environ.get("NEW_CACHE", ".gpu-cache"))}
        for item in variants.split(","):
            name, path = item.split("=", 1)
            folders[name] = (path, os.environ.get("NEW_CACHE", ".gpu-cache"))
    else:
        folders = {"base": (os.environ["BASE_TMPL"], os.environ.get("BASE_CACHE", ".gpu-cache-x")),
                   "new": (None, os.environ.get("NEW_CACHE", ".gpu-cache"))}
    rep_ms = float(os.environ.get("REP_MS", 30))
    rounds = int(os.environ.get("ROUNDS", 2))
    chain = int(os.environ.get("AB_CHAIN", 1))
    # variants whose results are wrong by design (ablations that drop work to see what the time
    # depends on): timed, not checked
    no_check = set(filter(None, os.environ.get("AB_NO_CHECK", "").split(",")))
    unknown = no_check - set(folders) - {"base"}
    if unknown:
        sys.exit(f"AB_NO_CHECK names no variant: {', '.join(sorted(unknown))}")
    if "base" in no_check:
        sys.exit("AB_NO_CHECK: the base kernel is always checked")
    check_timeout = float(os.environ.get("AB_CHECK_TIMEOUT", 90))
    jobs = int(os.environ.get("JOBS", 1))
    if jobs > 1:
        _prebuild(cells, folders, jobs)
    ceilings = measure_ceilings()
    print(ceilings.describe(), flush=True)
    for text in cells:
        h, s_q, batch, s_ks, *rest = text.split(",")
        h, s_q, batch = int(h), int(s_q), int(batch)
        spec = _spec_of(text)
        page, cache = spec.page, spec.cache_dtype
        cell_folders = dict(folders)
        if check_timeout > 0:
            # all at once (each child under its own timeout): the GPU time is the slowest one's
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=len(folders)) as pool:
                whys = dict(zip(folders, pool.map(
                    lambda item: _precheck(text, item[0], item[1][0], item[1][1], item[0] not in no_check,
                                           check_timeout), folders.items())))
            for name, why in whys.items():
                if why is None:
                    continue
                if name == "base":
                    sys.exit(f"{text}: base {why}")
                print(f"{name}: {why}; left out of this cell's A/B", flush=True)
                del cell_folders[name]
        kernels = {name: kernel_for(spec, tmpl, cache_dir) for name, (tmpl, cache_dir) in cell_folders.items()}
        _assert_distinct(kernels)
        print("kernels: " + ", ".join(f"{name} {k.identity.name.rsplit('__', 1)[-1]}" for name, k in kernels.items()),
              flush=True)
        for name, kernel in kernels.items():
            if name in no_check:
                print(f"{name}: not checked against the reference (AB_NO_CHECK: an ablation, wrong by design)")
            elif check_timeout <= 0:
                check(kernel, spec)   # (otherwise its child process checked it)
        for s_k in map(int, s_ks.split(":")):
            ms = {name: [] for name in kernels}
            mhz = {name: [] for name in kernels}
            for _ in range(rounds):
                for which, kernel in kernels.items():
                    cell = run_cell(kernel, spec, batch, s_q, s_k, ceilings, rep_ms=rep_ms, chain=chain)[0]
                    ms[which].append(cell.graph_ms)
                    if cell.telemetry:
                        mhz[which].append(cell.telemetry["sm_mhz_mean"])
            base = statistics.mean(ms["base"])
            parts = []
            for name in kernels:
                mean = statistics.mean(ms[name])
                part = f"{name} {'/'.join(f'{t:.4f}' for t in ms[name])} ratio {cell.floor_ms / mean:.3f}"
                if name != "base":
                    part += f" x{mean / base:.3f}"
                if mhz[name]:
                    part += f" ({'/'.join(f'{m:.0f}' for m in mhz[name])} MHz)"
                parts.append(part)
            print(f"{cache or 'bf16'} p{page} h{h:3d} s_q{s_q} b{batch:3d} s_k{s_k:6d}  " + "  ".join(parts),
                  flush=True)


if __name__ == "__main__":
    main()
