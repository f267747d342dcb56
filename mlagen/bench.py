"""``mlagen bench``: time generated kernels against the hardware roofline measured in the same run.

Protocol (the FlashMLA reference figures in ``docs/perf/`` were taken the same way):

* ceilings, measured first in the same process: a device-to-device copy
  (bytes read + written) and a bf16 8192^3 matmul through torch;
* per grid cell: ``batch`` requests with lengths ~ normal(s_k, s_k/2) clipped
  at s_q (seed 1), pages in shuffled order, q and cache ~ N(0, 0.1^2);
* the timed region is the whole call (split-KV decode + combine) with
  preallocated outputs; ``graph_ms`` replays it as a CUDA graph (the GPU time
  a serving loop with graphs sees), ``call_ms`` calls it from Python (adds the
  host cost when the GPU is faster than the launch); medians of repeated runs
  after warm-up, rotating several input sets so that L2 never holds the cache;
* floor = max(bytes / copy rate, flops / matmul rate), bytes = q + the latent
  cache actually read + output, flops = 2 b h s_q L (d_qk + d_v);
  ratio = floor / graph_ms (1.0 is the hardware limit).

``--chain N`` (default 1) captures N calls back to back in each graph, over the input sets in turn, and
reports the graph's time / N: the steady state of a serving loop, where each call's decode kernel follows the
previous call's merge on the stream (and, launched with PDL, sets up during its tail). The issue's protocol,
and every committed grid unless its command says otherwise, is one call per graph.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlagen.spec import FP8_CACHE
from mlagen.telemetry import Telemetry, TelemetrySummary

__all__ = [
    "GRIDS",
    "BenchCell",
    "cell_spec",
    "Ceilings",
    "grid_spec",
    "measure_ceilings",
    "run_cell",
    "run_grid",
    "time_fn",
]

_L2_BYTES = 50 * 2**20
HELP = "time kernels against the copy/matmul roofline measured in the same run (GPU)"


def _grid_default():
    """FlashMLA's benchmark grid: batch 128, page 64, bf16, causal, d_qk 576 / d_v 512."""
    return [dict(h_q=h, s_q=s_q, s_k=s_k) for h in (128, 64, 32, 16) for s_q in (1, 2) for s_k in (4096, 8192, 16384)]


def _grid_pages():
    return [dict(h_q=h, s_q=1, s_k=s_k, page=page) for h in (128, 16) for s_k in (8192, 16384)
            for page in (16, 32, 64, 128)]


def _grid_dtypes():
    return [dict(h_q=h, s_q=s_q, s_k=8192, dtype=dt) for h in (128, 16) for s_q in (1, 2) for dt in ("bf16", "fp16")]


def _grid_long():
    return [dict(h_q=h, s_q=1, s_k=s_k, batch=b) for h in (128, 16) for b in (1, 4, 8) for s_k in (32768, 65536, 131072)]


def _grid_mtp4():
    return [dict(h_q=h, s_q=4, s_k=s_k, max_q=4) for h in (128, 64, 16) for s_k in (4096, 16384)]


def _grid_mixed():
    """Speculative-decoding specs called with fewer query tokens than their max_q, each cell over a bf16 and
    then an fp8 cache: DeepSeek-V3 TP4 with one drafted token (h_q 32, max_q 2) at s_q 1; TP8 with three
    (h_q 16, max_q 4) at s_q 1 and 2. The planner runs them on the heads_n kernel compiled for the call's
    s_q (``mlagen.plan.narrow_heads_n``); ``--plan q_tokens=0`` times the spec's own kernel instead."""
    shapes = [(32, 2, 1), (16, 4, 1), (16, 4, 2)]
    return [dict(h_q=h, s_q=s_q, s_k=s_k, max_q=max_q, cache=cache) for h, max_q, s_q in shapes
            for s_k in (4096, 8192, 16384) for cache in ("bf16", "fp8_e4m3")]


def _grid_fp8():
    """The default grid over an fp8_e4m3 cache (656 B/token), each cell after its bf16-cache twin."""
    return [dict(cell, cache=cache) for cell in _grid_default() for cache in ("bf16", "fp8_e4m3")]


GRIDS = {
    "default": _grid_default,
    "pages": _grid_pages,
    "dtypes": _grid_dtypes,
    "long": _grid_long,
    "mtp4": _grid_mtp4,
    "fp8": _grid_fp8,
    "mixed": _grid_mixed,
}


