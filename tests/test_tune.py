"""``mlagen tune`` without a GPU: the sweep loop runs on a fake timer and a fake compiler.

Covered: the candidate space, buckets and their representative lengths, the
results database (round trip, two concurrent writers, other toolchains
ignored, schema version), dispatch (exact, nearest, heuristic fallback, cost
per call), and the tuner loop (winner, resume, failures of every kind, budget,
Ctrl-C, timeouts and crashes in worker processes, two devices, the compile
pool) and the CLI (``--dry-run``, ``--show --json``, argument errors).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlagen.device import H100_SXM
from mlagen.dispatch import (
    Bucket,
    TunedKernel,
    bucket_of,
    clear_cache,
    load_table,
    nearest_bucket,
    pow2_ceil,
    tuned_plan,
)
from mlagen.plan import KernelPlan, check_plan, plan_for, search_space
from mlagen.spec import MLASpec
from mlagen.tune import (
    FAKE_GPU,
    FakeBuilder,
    FakeTimer,
    InlineExecutor,
    ProcessExecutor,
    TuneError,
    Tuner,
    bucket_seqlens,
    buckets_for,
    candidates,
    fake_cost,
    parse_duration,
    parse_tokens,
    plan_label,
    show_data,
)
from mlagen.tune_db import SCHEMA_VERSION, Measurement, TuneDB, TuneDBError, TuneKey, plan_key, toolchain, tune_key
from mlagen.variants import kernel_variants

REPO = Path(__file__).resolve().parent.parent
SPEC = MLASpec(q_heads=16)
SPEC_Q2 = MLASpec(q_heads=16, max_q=2, causal=True)


@pytest.fixture(autouse=True)
def _fresh_tables():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def db(tmp_path):
    with TuneDB(tmp_path / "tune.sqlite") as handle:
        yield handle


def inline_tuner(db, spec=SPEC, buckets=None, timer=None, builder=None, **kwargs) -> Tuner:
    return Tuner(spec, buckets or [Bucket(1, 8, 2048)], db=db, executor=InlineExecutor(timer or FakeTimer()),
                 builder=builder or FakeBuilder(), jobs=0, **kwargs)


def few_plans(spec=SPEC, n=3):
    """The heuristic plan and n-1 others (pps 1 and 2)."""
    h = plan_for(spec, FAKE_GPU)
    others = [p for p in candidates(spec, FAKE_GPU) if p != h]
    return [h, *others[: n - 1]]


# ------------------------------------------------------------------ candidates
@pytest.mark.parametrize("name", ["h128_p64_bf16", "h40_l256r32_p64", "h16_l64r16_p256_fp16", "h128_l128r0_p64_q2_causal"])
def test_candidates_are_the_checked_search_space_times_parts(name):
    spec = kernel_variants()[name]
    cands = candidates(spec, H100_SXM)
    assert len(set(cands)) == len(cands)
    for plan in cands:
        assert check_plan(spec, plan, H100_SXM) == plan
        assert plan.parts_per_sm in (1, 2)
    compile_keys = {p.key for p in cands}
    assert compile_keys == {p.key for p in search_space(spec, H100_SXM)}
    assert len(cands) == 2 * len(set(search_space(spec, H100_SXM)))
    assert plan_for(spec, H100_SXM) in cands
    # labels are unique per candidate
    assert len({plan_label(p) for p in cands}) == len(cands)


def test_candidates_shrink_with_a_smaller_device():
    small = dataclasses.replace(H100_SXM, name="small", smem_per_block=160 * 1024)
    big, few = candidates(SPEC, H100_SXM), candidates(SPEC, small)
    assert 0 < len(few) < len(big)
    for plan in few:
        check_plan(SPEC, plan, small)


# --------------------------------------------------------------------- buckets
def test_pow2_and_bucket_of():
    assert [pow2_ceil(n) for n in (0, 1, 2, 3, 4, 5, 1000, 1024, 1025)] == [1, 1, 2, 4, 4, 8, 1024, 1024, 2048]
    assert bucket_of(SPEC, 5, 1, 3) == Bucket(1, 8, 256)
    assert bucket_of(SPEC, 128, 1, 512) == Bucket(1, 128, 32768)
    assert bucket_of(MLASpec(q_heads=16, page=1), 1, 1, 3000) == Bucket(1, 1, 4096)
    assert Bucket(2, 32, 8192).label == "s_q=2 batch=32 ctx=8k"


def test_default_buckets():
    assert len(buckets_for(SPEC)) == 12
    bs = buckets_for(SPEC_Q2)
    assert len(bs) == 24 and {b.s_q for b in bs} == {1, 2}
    assert {b.batch for b in bs} == {1, 8, 32, 128} and {b.max_ctx for b in bs} == {2048, 8192, 32768}
    # rounded up, duplicates dropped
    assert buckets_for(SPEC, [3, 4], [3000], [1]) == [Bucket(1, 4, 4096)]
    with pytest.raises(ValueError, match="s_q = 3"):
        buckets_for(SPEC_Q2, s_qs=[3])


@pytest.mark.parametrize("spec", [SPEC, SPEC_Q2, MLASpec(q_heads=16, page=256)])
def test_bucket_seqlens_land_in_their_bucket(spec):
    for bucket in buckets_for(spec, [1, 8, 128], [64, 2048, 32768, 131072]):
        lens = bucket_seqlens(bucket)
        assert len(lens) == bucket.batch
        assert all(bucket.s_q <= n <= bucket.max_ctx for n in lens)
        width = max(-(-n // spec.page) for n in lens)
        assert bucket_of(spec, bucket.batch, bucket.s_q, width) == bucket
        assert lens == bucket_seqlens(bucket)  # deterministic
    big = bucket_seqlens(Bucket(1, 128, 32768))
    assert 12000 < sum(big) / len(big) < 20000  # ~ normal(L, L/2), L = ctx / 2, clipped


def test_parse_tokens_and_durations():
    assert parse_tokens("1,8,64") == [1, 8, 64]
    assert parse_tokens("2k, 32k,128K") == [2048, 32768, 131072]
    assert parse_tokens("1.5k") == [1536]
    assert parse_duration("10m") == 600 and parse_duration("90s") == 90 and parse_duration("1h30m") == 5400
    assert parse_duration("45") == 45
    import argparse

    for bad in ("x", "0", "-1", "1.3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_tokens(bad)
    for bad in ("10x", "m", "0s", "5m3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_duration(bad)


# -------------------------------------------------------------------- database
def _row(bucket, plan, ms, status="ok", heuristic=False, error=""):
    return Measurement(bucket=bucket, plan=plan.to_dict(), status=status, median_ms=ms,
                       times_ms=[ms, ms * 1.01, ms * 0.99] if ms else [], error=error, is_heuristic=heuristic,
                       shape={"batch": bucket.batch}, device="cuda:0", created=time.time())


def test_db_round_trip(db):
    key = tune_key(SPEC, H100_SXM)
    b = Bucket(1, 8, 2048)
    p = plan_for(SPEC, H100_SXM)
    db.record(key, SPEC.to_dict(), _row(b, p, 0.05, heuristic=True))
    db.record(key, SPEC.to_dict(), _row(b, dataclasses.replace(p, stages=1), None, status="error", error="boom\nline 2"))
    rows = db.measurements(key)
    assert len(rows) == 2
    ok, bad = rows
    assert ok.plan == p.to_dict() and ok.median_ms == 0.05 and ok.times_ms == [0.05, 0.0505, 0.0495]
    assert ok.is_heuristic and ok.ok and ok.bucket == b and ok.key == key and ok.shape == {"batch": 8}
    assert bad.status == "error" and bad.error == "boom\nline 2" and not bad.ok
    assert db.measured(key) == {(b, plan_key(p)): "ok", (b, plan_key(bad.plan)): "error"}
    assert db.measured(key, include_failed=False) == {(b, plan_key(p)): "ok"}
    assert db.best(key)[b].plan == p.to_dict()
    assert db.spec_dict(SPEC.key) == json.loads(json.dumps(SPEC.to_dict()))
    assert db.schema_version() == SCHEMA_VERSION
    # re-measuring replaces the row
    db.record(key, SPEC.to_dict(), _row(b, p, 0.04, heuristic=True))
    assert len(db.measurements(key)) == 2 and db.best(key)[b].median_ms == 0.04
    with pytest.raises(ValueError):
        db.record(key, SPEC.to_dict(), _row(b, p, 0.04, status="great"))
    # journal in WAL mode
    import sqlite3

    assert sqlite3.connect(db.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_db_readonly_missing_file_and_newer_schema(tmp_path):
    missing = TuneDB(tmp_path / "nope.sqlite", readonly=True)
    assert missing.measurements(tune_key(SPEC, H100_SXM)) == [] and missing.all_measurements() == []
    assert not (tmp_path / "nope.sqlite").exists()
    path = tmp_path / "new.sqlite"
    with TuneDB(path) as d:
        d.record(tune_key(SPEC, H100_SXM), SPEC.to_dict(), _row(Bucket(1, 1, 64), plan_for(SPEC), 1.0))
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    with pytest.raises(TuneDBError, match="newer mlagen"):
        TuneDB(path).measurements(tune_key(SPEC, H100_SXM))
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(TuneDBError):
        TuneDB(junk).measurements(tune_key(SPEC, H100_SXM))


def _writer(path: str, who: int, n: int) -> None:
    db = TuneDB(path)
    key = tune_key(SPEC, H100_SXM, ("dsl", "v", "t"))
    base = plan_for(SPEC, H100_SXM)
    for i in range(n):
        db.record(key, SPEC.to_dict(), _row(Bucket(1, 1 << (i % 8), 1024 * (who + 1)), dataclasses.replace(base, parts_per_sm=1 + i // 8), 0.01 * (i + 1)))
    db.close()


def test_db_two_concurrent_writer_processes(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    n = 120
    procs = [ctx.Process(target=_writer, args=(path, who, n)) for who in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = TuneDB(path, readonly=True).measurements(tune_key(SPEC, H100_SXM, ("dsl", "v", "t")))
    assert len(rows) == 2 * n
    assert {r.bucket.max_ctx for r in rows} == {1024, 2048}


def test_lookups_ignore_other_toolchains_and_gpus(db):
    fast, slow = plan_for(SPEC, H100_SXM, stages=1), plan_for(SPEC, H100_SXM)
    b = Bucket(1, 8, 2048)
    cute_v, mlagen_v, thash = toolchain()
    current = tune_key(SPEC, H100_SXM)
    db.record(current, SPEC.to_dict(), _row(b, slow, 0.5))
    others = [
        TuneKey(SPEC.key, H100_SXM.name, H100_SXM.sm_count, cute_v + ".dev", mlagen_v, thash),
        TuneKey(SPEC.key, H100_SXM.name, H100_SXM.sm_count, cute_v, mlagen_v + "+1", thash),
        TuneKey(SPEC.key, H100_SXM.name, H100_SXM.sm_count, cute_v, mlagen_v, "0" * 64),
        TuneKey(SPEC.key, "NVIDIA H200", H100_SXM.sm_count, cute_v, mlagen_v, thash),
        TuneKey(SPEC.key, H100_SXM.name, 114, cute_v, mlagen_v, thash),
        TuneKey(MLASpec(q_heads=32).key, H100_SXM.name, H100_SXM.sm_count, cute_v, mlagen_v, thash),
    ]
    for k in others:
        db.record(k, SPEC.to_dict(), _row(b, fast, 0.01))
        db.record(k, SPEC.to_dict(), _row(Bucket(1, 128, 2048), fast, 0.01))
    assert tuned_plan(SPEC, b, H100_SXM, db=db.path) == slow
    table = load_table(SPEC, H100_SXM, db.path)
    assert set(table.tuned) == {b}
    # a row the planner no longer accepts (too much shared memory) is dropped
    db.record(current, SPEC.to_dict(), _row(Bucket(1, 32, 2048), dataclasses.replace(slow, stages=6), 0.001))
    clear_cache()
    assert set(load_table(SPEC, H100_SXM, db.path).tuned) == {b}


# -------------------------------------------------------------------- dispatch
def _plans(n):
    # the split schedule takes any depth that fits (the seesaw only two buffers)
    base = plan_for(SPEC, H100_SXM, schedule="split")
    return [dataclasses.replace(base, stages=1 + i % 2, parts_per_sm=1 + i // 2) for i in range(n)]


def test_nearest_bucket_rules():
    tuned = [Bucket(1, 1, 2048), Bucket(1, 128, 32768), Bucket(2, 8, 8192)]
    assert nearest_bucket(Bucket(1, 1, 2048), tuned) == Bucket(1, 1, 2048)
    assert nearest_bucket(Bucket(1, 2, 4096), tuned) == Bucket(1, 1, 2048)        # 2 doublings vs 10
    assert nearest_bucket(Bucket(1, 64, 16384), tuned) == Bucket(1, 128, 32768)
    assert nearest_bucket(Bucket(2, 1, 2048), tuned) == Bucket(2, 8, 8192)        # same s_q first
    assert nearest_bucket(Bucket(4, 1, 2048), tuned) == Bucket(2, 8, 8192)        # then the closest s_q
    # a tie goes to the larger bucket
    assert nearest_bucket(Bucket(1, 4, 2048), [Bucket(1, 2, 2048), Bucket(1, 8, 2048)]) == Bucket(1, 8, 2048)
    assert nearest_bucket(Bucket(1, 4, 2048), []) is None


def test_dispatch_exact_nearest_and_heuristic(db):
    key = tune_key(SPEC, H100_SXM)
    p_small, p_big, p_failed, p_other = _plans(4)
    b_small, b_big = Bucket(1, 1, 2048), Bucket(1, 128, 32768)
    for b, winner in ((b_small, p_small), (b_big, p_big)):
        db.record(key, SPEC.to_dict(), _row(b, winner, 0.01))
        db.record(key, SPEC.to_dict(), _row(b, p_other, 0.02))
        db.record(key, SPEC.to_dict(), _row(b, p_failed, None, status="timeout"))  # failed rows never win
    table = load_table(SPEC, H100_SXM, db.path)
    assert table.resolve(b_small) == (p_small, "tuned")
    assert table.resolve(b_big) == (p_big, "tuned")
    assert table.resolve(Bucket(1, 2, 2048)) == (p_small, "nearest")
    assert table.resolve(Bucket(1, 64, 65536)) == (p_big, "nearest")
    assert table.plan_for_call(batch=100, s_q=1, block_table_width=400) == p_big   # 400*64 -> 32k, 100 -> 128
    assert tuned_plan(SPEC, b_big, H100_SXM, db=db.path) == p_big
    assert tuned_plan(SPEC, Bucket(1, 2, 2048), H100_SXM, db=db.path) == p_small
    assert tuned_plan(SPEC, Bucket(1, 2, 2048), H100_SXM, db=db.path, nearest=False) is None
    # nothing tuned: None from tuned_plan, the heuristic plan from the table
    empty = load_table(SPEC_Q2, H100_SXM, db.path)
    assert tuned_plan(SPEC_Q2, b_small, H100_SXM, db=db.path) is None
    assert empty.resolve(b_small) == (plan_for(SPEC_Q2, H100_SXM), "heuristic")
    # read once per process: later rows are not seen until clear_cache()
    db.record(key, SPEC.to_dict(), _row(Bucket(1, 2, 2048), p_other, 0.001))
    assert tuned_plan(SPEC, Bucket(1, 2, 2048), H100_SXM, db=db.path) == p_small
    clear_cache()
    assert tuned_plan(SPEC, Bucket(1, 2, 2048), H100_SXM, db=db.path) == p_other


class _FakeKernel:
    def __init__(self, spec, plan):
        self.spec, self.plan = spec, plan
        self.calls = 0

    def __call__(self, q, kv_cache, block_table, cache_seqlens, **kwargs):
        self.calls += 1
        return self.plan, kwargs

    def workspace(self, batch, s_q, device, num_parts=None):
        return ("ws", self.plan, batch, s_q, num_parts)


def _tuned_kernel(db_path):
    compiled = []

    def compile_fn(spec, plan):
        compiled.append(plan)
        return _FakeKernel(spec, plan)

    return TunedKernel(SPEC, db=db_path, device_facts=H100_SXM, compile_fn=compile_fn), compiled


def test_tuned_kernel_picks_per_call_and_compiles_each_plan_once(db):
    import torch

    key = tune_key(SPEC, H100_SXM)
    p_small, p_big = _plans(2)
    db.record(key, SPEC.to_dict(), _row(Bucket(1, 1, 2048), p_small, 0.01))
    db.record(key, SPEC.to_dict(), _row(Bucket(1, 128, 32768), p_big, 0.5))
    tk, compiled = _tuned_kernel(db.path)

    def call(batch, s_q, width, **kw):
        q = torch.empty(batch, s_q, SPEC.q_heads, SPEC.d_qk, dtype=torch.bfloat16)
        bt = torch.empty(batch, width, dtype=torch.int32)
        return tk(q, None, bt, torch.empty(batch, dtype=torch.int32), **kw)

    assert call(1, 1, 32)[0] == p_small
    assert call(2, 1, 20)[0] == p_small          # nearest
    assert call(128, 1, 512)[0] == p_big
    plan, kw = call(100, 1, 300, num_parts=7, validate=False)
    assert plan == p_big and kw == {"num_parts": 7, "validate": False}
    assert compiled == [p_small, p_big]          # once per distinct plan
    assert tk.plan_for(1, 1, 32) == (p_small, "tuned")
    assert tk.workspace(128, 1, "cpu", block_table_width=512) == ("ws", p_big, 128, 1, None)
    kernels = tk.prepare()
    assert {k.plan for k in kernels} == {p_small, p_big, plan_for(SPEC, H100_SXM)}


# Kimi-K2 fp8 with one drafted token: the heuristic plan pairs m-blocks only for 2-token calls
K2_FP8_Q2 = MLASpec(q_heads=64, max_q=2, causal=True, cache_dtype="fp8_e4m3")


def test_untuned_s_q_takes_its_own_heuristic_plan_where_they_differ(db):
    """A spec whose heuristic plan depends on s_q: an s_q with no tuned bucket of its own runs its heuristic
    plan, never another s_q's winner (a 2-token winner would pair 1-token calls with empty m-blocks), and a
    TunedKernel with nothing tuned compiles one kernel per distinct plan, picked by the call's s_q."""
    from mlagen.dispatch import heuristic_table
    from mlagen.plan import plans_by_s_q

    import torch

    by_s_q = plans_by_s_q(K2_FP8_Q2, H100_SXM)
    assert by_s_q[1].cluster == 1 and by_s_q[2].cluster == 2
    empty = heuristic_table(K2_FP8_Q2, H100_SXM)
    assert empty.varies_by_s_q and not empty.tuned
    assert empty.resolve(Bucket(1, 128, 16384)) == (by_s_q[1], "heuristic")
    assert empty.resolve(Bucket(2, 128, 16384)) == (by_s_q[2], "heuristic")
    # a tuned 2-token bucket is the nearest for 2-token calls only
    key = tune_key(K2_FP8_Q2, H100_SXM)
    db.record(key, K2_FP8_Q2.to_dict(), _row(Bucket(2, 128, 16384), by_s_q[2], 0.5))
    table = load_table(K2_FP8_Q2, H100_SXM, db.path)
    assert table.resolve(Bucket(2, 64, 8192)) == (by_s_q[2], "nearest")
    assert table.resolve(Bucket(1, 128, 16384)) == (by_s_q[1], "heuristic")
    assert set(table.distinct_plans()) == {by_s_q[1], by_s_q[2]}
    # one heuristic plan for every s_q (16-bit MTP): another s_q's tuned bucket is still the nearest
    assert not heuristic_table(SPEC_Q2, H100_SXM).varies_by_s_q

    compiled = []

    def compile_fn(spec, plan):
        compiled.append(plan)
        return _FakeKernel(spec, plan)

    tk = TunedKernel(K2_FP8_Q2, device_facts=H100_SXM, compile_fn=compile_fn, tuned=False)
    for s_q in (1, 2, 1, 2):
        q = torch.empty(4, s_q, K2_FP8_Q2.q_heads, K2_FP8_Q2.d_qk, dtype=torch.bfloat16)
        bt = torch.empty(4, 10, dtype=torch.int32)
        assert tk(q, None, bt, torch.empty(4, dtype=torch.int32))[0] == by_s_q[s_q]
    assert compiled == [by_s_q[1], by_s_q[2]]


