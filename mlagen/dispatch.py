"""Runtime dispatch of tuned plans: shape buckets, the per-spec table, :class:`TunedKernel`.

Decode cost depends on the batch, the context length, s_q and the head count
(fixed by the spec). A call is bucketed from tensor *shapes* only, never from
GPU memory (no synchronisation, CUDA-graph safe)::

    Bucket(s_q, batch rounded up to a power of two,
           block_table.shape[1] * page rounded up to a power of two)

``mlagen tune`` measures candidates per bucket; :class:`DispatchTable` maps a
bucket to the fastest plan, a missing bucket to the nearest tuned one (same
s_q first, then the smallest log2 distance in batch plus context, ties to the
larger bucket), and a spec with nothing tuned to the heuristic plan
(:func:`mlagen.plan.plan_for`). Where the heuristic plan depends on s_q
(:func:`mlagen.plan.plans_by_s_q`: fp8 m-block pairs that only some s_q fill,
small s_q on a heads_n kernel compiled for them), an
s_q with no tuned bucket of its own takes its own heuristic plan, not another
s_q's winner (and never a plan compiled for fewer query tokens than the
call brings, ``q_tokens``). Tables are read from the database once per
process and a call's lookup is a dict lookup (about a microsecond).

Wiring into the JIT (for ``mlagen.compile``)::

    plan = tuned_plan(spec, bucket, facts)          # one shape: KernelPlan or None
    kernel = TunedKernel(spec, device=device, cache_dir=cache_dir)   # every shape
    kernel.prepare()                                # optional: load all plans before graph capture

``TunedKernel`` is called exactly like ``MLADecodeKernel``; with nothing tuned
it runs the heuristic plan.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Callable, NamedTuple

from mlagen.plan import KernelPlan, PlanError, check_plan, plan_for, plans_by_s_q, serves

__all__ = [
    "Bucket",
    "DispatchTable",
    "TunedKernel",
    "bucket_of",
    "clear_cache",
    "heuristic_table",
    "load_table",
    "nearest_bucket",
    "pow2_ceil",
    "tuned_plan",
]


class Bucket(NamedTuple):
    """A shape bucket: query tokens per request, batch (power of two), max context in tokens (power of two)."""

    s_q: int
    batch: int
    max_ctx: int

    @property
    def label(self) -> str:
        return f"s_q={self.s_q} batch={self.batch} ctx={_tokens(self.max_ctx)}"


def _tokens(n: int) -> str:
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}k"
    return str(n)


def pow2_ceil(n: int) -> int:
    """The smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def bucket_of(spec, batch: int, s_q: int, block_table_width: int) -> Bucket:
    """The bucket of a call: from shapes only (``q.shape[:2]``, ``block_table.shape[1]``)."""
    return Bucket(s_q, pow2_ceil(batch), pow2_ceil(block_table_width * spec.page))


def _log2(n: int) -> float:
    # exact for powers of two, which buckets are
    if n > 0 and n & (n - 1) == 0:
        return float(n.bit_length() - 1)
    import math

    return math.log2(max(n, 1))


def nearest_bucket(bucket: Bucket, available) -> Bucket | None:
    """The tuned bucket closest to ``bucket``: same s_q if any (else the closest s_q), then the smallest
    ``|log2 batch ratio| + |log2 context ratio|``, ties to the larger bucket; ``None`` if none."""
    best, best_d = None, None
    lb, lc = _log2(bucket.batch), _log2(bucket.max_ctx)
    for cand in available:
        d = (
            abs(cand.s_q - bucket.s_q),
            abs(_log2(cand.batch) - lb) + abs(_log2(cand.max_ctx) - lc),
            -(cand.batch * cand.max_ctx),
            -cand.s_q,
        )
        if best_d is None or d < best_d:
            best, best_d = cand, d
    return best


# the fraction a tuned plan must beat the heuristic plan by, in its bucket, to replace it:
# repeated timings of one kernel differ by about this much
MIN_GAIN = 0.02