def grid_spec(h_q: int, s_q: int, *, page: int = 64, dtype: str = "bf16", max_q: int | None = None,
              cache: str | None = None):
    """The spec benchmarked for a grid cell: FlashMLA's shape (576/512, causal), compiled for exactly
    the cell's s_q (max_q = s_q unless given), as a deployment compiles for its MTP depth: the query
    rows per KV head decide the schedule (heads_n up to 32 rows), so one kernel per (head count, s_q)."""
    from mlagen.spec import FP8_CACHE, MLASpec

    return MLASpec(q_heads=h_q, max_q=max_q or s_q, causal=True, page=page, dtype=dtype,
                   cache_dtype=cache if cache == FP8_CACHE else None)


def cell_spec(cell: dict):
    """The spec of one grid cell (a dict of h_q, s_q and optional page, dtype, max_q, cache)."""
    return grid_spec(cell["h_q"], cell["s_q"], page=cell.get("page", 64), dtype=cell.get("dtype", "bf16"),
                     max_q=cell.get("max_q"), cache=cell.get("cache"))


@dataclass
class Ceilings:
    copy_gbps: float       # bytes read + written per second / 1e9
    matmul_tflops: float   # bf16 8192^3
    # SM clock, power and throttle reasons while each ceiling ran (mlagen.telemetry; None without NVML)
    copy_telemetry: dict | None = None
    matmul_telemetry: dict | None = None

    def describe(self) -> str:
        text = f"ceilings: copy {self.copy_gbps} GB/s (read+write), bf16 matmul {self.matmul_tflops} TFLOP/s"
        if self.copy_telemetry and self.matmul_telemetry:
            text += (f" [copy at {TelemetrySummary(**self.copy_telemetry).short()}; "
                     f"matmul at {TelemetrySummary(**self.matmul_telemetry).short()}]")
        return text


@dataclass
class BenchCell:
    kind: str              # "mlagen", "flashmla" (timed live) or "torch" (plain PyTorch decode)
    spec_key: str
    plan: str
    h_q: int
    s_q: int
    s_k: int
    batch: int
    page: int
    dtype: str
    mean_len: float
    graph_ms: float | None
    call_ms: float
    floor_ms: float
    gbps: float
    tflops: float
    ratio: float
    flashmla_ratio: float | None = None
    flashmla_source: str = ""          # "live" (timed in this run) or the reference table it came from
    runs_ms: list[float] = field(default_factory=list)
    cache_dtype: str = ""              # the KV cache's type (fp8_e4m3 or the query dtype)
    speedup_vs_16bit: float | None = None  # fp8 cells: time of the 16-bit-cache twin cell / this time
    telemetry: dict | None = None      # clock/power while the reported time was taken (mlagen.telemetry)
    max_q: int | None = None           # the spec's max_q (the "mixed" grid calls specs with fewer tokens)


