"""Where one decode call's time goes: each kernel's duration and the gaps between them, per bench cell.

    python tools/call_breakdown.py 16,1,1,32768 16,1,1,131072 128,1,8,32768 16,1,128,4096,fp8_e4m3

Each cell is h_q,s_q,batch,s_k[,cache] with the bench's inputs (lengths normal(s_k, s_k/2), page 64, causal
576/512). The calls run back to back on one stream, as the bench's graph replays do; torch.profiler (CUPTI)
records every kernel, and per call this prints the median over the recorded calls of: the decode kernel's
time, the combine kernel's, the gap between them (launch and scheduling, or PDL overlap when negative), the
call's span from the decode kernel's start to the combine's end, and that span against the bench's floor
at the copy rate given by --copy-gbps (measure it in the same run: `mlagen bench` prints it).
Kernels come from MLAGEN_CACHE_DIR (tools/prebuild.py --bench on a machine without a GPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

import mlagen.jit
from mlagen.bench import bytes_and_flops, cell_spec, make_inputs, seqlens_for
from mlagen.plan import parse_knobs, plan_for


def parse_cell(text: str) -> dict:
    parts = text.split(",")
    h_q, s_q, batch, s_k = (int(v) for v in parts[:4])
    return dict(h_q=h_q, s_q=s_q, batch=batch, s_k=s_k, cache=parts[4] if len(parts) > 4 else None)


def kernel_events(trace_path: Path) -> list[dict]:
    events = json.loads(trace_path.read_text())["traceEvents"]
    return sorted((e for e in events if e.get("cat") == "kernel" and e.get("ph") == "X"), key=lambda e: e["ts"])


def pair_calls(events: list[dict]) -> list[dict]:
    """One row per decode kernel: its time, and the combine launched after it (before the next decode), if any:
    the combine's time, the gap from the decode's end to the combine's start (negative under PDL), the span."""
    decode = [e for e in events if "Decode" in e["name"]]
    # the combine kernels' names carry their class (SplitCombine, SplitCombineMany); anything else, e.g. a
    # memset, is reported in "kernels" and left out of the pairing
    others = [e for e in events if "Combine" in e["name"]] or [e for e in events if "Decode" not in e["name"]]
    rows = []
    for i, d in enumerate(decode):
        next_ts = decode[i + 1]["ts"] if i + 1 < len(decode) else float("inf")
        after = [o for o in others if d["ts"] <= o["ts"] < next_ts]
        row = dict(decode=d["dur"], combine=0.0, gap=0.0, span=d["dur"])
        if after:
            c = after[0]
            row.update(combine=c["dur"], gap=c["ts"] - (d["ts"] + d["dur"]), span=c["ts"] + c["dur"] - d["ts"])
        rows.append(row)
    return rows


def breakdown(cell: dict, calls: int, plan: str, copy_gbps: float, matmul_tflops: float) -> dict:
    spec = cell_spec(dict(h_q=cell["h_q"], s_q=cell["s_q"], page=64, cache=cell["cache"]))
    kernel = mlagen.jit.compile(spec, plan_for(spec, **parse_knobs(plan)), tuned=False)
    lens = seqlens_for(cell["batch"], cell["s_q"], cell["s_k"])
    q, cache, bt, ln = make_inputs(spec, cell["batch"], cell["s_q"], lens, sets=1)[0]
    for _ in range(5):
        kernel(q, cache, bt, ln, validate=False)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            kernel(q, cache, bt, ln, validate=False)
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = kernel_events(path)
    rows = pair_calls(events)
    names = sorted({e["name"] for e in events})
    if not rows:
        raise SystemExit(f"call_breakdown: no decode kernel among the recorded kernels {names}")
    nbytes, flops = bytes_and_flops(spec, cell["batch"], cell["s_q"], lens)
    floor_us = max(nbytes / (copy_gbps * 1e3), flops / (matmul_tflops * 1e6))
    med = {k: statistics.median(r[k] for r in rows) for k in ("decode", "combine", "gap", "span")}
    return dict(cell=cell, plan=kernel.plan.tag, calls=len(rows), floor_us=floor_us, kernels=names, **med)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cells", nargs="+", help="h_q,s_q,batch,s_k[,cache]")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--plan", default="", help='plan knobs, knob=value[,knob=value] ("" = heuristic)')
    ap.add_argument("--copy-gbps", type=float, default=2970.0)
    ap.add_argument("--matmul-tflops", type=float, default=700.0)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args()
    print(f"{torch.cuda.get_device_name()}; floor at {args.copy_gbps} GB/s, {args.matmul_tflops} TFLOP/s; us, "
          f"median of {args.calls} back-to-back calls")
    print("| cell | plan | decode | gap | combine | span | floor | span - floor | floor / span |")
    print("|---|---|---|---|---|---|---|---|---|")
    out = []
    for text in args.cells:
        r = breakdown(parse_cell(text), args.calls, args.plan, args.copy_gbps, args.matmul_tflops)
        out.append(r)
        print(f"| {text} | {r['plan']} | {r['decode']:.1f} | {r['gap']:.1f} | {r['combine']:.1f} | {r['span']:.1f} "
              f"| {r['floor_us']:.1f} | {r['span'] - r['floor_us']:.1f} | {r['floor_us'] / r['span']:.3f} |",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