class DispatchTable:
    """Bucket -> plan for one spec on one GPU: the tuned winners, nearest-bucket fallback, heuristic fallback."""

    def __init__(self, spec, tuned: dict[Bucket, KernelPlan], heuristic: Callable[[], KernelPlan] | KernelPlan,
                 *, times: dict[Bucket, float] | None = None, source: str = "",
                 by_s_q: Callable[[], dict[int, KernelPlan]] | dict[int, KernelPlan] | None = None):
        self.spec = spec
        self.tuned: dict[Bucket, KernelPlan] = dict(tuned)
        self.times = dict(times or {})
        self.source = source
        self._heuristic = heuristic
        self._heuristic_plan: KernelPlan | None = heuristic if isinstance(heuristic, KernelPlan) else None
        # s_q -> heuristic plan, where it depends on s_q (empty: the one heuristic plan serves every s_q)
        self._by_s_q = by_s_q
        self._by_s_q_plans: dict[int, KernelPlan] | None = by_s_q if isinstance(by_s_q, dict) else None
        # bucket -> (plan, how): filled lazily for buckets that are not tuned
        self._resolved: dict[Bucket, tuple[KernelPlan, str]] = {b: (p, "tuned") for b, p in self.tuned.items()}
        self._plans: dict[Bucket, KernelPlan] = dict(self.tuned)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DispatchTable({self.spec.key}, {len(self.tuned)} tuned buckets)"

    @property
    def heuristic(self) -> KernelPlan:
        if self._heuristic_plan is None:
            self._heuristic_plan = self._heuristic()  # type: ignore[operator]
        return self._heuristic_plan

    @property
    def heuristic_by_s_q(self) -> dict[int, KernelPlan]:
        """s_q -> heuristic plan; empty where one plan serves every s_q."""
        if self._by_s_q_plans is None:
            self._by_s_q_plans = dict(self._by_s_q()) if callable(self._by_s_q) else {}
        return self._by_s_q_plans

    @property
    def varies_by_s_q(self) -> bool:
        """Whether calls of different s_q run different heuristic plans."""
        return len(set(self.heuristic_by_s_q.values())) > 1

    def heuristic_for(self, s_q: int) -> KernelPlan:
        """The heuristic plan of calls with ``s_q`` query tokens."""
        return self.heuristic_by_s_q.get(s_q) or self.heuristic

    def resolve(self, bucket: Bucket) -> tuple[KernelPlan, str]:
        """``(plan, how)`` with ``how`` one of ``"tuned"``, ``"nearest"``, ``"heuristic"``."""
        hit = self._resolved.get(bucket)
        if hit is not None:
            return hit
        with self._lock:
            near = nearest_bucket(bucket, self.tuned)
            if near is not None and near.s_q != bucket.s_q and self.varies_by_s_q:
                # another s_q's winner may not suit this s_q (fp8 pairs it leaves unfilled, a narrower kernel):
                # its own heuristic plan instead
                near = None
            if near is not None and not serves(self.spec, self.tuned[near], bucket.s_q):
                near = None  # even where one plan serves every s_q: never a kernel compiled for fewer tokens
            hit = (self.tuned[near], "nearest") if near is not None else (self.heuristic_for(bucket.s_q), "heuristic")
            self._resolved[bucket] = hit
            self._plans[bucket] = hit[0]
        return hit

    def plan(self, bucket: Bucket) -> KernelPlan:
        """The plan for ``bucket`` (a dict lookup once the bucket was seen)."""
        plan = self._plans.get(bucket)
        if plan is None:
            plan = self.resolve(bucket)[0]
        return plan

    def plan_for_call(self, batch: int, s_q: int, block_table_width: int) -> KernelPlan:
        """The plan for a call's shapes."""
        b = Bucket(s_q, pow2_ceil(batch), pow2_ceil(block_table_width * self.spec.page))
        plan = self._plans.get(b)
        if plan is None:
            plan = self.resolve(b)[0]
        return plan

    def distinct_plans(self) -> list[KernelPlan]:
        """The tuned plans and the per-s_q heuristic ones, each once."""
        seen: dict[KernelPlan, None] = {}
        for p in [*self.tuned.values(), *self.heuristic_by_s_q.values()]:
            seen.setdefault(p, None)
        return list(seen)