TP4_Q2 = MLASpec(q_heads=32, max_q=2, causal=True)


def test_a_plan_compiled_for_fewer_query_tokens_serves_only_those_calls(db):
    """32 heads with one drafted token: 1-token calls run heads_n compiled for one token (q_tokens=1). The tuner
    measures that plan only in the buckets it serves, and a table never hands it to a call with more tokens,
    even as the nearest tuned bucket of a spec whose heuristic plan is the same for every s_q."""
    from mlagen.dispatch import heuristic_table
    from mlagen.plan import plans_by_s_q

    by_s_q = plans_by_s_q(TP4_Q2, FAKE_GPU)
    assert (by_s_q[1].q_tokens, by_s_q[2].q_tokens) == (1, 0)
    # the candidates: the spec's search space and the heads_n plans of the kernel compiled for one token
    cands = candidates(TP4_Q2, H100_SXM)
    narrow = [p for p in cands if p.q_tokens]
    assert by_s_q[1] in cands and narrow and {p.q_tokens for p in narrow} == {1}
    assert {p.schedule for p in narrow} == {"heads_n"} and {p.parts_per_sm for p in narrow} == {1, 2}
    assert all(check_plan(TP4_Q2, p, H100_SXM) == p for p in narrow)
    assert len({plan_label(p) for p in cands}) == len(cands)
    buckets = [Bucket(1, 8, 2048), Bucket(2, 8, 2048)]
    timer = FakeTimer()
    report = inline_tuner(db, spec=TP4_Q2, buckets=buckets, timer=timer, plans=[by_s_q[2], by_s_q[1]]).run()
    assert report.total == report.measured == 3  # the 1-token kernel is not run at s_q 2
    rows = db.measurements(report.key)
    assert {(r.bucket.s_q, r.plan["q_tokens"]) for r in rows} == {(1, 0), (1, 1), (2, 0)}
    # each bucket's heuristic row is its own s_q's plan
    assert {(r.bucket.s_q, r.plan["q_tokens"]) for r in rows if r.is_heuristic} == {(1, 1), (2, 0)}
    assert heuristic_table(TP4_Q2, FAKE_GPU).resolve(Bucket(1, 64, 4096)) == (by_s_q[1], "heuristic")
    # one heuristic plan for every s_q (16 heads, max_q 2: 32 rows), a tuned 1-token kernel pinned with
    # q_tokens=1: the nearest bucket of a 2-token call, but not one it can run
    narrow = plan_for(SPEC_Q2, H100_SXM, s_q=1, q_tokens=1)
    assert narrow.q_tokens == 1 and not heuristic_table(SPEC_Q2, H100_SXM).varies_by_s_q
    db.record(tune_key(SPEC_Q2, H100_SXM), SPEC_Q2.to_dict(), _row(Bucket(1, 128, 16384), narrow, 0.1))
    table = load_table(SPEC_Q2, H100_SXM, db.path)
    assert table.resolve(Bucket(1, 64, 8192)) == (narrow, "nearest")
    assert table.resolve(Bucket(2, 128, 16384)) == (plan_for(SPEC_Q2, H100_SXM), "heuristic")


