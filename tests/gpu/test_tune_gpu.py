"""``mlagen tune`` on a real GPU: a tiny sweep records its rows, and the tuned dispatch is correct.

Three candidates (the heuristic plan, the same kernel with two parts per SM,
and the other 16-bit schedule: two compiled kernels) in one bucket, timed in a
worker process like ``mlagen tune`` does, into a fresh database; then a
:class:`TunedKernel` reading that database is checked against the float32
reference in the tuned bucket and in a missing one (nearest-bucket fallback).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mlagen.bench import Ceilings
from mlagen.device import current_device_facts
from mlagen.dispatch import MIN_GAIN, Bucket, TunedKernel, bucket_of, clear_cache
from mlagen.plan import KernelPlan, plan_for
from mlagen.spec import MLASpec
from mlagen.testing import assert_close_mla, make_problem
from mlagen.tune import bucket_seqlens, compare_tuned, plan_label, tune
from mlagen.tune_db import TuneDB

pytestmark = pytest.mark.gpu

SPEC = MLASpec(q_heads=16)
BUCKET = Bucket(1, 8, 2048)


@pytest.fixture(scope="module")
def tuned_db(tmp_path_factory):
    clear_cache()
    facts = current_device_facts()
    heuristic = plan_for(SPEC, facts)
    other = plan_for(SPEC, facts, schedule="split" if heuristic.schedule == "seesaw" else "seesaw")
    plans = [heuristic, dataclasses.replace(heuristic, parts_per_sm=2), other]
    path = tmp_path_factory.mktemp("tune") / "tune.sqlite"
    db = TuneDB(path)
    report = tune(SPEC, [BUCKET], db=db, plans=plans, jobs=2, rep_ms=20, timeout_s=120)
    yield path, report, plans
    db.close()
    clear_cache()


def run_checked(kernel, problem):
    spec = SPEC
    p = problem
    out = torch.full((p.batch, p.s_q, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda")
    lse = torch.full((p.batch, spec.q_heads, p.s_q), float("nan"), dtype=torch.float32, device="cuda")
    got_out, got_lse = kernel(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse)
    ref_out, ref_lse = p.reference(torch.float32)
    assert_close_mla(got_out, got_lse, ref_out, ref_lse, context=p.describe())


def test_sweep_records_every_candidate(tuned_db):
    path, report, plans = tuned_db
    assert report.stopped is None and report.remaining == 0 and report.measured == 3
    rows = TuneDB(path, readonly=True).measurements(report.key)
    assert {plan_label(r.plan) for r in rows} == {plan_label(p) for p in plans}
    bad = [(plan_label(r.plan), r.status, r.error) for r in rows if not r.ok]
    assert not bad, bad
    for r in rows:
        assert r.bucket == BUCKET and r.median_ms > 0 and len(r.times_ms) >= 5
        assert r.shape["batch"] == 8 and r.shape["block_table_width"] * SPEC.page <= BUCKET.max_ctx
    assert report.key.gpu_name == torch.cuda.get_device_name()
    (summary,) = report.summaries()
    assert summary.heuristic is not None and summary.speedup >= 1.0
    print(f"\n{BUCKET.label}: " + ", ".join(f"{plan_label(m.plan)} {m.median_ms:.4f} ms" for m in summary.ok))


def test_tuned_kernel_matches_the_reference(tuned_db):
    path, report, _ = tuned_db
    (summary,) = report.summaries()
    best = KernelPlan.from_dict(summary.best.plan)
    # dispatch keeps the heuristic plan unless the winner beats it by more than timing noise
    if summary.heuristic is not None and summary.best.median_ms > summary.heuristic.median_ms * (1 - MIN_GAIN):
        best = KernelPlan.from_dict(summary.heuristic.plan)
    clear_cache()
    kernel = TunedKernel(SPEC, db=path)
    assert kernel.table.tuned[BUCKET] == best
    lens = bucket_seqlens(BUCKET)
    problem = make_problem(SPEC, batch=8, seqlens=lens, s_q=1, seed=11, device="cuda")
    bucket = bucket_of(SPEC, 8, 1, problem.block_table.shape[1])
    assert kernel.plan_for(8, 1, problem.block_table.shape[1])[0] == best, bucket
    run_checked(kernel, problem)
    # a bucket that was not tuned: the nearest one's plan
    small = make_problem(SPEC, batch=1, seqlens=[300], s_q=1, seed=12, device="cuda")
    assert kernel.plan_for(1, 1, small.block_table.shape[1]) == (best, "nearest")
    run_checked(kernel, small)


def test_compare_tuned_for_the_bench(tuned_db):
    path, _, _ = tuned_db
    res = compare_tuned(SPEC, batch=8, s_q=1, seqlen=1024, db=path, ceilings=Ceilings(3000.0, 700.0), rep_ms=20)
    assert res["source"] in ("tuned", "nearest")
    assert res["heuristic"]["graph_ms"] > 0 and res["tuned"]["graph_ms"] > 0 and res["speedup"] > 0
