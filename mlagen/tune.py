"""``mlagen tune``: measure every plan the planner accepts, per shape bucket, and keep the fastest.

The sweep
---------
* Candidates: :func:`mlagen.plan.search_space` (compile-time knobs, already
  pruned by the planner's budget checks) crossed with the runtime knob
  ``parts_per_sm`` in :data:`PARTS_PER_SM`. Plans that differ only in runtime
  knobs share one compiled kernel. The heuristic plan (:func:`plan_for`) is
  always a candidate, so every bucket reports the tuned plan's speedup over it.
* Buckets: :class:`mlagen.dispatch.Bucket` (s_q, batch, max context); each is
  measured on one representative problem: ``batch`` requests with lengths ~
  normal(L, L/2), L = max context / 2, clipped to [s_q, max context] (the
  longest request at least 3/4 of the max context, so the block table is as
  wide as the bucket says).
* Pipeline: kernels compile on the CPU in a process pool while GPU workers
  (one process per GPU, ``CUDA_VISIBLE_DEVICES`` set per worker) time the
  candidates already built. A worker process isolates the sweep from a kernel
  that hangs (killed after the per-candidate timeout) or faults (a sticky CUDA
  error would poison every later candidate of the process); it is restarted.
* Timing: :mod:`mlagen.bench`'s protocol (warm-up, CUDA events around each
  whole call, median of repeats, input sets rotated so L2 never holds the
  next call's cache). Before its first timing a candidate's output is checked
  against the float32 reference (:func:`mlagen.testing.make_problem` +
  :func:`mlagen.testing.assert_close_mla`, at s_q = max_q and 1), so a fast
  wrong kernel never wins.
* Results: every candidate, failed ones included (status + message), goes to
  the :mod:`mlagen.tune_db` database as soon as it is measured. Ctrl-C keeps
  them; a re-run skips what this toolchain already measured on this GPU
  model. ``--budget`` stops issuing new candidates once the wall time is spent.

The GPU work sits behind the :class:`Timer` protocol (:class:`CudaTimer` on a
GPU, :class:`FakeTimer` for tests and ``--dry-run``) and the CPU compile
behind a builder callable (:func:`jit_builder`, :class:`FakeBuilder`), so the
whole loop runs without a GPU.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import dataclasses
import fnmatch
import json
import math
import multiprocessing
import os
import random
import signal
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

from mlagen.device import DeviceFacts
from mlagen.dispatch import Bucket, TunedKernel, bucket_of, clear_cache, pow2_ceil
from mlagen.plan import KernelPlan, narrow_heads_n, plan_for, plans_by_s_q, search_space, serves
from mlagen.spec import MLASpec
from mlagen.tune_db import Measurement, TuneDB, TuneKey, default_db_path, plan_key, toolchain, tune_key

__all__ = [
    "CudaTimer",
    "DEFAULT_BATCHES",
    "DEFAULT_SEQLENS",
    "FakeBuilder",
    "FakeTimer",
    "InlineExecutor",
    "PARTS_PER_SM",
    "ProcessExecutor",
    "Timer",
    "TuneError",
    "TuneReport",
    "Tuner",
    "bucket_seqlens",
    "buckets_for",
    "candidates",
    "compare_tuned",
    "compile_label",
    "jit_builder",
    "parse_duration",
    "parse_tokens",
    "plan_label",
    "summarize",
    "tune",
]

PARTS_PER_SM = (1, 2)
DEFAULT_BATCHES = (1, 8, 32, 128)
DEFAULT_SEQLENS = (2048, 8192, 32768)
DEFAULT_TIMEOUT_S = 60.0          # one candidate's check + timing, once its inputs exist
DEFAULT_SETUP_TIMEOUT_S = 600.0   # loading a kernel and building a bucket's inputs
_ERROR_CHARS = 4000


class TuneError(RuntimeError):
    """The sweep cannot go on (no worker could start, every worker died)."""


# ----------------------------------------------------------------- candidates
def plan_label(plan: KernelPlan | dict) -> str:
    """Readable candidate name, unique per full plan: ``n64s2w2-c232-pps1`` (``-nosplit`` kept)."""
    p = plan if isinstance(plan, KernelPlan) else KernelPlan.from_dict(plan)
    return f"{p.tag}-c{p.consumer_regs}-pps{p.parts_per_sm}"


def compile_label(plan: KernelPlan | dict) -> str:
    """Name of a compiled kernel (runtime knobs left out): ``n64s2w2-c232``."""
    p = plan if isinstance(plan, KernelPlan) else KernelPlan.from_dict(plan)
    return f"{p.tag}-c{p.consumer_regs}"


def candidates(spec: MLASpec, device_facts: DeviceFacts, parts: Sequence[int] = PARTS_PER_SM) -> list[KernelPlan]:
    """Every plan to measure: the planner's search space crossed with ``parts_per_sm``, heuristic included, and
    for the s_q that run a heads_n kernel compiled for them (``narrow_heads_n``) that kernel's heads_n plans."""
    out: dict[KernelPlan, None] = {}
    for plan in search_space(spec, device_facts):
        for pps in parts if plan.split_kv else (1,):
            out.setdefault(dataclasses.replace(plan, parts_per_sm=pps), None)
    out.setdefault(plan_for(spec, device_facts), None)
    for plan in plans_by_s_q(spec, device_facts).values():
        out.setdefault(plan, None)
    # the s_q whose own rows fit heads_n (narrow_heads_n): the heads_n plans of the kernel compiled for them,
    # measured only in those buckets (serves)
    for s_q in range(1, spec.max_q):
        if narrow_heads_n(spec, s_q):
            for plan in search_space(spec.replace(max_q=s_q), device_facts):
                if plan.schedule == "heads_n":
                    for pps in parts if plan.split_kv else (1,):
                        out.setdefault(dataclasses.replace(plan, parts_per_sm=pps, q_tokens=s_q), None)
    return list(out)


def buckets_for(spec: MLASpec, batches: Iterable[int] = DEFAULT_BATCHES, seqlens: Iterable[int] = DEFAULT_SEQLENS,
                s_qs: Iterable[int] | None = None) -> list[Bucket]:
    """The buckets of a sweep (batch and context rounded up to powers of two, duplicates dropped)."""
    s_qs = sorted({1, spec.max_q}) if s_qs is None else sorted(set(s_qs))
    for s_q in s_qs:
        if not 1 <= s_q <= spec.max_q:
            raise ValueError(f"s_q = {s_q}: this spec takes 1..{spec.max_q} query tokens per request")
    out: dict[Bucket, None] = {}
    for s_q in s_qs:
        for b in sorted({pow2_ceil(x) for x in batches}):
            for ctx in sorted({pow2_ceil(x) for x in seqlens}):
                if ctx < s_q:
                    raise ValueError(f"seqlen {ctx} is shorter than s_q = {s_q}")
                out.setdefault(Bucket(s_q, b, max(ctx, spec.page)), None)
    return list(out)