def test_dispatch_cost_is_microseconds(db):
    import torch

    key = tune_key(SPEC, H100_SXM)
    for i, b in enumerate(buckets_for(SPEC)):
        db.record(key, SPEC.to_dict(), _row(b, _plans(4)[i % 4], 0.01))
    tk, _ = _tuned_kernel(db.path)
    table = tk.table
    q = torch.empty(32, 1, SPEC.q_heads, SPEC.d_qk, dtype=torch.bfloat16)
    bt = torch.empty(32, 100, dtype=torch.int32)
    lens = torch.empty(32, dtype=torch.int32)
    tk(q, None, bt, lens)   # first call of the bucket: resolve + compile
    n = 20000

    def per_call(fn) -> float:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(n):
                fn()
            best = min(best, (time.perf_counter() - t) / n)
        return best * 1e6

    lookup_us = per_call(lambda: table.plan_for_call(32, 1, 100))
    kernel_us = per_call(lambda: tk.kernel_for(32, 1, 100))
    call_us = per_call(lambda: tk(q, None, bt, lens))      # shapes from torch tensors + the fake kernel
    assert lookup_us < 20 and kernel_us < 20 and call_us < 20, (lookup_us, kernel_us, call_us)


# ----------------------------------------------------------------- tuner loop
def test_sweep_measures_every_candidate_and_finds_the_winner(db):
    buckets = [Bucket(1, 1, 2048), Bucket(1, 128, 32768)]
    events = []
    timer = FakeTimer()
    report = inline_tuner(db, buckets=buckets, timer=timer, on_event=lambda k, d: events.append(k)).run()
    cands = candidates(SPEC, FAKE_GPU)
    assert report.total == report.measured == len(buckets) * len(cands) and report.remaining == 0
    assert report.stopped is None and report.skipped == 0
    rows = db.measurements(report.key)
    assert len(rows) == len(buckets) * len(cands) and all(r.ok for r in rows)
    assert report.key.gpu_name == FAKE_GPU.name
    for s in report.summaries():
        want = min(cands, key=lambda p: fake_cost(SPEC, p, s.bucket))
        assert s.best.plan == want.to_dict()
        assert s.heuristic.plan == plan_for(SPEC, FAKE_GPU).to_dict() and s.heuristic.is_heuristic
        assert s.speedup == pytest.approx(fake_cost(SPEC, plan_for(SPEC, FAKE_GPU), s.bucket) / fake_cost(SPEC, want, s.bucket), rel=1e-6)
        assert [m.median_ms for m in s.ok] == sorted(m.median_ms for m in s.ok)
    # each candidate's output is checked once, not once per bucket
    checks = [label for what, label, _ in timer.calls if what == "check"]
    assert sorted(checks) == sorted(plan_label(p) for p in cands)
    assert events[0] == "plan" and events.count("result") == report.measured and "build" in events
    d = report.to_dict(top=3)
    assert len(d["buckets"]) == 2 and len(d["buckets"][0]["leaderboard"]) == 3
    json.dumps(d)
    # the dispatch sees the result (tables are cleared after a run)
    assert tuned_plan(SPEC, Bucket(1, 1, 2048), FAKE_GPU, db=db.path) == KernelPlan.from_dict(report.summaries()[0].best.plan)