def time_fn(fn, *, warmup_ms: float = 20, rep_ms: float = 200, setup=None) -> list[float]:
    """Per-call times in ms (CUDA events around each call) after a warm-up; ``setup(i)`` runs untimed before call i."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(start.elapsed_time(end), 1e-3)
    n_warm = max(1, int(warmup_ms / estimate))
    n_rep = max(10, min(3000, int(rep_ms / estimate)))
    for i in range(n_warm):
        if setup:
            setup(i)
        fn()
    events = []
    for i in range(n_rep):
        if setup:
            setup(i)
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        events.append((s, e))
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in events]


def measure_ceilings() -> Ceilings:
    import torch

    n = 1 << 28  # 512 MiB of bf16 each way
    src = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    with Telemetry() as copy_t:
        copy_ms = statistics.median(time_fn(lambda: dst.copy_(src), rep_ms=300))
    copy_gbps = 2 * src.numel() * 2 / (copy_ms * 1e-3) / 1e9
    del src, dst
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    with Telemetry() as mm_t:
        mm_ms = statistics.median(time_fn(lambda: a @ b, rep_ms=300))
    del a, b
    torch.cuda.empty_cache()
    return Ceilings(copy_gbps=round(copy_gbps, 1), matmul_tflops=round(2 * 8192**3 / (mm_ms * 1e-3) / 1e12, 1),
                    copy_telemetry=_as_dict(copy_t.summary), matmul_telemetry=_as_dict(mm_t.summary))


def _as_dict(summary: TelemetrySummary | None) -> dict | None:
    return None if summary is None else asdict(summary)


def seqlens_for(batch: int, s_q: int, s_k: int, seed: int = 1) -> list[int]:
    import torch

    g = torch.Generator().manual_seed(seed)
    lens = torch.normal(float(s_k), s_k / 2, (batch,), generator=g)
    return [max(s_q, int(v)) for v in lens.tolist()]


def bytes_and_flops(spec, batch: int, s_q: int, lens: list[int]) -> tuple[float, float]:
    total = sum(lens)
    elem = 2
    q_bytes = batch * s_q * spec.q_heads * spec.d_qk * elem
    out_bytes = batch * s_q * spec.q_heads * spec.d_v * elem
    flops = 2 * spec.q_heads * s_q * total * (spec.d_qk + spec.d_v)
    return q_bytes + total * spec.cache_bytes_per_token + out_bytes, flops


def make_inputs(spec, batch: int, s_q: int, lens: list[int], sets: int, seed: int = 0):
    """``sets`` independent input sets (q, cache, block table, lengths) on the GPU."""
    import torch

    from mlagen.dtypes import TORCH_DTYPES

    g = torch.Generator(device="cuda").manual_seed(seed)
    dtype = TORCH_DTYPES[spec.dtype]
    pages_per = [max(1, -(-n // spec.page)) for n in lens]
    num_pages, width = sum(pages_per), max(pages_per)
    out = []
    for _ in range(sets):
        q = (torch.randn(batch, s_q, spec.q_heads, spec.d_qk, generator=g, device="cuda") * 0.1).clamp(-1, 1).to(dtype)
        cache = torch.empty(num_pages, spec.page, spec.kv_heads, spec.d_qk, device="cuda", dtype=dtype)
        cache.normal_(0, 0.1, generator=g).clamp_(-1, 1)
        if spec.cache_dtype == FP8_CACHE:
            cache = _quantized(cache, spec)
        perm = torch.randperm(num_pages, generator=g, device="cuda").to(torch.int32)
        bt = torch.zeros(batch, width, dtype=torch.int32, device="cuda")
        starts = [0]
        for n in pages_per[:-1]:
            starts.append(starts[-1] + n)
        for i, n in enumerate(pages_per):
            bt[i, :n] = perm[starts[i]: starts[i] + n]
        out.append((q, cache, bt, torch.tensor(lens, dtype=torch.int32, device="cuda")))
    return out


def _quantized(cache, spec, pages_per_chunk: int = 4096):
    """Packed fp8 rows of a 16-bit cache, a few thousand pages at a time (bounded temporaries)."""
    import torch

    from mlagen.fp8_cache import quantize_cache

    row = spec.cache_bytes_per_token // spec.kv_heads
    packed = torch.empty(cache.shape[0], spec.page, spec.kv_heads, row, dtype=torch.uint8, device=cache.device)
    for lo in range(0, cache.shape[0], pages_per_chunk):
        hi = min(lo + pages_per_chunk, cache.shape[0])
        packed[lo:hi] = quantize_cache(cache[lo:hi], spec.latent).view(torch.uint8)
    return packed


def torch_decode(q, cache, bt, lens_list, spec):
    """Plain PyTorch paged MLA decode: gather pages, bmm, fp32 softmax, bmm (the baseline users replace)."""
    import torch

    s_q = q.shape[1]
    outs = []
    for i, n in enumerate(lens_list):
        pages = bt[i, : -(-n // spec.page)]
        kv = cache[pages].reshape(-1, spec.kv_heads, spec.d_qk)[:n, 0]
        qi = q[i].reshape(s_q * spec.q_heads, spec.d_qk)
        s = (qi @ kv.T).float() * spec.scale
        if spec.causal and s_q > 1:
            t = torch.arange(s_q, device=q.device).repeat_interleave(spec.q_heads)[:, None]
            s.masked_fill_(torch.arange(n, device=q.device)[None, :] > n - s_q + t, float("-inf"))
        p = torch.softmax(s, dim=-1).to(q.dtype)
        outs.append((p @ kv[:, : spec.d_v]).view(s_q, spec.q_heads, spec.d_v))
    return torch.stack(outs)


class CapturedCalls(list):
    """CUDA graphs, one per input set, plus every tensor they read or write: a graph holds raw
    pointers, so its inputs, outputs and scratch memory must live exactly as long as it does
    (freed early, the caching allocator hands the memory to the next tensor, and a replay reads
    garbage block tables or overwrites someone else's data)."""

    inputs = outs = workspace = None


def capture_calls(kernel, inputs, outs, workspace, chain: int = 1) -> CapturedCalls:
    """One CUDA graph per input set, each replaying a whole call (warmed up on a side stream first); with
    ``chain`` > 1, that many calls back to back, on the input sets in turn from the graph's own."""
    import torch

    if chain < 1:
        raise ValueError(f"chain = {chain}: must be >= 1")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    graphs = CapturedCalls()
    graphs.inputs, graphs.outs, graphs.workspace = list(inputs), list(outs), workspace

    def calls(first):
        for k in range(chain):
            j = (first + k) % len(inputs)
            (q, cache, bt, lens), (out, lse) = inputs[j], outs[j]
            kernel(q, cache, bt, lens, out=out, lse=lse, workspace=workspace, validate=False)

    for i in range(len(inputs)):
        with torch.cuda.stream(side):
            calls(i)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=side):
            calls(i)
        graphs.append(graph)
    torch.cuda.current_stream().wait_stream(side)
    return graphs