def bucket_seqlens(bucket: Bucket, seed: int = 1) -> list[int]:
    """The representative lengths of ``bucket``: ~ normal(L, L/2), L = max_ctx / 2, clipped to
    [s_q, max_ctx], the longest at least 3/4 max_ctx (deterministic)."""
    rng = random.Random(f"mlagen-tune:{seed}:{bucket.s_q}:{bucket.batch}:{bucket.max_ctx}")
    mean = bucket.max_ctx / 2
    lens = [min(bucket.max_ctx, max(bucket.s_q, int(rng.gauss(mean, mean / 2)))) for _ in range(bucket.batch)]
    i = max(range(len(lens)), key=lens.__getitem__)
    lens[i] = max(lens[i], min(bucket.max_ctx, max(bucket.s_q, (3 * bucket.max_ctx) // 4)))
    return lens


# --------------------------------------------------------------- GPU backends
class Timer(Protocol):
    """The GPU side of a sweep, one instance per worker process."""

    def device_facts(self) -> DeviceFacts:
        """The GPU this timer measures on."""

    def prepare(self, spec: MLASpec, plan: KernelPlan, bucket: Bucket) -> dict:
        """Load the candidate's kernel and the bucket's inputs; returns a description of the problem."""

    def check(self, spec: MLASpec, plan: KernelPlan) -> None:
        """Raise ``AssertionError`` if the candidate's output differs from the reference."""

    def time(self, spec: MLASpec, plan: KernelPlan, bucket: Bucket) -> list[float]:
        """Per-call times in milliseconds on the bucket's problem."""


class CudaTimer:
    """Times real kernels on the (one visible) GPU with :mod:`mlagen.bench`'s protocol.

    The figure a candidate is ranked by is the median of CUDA-graph replays of
    the whole call (decode + combine, outputs and workspace preallocated), the
    GPU time a serving loop with graphs sees; the median of plain Python calls
    is kept too (``call_ms`` in the row's shape). ``graphs=False`` ranks by the
    Python calls instead. Input sets are rotated so L2 never holds the cache.
    """

    def __init__(self, cache_dir: str | None = None, rep_ms: float = 100.0, warmup_ms: float = 20.0, seed: int = 1,
                 graphs: bool = True):
        self.cache_dir = cache_dir
        self.rep_ms = rep_ms
        self.warmup_ms = warmup_ms
        self.seed = seed
        self.graphs = graphs
        self.last_extra: dict = {}
        self._facts: DeviceFacts | None = None
        self._kernels: dict[KernelPlan, Any] = {}
        self._inputs_for = None
        self._inputs: list = []
        self._outs: list = []

    def device_facts(self) -> DeviceFacts:
        if self._facts is None:
            import torch

            from mlagen.device import current_device_facts

            if not torch.cuda.is_available():
                raise RuntimeError("no CUDA device visible to this worker")
            torch.cuda.set_device(0)
            self._facts = current_device_facts(0)
        return self._facts

    def kernel(self, spec: MLASpec, plan: KernelPlan):
        k = self._kernels.get(plan)
        if k is None:
            from mlagen.jit import build, load
            from mlagen.runtime import MLADecodeKernel

            result = build(spec, plan, device=self.device_facts(), cache_dir=self.cache_dir)
            k = MLADecodeKernel(result, load(result), self.device_facts())
            self._kernels[plan] = k
        return k

    def prepare(self, spec: MLASpec, plan: KernelPlan, bucket: Bucket) -> dict:
        import torch

        from mlagen import bench

        self.kernel(spec, plan)
        lens = bucket_seqlens(bucket, self.seed)
        nbytes = problem_bytes(spec, bucket.s_q, lens)
        l2 = getattr(bench, "_L2_BYTES", 50 * 2**20)
        sets = max(1, min(4, math.ceil(3 * l2 / max(nbytes, 1)) + 1))
        if self._inputs_for != (spec.key, bucket):
            self._inputs, self._outs, self._inputs_for = [], [], None
            torch.cuda.empty_cache()
            self._inputs = bench.make_inputs(spec, bucket.batch, bucket.s_q, lens, sets, seed=self.seed)
            dtype = self._inputs[0][0].dtype
            for _ in self._inputs:
                out = torch.empty((bucket.batch, bucket.s_q, spec.q_heads, spec.d_v), dtype=dtype, device="cuda")
                lse = (torch.empty((bucket.batch, spec.q_heads, bucket.s_q), dtype=torch.float32, device="cuda")
                       if spec.lse else None)
                self._outs.append((out, lse))
            self._inputs_for = (spec.key, bucket)
        width = self._inputs[0][2].shape[1]
        return {"batch": bucket.batch, "s_q": bucket.s_q, "mean_len": round(sum(lens) / len(lens), 1),
                "max_len": max(lens), "block_table_width": int(width), "input_sets": len(self._inputs),
                "bytes": int(nbytes)}

    def check(self, spec: MLASpec, plan: KernelPlan) -> None:
        import torch

        from mlagen.testing import assert_close_mla, make_problem

        kernel = self.kernel(spec, plan)
        for s_q in sorted({plan.q_tokens or spec.max_q, 1}, reverse=True):
            p = make_problem(spec, batch=3, seqlens=[s_q, 3 * spec.page + 17, 1000 + s_q], s_q=s_q, seed=7,
                             device="cuda")
            out = torch.full((p.batch, s_q, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda")
            lse = None
            if spec.lse:
                lse = torch.full((p.batch, spec.q_heads, s_q), float("nan"), dtype=torch.float32, device="cuda")
            res = kernel(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse)
            got_out, got_lse = res if spec.lse else (res, None)
            ref_out, ref_lse = p.reference(torch.float32)
            assert_close_mla(got_out, got_lse, ref_out, ref_lse if spec.lse else None,
                             context=f"correctness check of {plan_label(plan)}: {p.describe()}")

    def time(self, spec: MLASpec, plan: KernelPlan, bucket: Bucket) -> list[float]:
        from mlagen import bench
        from mlagen.bench import time_fn

        kernel = self.kernel(spec, plan)
        inputs, outs = self._inputs, self._outs
        state = {"i": 0}

        def rotate(i):
            state["i"] = i % len(inputs)

        def call():
            q, cache, bt, lens = inputs[state["i"]]
            out, lse = outs[state["i"]]
            kernel(q, cache, bt, lens, out=out, lse=lse, validate=False)

        call_times = time_fn(call, setup=rotate, rep_ms=self.rep_ms / 4 if self.graphs else self.rep_ms,
                             warmup_ms=self.warmup_ms)
        self.last_extra = {"call_ms": round(statistics.median(call_times), 5), "timing": "call"}
        if not self.graphs:
            return call_times
        captured = bench.capture_calls(kernel, inputs, outs, kernel.workspace(bucket.batch, bucket.s_q, "cuda"))
        times = time_fn(lambda: captured[state["i"]].replay(), setup=rotate, rep_ms=self.rep_ms,
                        warmup_ms=self.warmup_ms)
        captured.clear()  # frees the graphs' memory pools
        self.last_extra["timing"] = "graph"
        return times


def problem_bytes(spec: MLASpec, s_q: int, lens: Sequence[int]) -> int:
    """Bytes one decode call moves at least: q, the latent cache of every request, the output."""
    batch = len(lens)
    return (batch * s_q * spec.q_heads * (spec.d_qk + spec.d_v) * 2 + sum(lens) * spec.cache_bytes_per_token)


def _matches(label: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(label, pat) for pat in patterns)


FAKE_GPU = DeviceFacts(name="fake GPU (dry run)", sm_count=132)


class FakeTimer:
    """A :class:`Timer` without a GPU: deterministic times per plan and bucket (tests, ``--dry-run``).

    ``fail`` / ``wrong`` / ``hang`` / ``crash`` are :func:`fnmatch` patterns of
    :func:`plan_label`: the candidate raises in ``time``, fails its correctness
    check, never returns, or kills its process. ``cost(plan, bucket) -> ms``
    replaces the built-in model (it must be picklable for worker processes).
    """

    def __init__(self, *, cost: Callable | None = None, fail: Sequence[str] = (), wrong: Sequence[str] = (),
                 hang: Sequence[str] = (), crash: Sequence[str] = (), sleep_s: float = 0.0,
                 facts: DeviceFacts | None = None, runs: int = 7):
        self.cost = cost
        self.fail, self.wrong, self.hang, self.crash = tuple(fail), tuple(wrong), tuple(hang), tuple(crash)
        self.sleep_s = sleep_s
        self.facts = facts or FAKE_GPU
        self.runs = runs
        self.calls: list[tuple[str, str, Bucket | None]] = []   # (what, label, bucket), in-process only

    def device_facts(self) -> DeviceFacts:
        return self.facts

    def prepare(self, spec: MLASpec, plan: KernelPlan, bucket: Bucket) -> dict:
        lens = bucket_seqlens(bucket)
        return {"batch": bucket.batch, "s_q": bucket.s_q, "mean_len": round(sum(lens) / len(lens), 1),
                "max_len": max(lens), "fake": True, "visible": os.environ.get("CUDA_VISIBLE_DEVICES", "")}

    def check(self, spec: MLASpec, plan: KernelPlan) -> None:
        label = plan_label(plan)
        self.calls.append(("check", label, None))
        if _matches(label, self.wrong):
            raise AssertionError(f"out: 12 of 4096 elements differ beyond 0.0008 + 0.015625*|ref| (fake, {label})")

    def time(self, spec: MLASpec, plan: KernelPlan, bucket: Bucket) -> list[float]:
        label = plan_label(plan)
        self.calls.append(("time", label, bucket))
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if _matches(label, self.hang):
            time.sleep(3600)
        if _matches(label, self.crash):
            os._exit(3)
        if _matches(label, self.fail):
            raise RuntimeError(f"CUDA error: an illegal memory access was encountered (fake, {label})")
        ms = self.cost(plan, bucket) if self.cost else fake_cost(spec, plan, bucket)
        self.last_extra = {"timing": "fake"}
        return [ms * (1 + 0.002 * ((i * 7) % 5 - 2)) for i in range(self.runs)]


def fake_cost(spec: MLASpec, plan: KernelPlan, bucket: Bucket) -> float:
    """The dry-run timing model: bytes at 3 TB/s plus launch overhead, with mild, deterministic plan effects."""
    nbytes = bucket.batch * bucket.max_ctx * 0.5 * spec.cache_bytes_per_token
    base = 0.012 + nbytes / 3e9 * 1e-3 * 1e3
    pen = 1 + 0.03 * abs(plan.stages - 3) + (0.04 if plan.block_n == 32 else 0.0) + (0.01 if plan.consumer_regs == 240 else 0.0)
    small = bucket.batch * bucket.max_ctx <= 16 * 8192
    pen *= (0.95 if small else 1.02) if plan.parts_per_sm == 2 else 1.0
    return round(base * pen, 6)


# ------------------------------------------------------------------ builders
def jit_builder(spec_dict: dict, plan_dict: dict, facts_dict: dict, cache_dir: str | None) -> dict:
    """Compile one plan into the kernel cache (runs in a CPU process; needs no GPU)."""
    from mlagen.jit import build

    facts = DeviceFacts(**{k: v for k, v in facts_dict.items()})
    result = build(MLASpec.from_dict(spec_dict), KernelPlan.from_dict(plan_dict), device=facts, cache_dir=cache_dir)
    return {"cold": result.cold, "seconds": round(result.seconds, 3), "entry": result.identity.name,
            "compile_seconds": result.compile_seconds}


class FakeBuilder:
    """A builder that compiles nothing (tests, ``--dry-run``); ``fail`` patterns of :func:`plan_label` raise."""

    def __init__(self, fail: Sequence[str] = (), delay_s: float = 0.0):
        self.fail = tuple(fail)
        self.delay_s = delay_s

    def __call__(self, spec_dict: dict, plan_dict: dict, facts_dict: dict, cache_dir: str | None) -> dict:
        if self.delay_s:
            time.sleep(self.delay_s)
        label = plan_label(plan_dict)
        if _matches(label, self.fail):
            raise RuntimeError(f"fake compile error: ptxas ran out of registers ({label})")
        return {"cold": False, "seconds": 0.0, "entry": f"fake-{label}", "compile_seconds": None}


def _ignore_sigint() -> None:
    # Ctrl-C goes to the coordinator, which shuts the pools down
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    remote = getattr(exc.__cause__, "tb", None)  # concurrent.futures' _RemoteTraceback
    if remote:
        tail = "\n".join(str(remote).strip().splitlines()[-12:])
        text = f"{text}\n{tail}"
    return text[:_ERROR_CHARS]


class _Builds:
    """Compiles of the distinct compile keys: a process pool (``jobs`` > 0) or inline, one per poll."""

    def __init__(self, spec: MLASpec, facts: DeviceFacts, builder: Callable, jobs: int, cache_dir: str | None):
        self.spec_dict = spec.to_dict()
        self.facts_dict = dataclasses.asdict(facts)
        self.builder = builder
        self.jobs = jobs
        self.cache_dir = cache_dir
        self.state: dict[str, str] = {}            # compile key -> pending | ok | failed
        self.errors: dict[str, str] = {}
        self.info: dict[str, dict] = {}
        self._plans: dict[str, KernelPlan] = {}
        self._queue: list[str] = []                 # inline mode
        self._futures: dict[cf.Future, str] = {}
        self._pool_breaks = 0
        self._pool: cf.ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
            )
        return self._pool

    def submit(self, plans: Iterable[KernelPlan]) -> None:
        for plan in plans:
            key = plan.key
            if key in self.state:
                continue
            self.state[key] = "pending"
            self._plans[key] = plan
            if self.jobs > 0:
                self._submit_pool(key)
            else:
                self._queue.append(key)

    def _submit_pool(self, key: str) -> None:
        plan = self._plans[key]
        fut = self._ensure_pool().submit(self.builder, self.spec_dict, plan.to_dict(), self.facts_dict, self.cache_dir)
        self._futures[fut] = key

    @property
    def pending(self) -> int:
        return sum(1 for s in self.state.values() if s == "pending")

    def poll(self, timeout: float = 0.0) -> list[tuple[str, bool]]:
        """Compiles finished since the last poll: ``[(compile key, ok)]``."""
        done: list[tuple[str, bool]] = []
        if self.jobs <= 0:
            if self._queue:
                key = self._queue.pop(0)
                try:
                    self.info[key] = self.builder(self.spec_dict, self._plans[key].to_dict(), self.facts_dict,
                                                  self.cache_dir)
                    self.state[key] = "ok"
                except Exception as e:  # noqa: BLE001 - a compile error is a result
                    self.state[key], self.errors[key] = "failed", _error_text(e)
                done.append((key, self.state[key] == "ok"))
            return done
        if not self._futures:
            return done
        finished, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        broken = False
        for fut in finished:
            key = self._futures.pop(fut)
            try:
                self.info[key] = fut.result()
                self.state[key] = "ok"
            except BrokenProcessPool as e:
                # a compile process died (out of memory? a script without a __main__ guard?): the pool is
                # restarted; the kernel is not blamed, since the dead process may have been compiling another
                self._pool_breaks += 1
                if self._pool_breaks > 3:
                    raise TuneError(f"the compile processes keep dying ({_error_text(e)}); with the Python API, "
                                    "guard the script with `if __name__ == '__main__':`") from None
                broken = True
                continue
            except Exception as e:  # noqa: BLE001
                self.state[key], self.errors[key] = "failed", _error_text(e)
            done.append((key, self.state[key] == "ok"))
        if broken:
            self._restart_pool()
        return done

    def _restart_pool(self) -> None:
        old, self._pool = self._pool, None
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        keys = [k for k, s in self.state.items() if s == "pending"]
        self._futures.clear()
        for key in keys:
            self._submit_pool(key)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:  # a compile in flight would otherwise hold the exit for its whole duration
            if p.is_alive():
                p.terminate()


# ----------------------------------------------------------------- executors
def run_job(timer, job: dict, phase: Callable[[], None] | None = None) -> dict:
    """Run one candidate on ``timer``: prepare, check (once per plan), time. Never raises."""
    spec = MLASpec.from_dict(job["spec"])
    plan = KernelPlan.from_dict(job["plan"])
    bucket = Bucket(*job["bucket"])
    res: dict[str, Any] = {"id": job["id"], "status": "ok", "median_ms": None, "times": [], "error": "",
                           "shape": {}, "restart": False, "checked": False}
    try:
        res["shape"] = dict(timer.prepare(spec, plan, bucket) or {})
    except Exception as e:  # noqa: BLE001
        res.update(status="error", error=f"set-up failed: {_error_text(e)}", restart=True)
        return res
    if phase is not None:
        phase()
    try:
        if job.get("check"):
            timer.check(spec, plan)
            res["checked"] = True
    except AssertionError as e:
        res.update(status="wrong", error=str(e)[:_ERROR_CHARS])
        return res
    except Exception as e:  # noqa: BLE001
        res.update(status="error", error=f"correctness check failed to run: {_error_text(e)}", restart=True)
        return res
    try:
        times = [float(t) for t in timer.time(spec, plan, bucket)]
    except Exception as e:  # noqa: BLE001
        res.update(status="error", error=_error_text(e), restart=True)
        return res
    if not times or not all(math.isfinite(t) and t >= 0 for t in times):
        res.update(status="error", error=f"timer returned no usable times: {times[:8]}")
        return res
    res["times"] = times
    res["median_ms"] = statistics.median(times)
    res["shape"].update(getattr(timer, "last_extra", None) or {})
    return res


class InlineExecutor:
    """Runs candidates in this process, one at a time (fake timers, debugging). Cannot enforce timeouts."""

    def __init__(self, timer):
        self.timer = timer
        self._done: list[tuple[int, dict, dict]] = []
        self.labels = ["inline"]

    def start(self) -> DeviceFacts:
        return self.timer.device_facts()

    def idle(self) -> list[int]:
        return [0]

    def submit(self, slot: int, job: dict) -> None:
        self._done.append((slot, job, run_job(self.timer, job)))

    def poll(self, timeout: float = 0.0) -> list[tuple[int, dict, dict]]:
        out, self._done = self._done, []
        return out

    @property
    def busy(self) -> int:
        return 0

    def close(self) -> None:
        pass


def _worker_main(conn, timer_factory, visible: str | None, log_path: str | None) -> None:
    """One GPU worker: builds its timer, says hello with the device facts, then runs jobs until told to stop."""
    _ignore_sigint()
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        timer = timer_factory if hasattr(timer_factory, "device_facts") else timer_factory()
        facts = timer.device_facts()
        conn.send(("hello", dataclasses.asdict(facts)))
    except BaseException as e:  # noqa: BLE001
        traceback.print_exc()  # into the worker's log
        conn.send(("fail", _error_text(e)))
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        res = run_job(timer, job, phase=lambda: conn.send(("phase", job["id"])))
        conn.send(("result", res))
        if res["restart"]:
            return  # a failed launch may leave a sticky CUDA error: the coordinator starts a fresh worker


@dataclass
class _Worker:
    label: str
    visible: str | None
    proc: Any = None
    conn: Any = None
    job: dict | None = None
    deadline: float = 0.0
    alive: bool = False


class ProcessExecutor:
    """One worker process per GPU (``CUDA_VISIBLE_DEVICES`` = that GPU); kills and restarts a worker whose
    candidate hangs past the timeout or whose process dies."""

    def __init__(self, timer_factory, devices: Sequence[str | None] = (None,), *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 setup_timeout_s: float = DEFAULT_SETUP_TIMEOUT_S, start_timeout_s: float = 300.0,
                 log_dir: str | Path | None = None):
        self.timer_factory = timer_factory
        self.timeout_s = timeout_s
        self.setup_timeout_s = setup_timeout_s
        self.start_timeout_s = start_timeout_s
        self.log_dir = Path(log_dir) if log_dir else None
        self._ctx = multiprocessing.get_context("spawn")
        self.workers = [_Worker(label=f"cuda:{d}" if d is not None else "cuda", visible=d) for d in devices]
        self.labels = [w.label for w in self.workers]
        self.facts: DeviceFacts | None = None
        self.restarts = 0

    # -- lifecycle
    def _spawn(self, w: _Worker) -> None:
        parent, child = self._ctx.Pipe()
        log = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = str(self.log_dir / f"worker-{(w.visible or 'default').replace(',', '_')}.log")
        w.proc = self._ctx.Process(target=_worker_main, args=(child, self.timer_factory, w.visible, log),
                                   name=f"mlagen-tune-{w.label}", daemon=True)
        w.proc.start()
        child.close()
        w.conn, w.job, w.alive = parent, None, False

    def _await_hello(self, w: _Worker) -> DeviceFacts:
        if not w.conn.poll(self.start_timeout_s):
            self._kill(w)
            raise TuneError(f"worker {w.label}: no answer in {self.start_timeout_s:.0f} s")
        try:
            kind, payload = w.conn.recv()
        except (EOFError, OSError):
            self._kill(w)
            raise TuneError(f"worker {w.label}: exited while starting (status {w.proc.exitcode})") from None
        if kind != "hello":
            self._kill(w)
            raise TuneError(f"worker {w.label} could not start: {payload}")
        w.alive = True
        return DeviceFacts(**payload)

    def start(self) -> DeviceFacts:
        for w in self.workers:
            self._spawn(w)
        facts = [self._await_hello(w) for w in self.workers]
        names = sorted({(f.name, f.sm_count) for f in facts})
        if len(names) > 1:
            self.close()
            raise TuneError(f"--devices: mixed GPU models {names}; tune one model at a time")
        self.facts = facts[0]
        return self.facts

    def _kill(self, w: _Worker) -> None:
        w.alive = False
        if w.proc is not None and w.proc.is_alive():
            w.proc.kill()
        if w.proc is not None:
            w.proc.join(5)
        if w.conn is not None:
            w.conn.close()

    def _restart(self, w: _Worker) -> None:
        self._kill(w)
        self.restarts += 1
        self._spawn(w)
        try:
            self._await_hello(w)
        except TuneError:
            w.alive = False
        if not any(x.alive for x in self.workers):
            raise TuneError("every GPU worker died; see the failures recorded above")

    def close(self) -> None:
        for w in self.workers:
            if w.conn is not None and w.alive and w.job is None:
                try:
                    w.conn.send(None)
                except (OSError, BrokenPipeError):
                    pass
        for w in self.workers:
            if w.proc is not None:
                w.proc.join(0.5 if w.job is None else 0)
            self._kill(w)

    # -- scheduling
    def idle(self) -> list[int]:
        return [i for i, w in enumerate(self.workers) if w.alive and w.job is None]

    @property
    def busy(self) -> int:
        return sum(1 for w in self.workers if w.job is not None)

    def submit(self, slot: int, job: dict) -> None:
        w = self.workers[slot]
        w.job = job
        w.deadline = time.monotonic() + self.setup_timeout_s
        w.conn.send(job)

    def poll(self, timeout: float = 0.0) -> list[tuple[int, dict, dict]]:
        from multiprocessing.connection import wait

        out = []
        busy = [w for w in self.workers if w.job is not None]
        if not busy:
            if timeout:
                time.sleep(timeout)
            return out
        ready = wait([w.conn for w in busy], timeout)
        for w in busy:
            if w.conn not in ready:
                continue
            while w.job is not None and w.conn.poll():
                try:
                    kind, payload = w.conn.recv()
                except (EOFError, OSError):
                    w.proc.join(2)
                    code = w.proc.exitcode
                    out.append(self._fail(w, "crash", f"worker process died (exit status {code}) while running "
                                                      "this candidate"))
                    self._restart(w)
                    break
                if kind == "phase":
                    w.deadline = time.monotonic() + self.timeout_s
                elif kind == "result":
                    job, w.job = w.job, None
                    out.append((self.workers.index(w), job, payload))
                    if payload.get("restart"):
                        self._restart(w)
                    break
        now = time.monotonic()
        for w in self.workers:
            if w.job is not None and now > w.deadline:
                out.append(self._fail(w, "timeout", f"no result within the per-candidate timeout "
                                                    f"({self.timeout_s:g} s; worker killed)"))
                self._restart(w)
        return out

    def _fail(self, w: _Worker, status: str, message: str) -> tuple[int, dict, dict]:
        job, w.job = w.job, None
        res = {"id": job["id"], "status": status, "median_ms": None, "times": [], "error": message, "shape": {},
               "restart": True, "checked": False}
        return self.workers.index(w), job, res


# --------------------------------------------------------------------- sweep
@dataclass
class BucketSummary:
    bucket: Bucket
    best: Measurement | None
    heuristic: Measurement | None
    ok: list[Measurement]            # fastest first
    failed: list[Measurement]

    @property
    def speedup(self) -> float | None:
        if self.best is None or self.heuristic is None or not self.heuristic.ok or not self.best.median_ms:
            return None
        return self.heuristic.median_ms / self.best.median_ms

    def to_dict(self, top: int | None = None) -> dict:
        def row(m: Measurement | None):
            if m is None:
                return None
            return {"plan": m.plan, "label": plan_label(m.plan), "status": m.status, "median_ms": m.median_ms,
                    "runs": len(m.times_ms), "device": m.device, "heuristic": m.is_heuristic}

        return {
            "bucket": self.bucket._asdict(),
            "label": self.bucket.label,
            "best": row(self.best),
            "heuristic": row(self.heuristic),
            "speedup": None if self.speedup is None else round(self.speedup, 4),
            "measured_ok": len(self.ok),
            "failed": len(self.failed),
            "leaderboard": [row(m) for m in (self.ok if top is None else self.ok[:top])],
            "failures": [{"label": plan_label(m.plan), "status": m.status, "error": m.error} for m in self.failed],
        }


def summarize(rows: Iterable[Measurement], buckets: Iterable[Bucket] | None = None) -> list[BucketSummary]:
    """Per bucket: the leaderboard, the winner, the heuristic plan's row and the failures."""
    by: dict[Bucket, list[Measurement]] = {}
    for b in buckets or ():
        by.setdefault(b, [])
    for m in rows:
        by.setdefault(m.bucket, []).append(m)
    out = []
    for b in sorted(by):
        ms = by[b]
        ok = sorted((m for m in ms if m.ok), key=lambda m: m.median_ms)
        heur = next((m for m in ms if m.is_heuristic), None)
        out.append(BucketSummary(b, ok[0] if ok else None, heur, ok, [m for m in ms if not m.ok]))
    return out


@dataclass
class TuneReport:
    spec: MLASpec
    key: TuneKey
    buckets: list[Bucket]
    heuristic: KernelPlan
    candidates: int
    total: int                 # (bucket, candidate) pairs this run had to measure
    measured: int              # rows this run wrote
    skipped: int               # pairs already in the database (resume)
    remaining: int             # pairs left unmeasured (budget, Ctrl-C)
    stopped: str | None        # None, "budget" or "interrupted"
    elapsed_s: float
    rows: list[Measurement] = field(default_factory=list)
    db_path: str = ""
    compile_failures: dict[str, str] = field(default_factory=dict)

    def summaries(self) -> list[BucketSummary]:
        return summarize(self.rows, self.buckets)

    def to_dict(self, top: int | None = 5) -> dict:
        return {
            "spec_key": self.spec.key,
            "key": self.key.to_dict(),
            "db": self.db_path,
            "heuristic": self.heuristic.to_dict(),
            "candidates": self.candidates,
            "total": self.total,
            "measured": self.measured,
            "skipped": self.skipped,
            "remaining": self.remaining,
            "stopped": self.stopped,
            "elapsed_s": round(self.elapsed_s, 2),
            "buckets": [s.to_dict(top) for s in self.summaries()],
        }


class Tuner:
    """One sweep of ``spec`` over ``buckets``; :meth:`run` returns a :class:`TuneReport`.

    ``executor`` runs candidates on GPUs (:class:`ProcessExecutor`) or in this
    process (:class:`InlineExecutor`); ``builder`` compiles a plan on the CPU
    (``jobs`` processes, 0 = inline). ``plans`` restricts the candidates (the
    heuristic plan is always added). ``on_event(kind, data)`` sees ``"plan"``,
    ``"build"``, ``"result"`` and ``"stop"`` events (the progress bar).
    """

    def __init__(self, spec: MLASpec, buckets: Sequence[Bucket], *, db: TuneDB, executor, builder: Callable = jit_builder,
                 jobs: int = 2, budget_s: float | None = None, cache_dir: str | Path | None = None,
                 plans: Sequence[KernelPlan] | None = None, retry_failed: bool = False,
                 on_event: Callable[[str, dict], None] | None = None, chain: tuple[str, str, str] | None = None,
                 poll_s: float = 0.02):
        self.spec = spec
        self.buckets = list(dict.fromkeys(buckets))
        self.db = db
        self.executor = executor
        self.builder = builder
        self.jobs = jobs
        self.budget_s = budget_s
        self.cache_dir = str(cache_dir) if cache_dir is not None else None
        self.plans = list(plans) if plans is not None else None
        self.retry_failed = retry_failed
        self.on_event = on_event or (lambda kind, data: None)
        self.chain = chain
        self.poll_s = poll_s

    def run(self) -> TuneReport:
        t0 = time.monotonic()
        try:
            facts = self.executor.start()
            return self._run(t0, facts)
        finally:
            self.executor.close()
            clear_cache()  # tables read earlier in this process are stale now

    def _run(self, t0: float, facts: DeviceFacts) -> TuneReport:
        spec, db = self.spec, self.db
        key = tune_key(spec, facts, self.chain)
        heuristic = plan_for(spec, facts)
        # each bucket's heuristic row is its s_q's heuristic plan (they differ where only some s_q fill fp8 pairs)
        heuristic_of = plans_by_s_q(spec, facts)
        plans = list(dict.fromkeys([*(self.plans if self.plans is not None else candidates(spec, facts)), heuristic,
                                    *{heuristic_of[b.s_q]: None for b in self.buckets}]))
        done = db.measured(key, include_failed=not self.retry_failed)
        # a plan compiled for fewer query tokens (q_tokens) runs only the buckets it serves
        pairs = [(b, p) for b in self.buckets for p in plans if serves(spec, p, b.s_q)]
        work = [(b, p) for b, p in pairs if (b, plan_key(p)) not in done]
        total_pairs = len(pairs)
        spec_dict = spec.to_dict()
        builds = _Builds(spec, facts, self.builder, self.jobs, self.cache_dir)
        builds.submit(p for _, p in work)
        self.on_event("plan", {"key": key, "facts": facts, "total": len(work), "skipped": total_pairs - len(work),
                               "candidates": len(plans), "compiles": len(builds.state), "buckets": self.buckets})

        pending = list(work)
        inflight: dict[int, tuple[Bucket, KernelPlan]] = {}
        slot_bucket: dict[int, Bucket] = {}
        checked: set[str] = set()
        wrong: dict[str, str] = {}
        best: dict[Bucket, float] = {b: m.median_ms for b, m in db.best(key).items() if b in set(self.buckets)}
        heur_ms: dict[Bucket, float] = {}
        for m in db.measurements(key, self.buckets):
            if m.is_heuristic and m.ok:
                heur_ms[m.bucket] = m.median_ms
        measured = 0
        stopped = None
        next_id = 0

        def record(bucket: Bucket, plan: KernelPlan, status: str, *, median=None, times=(), error="", shape=None,
                   device=""):
            nonlocal measured
            m = Measurement(bucket=bucket, plan=plan.to_dict(), status=status, median_ms=median, times_ms=list(times),
                            error=error, is_heuristic=(plan == heuristic_of.get(bucket.s_q, heuristic)),
                            shape=shape or {}, device=device,
                            created=time.time())
            db.record(key, spec_dict, m)
            measured += 1
            if m.ok:
                if bucket not in best or m.median_ms < best[bucket]:
                    best[bucket] = m.median_ms
                if m.is_heuristic:
                    heur_ms[bucket] = m.median_ms
            self.on_event("result", {"measurement": m, "label": plan_label(plan), "best_ms": best.get(bucket),
                                     "heuristic_ms": heur_ms.get(bucket), "done": measured, "total": len(work),
                                     "elapsed_s": time.monotonic() - t0})

        def settle() -> None:
            """Record the pending pairs whose outcome is already known (compile error, wrong result)."""
            keep = []
            for b, p in pending:
                st = builds.state.get(p.key)
                if st == "failed":
                    record(b, p, "compile_error", error=builds.errors.get(p.key, ""))
                elif plan_key(p) in wrong:
                    record(b, p, "wrong", error=wrong[plan_key(p)])
                else:
                    keep.append((b, p))
            pending[:] = keep

        def pick(slot: int):
            ready = [i for i, (b, p) in enumerate(pending) if builds.state.get(p.key) == "ok"]
            if not ready:
                return None
            mine = slot_bucket.get(slot)
            others = {slot_bucket.get(s) for s in inflight}
            for pref in (lambda b: b == mine, lambda b: b not in others, lambda b: True):
                for i in ready:
                    if pref(pending[i][0]):
                        return pending.pop(i)
            return None

        try:
            while pending or inflight:
                for k, ok in builds.poll(0.0):
                    self.on_event("build", {"plan": builds._plans[k], "ok": ok, "info": builds.info.get(k),
                                            "error": builds.errors.get(k), "pending": builds.pending,
                                            "compiles": len(builds.state)})
                settle()
                over = self.budget_s is not None and time.monotonic() - t0 > self.budget_s
                if over and stopped is None:
                    stopped = "budget"
                    self.on_event("stop", {"reason": "budget", "remaining": len(pending)})
                if not over:
                    for slot in self.executor.idle():
                        if slot in inflight:
                            continue
                        item = pick(slot)
                        if item is None:
                            break
                        b, p = item
                        job = {"id": next_id, "spec": spec_dict, "plan": p.to_dict(), "bucket": tuple(b),
                               "check": plan_key(p) not in checked}
                        next_id += 1
                        inflight[slot] = (b, p)
                        slot_bucket[slot] = b
                        self.executor.submit(slot, job)
                if over and not inflight:
                    break
                results = self.executor.poll(self.poll_s if inflight else 0.0)
                for slot, job, res in results:
                    b, p = inflight.pop(slot)
                    label = self.executor.labels[slot]
                    if res.get("checked") and res["status"] == "ok":
                        checked.add(plan_key(p))
                    if res["status"] == "wrong":
                        wrong[plan_key(p)] = f"failed the correctness check (in bucket {b.label}): {res['error']}"
                    record(b, p, res["status"], median=res["median_ms"], times=res["times"], error=res["error"],
                           shape=res["shape"], device=label)
                if not results and not inflight and pending:
                    # waiting for compiles
                    if builds.pending == 0 and not any(builds.state.get(p.key) == "ok" for _, p in pending):
                        settle()
                        if pending:
                            raise TuneError("internal: candidates left that can never run")
                    elif builds.pending and self.jobs > 0:
                        for k, ok in builds.poll(self.poll_s * 5):
                            self.on_event("build", {"plan": builds._plans[k], "ok": ok, "info": builds.info.get(k),
                                                    "error": builds.errors.get(k), "pending": builds.pending,
                                                    "compiles": len(builds.state)})
                    if not self.executor.idle() and not inflight:
                        raise TuneError("no GPU worker is left to run candidates")
        except KeyboardInterrupt:
            stopped = "interrupted"
            self.on_event("stop", {"reason": "interrupted", "remaining": len(pending) + len(inflight)})
        finally:
            builds.close()
        remaining = len(pending) + len(inflight)
        return TuneReport(
            spec=spec, key=key, buckets=self.buckets, heuristic=heuristic, candidates=len(plans), total=len(work),
            measured=measured, skipped=total_pairs - len(work), remaining=remaining, stopped=stopped,
            elapsed_s=time.monotonic() - t0, rows=db.measurements(key, self.buckets), db_path=str(db.path),
            compile_failures=dict(builds.errors),
        )


def tune(spec: MLASpec, buckets: Sequence[Bucket] | None = None, *, db: TuneDB | str | Path | None = None,
         devices: Sequence[str | None] = (None,), jobs: int | None = None, budget_s: float | None = None,
         timeout_s: float = DEFAULT_TIMEOUT_S, cache_dir: str | Path | None = None, rep_ms: float = 100.0,
         graphs: bool = True, plans: Sequence[KernelPlan] | None = None, retry_failed: bool = False,
         on_event: Callable[[str, dict], None] | None = None, log_dir: str | Path | None = None) -> TuneReport:
    """Tune ``spec`` on real GPUs (one worker per entry of ``devices``; ``None`` = as visible)."""
    if not isinstance(db, TuneDB):
        db = TuneDB(db)
    from functools import partial

    executor = ProcessExecutor(partial(CudaTimer, cache_dir=str(cache_dir) if cache_dir else None, rep_ms=rep_ms,
                                       graphs=graphs),
                               devices, timeout_s=timeout_s, log_dir=log_dir)
    tuner = Tuner(spec, buckets or buckets_for(spec), db=db, executor=executor, builder=jit_builder,
                  jobs=default_jobs(len(devices)) if jobs is None else jobs, budget_s=budget_s, cache_dir=cache_dir,
                  plans=plans, retry_failed=retry_failed, on_event=on_event)
    return tuner.run()


def default_jobs(gpu_workers: int = 1) -> int:
    return max(1, min(8, (os.cpu_count() or 2) - gpu_workers))


# ----------------------------------------------------------------- bench hook
class _Labeled:
    """A TunedKernel as :func:`mlagen.bench.run_cell` uses a kernel: ``.plan`` and ``workspace`` for one shape."""

    def __init__(self, kernel: TunedKernel, plan: KernelPlan, block_table_width: int):
        self._kernel = kernel
        self.plan = plan
        self.spec = kernel.spec
        self._width = block_table_width

    def workspace(self, batch, s_q, device, num_parts=None):
        return self._kernel.workspace(batch, s_q, device, num_parts, block_table_width=self._width)

    def __call__(self, *args, **kwargs):
        return self._kernel(*args, **kwargs)


def _cell_ms(cell) -> float | None:
    for name in ("graph_ms", "call_ms", "ms"):
        v = getattr(cell, name, None)
        if v:
            return v
    return None


def compare_tuned(spec: MLASpec, *, batch: int, s_q: int, seqlen: int, db: str | Path | None = None,
                  ceilings=None, rep_ms: float = 200, cache_dir: str | Path | None = None) -> dict:
    """Time the heuristic plan against the tuned dispatch on one bench shape (GPU).

    Uses :func:`mlagen.bench.run_cell` for both (same inputs, protocol and
    roofline); the tuned side goes through :class:`TunedKernel`, dispatch
    included (visible in the Python-call time, not in graph replays). Returns
    both cells, the bucket, how the plan was found (tuned / nearest /
    heuristic) and the speedup (heuristic / tuned, graph replay time when the
    bench measured one, else call time).
    """
    from dataclasses import asdict

    import mlagen.jit
    from mlagen import bench
    from mlagen.device import current_device_facts

    if ceilings is None:
        ceilings = bench.measure_ceilings()
    facts = current_device_facts()
    tuned = TunedKernel(spec, db=db, cache_dir=cache_dir, device_facts=facts)
    lens = bench.seqlens_for(batch, s_q, seqlen)
    width = max(max(1, -(-n // spec.page)) for n in lens)
    bucket = bucket_of(spec, batch, s_q, width)
    plan, how = tuned.plan_for(batch, s_q, width)
    heuristic = mlagen.jit.compile(spec, plan_for(spec, facts, s_q=s_q), cache_dir=cache_dir)
    tuned.kernel_for(batch, s_q, width)  # compile outside the timed region
    h_cell = bench.run_cell(heuristic, spec, batch, s_q, seqlen, ceilings, rep_ms=rep_ms)[0]
    t_cell = bench.run_cell(_Labeled(tuned, plan, width), spec, batch, s_q, seqlen, ceilings, rep_ms=rep_ms)[0]
    t_cell.kind = "mlagen-tuned"
    h_ms, t_ms = _cell_ms(h_cell), _cell_ms(t_cell)
    return {
        "spec_key": spec.key,
        "bucket": bucket._asdict(),
        "source": how,
        "heuristic_plan": plan_label(heuristic.plan),
        "tuned_plan": plan_label(plan),
        "heuristic": asdict(h_cell),
        "tuned": asdict(t_cell),
        "speedup": round(h_ms / t_ms, 4) if h_ms and t_ms else None,
    }


# ----------------------------------------------------------------------- CLI
HELP = "autotune kernel plans per shape bucket on this GPU (results in a database the runtime dispatches from)"
_TOKEN_SUFFIX = {"k": 1024, "m": 1024 * 1024}
_DURATION_SUFFIX = {"s": 1, "m": 60, "h": 3600}


def parse_tokens(text: str) -> list[int]:
    """``"1,8,64"`` or ``"2k,32k,128k"`` -> ints (k = 1024, M = 1024²)."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        mult = _TOKEN_SUFFIX.get(part[-1], 1)
        num = part[:-1] if part[-1] in _TOKEN_SUFFIX else part
        try:
            value = float(num) * mult
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a number (use e.g. 8, 2k, 128k)") from None
        if value < 1 or value != int(value):
            raise argparse.ArgumentTypeError(f"{part!r} must be a positive whole number")
        out.append(int(value))
    if not out:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list")
    return out


def parse_duration(text: str) -> float:
    """``"10m"``, ``"90s"``, ``"1h"``, ``"1h30m"`` or plain seconds -> seconds."""
    t = text.strip().lower()
    try:
        return float(t)
    except ValueError:
        pass
    total, num = 0.0, ""
    for ch in t:
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in _DURATION_SUFFIX and num:
            total += float(num) * _DURATION_SUFFIX[ch]
            num = ""
        else:
            raise argparse.ArgumentTypeError(f"{text!r} is not a duration (use e.g. 600, 90s, 10m, 1h)")
    if num:
        raise argparse.ArgumentTypeError(f"{text!r}: a number needs a unit (s, m, h)")
    if total <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return total


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", type=Path, help="spec file (e.g. specs/deepseek_v3.py); with --show, a filter")
    p.add_argument("--batch", type=parse_tokens, default=None, help="batch sizes (default: 1,8,32,128)")
    p.add_argument("--seqlen", type=parse_tokens, default=None,
                   help="max context per bucket in tokens, k suffix accepted (default: 2k,8k,32k)")
    p.add_argument("--s-q", dest="s_q", type=parse_tokens, default=None, help="query tokens per request (default: 1 and the spec's max_q)")
    p.add_argument("--budget", type=parse_duration, default=None, help="wall-time budget, e.g. 10m: no new candidates after it")
    p.add_argument("--jobs", type=int, default=None, help="CPU compile processes (default: min(8, cores - GPUs))")
    p.add_argument("--devices", default="0", help="GPUs to time on: 'all' or indices '0,1' (default: 0)")
    p.add_argument("--timeout", type=parse_duration, default=DEFAULT_TIMEOUT_S,
                   help=f"per-candidate timeout (check + timing) before its worker is killed (default: {DEFAULT_TIMEOUT_S:g}s)")
    p.add_argument("--rep-ms", type=float, default=100.0, help="timed milliseconds per candidate (default: 100)")
    p.add_argument("--no-graphs", action="store_true",
                   help="rank by plain Python calls instead of CUDA-graph replays (the call time is kept either way)")
    p.add_argument("--retry-failed", action="store_true", help="measure again the candidates that failed before")
    p.add_argument("--cache", type=Path, default=None, help="kernel cache folder (default: $MLAGEN_CACHE_DIR)")
    p.add_argument("--db", type=Path, default=None, help="results database (default: $MLAGEN_TUNE_DB or <cache>/tune.sqlite)")
    p.add_argument("--top", type=int, default=5, help="leaderboard rows per bucket (default: 5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON (no progress bar)")
    p.add_argument("--show", action="store_true", help="list what is tuned (by spec, GPU and toolchain) and the speedups")
    p.add_argument("--compile-only", action="store_true",
                   help="only compile every candidate into the cache (no GPU needed; run before a GPU session)")
    p.add_argument("--in-process", action="store_true",
                   help="time in this process instead of one worker per GPU (debugging: no timeout, a faulting "
                        "kernel ends the sweep)")
    p.add_argument("--dry-run", action="store_true",
                   help="run the sweep with a fake timer and no compiles (tries the UX; rows go under a fake GPU name)")


def _cli_error(message: str):
    from mlagen.cli import CLIError

    return CLIError(message)


def _parse_devices(text: str) -> list[str]:
    text = text.strip().lower()
    parent = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = [d.strip() for d in parent.split(",") if d.strip()] if parent else None
    if text == "all":
        if visible is not None:
            return visible
        import torch

        n = torch.cuda.device_count()
        if n == 0:
            raise _cli_error("--devices all: no CUDA device is visible")
        return [str(i) for i in range(n)]
    try:
        idx = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise _cli_error(f"--devices {text!r}: expected 'all' or indices like 0,1") from None
    if not idx or len(set(idx)) != len(idx) or min(idx) < 0:
        raise _cli_error(f"--devices {text!r}: expected distinct indices like 0,1")
    if visible is not None:
        if max(idx) >= len(visible):
            raise _cli_error(f"--devices {text!r}: only {len(visible)} devices are visible (CUDA_VISIBLE_DEVICES={parent})")
        return [visible[i] for i in idx]
    return [str(i) for i in idx]


def run_cli(args: argparse.Namespace) -> int:
    """``mlagen tune`` (see :func:`configure`)."""
    from mlagen.spec import load_spec_file
    from mlagen.tune_db import TuneDBError

    try:
        if args.show:
            return _show(args)
        if args.spec is None:
            raise _cli_error("tune: a spec file is required (or --show)")
        spec = load_spec_file(args.spec).spec
        from mlagen.plan import supports

        why = supports(spec)
        if why:
            raise _cli_error(f"{args.spec}: cannot tune: {why}")
        try:
            buckets = buckets_for(spec, args.batch or DEFAULT_BATCHES, args.seqlen or DEFAULT_SEQLENS, args.s_q)
        except ValueError as e:
            raise _cli_error(str(e)) from None
        if args.jobs is not None and args.jobs < 0:
            raise _cli_error("--jobs must be >= 0")
        if args.compile_only:
            return _compile_only(spec, args)
        return _sweep(spec, buckets, args)
    except KeyboardInterrupt:
        print("mlagen tune: interrupted (measured candidates are kept; a re-run resumes)", file=sys.stderr)
        return 130
    except TuneDBError as e:
        raise _cli_error(str(e)) from None
    except TuneError as e:
        raise _cli_error(f"tune: {e}") from None


def _compile_only(spec: MLASpec, args) -> int:
    from mlagen.device import H100_SXM

    facts = H100_SXM
    plans = candidates(spec, facts)
    builds = _Builds(spec, facts, jit_builder, default_jobs(0) if args.jobs is None else args.jobs,
                     str(args.cache) if args.cache else None)
    builds.submit(plans)
    start = time.monotonic()
    try:
        while builds.pending:
            for k, ok in builds.poll(1.0):
                if not args.json:
                    info = builds.info.get(k) or {}
                    what = ("built" if info.get("cold") else "cached") if ok else "FAILED"
                    print(f"{what:6s} {compile_label(builds._plans[k])}  {info.get('entry', '')}", flush=True)
    except KeyboardInterrupt:
        builds.close()
        return 130
    builds.close()
    data = {"spec_key": spec.key, "compiles": len(builds.state), "failed": builds.errors,
            "seconds": round(time.monotonic() - start, 1), "cache": str(args.cache or "")}
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print(f"{len(builds.state)} kernels ({len(plans)} candidates) for {spec.key} in {data['seconds']} s, "
              f"{len(builds.errors)} failed")
        for k, err in builds.errors.items():
            print(f"  {compile_label(builds._plans[k])}: {err.splitlines()[0]}")
    return 1 if builds.errors else 0


class _ProgressView:
    """The rich progress bar of a sweep (on stderr): candidates done / left, compiles, best so far, ETA."""

    def __init__(self, spec: MLASpec):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(stderr=True, highlight=False, markup=False)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=False,
        )
        self.spec = spec
        self.task = None
        self.compiled = 0
        self.compiles = 0

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def __call__(self, kind: str, data: dict) -> None:
        p = self.progress
        if kind == "plan":
            self.compiles = data["compiles"]
            facts = data["facts"]
            self.console.print(f"tuning {self.spec.key} on {facts.name} ({facts.sm_count} SMs): {data['candidates']} "
                               f"candidates x {len(data['buckets'])} buckets; {data['skipped']} already measured, "
                               f"{data['total']} to go; {self.compiles} kernels to compile or load")
            self.task = p.add_task("tune", total=max(data["total"], 1), info="")
        elif kind == "build":
            self.compiled += 1
            if not data["ok"]:
                first = (data.get("error") or "").splitlines()[:1]
                self.console.print(f"compile failed: {compile_label(data['plan'])}: {first[0] if first else ''}")
        elif kind == "result" and self.task is not None:
            m: Measurement = data["measurement"]
            best, heur = data["best_ms"], data["heuristic_ms"]
            info = f"{m.bucket.label}: best {best:.4f} ms" if best else f"{m.bucket.label}"
            if best and heur:
                info += f" ({heur / best:.2f}x heuristic)"
            p.update(self.task, completed=data["done"], description=f"compiled {self.compiled}/{self.compiles}",
                     info=info)
            if not m.ok:
                first = (m.error or "").splitlines()[:1]
                self.console.print(f"{m.status}: {plan_label(m.plan)} in {m.bucket.label}: {first[0] if first else ''}")
        elif kind == "stop":
            why = {"budget": "budget spent", "interrupted": "interrupted"}[data["reason"]]
            self.console.print(f"{why}: no new candidates ({data['remaining']} left; a re-run resumes)")


def _sweep(spec: MLASpec, buckets: list[Bucket], args) -> int:
    db = TuneDB(args.db) if args.db else TuneDB()
    if args.dry_run:
        executor = InlineExecutor(FakeTimer(sleep_s=0.002))
        builder, jobs = FakeBuilder(), 0
    elif args.in_process:
        executor = InlineExecutor(CudaTimer(cache_dir=str(args.cache) if args.cache else None, rep_ms=args.rep_ms,
                                            graphs=not args.no_graphs))
        builder, jobs = jit_builder, default_jobs(1) if args.jobs is None else args.jobs
    else:
        from functools import partial

        from mlagen.jit import cache_root

        devices = _parse_devices(args.devices)
        timer = partial(CudaTimer, cache_dir=str(args.cache) if args.cache else None, rep_ms=args.rep_ms,
                        graphs=not args.no_graphs)
        # worker output (DSL and driver messages) would break the progress bar and the JSON
        log_dir = cache_root() / "tune-logs"
        executor = ProcessExecutor(timer, devices, timeout_s=args.timeout, log_dir=log_dir)
        builder, jobs = jit_builder, default_jobs(len(devices)) if args.jobs is None else args.jobs
    kwargs = dict(db=db, executor=executor, builder=builder, jobs=jobs, budget_s=args.budget,
                  cache_dir=args.cache, retry_failed=args.retry_failed)
    if args.json:
        report = Tuner(spec, buckets, **kwargs).run()
        print(json.dumps(report.to_dict(top=args.top), indent=1))
    else:
        with _ProgressView(spec) as view:
            if isinstance(executor, ProcessExecutor):
                view.console.print(f"starting GPU workers on {', '.join(executor.labels)} "
                                   f"(their output: {executor.log_dir})")
            report = Tuner(spec, buckets, on_event=view, **kwargs).run()
        _print_report(report, args.top)
    return 130 if report.stopped == "interrupted" else 0


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _print_report(report: TuneReport, top: int) -> None:
    from mlagen.cli import _console, _table

    console = _console()
    k = report.key
    for s in report.summaries():
        title = f"{s.bucket.label}: {len(s.ok)} measured, {len(s.failed)} failed"
        table = _table(title, "#", "plan", "median ms", "vs heuristic", "", right=(0, 2, 3))
        for i, m in enumerate(s.ok[:top], 1):
            vs = f"{s.heuristic.median_ms / m.median_ms:.3f}x" if s.heuristic and s.heuristic.ok else "-"
            table.add_row(str(i), plan_label(m.plan), _fmt_ms(m.median_ms), vs, "heuristic" if m.is_heuristic else "")
        if s.heuristic is not None and s.heuristic.ok and s.heuristic not in s.ok[:top]:
            rank = s.ok.index(s.heuristic) + 1
            table.add_row(str(rank), plan_label(s.heuristic.plan), _fmt_ms(s.heuristic.median_ms), "1.000x", "heuristic")
        for m in s.failed[:top]:
            first = (m.error or "").splitlines()[:1]
            table.add_row("", plan_label(m.plan), m.status, "", first[0][:100] if first else "")
        console.print(table)
        console.print()
    summary = _table(f"Tuned vs heuristic: {report.spec.key} on {k.gpu_name} ({k.sm_count} SMs)",
                     "bucket", "tuned plan", "ms", "heuristic ms", "speedup", right=(2, 3, 4))
    for s in report.summaries():
        sp = s.speedup
        summary.add_row(s.bucket.label, plan_label(s.best.plan) if s.best else "-", _fmt_ms(s.best.median_ms if s.best else None),
                        _fmt_ms(s.heuristic.median_ms if s.heuristic and s.heuristic.ok else None),
                        "-" if sp is None else f"{sp:.3f}x")
    console.print(summary)
    state = {None: "complete", "budget": "stopped by the budget", "interrupted": "interrupted"}[report.stopped]
    console.print(f"{state}: {report.measured} candidates measured now, {report.skipped} from earlier runs, "
                  f"{report.remaining} left; {report.elapsed_s:.0f} s; database {report.db_path}")


def show_data(db: TuneDB, spec_key: str | None = None) -> list[dict]:
    """What ``mlagen tune --show --json`` prints: one entry per (spec, GPU, toolchain)."""
    try:
        current = toolchain()
    except Exception:  # noqa: BLE001 - no CuTe DSL here: nothing is current
        current = None
    groups: dict[TuneKey, list[Measurement]] = {}
    for m in db.all_measurements(spec_key):
        groups.setdefault(m.key, []).append(m)
    out = []
    for key in sorted(groups, key=lambda k: (k.spec_key, k.gpu_name, k.sm_count, k.mlagen_version, k.cutedsl_version)):
        rows = groups[key]
        is_current = current is not None and (key.cutedsl_version, key.mlagen_version, key.template_hash) == current
        sums = summarize(rows)
        speedups = [s.speedup for s in sums if s.speedup is not None]
        out.append({
            **key.to_dict(),
            "current": is_current,
            "measured": len(rows),
            "failed": sum(1 for m in rows if not m.ok),
            "last": max(m.created for m in rows),
            "geomean_speedup": round(math.exp(sum(map(math.log, speedups)) / len(speedups)), 4) if speedups else None,
            "buckets": [{
                **s.bucket._asdict(),
                "label": s.bucket.label,
                "plan": s.best.plan if s.best else None,
                "plan_label": plan_label(s.best.plan) if s.best else None,
                "best_ms": s.best.median_ms if s.best else None,
                "heuristic_ms": s.heuristic.median_ms if s.heuristic and s.heuristic.ok else None,
                "speedup": None if s.speedup is None else round(s.speedup, 4),
                "measured_ok": len(s.ok),
                "failed": len(s.failed),
            } for s in sums],
        })
    return out


def _show(args) -> int:
    from mlagen.cli import _console, _table
    from mlagen.spec import load_spec_file

    path = args.db or default_db_path()
    spec_key = load_spec_file(args.spec).spec.key if args.spec is not None else None
    with TuneDB(path, readonly=True) as db:
        data = show_data(db, spec_key)
    if args.json:
        print(json.dumps({"db": str(path), "entries": data}, indent=1))
        return 0
    console = _console()
    if not data:
        console.print(f"nothing tuned in {path}" + (f" for {spec_key}" if spec_key else ""))
        return 0
    for e in data:
        state = "current" if e["current"] else "other toolchain: ignored by dispatch"
        gm = f", geomean speedup {e['geomean_speedup']:.3f}x" if e["geomean_speedup"] else ""
        title = (f"{e['spec_key']} on {e['gpu_name']} ({e['sm_count']} SMs): CuTe DSL {e['cutedsl_version']}, "
                 f"mlagen {e['mlagen_version']}, templates {e['template_hash'][:12]} [{state}]; "
                 f"{e['measured']} rows, {e['failed']} failed{gm}; last {time.strftime('%Y-%m-%d %H:%M', time.localtime(e['last']))}")
        table = _table(title, "bucket", "tuned plan", "ms", "heuristic ms", "speedup", "ok", "failed",
                       right=(2, 3, 4, 5, 6))
        for b in e["buckets"]:
            table.add_row(b["label"], b["plan_label"] or "-", _fmt_ms(b["best_ms"]), _fmt_ms(b["heuristic_ms"]),
                          "-" if b["speedup"] is None else f"{b['speedup']:.3f}x", str(b["measured_ok"]), str(b["failed"]))
        console.print(table)
        console.print()
    console.print(f"database: {path}")
    return 0