def test_resume_skips_what_was_measured(db):
    plans = few_plans(n=4)
    first = inline_tuner(db, buckets=[Bucket(1, 8, 2048)], plans=plans).run()
    assert first.measured == 4
    timer = FakeTimer()
    second = inline_tuner(db, buckets=[Bucket(1, 8, 2048), Bucket(1, 32, 2048)], plans=plans, timer=timer).run()
    assert second.skipped == 4 and second.measured == 4 and second.total == 4
    assert {b for _, _, b in timer.calls if b is not None} == {Bucket(1, 32, 2048)}
    third = inline_tuner(db, buckets=[Bucket(1, 8, 2048), Bucket(1, 32, 2048)], plans=plans).run()
    assert third.measured == 0 and third.skipped == 8
    assert len(db.measurements(third.key)) == 8


def test_failures_are_recorded_and_skipped(db):
    plans = candidates(SPEC, FAKE_GPU)
    h = plan_for(SPEC, FAKE_GPU)
    bad_compile = next(p for p in plans if p.stages == 1 and p.block_n == 32 and p.consumer_regs == 232)
    wrong = next(p for p in plans if p.stages == 3 and p.block_n == 32 and p.consumer_regs == 240 and p.parts_per_sm == 1)
    error = next(p for p in plans if p.stages == 4 and p.block_n == 32 and p.consumer_regs == 232 and p.parts_per_sm == 2)
    buckets = [Bucket(1, 1, 2048), Bucket(1, 8, 2048), Bucket(1, 128, 8192)]
    timer = FakeTimer(wrong=[plan_label(wrong)], fail=[plan_label(error)])
    builder = FakeBuilder(fail=[f"{bad_compile.tag}-c232-*"])
    report = inline_tuner(db, buckets=buckets, timer=timer, builder=builder).run()
    rows = {(r.bucket, plan_label(r.plan)): r for r in db.measurements(report.key)}
    assert len(rows) == len(buckets) * len(plans)
    for b in buckets:
        for pps in (1, 2):
            r = rows[(b, plan_label(dataclasses.replace(bad_compile, parts_per_sm=pps)))]
            assert r.status == "compile_error" and "ptxas ran out of registers" in r.error
        r = rows[(b, plan_label(wrong))]
        assert r.status == "wrong" and "differ beyond" in r.error and r.median_ms is None
        r = rows[(b, plan_label(error))]
        assert r.status == "error" and "illegal memory access" in r.error
        assert rows[(b, plan_label(h))].ok
    # the wrong plan was checked once, never timed; the others all measured
    assert [c for c in timer.calls if c[1] == plan_label(wrong)] == [("check", plan_label(wrong), None)]
    assert sum(1 for r in rows.values() if r.ok) == len(buckets) * (len(plans) - 4)
    for s in report.summaries():
        assert len(s.failed) == 4 and s.best is not None and s.best.ok
    assert report.compile_failures
    # failures count as measured on resume, unless --retry-failed
    again = inline_tuner(db, buckets=buckets, timer=FakeTimer(), builder=FakeBuilder()).run()
    assert again.measured == 0
    retry = inline_tuner(db, buckets=buckets, timer=FakeTimer(), builder=FakeBuilder(), retry_failed=True).run()
    assert retry.measured == 4 * len(buckets)
    assert all(r.ok for r in db.measurements(report.key))