# (db path, spec key, gpu name, sm count) -> table; read from the database once per process
_tables: dict[tuple, DispatchTable] = {}
_tables_lock = threading.Lock()


def clear_cache() -> None:
    """Forget the tables read so far (after a tuning run in this process, or in tests)."""
    with _tables_lock:
        _tables.clear()


def load_table(spec, device_facts, db: str | Path | None = None) -> DispatchTable:
    """The dispatch table of ``spec`` on ``device_facts`` from the database (read once per process).

    Only rows of the current toolchain (CuTe DSL, mlagen, templates) and of this GPU
    model and SM count count; plans that no longer pass :func:`mlagen.plan.check_plan`
    on this device are dropped.
    """
    from mlagen.tune_db import TuneDB, TuneDBError, default_db_path, tune_key

    path = Path(db) if db is not None else default_db_path()
    memo = (str(path), spec.key, device_facts.name, device_facts.sm_count)
    table = _tables.get(memo)
    if table is not None:
        return table
    tuned: dict[Bucket, KernelPlan] = {}
    times: dict[Bucket, float] = {}
    try:
        with TuneDB(path, readonly=True) as dbh:
            key = tune_key(spec, device_facts)
            heuristic_rows = {m.bucket: m for m in dbh.measurements(key) if m.ok and m.is_heuristic}
            for bucket, m in dbh.best(key).items():
                # a winner within timing noise of the heuristic plan is not a win: keep the heuristic
                base = heuristic_rows.get(bucket)
                if base is not None and m.median_ms > base.median_ms * (1.0 - MIN_GAIN):
                    m = base
                try:
                    plan = check_plan(spec, KernelPlan.from_dict(m.plan), device_facts)
                except (PlanError, TypeError, ValueError):
                    continue  # a row this planner no longer accepts
                tuned[bucket] = plan
                times[bucket] = m.median_ms
    except (TuneDBError, sqlite3.Error, ImportError, OSError):
        # a missing, foreign or unreadable database (or no CuTe DSL to key it): nothing is tuned
        tuned, times = {}, {}
    table = heuristic_table(spec, device_facts, tuned, times=times, source=str(path))
    with _tables_lock:
        return _tables.setdefault(memo, table)


def heuristic_table(spec, device_facts, tuned: dict[Bucket, KernelPlan] | None = None, *,
                    times: dict[Bucket, float] | None = None, source: str = "heuristic") -> DispatchTable:
    """A dispatch table over ``tuned`` (default: nothing tuned) that falls back to the heuristic plan of each
    call's s_q."""
    return DispatchTable(spec, tuned or {}, lambda: plan_for(spec, device_facts), times=times, source=source,
                         by_s_q=lambda: plans_by_s_q(spec, device_facts))


def tuned_plan(spec, bucket: Bucket, device_facts, *, db: str | Path | None = None,
               nearest: bool = True) -> KernelPlan | None:
    """The tuned plan for ``bucket`` (or, with ``nearest``, of the nearest tuned bucket); ``None`` when
    nothing is tuned for ``spec`` on this GPU with this toolchain (the caller uses the heuristic plan)."""
    table = load_table(spec, device_facts, db)
    if not table.tuned:
        return None
    if not nearest:
        return table.tuned.get(bucket)
    plan, how = table.resolve(bucket)
    return None if how == "heuristic" else plan


