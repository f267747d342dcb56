"""Does a kernel's time depend on its data? Time one cell with the mantissas of q and the cache cut short.

A tensor core draws more power when more operand bits toggle, and an H100 near its power limit
lowers its clock. fp16 carries 10 mantissa bits against bf16's 7, so on a compute-bound cell the
same kernel may run slower on fp16 data for no reason in the code. This tool times the bench's
cell (same inputs, CUDA-graph replays, rotating input sets) with q and the KV cache truncated to
fewer mantissa bits, for both 16-bit dtypes, alternating the variants over several rounds, and
prints each time with the SM clock, power and throttle reasons sampled meanwhile (NVML, from
``nvidia-ml-py``). Every kernel is first checked against the float32 reference.

    python tools/data_power.py --h-q 128 --s-k 8192 --bits full 7 4 --rounds 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

import mlagen.jit
from mlagen.bench import (bytes_and_flops, capture_calls, cell_spec, make_inputs, measure_ceilings, seqlens_for,
                          time_fn)
from mlagen.plan import plan_for
from mlagen.telemetry import Telemetry

MANTISSA_BITS = {"bf16": 7, "fp16": 10}


def truncated(x: torch.Tensor, dtype: str, bits: int | None) -> torch.Tensor:
    """``x`` with only its top ``bits`` mantissa bits kept (None: unchanged)."""
    drop = MANTISSA_BITS[dtype] - bits if bits is not None else 0
    if drop <= 0:
        return x
    mask = (-1 << drop) & 0xFFFF
    mask = mask - 0x10000 if mask >= 0x8000 else mask    # as a signed 16-bit value
    return (x.view(torch.int16) & mask).view(x.dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--h-q", type=int, default=128)
    ap.add_argument("--s-q", type=int, default=1)
    ap.add_argument("--s-k", type=int, nargs="+", default=[8192])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dtypes", nargs="+", default=["bf16", "fp16"], choices=sorted(MANTISSA_BITS))
    ap.add_argument("--bits", nargs="+", default=["full", "7"],
                    help='mantissa bits kept in q and the cache ("full" = as generated)')
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--rep-ms", type=float, default=200)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sweep_cell import check

    ceilings = measure_ceilings()
    print(ceilings.describe(), flush=True)
    for s_k in args.s_k:
        lens = seqlens_for(args.batch, args.s_q, s_k)
        variants = []
        for dtype in args.dtypes:
            spec = cell_spec(dict(h_q=args.h_q, s_q=args.s_q, dtype=dtype))
            kernel = mlagen.jit.compile(spec, plan_for(spec))
            check(kernel, spec)
            nbytes, flops = bytes_and_flops(spec, args.batch, args.s_q, lens)
            floor_ms = max(nbytes / (ceilings.copy_gbps * 1e9), flops / (ceilings.matmul_tflops * 1e12)) * 1e3
            base = make_inputs(spec, args.batch, args.s_q, lens, sets=2)
            for text in args.bits:
                bits = None if text == "full" else int(text)
                if bits is not None and bits > MANTISSA_BITS[dtype]:
                    continue
                inputs = [(truncated(q, dtype, bits), truncated(c, dtype, bits), bt, ln) for q, c, bt, ln in base]
                outs = [kernel(q, c, bt, ln, validate=True) for q, c, bt, ln in inputs]
                outs = [o if spec.lse else (o, None) for o in outs]
                graphs = capture_calls(kernel, inputs, outs, kernel.workspace(args.batch, args.s_q, "cuda"))
                variants.append((f"{dtype} kernel, {text} mantissa bits", graphs, floor_ms))
        state = {"i": 0}
        times = {name: [] for name, _, _ in variants}
        for r in range(args.rounds):
            # reversed every other round: the clock drifts as the board heats, so no variant always goes first
            for name, graphs, floor_ms in (variants if r % 2 == 0 else variants[::-1]):
                def rotate(i, n=len(graphs)):
                    state["i"] = i % n
                with Telemetry() as t:
                    ms = statistics.median(time_fn(lambda g=graphs: g[state["i"]].replay(), setup=rotate,
                                                   rep_ms=args.rep_ms))
                times[name].append(ms)
                clocks = t.summary.short() if t.summary else "no NVML"
                print(f"h{args.h_q} s_q{args.s_q} s_k{s_k:6d} {name:28s} {ms:.4f} ms ratio {floor_ms / ms:.3f} "
                      f"[{clocks}]", flush=True)
        first = statistics.mean(times[variants[0][0]])
        for name, ts in times.items():
            print(f"  {name:28s} mean {statistics.mean(ts):.4f} ms = {statistics.mean(ts) / first:.3f} x "
                  f"{variants[0][0]}", flush=True)


if __name__ == "__main__":
    main()