def test_budget_stops_issuing_candidates(db):
    plans = few_plans(n=6)
    buckets = [Bucket(1, 1, 2048), Bucket(1, 8, 2048)]
    events = []
    report = inline_tuner(db, buckets=buckets, timer=FakeTimer(sleep_s=0.03), plans=plans, budget_s=0.1,
                          on_event=lambda k, d: events.append((k, d))).run()
    assert report.stopped == "budget"
    assert 1 <= report.measured < 12 and report.remaining == 12 - report.measured
    assert ("stop" in [k for k, _ in events])
    rest = inline_tuner(db, buckets=buckets, plans=plans).run()
    assert rest.skipped == report.measured and rest.measured == report.remaining and rest.stopped is None


class _InterruptingTimer(FakeTimer):
    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def time(self, spec, plan, bucket):
        if sum(1 for c in self.calls if c[0] == "time") >= self.after:
            raise KeyboardInterrupt
        return super().time(spec, plan, bucket)


def test_ctrl_c_keeps_what_was_measured(db):
    plans = few_plans(n=5)
    report = inline_tuner(db, timer=_InterruptingTimer(after=3), plans=plans).run()
    assert report.stopped == "interrupted" and report.measured == 3
    assert len(db.measurements(report.key)) == 3
    rest = inline_tuner(db, plans=plans).run()
    assert rest.skipped == 3 and rest.measured == 2


