"""Time one bench cell under several plans, with the roofline ceilings measured in the same run.

For exploring plan knobs on the GPU before they go into the planner or `mlagen tune`:

    python tools/sweep_cell.py --h-q 16 --s-k 16384 --cache fp8_e4m3 \\
        --plan "" --plan schedule=split --plan schedule=split,stages=2,raw_stages=6

Each ``--plan`` is a comma-separated list of knob=value overrides for ``plan_for`` ("" is the
heuristic plan of the cell's s_q, the one ``mlagen.compile`` dispatches such calls to). Every kernel is first checked against the float32 reference on a small
problem (NaN-poisoned tails, a length 0 and a non-multiple of the page), so a fast wrong plan
is reported as wrong, not as fast. Inputs are the bench's (lengths normal(s_k, s_k/2), page 64).
Kernels come from MLAGEN_CACHE_DIR (prebuild them with tools/prebuild.py on a machine without a GPU).

A plan can hang its kernel (a barrier or a setmaxnreg that never completes), and a hung kernel stalls
the process until an outer timeout kills it with every later plan untimed. So each distinct plan first
runs in a child process (the reference check, then one call at each timed length, synchronised) under
``--check-timeout`` seconds (default 60; 0 checks in-process instead), all of them at once: a plan that
hangs or fails there is reported and not timed, the others are.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import torch

import mlagen.jit
from mlagen.bench import cell_spec, format_cell, measure_ceilings, run_cell
from mlagen.plan import parse_knobs, plan_for
from mlagen.testing import assert_close_mla, make_problem


def check(kernel, spec) -> None:
    lens = [spec.page * 3 + 5, 0, 1000, 77]
    # at the most query tokens the kernel takes (a plan with q_tokens compiles a narrower spec's kernel)
    s_q = getattr(kernel, "spec", spec).max_q
    p = make_problem(spec, batch=len(lens), seqlens=lens, s_q=s_q, seed=3, device="cuda")
    out = torch.full((p.batch, p.s_q, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda")
    lse = torch.full((p.batch, spec.q_heads, p.s_q), float("nan"), device="cuda") if spec.lse else None
    kernel(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse)
    ref_out, ref_lse = p.reference(torch.float32)
    assert_close_mla(out, lse, ref_out, ref_lse if spec.lse else None, context=p.describe())


def run_child(command: list[str], timeout: float) -> str | None:
    """Run ``command`` in a child process: None when it exits 0 within ``timeout`` seconds, else why
    not (a hang is killed with its process, which also ends its GPU work; a failure is reported with the
    last lines it printed)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no result after {timeout:.0f} s (a hang?): killed"
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        return f"failed (exit {done.returncode}): " + " | ".join(lines[-3:])
    return None


def child_command(args: argparse.Namespace, text: str) -> list[str]:
    """This script's command line for one plan's check in a child process (``--one-check``)."""
    command = [sys.executable, __file__, "--one-check", "--h-q", str(args.h_q), "--s-q", str(args.s_q),
               "--batch", str(args.batch), "--page", str(args.page), "--s-k", *map(str, args.s_k), "--plan", text]
    if args.max_q is not None:
        command += ["--max-q", str(args.max_q)]
    if args.cache:
        command += ["--cache", args.cache]
    return command


def prechecked(args: argparse.Namespace, plans: list[str], command=child_command) -> list[str]:
    """The plans whose child check finished in time, in order; the others are reported."""
    distinct = list(dict.fromkeys(plans))
    with ThreadPoolExecutor(max_workers=len(distinct)) as pool:
        whys = dict(zip(distinct, pool.map(lambda text: run_child(command(args, text), args.check_timeout),
                                           distinct)))
    for text, why in whys.items():
        if why is not None:
            print(f"[plan {text!r}] {why}; not timed", flush=True)
    return [text for text in plans if whys[text] is None]


def check_and_call(spec, text: str, batch: int, s_q: int, s_ks: list[int]) -> None:
    """The child's work: load the plan's kernel, check it, call it once at each timed length."""
    from mlagen.bench import make_inputs, seqlens_for

    kernel = mlagen.jit.compile(spec, plan_for(spec, s_q=s_q, **parse_knobs(text)), tuned=False)
    check(kernel, spec)
    for s_k in s_ks:
        (q, cache, bt, seqlens), = make_inputs(spec, batch, s_q, seqlens_for(batch, s_q, s_k), 1)
        kernel(q, cache, bt, seqlens)
    torch.cuda.synchronize()


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
    ap.add_argument("--check-timeout", type=float, default=60,
                    help="seconds for each plan's check in a child process (0: check in this process)")
    ap.add_argument("--one-check", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    spec = cell_spec(dict(h_q=args.h_q, s_q=args.s_q, page=args.page, cache=args.cache, max_q=args.max_q))
    plans = args.plan or [""]
    if args.one_check:
        check_and_call(spec, plans[0], args.batch, args.s_q, args.s_k)
        return
    if args.check_timeout > 0:
        plans = prechecked(args, plans)
    ceilings = measure_ceilings()
    print(ceilings.describe(), flush=True)
    for text in plans:
        kernel = mlagen.jit.compile(spec, plan_for(spec, s_q=args.s_q, **parse_knobs(text)), tuned=False)
        if args.check_timeout <= 0:
            check(kernel, spec)
        for s_k in args.s_k:
            cell = run_cell(kernel, spec, args.batch, args.s_q, s_k, ceilings, rep_ms=args.rep_ms)[0]
            print(f"[{kernel.plan.tag:>16s}] {format_cell(cell)}", flush=True)


if __name__ == "__main__":
    main()