class TunedKernel:
    """A decode kernel that picks the tuned plan per call by shape bucket.

    Called like :class:`mlagen.runtime.MLADecodeKernel`
    (``out, lse = kernel(q, kv_cache, block_table, cache_seqlens, ...)``, same
    keywords). Holds one ``MLADecodeKernel`` per distinct plan, compiled (or
    loaded from the cache) on first use through :func:`mlagen.jit.compile`;
    :meth:`prepare` loads them all up front, e.g. before CUDA-graph capture.
    """

    def __init__(self, spec, *, device=None, db: str | Path | None = None, cache_dir=None,
                 device_facts=None, compile_fn: Callable | None = None, tuned: bool = True):
        if device_facts is None:
            from mlagen.device import current_device_facts

            device_facts = current_device_facts(device)
        self.spec = spec
        self.device_facts = device_facts
        # tuned=False: the heuristic plans only, one per s_q where they differ (plans_by_s_q)
        self.table = load_table(spec, device_facts, db) if tuned else heuristic_table(spec, device_facts)
        if compile_fn is None:
            def compile_fn(spec, plan):
                import mlagen.jit

                return mlagen.jit.compile(spec, plan, device=device, cache_dir=cache_dir)
        self._compile = compile_fn
        self._by_bucket: dict[Bucket, object] = {}
        self._by_plan: dict[KernelPlan, object] = {}
        self._lock = threading.Lock()
        self._page = spec.page

    def __repr__(self) -> str:
        return f"TunedKernel({self.spec.key}, {len(self.table.tuned)} tuned buckets, {len(self._by_plan)} loaded)"

    def _kernel_of_plan(self, plan: KernelPlan):
        kernel = self._by_plan.get(plan)
        if kernel is None:
            with self._lock:
                kernel = self._by_plan.get(plan)
                if kernel is None:
                    kernel = self._compile(self.spec, plan)
                    self._by_plan[plan] = kernel
        return kernel

    def kernel_for(self, batch: int, s_q: int, block_table_width: int):
        """The ``MLADecodeKernel`` a call of these shapes runs."""
        b = Bucket(s_q, pow2_ceil(batch), pow2_ceil(block_table_width * self._page))
        kernel = self._by_bucket.get(b)
        if kernel is None:
            kernel = self._kernel_of_plan(self.table.plan(b))
            self._by_bucket[b] = kernel
        return kernel

    def plan_for(self, batch: int, s_q: int, block_table_width: int) -> tuple[KernelPlan, str]:
        """``(plan, how)`` for a call's shapes, ``how`` in tuned / nearest / heuristic."""
        return self.table.resolve(bucket_of(self.spec, batch, s_q, block_table_width))

    @property
    def heuristic(self):
        """The kernel of the heuristic plan."""
        return self._kernel_of_plan(self.table.heuristic)

    def prepare(self) -> list:
        """Compile or load every tuned plan's kernel and the heuristic ones now."""
        plans = [*self.table.distinct_plans(), self.table.heuristic]
        return [self._kernel_of_plan(p) for p in dict.fromkeys(plans)]

    def workspace(self, batch: int, s_q: int, device, num_parts: int | None = None, *, block_table_width: int):
        """Scratch memory for calls of these shapes (the part count depends on the plan picked)."""
        return self.kernel_for(batch, s_q, block_table_width).workspace(batch, s_q, device, num_parts)

    def __call__(self, q, kv_cache, block_table, cache_seqlens, **kwargs):
        try:
            batch, s_q = q.shape[0], q.shape[1]
            width = block_table.shape[1]
        except (AttributeError, IndexError, TypeError):
            # malformed inputs: the heuristic kernel's checks name the problem
            return self.heuristic(q, kv_cache, block_table, cache_seqlens, **kwargs)
        b = Bucket(s_q, pow2_ceil(batch), pow2_ceil(width * self._page))
        kernel = self._by_bucket.get(b)
        if kernel is None:
            kernel = self.kernel_for(batch, s_q, width)
        return kernel(q, kv_cache, block_table, cache_seqlens, **kwargs)