def test_worker_processes_timeouts_crashes_and_two_devices(db):
    plans = few_plans(n=6)
    hang, crash = plans[2], plans[3]
    timer = FakeTimer(hang=[plan_label(hang)], crash=[plan_label(crash)])
    ex = ProcessExecutor(timer, ["0", "1"], timeout_s=1.0, setup_timeout_s=30, start_timeout_s=60)
    buckets = [Bucket(1, 8, 2048)]
    report = Tuner(SPEC, buckets, db=db, executor=ex, builder=FakeBuilder(delay_s=0.05), jobs=1, plans=plans).run()
    rows = {plan_label(r.plan): r for r in db.measurements(report.key)}
    assert len(rows) == 6 and report.measured == 6
    assert rows[plan_label(hang)].status == "timeout" and "timeout" in rows[plan_label(hang)].error
    assert rows[plan_label(crash)].status == "crash" and "exit status 3" in rows[plan_label(crash)].error
    ok = [r for r in rows.values() if r.ok]
    assert len(ok) == 4
    assert {r.device for r in rows.values()} == {"cuda:0", "cuda:1"}
    assert {r.shape["visible"] for r in ok} <= {"0", "1"}
    assert ex.restarts >= 2
    assert all(not w.proc.is_alive() for w in ex.workers)


