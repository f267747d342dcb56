"""``mlagen bench``: time generated kernels against the hardware roofline measured in the same run.

Protocol (the same as the FlashMLA reference figures in ``docs/perf/``):

* ceilings, measured first: device-to-device copy (bytes read + written) and a
  bf16 8192^3 matmul through torch;
* per grid cell: batch requests with lengths ~ normal(s_k, s_k/2) clipped at
  s_q (seed 1), pages in shuffled order, q and cache ~ N(0, 0.1^2);
* the timed region is the whole call (schedule + split-KV decode + combine,
  outputs allocated) as a user makes it, median of repeated runs after
  warm-up, with input sets rotated so L2 never holds the cache of the next call;
* floor = max(bytes / copy rate, flops / matmul rate) with bytes = q + the
  latent cache actually read + output and flops = 2 b h s_q L (d_qk + d_v);
  ratio = floor / time (1.0 is the hardware limit).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

__all__ = ["BenchCell", "Ceilings", "measure_ceilings", "run_grid", "DEFAULT_GRID", "time_fn"]

# FlashMLA's benchmark grid: (h_q, s_q, s_k), batch 128, page 64, bf16, causal
DEFAULT_GRID = [(h, s_q, s_k) for h in (128, 64, 32, 16) for s_q in (1, 2) for s_k in (4096, 8192, 16384)]
_L2_BYTES = 50 * 2**20


def grid_spec(h_q: int, s_q: int, *, page: int = 64, dtype: str = "bf16"):
    """The spec benchmarked for a grid cell: FlashMLA's shape (576/512, causal), one kernel per head
    count serving s_q = 1 and 2."""
    from mlagen.spec import MLASpec

    return MLASpec(q_heads=h_q, max_q=max(2, s_q), causal=True, page=page, dtype=dtype)


@dataclass
class Ceilings:
    copy_gbps: float       # bytes read + written per second / 1e9
    matmul_tflops: float   # bf16 8192^3


def time_fn(fn, *, warmup_ms: float = 20, rep_ms: float = 200, setup=None) -> list[float]:
    """Per-call times in ms (CUDA events around each call) after a warm-up; ``setup(i)`` runs untimed before call i."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    torch.cuda.synchronize()
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(start.elapsed_time(end), 1e-3)
    n_warm = max(1, int(warmup_ms / estimate))
    n_rep = max(5, min(2000, int(rep_ms / estimate)))
    for i in range(n_warm):
        if setup:
            setup(i)
        fn()
    times = []
    for i in range(n_rep):
        if setup:
            setup(i)
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        times.append((s, e))
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in times]


def measure_ceilings() -> Ceilings:
    n = 1 << 28  # 512 MiB of bf16 each way
    src = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    copy_ms = statistics.median(time_fn(lambda: dst.copy_(src), rep_ms=300))
    copy_gbps = 2 * src.numel() * 2 / (copy_ms * 1e-3) / 1e9
    del src, dst
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    mm_ms = statistics.median(time_fn(lambda: a @ b, rep_ms=300))
    tflops = 2 * 8192**3 / (mm_ms * 1e-3) / 1e12
    return Ceilings(copy_gbps=round(copy_gbps, 1), matmul_tflops=round(tflops, 1))


@dataclass
class BenchCell:
    spec_key: str
    h_q: int
    s_q: int
    s_k: int
    batch: int
    page: int
    dtype: str
    mean_len: float
    ms: float
    ms_runs: list[float]
    gbps: float
    tflops: float
    floor_ms: float
    ratio: float
    kind: str = "mlagen"            # or "torch" for the plain-PyTorch decode
    plan: str = ""
    extra: dict = field(default_factory=dict)


def seqlens_for(batch: int, s_q: int, s_k: int, seed: int = 1) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.normal(float(s_k), s_k / 2, (batch,), generator=g)
    return [max(s_q, int(v)) for v in lens.tolist()]


def problem_bytes_flops(spec, batch: int, s_q: int, lens: list[int]) -> tuple[float, float]:
    total = sum(lens)
    elem = 2
    q_bytes = batch * s_q * spec.q_heads * spec.d_qk * elem
    out_bytes = batch * s_q * spec.q_heads * spec.d_v * elem
    kv_bytes = total * spec.cache_bytes_per_token
    flops = 2 * spec.q_heads * s_q * total * (spec.d_qk + spec.d_v)
    return q_bytes + kv_bytes + out_bytes, flops