def run_cell(kernel, spec, batch: int, s_q: int, s_k: int, ceilings: Ceilings, *, with_torch: bool = False,
             rep_ms: float = 200, graphs: bool = True, flashmla=None, log=print, chain: int = 1) -> list[BenchCell]:
    """Time ``kernel`` on one grid cell; ``flashmla`` (a :class:`mlagen.flashmla_ref.FlashMLARef`) is
    timed on the same inputs the same way, after its outputs are checked against ours. ``chain``: calls per
    graph replay (see the module's docstring); the graph time is divided by it."""
    import torch

    lens = seqlens_for(batch, s_q, s_k)
    nbytes, flops = bytes_and_flops(spec, batch, s_q, lens)
    sets = max(1, min(4, math.ceil(3 * _L2_BYTES / max(nbytes, 1)) + 1))
    inputs = make_inputs(spec, batch, s_q, lens, sets)
    floor_ms = max(nbytes / (ceilings.copy_gbps * 1e9), flops / (ceilings.matmul_tflops * 1e12)) * 1e3
    # the first call of each set also checks the inputs (validate=True)
    outs = []
    for q, c, bt, ln in inputs:
        res = kernel(q, c, bt, ln, validate=True)
        outs.append(res if spec.lse else (res, None))
    state = {"i": 0}

    def rotate(i):
        state["i"] = i % sets

    def call():
        q, c, bt, ln = inputs[state["i"]]
        o = outs[state["i"]]
        kernel(q, c, bt, ln, out=o[0], lse=o[1], validate=False)

    # the clock and power of the timing that is reported: the graph replays where there are graphs
    call_t = Telemetry() if not graphs else contextlib.nullcontext()
    with call_t:
        call_ms = statistics.median(time_fn(call, setup=rotate, rep_ms=rep_ms))
    telemetry = None if graphs else call_t.summary
    graph_ms, runs = None, []
    if graphs:
        captured = capture_calls(kernel, inputs, outs, kernel.workspace(batch, s_q, "cuda"), chain)
        with Telemetry() as graph_t:
            runs = [t / chain for t in time_fn(lambda: captured[state["i"]].replay(), setup=rotate, rep_ms=rep_ms)]
        telemetry = graph_t.summary
        graph_ms = statistics.median(runs)
    ms = graph_ms if graph_ms is not None else call_ms
    common = dict(spec_key=spec.key, h_q=spec.q_heads, s_q=s_q, s_k=s_k, batch=batch, page=spec.page,
                  dtype=spec.dtype, mean_len=round(sum(lens) / batch, 1), floor_ms=round(floor_ms, 4),
                  cache_dtype=spec.cache_dtype, max_q=spec.max_q)
    # a kernel compiled for fewer query tokens than the spec's max_q (plan knob q_tokens) says so in its tag
    narrow = getattr(kernel, "spec", spec).max_q
    tag = kernel.plan.tag + (f"-q{narrow}" if narrow < spec.max_q else "")
    cells = [BenchCell(kind="mlagen", plan=tag, graph_ms=None if graph_ms is None else round(graph_ms, 4),
                       call_ms=round(call_ms, 4), gbps=round(nbytes / (ms * 1e-3) / 1e9, 1),
                       tflops=round(flops / (ms * 1e-3) / 1e12, 1), ratio=round(floor_ms / ms, 3),
                       runs_ms=[round(t, 4) for t in runs[:100]], telemetry=_as_dict(telemetry), **common)]
    if flashmla is not None:
        cells.append(_run_flashmla(flashmla, inputs, outs, state, rotate, rep_ms, graphs, nbytes, flops, floor_ms,
                                   common, log, chain))
        cells[0].flashmla_ratio, cells[0].flashmla_source = cells[-1].ratio, "live"
    if with_torch and spec.cache_dtype != FP8_CACHE:
        q, c, bt, ln = inputs[0]
        tms = statistics.median(time_fn(lambda: torch_decode(q, c, bt, lens, spec), rep_ms=rep_ms, warmup_ms=5))
        cells.append(BenchCell(kind="torch", plan="", graph_ms=None, call_ms=round(tms, 4),
                               gbps=round(nbytes / (tms * 1e-3) / 1e9, 1), tflops=round(flops / (tms * 1e-3) / 1e12, 1),
                               ratio=round(floor_ms / tms, 3), **common))
    del inputs, outs
    torch.cuda.empty_cache()
    return cells