def _broken_timer():
    raise RuntimeError("no CUDA device visible to this worker")


def test_worker_that_cannot_start_is_an_error(db):
    ex = ProcessExecutor(_broken_timer, ["0"], start_timeout_s=60)
    with pytest.raises(TuneError, match="no CUDA device"):
        Tuner(SPEC, [Bucket(1, 1, 64)], db=db, executor=ex, builder=FakeBuilder(), jobs=0).run()


# ------------------------------------------------------------------------- CLI
def _run_cli(capsys, *argv):
    from mlagen.cli import main

    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_dry_run_then_resume(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    dbp = str(tmp_path / "t.sqlite")
    spec_file = str(REPO / "specs" / "deepseek_v2_lite.py")
    status, out, err = _run_cli(capsys, "tune", spec_file, "--dry-run", "--db", dbp, "--batch", "1,64", "--seqlen", "4k", "--json")
    assert status == 0, err
    data = json.loads(out)
    assert data["measured"] == data["total"] == 2 * data["candidates"] and data["stopped"] is None
    assert all(b["best"] is not None and b["speedup"] >= 1.0 for b in data["buckets"])
    status, out, err = _run_cli(capsys, "tune", spec_file, "--dry-run", "--db", dbp, "--batch", "1,64", "--seqlen", "4k")
    assert status == 0, err
    assert "Tuned vs heuristic" in out and "s_q=1 batch=64 ctx=4k" in out and "0 candidates measured now" in out


def test_cli_show_json_on_a_filled_db(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    dbp = tmp_path / "filled.sqlite"
    spec = MLASpec(q_heads=16)
    h = plan_for(spec, H100_SXM)
    fast = dataclasses.replace(h, parts_per_sm=2)
    with TuneDB(dbp) as d:
        cur = tune_key(spec, H100_SXM)
        for b, hm, fm in ((Bucket(1, 1, 2048), 0.02, 0.01), (Bucket(1, 128, 32768), 0.5, 0.5)):
            d.record(cur, spec.to_dict(), _row(b, h, hm, heuristic=True))
            d.record(cur, spec.to_dict(), _row(b, fast, fm))
            d.record(cur, spec.to_dict(), _row(b, dataclasses.replace(h, stages=1), None, status="crash", error="died"))
        old = dataclasses.replace(cur, mlagen_version="0.0.1")
        d.record(old, spec.to_dict(), _row(Bucket(1, 1, 2048), h, 0.03, heuristic=True))
    status, out, err = _run_cli(capsys, "tune", "--show", "--json", "--db", str(dbp))
    assert status == 0, err
    data = json.loads(out)
    assert data["db"] == str(dbp)
    entries = {(e["mlagen_version"]): e for e in data["entries"]}
    now = entries[cur.mlagen_version]
    assert now["current"] is True and now["gpu_name"] == H100_SXM.name and now["sm_count"] == 132
    assert now["measured"] == 6 and now["failed"] == 2
    by = {b["label"]: b for b in now["buckets"]}
    assert by["s_q=1 batch=1 ctx=2k"]["speedup"] == 2.0 and by["s_q=1 batch=1 ctx=2k"]["plan"] == fast.to_dict()
    assert by["s_q=1 batch=128 ctx=32k"]["best_ms"] == 0.5 and by["s_q=1 batch=128 ctx=32k"]["failed"] == 1
    assert now["geomean_speedup"] == pytest.approx(2 ** 0.5, rel=1e-3)
    assert entries["0.0.1"]["current"] is False
    # the table view and the spec filter
    status, out, _ = _run_cli(capsys, "tune", "--show", "--db", str(dbp))
    assert status == 0 and "ignored by dispatch" in out and "2.000x" in out
    status, out, _ = _run_cli(capsys, "tune", "--show", "--json", "--db", str(dbp), str(REPO / "specs" / "deepseek_v3.py"))
    assert status == 0 and json.loads(out)["entries"] == []
    status, out, _ = _run_cli(capsys, "tune", "--show", "--db", str(tmp_path / "empty.sqlite"))
    assert status == 0 and "nothing tuned" in out
    assert show_data(TuneDB(dbp, readonly=True), spec.key)[0]["spec_key"] == spec.key


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tune"], "spec file is required"),
        (["tune", "specs/deepseek_v3.py", "--s-q", "2", "--dry-run"], "s_q = 2"),
        (["tune", "specs/deepseek_v3.py", "--seqlen", "2x"], "not a number"),
        (["tune", "specs/deepseek_v3.py", "--budget", "soon"], "not a duration"),
        (["tune", "{tmp}/narrow_fp8.py", "--dry-run"], "cannot tune"),
        (["tune", "specs/deepseek_v3.py", "--devices", "0,0"], "distinct"),
    ],
)
def test_cli_errors(capsys, monkeypatch, argv, message, tmp_path):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MLAGEN_TUNE_DB", str(tmp_path / "x.sqlite"))
    # a spec the generator does not produce: fp8 rows of 328 bytes (TMA needs multiples of 16)
    (tmp_path / "narrow_fp8.py").write_text(
        'from mlagen import MLASpec\nspec = MLASpec(q_heads=16, latent=256, rope=32, cache_dtype="fp8_e4m3")\n')
    status, _, err = _run_cli(capsys, *[a.format(tmp=tmp_path) for a in argv])
    assert status == 2 and message in err and err.count("\n") == 1


def test_import_stays_light():
    code = ("import sys, mlagen.tune, mlagen.dispatch, mlagen.tune_db, mlagen.cli; "
            "bad = [m for m in ('torch', 'cutlass', 'rich') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