def make_inputs(spec, batch: int, s_q: int, lens: list[int], sets: int, seed: int = 0):
    """``sets`` independent input sets (q, cache, block table, lengths) on the GPU."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    dtype = torch.bfloat16 if spec.dtype == "bf16" else torch.float16
    pages_per = [max(1, -(-n // spec.page)) for n in lens]
    num_pages = sum(pages_per)
    width = max(pages_per)
    out = []
    for _ in range(sets):
        q = (torch.randn(batch, s_q, spec.q_heads, spec.d_qk, generator=g, device="cuda") * 0.1).clamp(-1, 1).to(dtype)
        cache = torch.empty(num_pages, spec.page, spec.kv_heads, spec.d_qk, device="cuda", dtype=dtype)
        cache.normal_(0, 0.1, generator=g).clamp_(-1, 1)
        perm = torch.randperm(num_pages, generator=g, device="cuda").to(torch.int32)
        bt = torch.zeros(batch, width, dtype=torch.int32, device="cuda")
        k = 0
        for i, n in enumerate(pages_per):
            bt[i, :n] = perm[k : k + n]
            k += n
        out.append((q, cache, bt, torch.tensor(lens, dtype=torch.int32, device="cuda")))
    return out


def torch_decode(q, cache, bt, lens_list, spec):
    """Plain PyTorch paged MLA decode: gather pages, bmm, fp32 softmax, bmm (the baseline users replace)."""
    batch, s_q = q.shape[:2]
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


def run_cell(kernel, spec, batch, s_q, s_k, ceilings: Ceilings, *, with_torch=False, rep_ms=200) -> list[BenchCell]:
    lens = seqlens_for(batch, s_q, s_k)
    nbytes, flops = problem_bytes_flops(spec, batch, s_q, lens)
    sets = max(1, min(4, math.ceil(3 * _L2_BYTES / max(nbytes, 1)) + 1))
    inputs = make_inputs(spec, batch, s_q, lens, sets)
    floor_ms = max(nbytes / (ceilings.copy_gbps * 1e9), flops / (ceilings.matmul_tflops * 1e12)) * 1e3
    state = {"i": 0}

    def rotate(i):
        state["i"] = i % sets

    def call():
        q, cache, bt, ln = inputs[state["i"]]
        kernel(q, cache, bt, ln, validate=False)

    cells = []
    times = time_fn(call, setup=rotate, rep_ms=rep_ms)
    ms = statistics.median(times)
    common = dict(spec_key=spec.key, h_q=spec.q_heads, s_q=s_q, s_k=s_k, batch=batch, page=spec.page,
                  dtype=spec.dtype, mean_len=sum(lens) / batch, floor_ms=round(floor_ms, 4))
    cells.append(BenchCell(**common, ms=round(ms, 4), ms_runs=[round(t, 4) for t in times[:50]],
                           gbps=round(nbytes / (ms * 1e-3) / 1e9, 1), tflops=round(flops / (ms * 1e-3) / 1e12, 1),
                           ratio=round(floor_ms / ms, 3), plan=kernel.plan.tag))
    if with_torch:
        q, cache, bt, ln = inputs[0]
        tms = statistics.median(time_fn(lambda: torch_decode(q, cache, bt, lens, spec), rep_ms=rep_ms, warmup_ms=5))
        cells.append(BenchCell(**common, ms=round(tms, 4), ms_runs=[], gbps=round(nbytes / (tms * 1e-3) / 1e9, 1),
                               tflops=round(flops / (tms * 1e-3) / 1e12, 1), ratio=round(floor_ms / tms, 3),
                               kind="torch"))
    del inputs
    torch.cuda.empty_cache()
    return cells


def run_grid(specs_for, grid, *, batch=128, with_torch=False, rep_ms=200, log=print):
    """Measure ceilings, then every (h_q, s_q, s_k) cell; ``specs_for(h_q, s_q)`` gives the spec to build."""
    import mlagen.jit

    ceilings = measure_ceilings()
    log(f"ceilings: copy {ceilings.copy_gbps} GB/s (read+write), bf16 matmul {ceilings.matmul_tflops} TFLOP/s")
    cells = []
    for h_q, s_q, s_k in grid:
        spec = specs_for(h_q, s_q)
        kernel = mlagen.jit.compile(spec)
        for cell in run_cell(kernel, spec, batch, s_q, s_k, ceilings, with_torch=with_torch, rep_ms=rep_ms):
            cells.append(cell)
            log(f"{cell.kind:6s} h={h_q:3d} s_q={s_q} s_k={s_k:6d} {cell.ms:8.4f} ms {cell.gbps:7.1f} GB/s "
                f"{cell.tflops:6.1f} TFLOP/s floor {cell.floor_ms:.4f} ms ratio {cell.ratio:.3f}")
    return ceilings, cells


def save(path: Path, ceilings: Ceilings, cells: list[BenchCell], meta: dict) -> None:
    data = {"meta": meta, "ceilings": asdict(ceilings), "cells": [asdict(c) for c in cells]}
    Path(path).write_text(json.dumps(data, indent=1))


def gpu_meta(command: str) -> dict:
    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": props.name,
        "sm_count": props.multi_processor_count,
        "torch": torch.__version__,
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