# two bf16 kernels that each round P to 16 bits before P.V differ by a few 16-bit ulps of |out| <= 1
FLASHMLA_AGREEMENT_ATOL = 2e-2


def _run_flashmla(ref, inputs, ours, state, rotate, rep_ms, graphs, nbytes, flops, floor_ms, common, log, chain=1):
    """FlashMLA on the inputs ours ran on: outputs poisoned, checked against ours, then timed alike."""
    import torch

    outs = []
    worst = 0.0
    for (q, c, bt, ln), mine in zip(inputs, ours):
        out = torch.full_like(mine[0], float("nan"))
        ref(q, c, bt, ln, out=out, validate=True)
        torch.cuda.synchronize()
        worst = max(worst, (out.float() - mine[0].float()).abs().nan_to_num(float("inf")).max().item())
        outs.append((out, None))
    if worst > FLASHMLA_AGREEMENT_ATOL:
        raise RuntimeError(f"FlashMLA and mlagen disagree on h={common['h_q']} s_q={common['s_q']} "
                           f"s_k={common['s_k']}: max |diff| {worst:.3g} > {FLASHMLA_AGREEMENT_ATOL}; "
                           "not timing a kernel whose output is wrong")
    ws = ref.workspace(common["batch"], common["s_q"], "cuda")

    def call():
        q, c, bt, ln = inputs[state["i"]]
        ref(q, c, bt, ln, out=outs[state["i"]][0], workspace=ws, validate=False)

    call_ms = statistics.median(time_fn(call, setup=rotate, rep_ms=rep_ms))
    graph_ms, runs, telemetry = None, [], None
    if graphs:
        captured = capture_calls(ref, inputs, outs, ws, chain)
        with Telemetry() as graph_t:
            runs = [t / chain for t in time_fn(lambda: captured[state["i"]].replay(), setup=rotate, rep_ms=rep_ms)]
        telemetry, graph_ms = graph_t.summary, statistics.median(runs)
    ms = graph_ms if graph_ms is not None else call_ms
    log(f"FlashMLA output agrees with mlagen's (max |diff| {worst:.2e})")
    return BenchCell(kind="flashmla", plan=ref.plan.tag, graph_ms=None if graph_ms is None else round(graph_ms, 4),
                     call_ms=round(call_ms, 4), gbps=round(nbytes / (ms * 1e-3) / 1e9, 1),
                     tflops=round(flops / (ms * 1e-3) / 1e12, 1), ratio=round(floor_ms / ms, 3),
                     runs_ms=[round(t, 4) for t in runs[:100]], telemetry=_as_dict(telemetry), **common)


REFERENCE_TABLE_GPU = "H100"


def flashmla_reference(path: Path | None = None) -> dict:
    """FlashMLA's measured ratios on this project's H100, keyed by (h_q, s_q, s_k)."""
    path = path or Path(__file__).resolve().parent.parent / "docs" / "perf" / "flashmla-h100-2026-11-23.json"
    try:
        rows = json.loads(Path(path).read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return {}
    return {(r["h_q"], r["s_q"], r["s_k"]): r["ratio"] for r in rows}


def run_grid(cells_spec: list[dict], *, batch: int = 128, with_torch: bool = False, rep_ms: float = 200,
             graphs: bool = True, log=print, plan_overrides: dict | None = None, spec=None, tuned: bool = False,
             flashmla_lib: str | None = None, chain: int = 1):
    """Measure the ceilings, then every cell (dicts of h_q, s_q, s_k and optional batch, page, dtype, max_q).

    ``plan_overrides`` pins plan knobs (``plan_for(spec, **plan_overrides)``). ``spec`` benchmarks that
    spec instead of the grid's (cells whose head count or s_q it cannot serve are skipped). ``tuned``
    adds, where ``mlagen tune`` measured the spec on this GPU, the tuned kernel beside the heuristic one.
    ``flashmla_lib`` (see :mod:`mlagen.flashmla_ref`) times FlashMLA live on every cell it can run; without
    it, the committed FlashMLA table is shown beside cells of its shape only on the GPU it was taken on.
    """
    import mlagen.jit
    from mlagen.plan import plan_for

    import torch

    ceilings = measure_ceilings()
    log(ceilings.describe())
    gpu = torch.cuda.get_device_properties(torch.cuda.current_device()).name
    reference = flashmla_reference() if REFERENCE_TABLE_GPU in gpu and not flashmla_lib else {}
    results = []
    fixed_spec = spec
    for cell in cells_spec:
        if fixed_spec is not None:
            if cell["h_q"] != fixed_spec.q_heads or cell["s_q"] > fixed_spec.max_q:
                continue
            spec = fixed_spec
        else:
            spec = cell_spec(cell)
        # the plan a call of the cell's s_q runs (mlagen.compile dispatches on s_q where the plans differ)
        kernel = mlagen.jit.compile(spec, plan_for(spec, s_q=cell["s_q"], **(plan_overrides or {})))
        b = cell.get("batch", batch)
        live = None
        if flashmla_lib:
            from mlagen import flashmla_ref

            reason = flashmla_ref.unsupported(spec)
            if reason is None:
                live = flashmla_ref.load(spec, flashmla_lib)
            else:
                log(f"FlashMLA not timed on h={cell['h_q']} s_q={cell['s_q']}: {reason}")
        cells = run_cell(kernel, spec, b, cell["s_q"], cell["s_k"], ceilings, with_torch=with_torch,
                         rep_ms=rep_ms, graphs=graphs, flashmla=live, log=log, chain=chain)
        if tuned:
            from mlagen.dispatch import load_table
            from mlagen.tune import compare_tuned

            if load_table(spec, kernel.device_facts).tuned:
                res = compare_tuned(spec, batch=b, s_q=cell["s_q"], seqlen=cell["s_k"], ceilings=ceilings,
                                    rep_ms=rep_ms)
                cells.insert(1, BenchCell(**{k: v for k, v in res["tuned"].items()
                                             if k in BenchCell.__dataclass_fields__}))
                log(f"tuned plan {res['tuned_plan']} ({res['source']}) vs heuristic {res['heuristic_plan']}: "
                    f"speedup {res['speedup']}")
        for res in cells:
            if (b == 128 and spec.page == 64 and spec.dtype == "bf16" and spec.cache_dtype == "bf16"
                    and res.kind == "mlagen" and res.flashmla_source != "live"):
                res.flashmla_ratio = reference.get((res.h_q, res.s_q, res.s_k))
                res.flashmla_source = "flashmla-h100-2026-11-23.json" if res.flashmla_ratio is not None else ""
            if res.kind == "mlagen" and res.cache_dtype == FP8_CACHE:
                twin = _twin_16bit(results, res)
                if twin is not None:
                    res.speedup_vs_16bit = round(_time(twin) / _time(res), 3)
            results.append(res)
            log(format_cell(res))
    return ceilings, results


def _time(c: BenchCell) -> float:
    return c.graph_ms if c.graph_ms is not None else c.call_ms


def _twin_16bit(results: list[BenchCell], cell: BenchCell) -> BenchCell | None:
    """The 16-bit-cache cell of the same shape measured earlier in this run, if any."""
    for r in results:
        if (r.kind == "mlagen" and r.cache_dtype == r.dtype and (r.h_q, r.s_q, r.s_k, r.batch, r.page, r.dtype)
                == (cell.h_q, cell.s_q, cell.s_k, cell.batch, cell.page, cell.dtype)):
            return r
    return None


def format_cell(c: BenchCell) -> str:
    graph = f"{c.graph_ms:8.4f}" if c.graph_ms is not None else "       -"
    source = "live" if c.flashmla_source == "live" else "H100 table"
    ref = f" FlashMLA({source}) {c.flashmla_ratio:.2f}" if c.flashmla_ratio is not None else ""
    if c.speedup_vs_16bit is not None:
        ref += f" x{c.speedup_vs_16bit:.2f} vs 16-bit cache"
    cache = " fp8" if c.cache_dtype and c.cache_dtype != c.dtype else ""
    clocks = f" [{TelemetrySummary(**c.telemetry).short()}]" if c.telemetry else ""
    of = f"/{c.max_q}" if c.max_q and c.max_q != c.s_q else ""
    return (f"{c.kind:8s} h={c.h_q:3d} s_q={c.s_q}{of} s_k={c.s_k:6d} b={c.batch:3d} p={c.page:3d} {c.dtype}{cache} "
            f"graph {graph} ms call {c.call_ms:8.4f} ms {c.gbps:7.1f} GB/s {c.tflops:6.1f} TFLOP/s "
            f"floor {c.floor_ms:.4f} ms ratio {c.ratio:.3f}{ref}{clocks}")


def flashmla_summary(cells: list[BenchCell]) -> str:
    """One line: on how many cells timed beside FlashMLA in this run ours was at least as fast ("" if none)."""
    live = [c for c in cells if c.kind == "mlagen" and c.flashmla_source == "live"]
    if not live:
        return ""
    ahead = [c for c in live if c.ratio >= c.flashmla_ratio]
    worst = min(live, key=lambda c: c.ratio / c.flashmla_ratio)
    return (f"mlagen at or above FlashMLA (timed in this run) on {len(ahead)} of {len(live)} cells; furthest behind: "
            f"h={worst.h_q} s_q={worst.s_q} s_k={worst.s_k} {worst.ratio:.3f} vs {worst.flashmla_ratio:.3f}")


def gpu_meta(command: str) -> dict:
    import subprocess

    import torch

    props = torch.cuda.get_device_properties(0)
    # a GPU host may get the working tree without .git: MLAGEN_COMMIT names the commit then
    commit = os.environ.get("MLAGEN_COMMIT", "")
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
    return {"gpu": props.name, "sm_count": props.multi_processor_count, "torch": torch.__version__,
            "command": command, "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def save(out_dir: Path, name: str, ceilings: Ceilings, cells: list[BenchCell], meta: dict) -> list[Path]:
    """JSON with every number, plus a PNG of the ratio per cell when matplotlib is installed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps({"meta": meta, "ceilings": asdict(ceilings), "cells": [asdict(c) for c in cells]},
                               indent=1))
    written = [path]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    ours = [c for c in cells if c.kind == "mlagen"]
    labels = [f"h{c.h_q} q{c.s_q} {c.s_k // 1024}k" + (f" b{c.batch}" if c.batch != 128 else "")
              + (f" p{c.page}" if c.page != 64 else "") + (f" {c.dtype}" if c.dtype != "bf16" else "")
              + (" fp8" if c.cache_dtype and c.cache_dtype != c.dtype else "") for c in ours]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(ours)), 4))
    x = range(len(ours))
    ax.bar([i - 0.2 for i in x], [c.ratio for c in ours], width=0.4, label="mlagen")
    if any(c.flashmla_ratio for c in ours):
        live = any(c.flashmla_source == "live" for c in ours)
        ax.bar([i + 0.2 for i in x], [c.flashmla_ratio or 0 for c in ours], width=0.4,
               label="FlashMLA (timed in this run)" if live else "FlashMLA (H100 table)")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_ylabel("floor / time")
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, rotation=70, fontsize=7)
    ax.set_title(f"{name}: {meta.get('gpu', '')} (roofline measured in the same run)")
    ax.legend()
    fig.tight_layout()
    png = out_dir / f"{name}.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    written.append(png)
    return written


# ---------------------------------------------------------------- CLI
def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", default="default", help=f"comma-separated grids: {', '.join(GRIDS)} (default: default)")
    p.add_argument("--batch", type=int, default=128, help="requests per call where the grid does not set it")
    p.add_argument("--torch", action="store_true", help="also time the plain-PyTorch decode")
    p.add_argument("--no-graphs", action="store_true", help="time Python calls only (no CUDA graph replay)")
    p.add_argument("--chain", type=int, default=1, metavar="N",
                   help="calls back to back per graph replay, time / N (default 1, the issue's protocol; more: "
                        "a serving loop's steady state, each decode after the previous call's merge)")
    p.add_argument("--rep-ms", type=float, default=200, help="timing budget per cell and method")
    p.add_argument("--out", default="bench-results", help="folder for the JSON and PNG results")
    p.add_argument("--plan", action="append", default=[], metavar="KNOB=VALUE",
                   help="pin a plan knob for every kernel, e.g. --plan schedule=seesaw (repeatable)")
    p.add_argument("--name", default=None, help="results file stem (default: the grid name)")
    p.add_argument("--spec", default=None, help="benchmark this spec file instead of the grid's specs")
    p.add_argument("--tuned", action="store_true", help="also time the tuned kernel where 'mlagen tune' ran")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--flashmla", default=os.environ.get("MLAGEN_FLASHMLA_LIB"), metavar="LIB",
                   help="also time FlashMLA's dense decode from this library (tools/flashmla_ref/build.sh) on "
                        "every cell it can run, on the same inputs (default: $MLAGEN_FLASHMLA_LIB)")


def run(args: argparse.Namespace) -> int:
    from mlagen.cli import CLIError

    names = [g.strip() for g in args.grid.split(",") if g.strip()]
    unknown = [g for g in names if g not in GRIDS]
    if unknown:
        raise CLIError(f"unknown grid {unknown[0]!r} (choose from {', '.join(GRIDS)})")
    if args.chain < 1:
        raise CLIError(f"--chain {args.chain}: must be 1 or more")
    if args.chain > 1 and args.no_graphs:
        raise CLIError("--chain needs the graph replays: drop --no-graphs")
    if args.flashmla:
        from mlagen.flashmla_ref import FlashMLARefError, check_library

        try:
            check_library(args.flashmla)  # first: a wrong path costs no GPU time
        except FlashMLARefError as e:
            raise CLIError(f"--flashmla: {e}") from None
    import torch

    if not torch.cuda.is_available():
        raise CLIError("mlagen bench needs a CUDA GPU (Hopper); building kernels does not: see 'mlagen build'")
    import sys

    command = "mlagen bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "mlagen bench"
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    from mlagen.plan import parse_knob

    overrides = {}
    for item in args.plan:
        try:
            key, value = parse_knob(item)
        except ValueError as e:
            raise CLIError(f"--plan {e}") from None
        overrides[key] = value
    spec = None
    if args.spec:
        from mlagen.spec import load_spec

        spec = load_spec(args.spec)
    everything = {}
    for name in names:
        ceilings, cells = run_grid(GRIDS[name](), batch=args.batch, with_torch=args.torch, rep_ms=args.rep_ms,
                                   graphs=not args.no_graphs, log=log, plan_overrides=overrides, spec=spec,
                                   tuned=args.tuned, flashmla_lib=args.flashmla, chain=args.chain)
        summary = flashmla_summary(cells)
        if summary:
            log(summary)
        from mlagen.targets import check, summary_lines

        for line in summary_lines(check([asdict(c) for c in cells])):
            log(line)
        meta = gpu_meta(command)
        meta["calls_per_graph"] = args.chain
        stem = f"{args.name}-{name}" if args.name else name
        paths = save(Path(args.out), stem, ceilings, cells, meta)
        log(f"wrote {', '.join(str(p) for p in paths)}")
        everything[name] = {"meta": meta, "ceilings": asdict(ceilings), "cells": [asdict(c) for c in cells]}
    if args.json:
        print(json.dumps(everything, indent=1))
    return 0
