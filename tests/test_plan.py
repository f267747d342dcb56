"""The planner: plans for the spec files, device limits, errors naming the limit, the search space."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given

from mlagen.device import H100_SXM, DeviceFacts
from mlagen.plan import (
    RUNTIME_KNOBS,
    KernelPlan,
    PlanError,
    UnsupportedSpecError,
    check_plan,
    cluster_unsupported,
    consumer_registers,
    launch_registers,
    heads_n_default_wgs,
    padded_dqk,
    q_rows,
    parse_knobs,
    plan_for,
    search_space,
    smem_bytes,
    supports,
)
from mlagen.spec import MLASpec, list_spec_files, load_spec
from mlagen.testing import specs

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
SPEC_FILES = {p.name: load_spec(p) for p in list_spec_files(SPECS)}
SUPPORTED = sorted(name for name, s in SPEC_FILES.items() if supports(s) is None)
DSV3 = SPEC_FILES["deepseek_v3.py"]
MINICPM3 = SPEC_FILES["minicpm3.py"]


def fits_device(spec: MLASpec, plan: KernelPlan, device: DeviceFacts = H100_SXM) -> bool:
    regs = 128 * (plan.producer_regs + plan.consumer_wgs * plan.consumer_regs)
    return (
        smem_bytes(spec, plan) <= device.smem_per_block
        and regs <= device.regs_per_sm
        and consumer_registers(spec, plan) <= plan.consumer_regs
        and plan.threads <= device.max_threads_per_block
    )


def test_every_spec_file_is_supported():
    assert SUPPORTED == sorted(SPEC_FILES)
    assert len(SUPPORTED) == 15


@pytest.mark.parametrize("name", SUPPORTED)
def test_spec_file_plan_fits_the_device(name):
    spec = SPEC_FILES[name]
    plan = plan_for(spec)
    assert check_plan(spec, plan) is plan
    assert smem_bytes(spec, plan) <= H100_SXM.smem_per_block
    assert 128 * (plan.producer_wgs * plan.producer_regs + plan.consumer_wgs * plan.consumer_regs) <= H100_SXM.regs_per_sm
    assert consumer_registers(spec, plan) <= plan.consumer_regs
    assert plan.loader == "tma" and plan.block_m == 64
    # heads_n (<= 32 query rows per KV head): one MMA warpgroup over whole tiles
    heads_n_fits = spec.rope % 64 == 0 and spec.page >= 16
    heads_n = spec.max_q * spec.heads_per_kv <= 32 and heads_n_fits
    # fp8 with more rows: the seesaw converting in place (a RoPE of whole 64-column chunks, pages of 8 or
    # more), else heads_n on two MMA warpgroups of 32 columns (one producer warpgroup)
    fp8_many = spec.cache_dtype == "fp8_e4m3" and not heads_n
    fp8_seesaw = fp8_many and spec.rope and spec.rope % 64 == 0 and spec.page >= 8
    wide = fp8_many and heads_n_fits and not fp8_seesaw
    # 16-bit caches whose split pipeline is two tiles deep, two warpgroups and a RoPE chunk: seesaw
    split = (plan_for(spec, schedule="heads_n", consumer_wgs=2) if wide
             else plan_for(spec, schedule="heads_n" if heads_n else "split"))
    seesaw = fp8_seesaw or (spec.cache_dtype != "fp8_e4m3" and split.stages == 2 and split.consumer_wgs == 2
                            and padded_dqk(spec) > spec.d_v)
    assert plan.schedule == ("heads_n" if heads_n or wide else "seesaw" if seesaw else "split")
    if not seesaw:
        assert plan == split
    if fp8_seesaw:
        # in m-block pairs sharing each tile's conversion where the rows per KV head make whole pairs
        paired = spec.heads_per_kv % 128 == 0
        assert plan == plan_for(spec, schedule="seesaw", cluster=2 if paired else 1)
        assert (plan.producer_regs, plan.consumer_regs) == (56, 224)
    if wide:
        assert (plan.consumer_wgs, plan.producer_wgs, plan.producer_regs, plan.consumer_regs) == (2, 1, 72, 216)
    # heads_n: two MMA warpgroups splitting the rows where a 16-bit cache has 32 (or a multiple)
    assert plan.consumer_wgs == (2 if wide else heads_n_default_wgs(spec) if heads_n else 1 if spec.d_v % 128 else 2)
    # deterministic: the same spec gets the same plan
    assert plan_for(spec) == plan


def test_deepseek_v3_plan():
    # two warpgroups taking turns over two 64-token buffers: the split schedule fits no deeper
    plan = plan_for(DSV3)
    assert plan == plan_for(DSV3, schedule="seesaw")
    assert (plan.block_n, plan.stages, plan.consumer_wgs, plan.schedule) == (64, 2, 2, "seesaw")
    assert (plan.producer_regs, plan.consumer_regs) == (24, 240)
    # Q (72 KiB) + 2 buffers of 64 tokens (144 KiB) + A's P tile fill the 227 KiB of a CTA
    assert smem_bytes(DSV3, plan) == 231424
    # O (64 x 256 fp32) + a whole tile of S (fp32) and of P (bf16) + overhead
    assert consumer_registers(DSV3, plan) == 64 * 256 // 128 + 64 * 64 // 128 + 64 * 64 // 256 + 48
    split = plan_for(DSV3, schedule="split")
    assert (split.stages, split.consumer_regs) == (2, 232)
    assert smem_bytes(DSV3, split) == 231424
    assert consumer_registers(DSV3, split) == 64 * 256 // 128 + 64 * 32 // 128 + 64


def test_seesaw_needs_a_spare_chunk_and_two_warpgroups():
    # no RoPE part: no chunk of the KV buffer is free to carry P
    no_rope = MLASpec(q_heads=128, latent=512, rope=0)
    with pytest.raises(PlanError, match="RoPE chunk"):
        plan_for(no_rope, schedule="seesaw")
    with pytest.raises(PlanError, match="consumer_wgs=2"):
        plan_for(MLASpec(q_heads=16, latent=64, rope=16), schedule="seesaw")


def test_narrower_keys_get_a_deeper_pipeline():
    # MiniCPM3's 256 + 32 keys leave room for more stages than DeepSeek's 512 + 64
    assert plan_for(MINICPM3).stages > plan_for(DSV3).stages


@pytest.mark.parametrize("spec", [MLASpec(q_heads=16, latent=256, rope=32, cache_dtype="fp8_e4m3"),
                                  MLASpec(q_heads=16, rope_at="head", cache_dtype="fp8_e4m3")])
def test_fp8_layouts_the_kernel_cannot_read_are_not_supported(spec):
    assert "fp8" in supports(spec)
    for call in (lambda: plan_for(spec), lambda: check_plan(spec, KernelPlan()), lambda: search_space(spec)):
        with pytest.raises(UnsupportedSpecError, match="not supported yet") as info:
            call()
        assert "\n" not in str(info.value) and spec.key in str(info.value)
    assert issubclass(UnsupportedSpecError, PlanError)


@pytest.mark.parametrize(
    "spec,why",
    [
        (MLASpec(q_heads=16, latent=1024, rope=64), "latent 1024"),
        (MLASpec(q_heads=16, latent=320, rope=64), "latent 320"),
        (MLASpec(q_heads=16, rope=32, rope_at="head"), "rope_at='head'"),
    ],
)
def test_unsupported_shapes_say_why(spec, why):
    with pytest.raises(UnsupportedSpecError, match="not supported yet") as info:
        plan_for(spec)
    assert why in str(info.value) and "\n" not in str(info.value)


@given(specs())
def test_plan_for_random_specs_is_checked_or_a_one_line_error(spec):
    try:
        plan = plan_for(spec)
    except PlanError as e:  # UnsupportedSpecError included
        assert str(e) and "\n" not in str(e)
        if supports(spec) is None:
            assert not isinstance(e, UnsupportedSpecError)
        else:
            assert isinstance(e, UnsupportedSpecError) and "not supported yet" in str(e)
        return
    assert supports(spec) is None
    assert check_plan(spec, plan) is plan
    assert fits_device(spec, plan)


# Each bad knob and the words its error must contain.
BAD_PLANS = [
    (DSV3, dict(block_n=48), ["block_n", "48"]),
    (DSV3, dict(stages=7), ["stages", "7", "1..6"]),
    (DSV3, dict(stages=0), ["stages"]),
    (DSV3, dict(consumer_wgs=3), ["consumer_wgs", "3"]),
    (DSV3, dict(block_m=128), ["block_m"]),
    (DSV3, dict(loader="cp.async"), ["loader"]),
    (DSV3, dict(parts_per_sm=0), ["parts_per_sm"]),
    # 576-wide keys: six 64-token stages need ~514 KiB of shared memory
    (DSV3, dict(stages=6), ["shared memory", "6 KV stages", "232448"]),
    (DSV3, dict(block_n=128, stages=1), ["shared memory", "128x576"]),
    # one warpgroup would own all 512 output columns: more than one wgmma can hold
    (DSV3, dict(consumer_wgs=1), ["consumer_wgs", "512", "256"]),
    # register budgets setmaxnreg cannot give or that do not hold the accumulators
    (DSV3, dict(consumer_regs=160), ["consumer_regs", "160"]),
    (DSV3, dict(producer_regs=24, schedule="split"), ["producer_regs"]),
    (MINICPM3, dict(consumer_wgs=1, block_n=128), ["registers", "consumer_regs", "256"]),
]


@pytest.mark.parametrize("spec,knobs,words", BAD_PLANS, ids=[json.dumps(k) for _, k, _ in BAD_PLANS])
def test_invalid_knobs_raise_plan_error_naming_the_limit(spec, knobs, words):
    with pytest.raises(PlanError) as info:
        plan_for(spec, **knobs)
    message = str(info.value)
    assert not isinstance(info.value, UnsupportedSpecError)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)
    # check_plan gives the same verdict for the same plan
    with pytest.raises(PlanError):
        check_plan(spec, dataclasses.replace(KernelPlan(consumer_wgs=2 if spec.d_v % 128 == 0 else 1), **knobs))


def test_register_file_limit_of_the_device():
    small = DeviceFacts(name="half-register GPU", sm_count=66, regs_per_sm=32768)
    with pytest.raises(PlanError, match="register file") as info:
        check_plan(DSV3, plan_for(DSV3), small)
    assert "half-register GPU" in str(info.value)
    # setmaxnreg moves registers within the CTA's launch allocation: 168 a thread for 384 threads
    assert launch_registers(384) == 168 * 384 == 64512 and launch_registers(512) == 65536
    assert launch_registers(128) == 256 * 128
    for name in SUPPORTED:
        for plan in search_space(SPEC_FILES[name]):
            assert 128 * (plan.producer_wgs * plan.producer_regs + plan.consumer_wgs * plan.consumer_regs) <= (
                launch_registers(plan.threads))


def test_shared_memory_limit_of_the_device():
    small = DeviceFacts(name="small-smem GPU", sm_count=132, smem_per_block=100 * 1024)
    with pytest.raises(PlanError, match="shared memory") as info:
        plan_for(DSV3, small)
    assert "small-smem GPU" in str(info.value) and "stages" in str(info.value)
    # a narrower spec still fits, with a shallower pipeline than on an H100
    plan = plan_for(MINICPM3, small)
    assert smem_bytes(MINICPM3, plan) <= small.smem_per_block
    assert plan.stages < plan_for(MINICPM3).stages


def test_pinned_knobs_are_kept():
    plan = plan_for(MINICPM3, block_n=32, stages=3, consumer_wgs=1, parts_per_sm=2)
    assert (plan.block_n, plan.stages, plan.consumer_wgs, plan.parts_per_sm) == (32, 3, 1, 2)
    # without stages the deepest pipeline that fits is chosen for the pinned tile
    deep = plan_for(MINICPM3, block_n=32)
    assert deep.block_n == 32 and deep.stages >= plan_for(MINICPM3).stages
    with pytest.raises(PlanError):
        plan_for(MINICPM3, block_n=32, stages=deep.stages + 3)


@pytest.mark.parametrize("name", SUPPORTED)
def test_search_space_plans_all_pass_and_include_the_heuristic(name):
    spec = SPEC_FILES[name]
    space = search_space(spec)
    assert space and len(set(space)) == len(space)
    for plan in space:
        assert check_plan(spec, plan) is plan
        assert fits_device(spec, plan)
    assert plan_for(spec) in space


def test_search_space_differs_across_specs():
    dsv3, mini = set(search_space(DSV3)), set(search_space(MINICPM3))
    # 128 query rows per KV head on heads_n: column blocks over CTAs, of 32 (one MMA warpgroup) or 64
    # (two of 32, one producer warpgroup); MiniCPM3's RoPE of 32 is no whole 64-column chunk, so it has none
    column_blocks = {p for p in dsv3 if p.schedule == "heads_n"}
    assert column_blocks and {(p.block_m, p.consumer_wgs, p.producer_wgs) for p in column_blocks} == {
        (32, 1, 2), (64, 2, 1)}
    assert all(p.schedule != "heads_n" for p in mini)
    dsv3 -= column_blocks
    # 512-wide values need two warpgroups on the M side; 256-wide values fit one
    assert {p.consumer_wgs for p in dsv3} == {2}
    assert {p.consumer_wgs for p in mini} == {1, 2}
    # 128 query heads per KV head: the seesaw plans again with two m-blocks per cluster; fewer heads
    # (MiniCPM3 has 40) have odd m-blocks at s_q = 1, so no cluster plans
    clustered = {p for p in dsv3 if p.cluster == 2}
    assert clustered == {dataclasses.replace(p, cluster=2) for p in dsv3 if p.schedule == "seesaw"}
    assert {p.cluster for p in mini} == {1}
    dsv3 -= clustered
    # narrower keys admit every plan of the wider ones, and deeper pipelines
    assert dsv3 < mini
    assert max(p.stages for p in mini) > max(p.stages for p in dsv3)
    # the whole space is bounded by shared memory: no 576-wide plan has more than 2 stages of 64 tokens
    assert max(p.stages for p in dsv3 if p.block_n == 64) == 2
    assert all(p.block_n != 128 for p in dsv3)
    # the page size and head count do not change the plans of a 576-wide spec
    assert set(search_space(SPEC_FILES["deepseek_v3_page1.py"])) == dsv3 | clustered
    # (pages of 1 token have no heads_n plans: its boxes are page-sized)
    # 16 heads per KV head (V2-Lite) have the heads_n plans with all rows on one CTA (block_m 64)
    lite = set(search_space(SPEC_FILES["deepseek_v2_lite.py"]))
    assert {p for p in lite if p.schedule != "heads_n"} == dsv3
    assert {p.block_m for p in lite if p.schedule == "heads_n"} == {64}
    assert {p.schedule for p in lite} == {"split", "seesaw", "heads_n"}


def test_cluster_plans_pair_the_m_blocks_of_128_heads_per_kv_head():
    plan = plan_for(DSV3, cluster=2)
    assert (plan.schedule, plan.cluster) == ("seesaw", 2) and plan.tag == "n64s2w2c2-seesaw"
    # off by default: on the H100 it was no faster at page 64 and slower at page 16 (docs/perf/README.md)
    assert plan_for(DSV3).cluster == 1
    with pytest.raises(PlanError, match="only the 'seesaw' schedule"):
        plan_for(DSV3, cluster=2, schedule="split")
    # 64 rows per KV head and s_q = 1 only: one m-block per KV head, which every call would pair with an empty one
    with pytest.raises(PlanError, match="every call would run an empty m-block"):
        plan_for(SPEC_FILES["kimi_k2.py"], cluster=2)
    with pytest.raises(PlanError, match="no s_q in 1..1 gives a multiple of 2 at heads_per_kv 64"):
        plan_for(MLASpec(q_heads=128, kv_heads=2), cluster=2)
    with pytest.raises(PlanError, match="must be 1 or 2"):
        check_plan(DSV3, dataclasses.replace(plan, cluster=4))


def test_plan_key_excludes_runtime_knobs():
    assert RUNTIME_KNOBS == ("parts_per_sm",)
    a, b = KernelPlan(), KernelPlan(parts_per_sm=4)
    assert a != b
    assert a.key == b.key and a.short_hash == b.short_hash
    assert a.compile_dict() == b.compile_dict()
    assert "parts_per_sm" not in a.compile_dict() and "parts_per_sm" not in a.key
    # q_tokens is in the key once set (0, the spec's max_q, leaves the keys of plans from before the knob alone)
    assert set(a.compile_dict()) == {f.name for f in dataclasses.fields(KernelPlan)} - {"parts_per_sm", "q_tokens"}
    fields = {f.name for f in dataclasses.fields(KernelPlan)}
    assert set(KernelPlan(q_tokens=1).compile_dict()) == fields - {"parts_per_sm"}
    # every compile-time knob is in the key
    for change in (dict(block_n=32), dict(stages=3), dict(consumer_wgs=1), dict(producer_regs=24, consumer_regs=240),
                   dict(split_kv=False), dict(block_m=128), dict(loader="x"), dict(q_tokens=1)):
        assert dataclasses.replace(a, **change).key != a.key, change
    assert json.loads(a.key) == a.compile_dict()


def test_plan_round_trip_and_tag():
    plan = plan_for(MINICPM3, parts_per_sm=3)
    assert KernelPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert plan.tag == f"n{plan.block_n}s{plan.stages}w{plan.consumer_wgs}"
    assert dataclasses.replace(plan, schedule="seesaw").tag.endswith("-seesaw")
    assert dataclasses.replace(plan, split_kv=False).tag.endswith("-nosplit")
    assert plan.threads == 128 * (1 + plan.consumer_wgs)


def test_fp8_seesaw_converts_chunks_in_place():
    spec = SPEC_FILES["deepseek_v3_fp8.py"]
    plan = plan_for(spec, schedule="seesaw")
    # the 16-bit seesaw's two whole-tile buffers; three producer warps convert, with registers of their own
    assert (plan.stages, plan.raw_stages, plan.block_n, plan.consumer_wgs, plan.cluster) == (2, 0, 64, 2, 1)
    assert (plan.producer_regs, plan.consumer_regs) == (56, 224)
    # the fp8 chunks and their scale copies land inside the 16-bit chunks: the 16-bit seesaw's shared
    # memory, its four more barriers within the same first kilobytes
    assert smem_bytes(spec, plan) == smem_bytes(SPEC_FILES["deepseek_v3.py"], plan_for(SPEC_FILES["deepseek_v3.py"]))
    for knobs, words in [
        (dict(raw_stages=2), "no packed-row pipeline"),
        (dict(producer_regs=72, consumer_regs=216), r"must be one of \[\(56, 224\)\]"),
        (dict(stages=3), "needs consumer_wgs=2, block_n=64, stages=2"),
    ]:
        with pytest.raises(PlanError, match=words):
            check_plan(spec, dataclasses.replace(plan, **knobs))
    # the RoPE part travels as whole 16-bit 64-column chunks
    with pytest.raises(PlanError, match="rope 0 is not a positive multiple of 64"):
        plan_for(spec.replace(rope=0), schedule="seesaw")
    with pytest.raises(PlanError, match="rope 32 is not a positive multiple of 64"):
        plan_for(spec.replace(rope=32), schedule="seesaw")
    # a box of scales (16 bytes a token, a page's rows at most) must fill TMA's 128-byte slots
    with pytest.raises(PlanError, match="page 4 < 8"):
        plan_for(spec.replace(page=4), schedule="seesaw")
    assert plan_for(spec.replace(page=8), schedule="seesaw").schedule == "seesaw"


def test_fp8_seesaw_pairs_share_their_conversion():
    """cluster=2 over an fp8 cache: each CTA of an m-block pair converts half of every tile's latent chunks
    (those of its rank's parity in each 4-chunk group) into both CTAs' buffers. The planner takes the seesaw
    for it, with the unpaired plan's shared memory; latent widths that do not split evenly are refused."""
    spec = SPEC_FILES["deepseek_v3_fp8.py"]
    paired = plan_for(spec, cluster=2)
    assert (paired.schedule, paired.cluster, paired.consumer_wgs) == ("seesaw", 2, 2)
    assert smem_bytes(spec, paired) == smem_bytes(spec, plan_for(spec, schedule="seesaw"))
    # (a guard: every fp8 latent whose token row TMA can load is a multiple of 512)
    assert "needs latent a multiple of 256" in cluster_unsupported(spec.replace(latent=384), paired)
    # 64 query rows per KV head give one m-block at s_q = 1: no pair
    with pytest.raises(PlanError, match="every call would run an empty m-block"):
        plan_for(spec.replace(q_heads=64), cluster=2)
    with pytest.raises(PlanError, match="only the 'seesaw' schedule"):
        check_plan(spec, dataclasses.replace(plan_for(spec, schedule="heads_n"), cluster=2))


def test_fp8_pairs_only_for_the_s_q_that_fill_them():
    """Kimi-K2 fp8 with one drafted token (64 heads, max_q 2): 2-token calls have two m-blocks per KV head and
    run in pairs, 1-token calls have one and run unpaired; the plan serving every s_q is the unpaired one. A
    pinned pair serves every s_q: an odd m-block count gets an empty peer (rounded up to whole clusters)."""
    from mlagen.plan import m_blocks, pairs_whole, plans_by_s_q

    spec = SPEC_FILES["kimi_k2_fp8_mtp.py"]
    assert (spec.q_heads, spec.max_q, spec.cache_dtype) == (64, 2, "fp8_e4m3")
    by_s_q = plans_by_s_q(spec)
    assert [by_s_q[q].cluster for q in (1, 2)] == [1, 2]
    assert by_s_q[2] == plan_for(spec, cluster=2) and by_s_q[1] == plan_for(spec) == plan_for(spec, s_q=1)
    assert by_s_q[1] == dataclasses.replace(by_s_q[2], cluster=1)
    paired = by_s_q[2]
    assert [pairs_whole(spec, paired, q) for q in (1, 2)] == [False, True]
    assert [m_blocks(spec, paired, q) for q in (1, 2)] == [2, 2]
    assert [m_blocks(spec, by_s_q[1], q) for q in (1, 2)] == [1, 2]
    # odd counts round up to whole clusters: 40 rows per token give 1, 2 m-blocks; 63 give 1, 2 (two KV heads)
    h40 = MLASpec(q_heads=40, max_q=3, causal=True, cache_dtype="fp8_e4m3")
    assert [m_blocks(spec.replace(q_heads=40, max_q=3), paired, q) for q in (1, 2, 3)] == [2, 2, 2]
    assert [plans_by_s_q(h40)[q].cluster for q in (1, 2, 3)] == [1, 2, 2]
    # DeepSeek-V3 fp8: every s_q fills its pairs, one plan
    dsv3 = SPEC_FILES["deepseek_v3_fp8.py"].replace(max_q=2, causal=True)
    assert set(plans_by_s_q(dsv3).values()) == {plan_for(dsv3)} and plan_for(dsv3).cluster == 2
    # 16-bit caches keep the multicast pair opt-in for every s_q
    assert {p.cluster for p in plans_by_s_q(SPEC_FILES["deepseek_v3_mtp.py"]).values()} == {1}
    with pytest.raises(PlanError, match="s_q = 3: .* takes 1..2 query tokens"):
        plan_for(spec, s_q=3)


def test_small_s_q_runs_the_heads_n_kernel_compiled_for_it():
    """DeepSeek-V3 with 4-way TP and one drafted token (32 heads, max_q 2): 2-token calls have 64 rows per KV
    head (the seesaw), 1-token calls 32, which fit heads_n's N: they run the heads_n kernel of the spec with
    max_q 1 (q_tokens=1), not the seesaw's 64-row tile half empty."""
    from mlagen.plan import kernel_spec, narrow_heads_n, plans_by_s_q, serves

    spec = SPEC_FILES["deepseek_v3_tp4_mtp.py"]
    assert (spec.q_heads, spec.max_q, spec.causal) == (32, 2, True)
    by_s_q = plans_by_s_q(spec)
    assert by_s_q[2] == plan_for(spec) and by_s_q[2].schedule == "seesaw" and by_s_q[2].q_tokens == 0
    one = by_s_q[1]
    assert (one.schedule, one.q_tokens, one.tag) == ("heads_n", 1, "n64s23w2-headsn-q1")
    narrow = spec.replace(max_q=1)
    assert narrow.max_q == 1 and not narrow.causal and narrow.scale == spec.scale
    # the kernel is the narrower spec's own (the knob cleared: one cache entry for both)
    assert kernel_spec(spec, one) == (narrow, plan_for(narrow))
    assert kernel_spec(spec, by_s_q[2]) == (spec, by_s_q[2])
    assert check_plan(spec, one) == one
    assert [serves(spec, one, q) for q in (1, 2)] == [True, False]
    assert [serves(spec, by_s_q[2], q) for q in (1, 2)] == [True, True]
    # pins: q_tokens=0 keeps the spec's own plan for every s_q; another knob pinned alone does too
    assert plan_for(spec, s_q=1, q_tokens=0) == by_s_q[2]
    assert plan_for(spec, s_q=1, q_tokens=1) == one
    assert plan_for(spec, s_q=1, stages=2).schedule == "seesaw"
    with pytest.raises(PlanError,
                       match="q_tokens = 1: a kernel compiled for 1 query tokens cannot serve calls with s_q = 2"):
        plan_for(spec, s_q=2, q_tokens=1)
    with pytest.raises(PlanError, match="q_tokens = 3: .* takes 1..2 query tokens"):
        check_plan(spec, dataclasses.replace(one, q_tokens=3))
    # q_tokens = 0 is left out of the compile-time key: plans from before the knob keep their kernels
    assert "q_tokens" not in by_s_q[2].key and '"q_tokens":1' in one.key
    # where the spec's own rows already fit heads_n, or the call's do not, nothing is narrowed
    assert not narrow_heads_n(SPEC_FILES["deepseek_v3_tp8.py"].replace(max_q=2, causal=True), 1)
    assert not narrow_heads_n(SPEC_FILES["deepseek_v3_mtp.py"], 1)
    tp8_q4 = SPEC_FILES["deepseek_v3_tp8.py"].replace(max_q=4, causal=True)
    assert [plans_by_s_q(tp8_q4)[q].q_tokens for q in (1, 2, 3, 4)] == [1, 2, 0, 0]
    # over an fp8 cache too (one MMA warpgroup, seven converting warps)
    fp8 = spec.replace(cache_dtype="fp8_e4m3")
    assert (plan_for(fp8, s_q=1).schedule, plan_for(fp8, s_q=1).q_tokens) == ("heads_n", 1)


def test_fp8_cache_plans_dequantize_into_half_tile_buffers():
    spec = SPEC_FILES["deepseek_v3_fp8.py"]
    # (128 query rows: the default is the seesaw, converting in place, test_fp8_seesaw_converts_chunks_in_place)
    assert plan_for(spec).schedule == "seesaw"
    plan = plan_for(spec, schedule="split")
    # three 32-token dequantized buffers (a 64-token tile is two), 16-token packed-row stages
    assert (plan.schedule, plan.stages, plan.block_n, plan.consumer_wgs) == ("split", 3, 64, 2)
    assert plan.raw_stages == 3 and plan.tag == "n64s3r3w2"
    # the dequantizing warps get 72 registers (fewer spill inside their loop)
    assert (plan.producer_regs, plan.consumer_regs) == (72, 216)
    assert smem_bytes(spec, plan) <= H100_SXM.smem_per_block
    # deeper than what fits is refused with the limit named
    with pytest.raises(PlanError, match="fp8 row stages of 10496 B"):
        plan_for(spec, raw_stages=4)
    for knobs, words in [
        (dict(schedule="seesaw"), "the seesaw over an fp8_e4m3 cache has no packed-row pipeline"),
        (dict(stages=1), "2..6 dequantized"),
        (dict(raw_stages=0), "raw_stages = 0"),
        (dict(block_n=32), "block_n=64, consumer_wgs=2"),
        (dict(consumer_wgs=1), "block_n=64, consumer_wgs=2"),
        (dict(producer_regs=24, consumer_regs=240), r"must be one of \[\(72, 216\)"),
    ]:
        with pytest.raises(PlanError, match=words):
            check_plan(spec, dataclasses.replace(plan, **knobs))
    with pytest.raises(PlanError, match="only fp8_e4m3 caches"):
        check_plan(SPEC_FILES["deepseek_v3.py"], dataclasses.replace(plan_for(SPEC_FILES["deepseek_v3.py"]), raw_stages=2))
    plans = search_space(spec)
    split = [p for p in plans if p.schedule == "split"]
    assert split and all(p.stages >= 2 and p.raw_stages >= 1 and p.block_n == 64 for p in split)
    # the seesaw, alone and in m-block pairs sharing each tile's conversion (128 query rows per KV head)
    assert [p for p in plans if p.schedule == "seesaw"] == [plan_for(spec, schedule="seesaw"), plan_for(spec, cluster=2)]
    assert plan in plans
    # and the heads_n plans in column blocks of 32 query rows (a tuning candidate), or 64 on two MMA
    # warpgroups (the default)
    column_blocks = [p for p in plans if p.schedule == "heads_n"]
    assert column_blocks and all(p.block_m == 32 * p.consumer_wgs and p.raw_stages == 0 for p in column_blocks)


def test_heads_n_schedule_puts_few_query_rows_on_n():
    spec = MLASpec(q_heads=16, max_q=2, causal=True, cache_dtype="fp8_e4m3")
    plan = plan_for(spec, schedule="heads_n")
    # the ring of 64x64 chunks (9 per tile) as deep as shared memory allows beside Q (32 x 576) and
    # P^T (the fp8 chunks land in their own ring chunk: no staging): 22 chunks, 2.4 tiles
    assert (plan.consumer_wgs, plan.stages, plan.raw_stages, plan.block_n) == (1, 22, 0, 64)
    assert smem_bytes(spec, dataclasses.replace(plan, stages=23)) > H100_SXM.smem_per_block
    # 16 query rows leave room for three more chunks
    assert plan_for(MLASpec(q_heads=16, cache_dtype="fp8_e4m3")).stages == 25
    assert (plan.producer_wgs, plan.threads) == (2, 384) and plan.tag.endswith("-headsn")
    assert (plan.producer_regs, plan.consumer_regs) == (136, 232)
    assert 128 * (2 * plan.producer_regs + plan.consumer_regs) <= H100_SXM.regs_per_sm
    assert smem_bytes(spec, plan) <= H100_SXM.smem_per_block
    # O^T is latent x 32 float32 over one warpgroup: 128 registers, plus S^T and the rest
    assert consumer_registers(spec, plan) == 128 + 16 + 64
    assert plan in search_space(spec)
    # more than 32 query rows: column blocks of 32 over CTAs (block_m 32: the rows one m-block steps),
    # pinned or tuned, never the default (fp8's default: 64 columns on two MMA warpgroups)
    for many in (MLASpec(q_heads=64), MLASpec(q_heads=32, max_q=2, causal=True, cache_dtype="fp8_e4m3"),
                 MLASpec(q_heads=24, max_q=2, causal=True)):
        blocks = plan_for(many, schedule="heads_n", consumer_wgs=1)
        assert (blocks.block_m, blocks.consumer_wgs) == (32, 1) and blocks.tag.startswith("m32n64")
        assert consumer_registers(many, blocks) == 128 + 16 + 64
        # a 16-bit cache's 32 columns go to two MMA warpgroups by default, 16 each
        assert plan_for(many, schedule="heads_n").consumer_wgs == heads_n_default_wgs(many)
        assert plan_for(many).consumer_wgs == 2 and blocks != plan_for(many) and blocks in search_space(many)
        assert plan_for(many).schedule == "seesaw"  # over 16-bit caches, and over fp8 ones converting in place
        with pytest.raises(PlanError, match="steps m-blocks by 32 rows for"):
            check_plan(many, dataclasses.replace(blocks, block_m=64))
    with pytest.raises(PlanError, match="steps m-blocks by 64 rows"):
        check_plan(spec, dataclasses.replace(plan, block_m=32))
    for bad, words in [
        (MLASpec(q_heads=16, page=8, cache_dtype="fp8_e4m3"), "page 8 < 16"),
        (MLASpec(q_heads=16, rope=32, cache_dtype="fp8_e4m3"), "rope 32 is not a multiple of 64"),
    ]:
        with pytest.raises(PlanError, match=words):
            plan_for(bad, schedule="heads_n")
        assert all(p.schedule != "heads_n" for p in search_space(bad))
    for knobs, words in [(dict(stages=17), "stages must be in 18..64"), (dict(raw_stages=1), "no packed-row pipeline"),
                         (dict(consumer_wgs=2), r"takes \(104, 152\)"),
                         (dict(consumer_wgs=3), "must be 1 or 2"),
                         (dict(producer_regs=72, consumer_regs=216), r"takes \(136, 232\)")]:
        with pytest.raises(PlanError, match=words):
            check_plan(spec, dataclasses.replace(plan, **knobs))


def test_plan_knobs_parse_with_their_types():
    assert parse_knobs("") == {}
    assert parse_knobs("schedule=heads_n, raw_stages=3,split_kv=false") == dict(
        schedule="heads_n", raw_stages=3, split_kv=False)
    assert plan_for(SPEC_FILES["deepseek_v3.py"], **parse_knobs("stages=1")).stages == 1
    for text, words in [("stages", "expected KEY=VALUE"), ("foo=1", "unknown plan knob 'foo'"),
                        ("stages=two", "stages takes an integer"), ("split_kv=maybe", "takes true or false")]:
        with pytest.raises(ValueError, match=words):
            parse_knobs(text)


def test_heads_n_over_a_16_bit_cache():
    """The 16-bit heads_n kernel loads every chunk straight into the ring: no scale stages, no
    fp8-landed barriers, so the ring is as deep as for fp8 or deeper. The planner picks it for few
    query rows per KV head; the M-side schedules stay available by pinning."""
    spec = MLASpec(q_heads=16)
    plan = plan_for(spec)
    assert (plan.schedule, plan.consumer_wgs, plan.block_n, plan.raw_stages) == ("heads_n", 1, 64, 0)
    assert plan.stages >= plan_for(MLASpec(q_heads=16, cache_dtype="fp8_e4m3")).stages
    assert smem_bytes(spec, plan) <= H100_SXM.smem_per_block
    assert smem_bytes(spec, dataclasses.replace(plan, stages=plan.stages + 1)) > H100_SXM.smem_per_block
    assert plan in search_space(spec)
    assert plan_for(spec, schedule="seesaw").schedule == "seesaw"
    assert plan_for(spec, consumer_wgs=2).schedule == "seesaw"  # a knob heads_n cannot take
    assert plan_for(MLASpec(q_heads=32, max_q=2, causal=True)).schedule == "seesaw"  # 64 rows
    # RoPE first and two KV heads are fine; the RoPE must still be whole 64-column chunks
    assert plan_for(MLASpec(q_heads=16, kv_heads=2, rope_at="head", page=16, max_q=2)).schedule == "heads_n"
    assert plan_for(MLASpec(q_heads=16, latent=256, rope=32)).schedule != "heads_n"
    with pytest.raises(PlanError, match="rope 32 is not a multiple of 64"):
        plan_for(MLASpec(q_heads=16, latent=256, rope=32), schedule="heads_n")


def test_heads_n_two_mma_warpgroups_split_the_query_rows():
    """A 16-bit cache with 32 query rows per KV head (or 24, padded to 32) runs heads_n with two MMA
    warpgroups of 16 rows each by default; 16 rows cannot split; fp8 keeps one unless pinned."""
    for spec in (MLASpec(q_heads=32), MLASpec(q_heads=16, max_q=2, causal=True),
                 MLASpec(q_heads=3, max_q=8, causal=True, page=32), MLASpec(q_heads=32, dtype="fp16")):
        plan = plan_for(spec)
        assert (plan.schedule, plan.consumer_wgs) == ("heads_n", 2) and plan.tag.endswith("w2-headsn")
        assert (plan.producer_regs, plan.consumer_regs) == (104, 152)
        assert 128 * (2 * plan.producer_regs + 2 * plan.consumer_regs) <= H100_SXM.regs_per_sm
        # O^T of 16 columns (64 registers) and S^T (8) per MMA thread
        assert consumer_registers(spec, plan) == 64 + 8 + 64 <= plan.consumer_regs
        one = plan_for(spec, consumer_wgs=1)
        assert (one.schedule, one.consumer_wgs, one.consumer_regs) == ("heads_n", 1, 232)
        # the same ring: the two P^T tiles of 16 columns take the room of one of 32
        assert one.stages == plan.stages and smem_bytes(spec, one) == smem_bytes(spec, plan)
        assert {plan, one} <= set(search_space(spec))
    sixteen = MLASpec(q_heads=16)
    assert plan_for(sixteen).consumer_wgs == 1
    with pytest.raises(PlanError, match="leave the second one only padding"):
        plan_for(sixteen, schedule="heads_n", consumer_wgs=2)
    assert all(p.consumer_wgs == 1 for p in search_space(sixteen) if p.schedule == "heads_n")
    fp8 = MLASpec(q_heads=32, cache_dtype="fp8_e4m3")
    assert (plan_for(fp8).schedule, plan_for(fp8).consumer_wgs) == ("heads_n", 1)
    pinned = plan_for(fp8, schedule="heads_n", consumer_wgs=2)
    assert (pinned.schedule, pinned.consumer_wgs) == ("heads_n", 2) and pinned in search_space(fp8)


def test_heads_n_two_mma_warpgroups_of_32_columns():
    """64 query rows per KV head (or column blocks of 64 over CTAs) on two MMA warpgroups of 32 columns:
    O^T takes 128 registers per MMA thread, so one producer warpgroup (three converting warps for fp8)
    gives them 224 (or 216), and the ring, beside 64 rows of Q, holds under two tiles."""
    for spec in (MLASpec(q_heads=64, cache_dtype="fp8_e4m3"), MLASpec(q_heads=32, max_q=2, causal=True,
                                                                      cache_dtype="fp8_e4m3"), MLASpec(q_heads=64)):
        plan = plan_for(spec, schedule="heads_n", consumer_wgs=2)
        assert (plan.block_m, plan.producer_wgs, plan.threads) == (64, 1, 384)
        assert (plan.producer_regs, plan.consumer_regs) == (72, 216)
        assert 128 * (plan.producer_regs + 2 * plan.consumer_regs) == 168 * 384
        assert consumer_registers(spec, plan) == 128 + 16 + 64 <= plan.consumer_regs
        assert q_rows(spec, plan) == 64 and smem_bytes(spec, plan) <= H100_SXM.smem_per_block
        # 17 chunks: one tile (9) and more than the converting warps' lead (3 + 1), not two tiles
        assert plan.stages == 17 and smem_bytes(spec, dataclasses.replace(plan, stages=18)) > H100_SXM.smem_per_block
        other = check_plan(spec, dataclasses.replace(plan, producer_regs=56, consumer_regs=224))
        assert other.producer_wgs == 1 and {plan, other} <= set(search_space(spec))
        with pytest.raises(PlanError, match=r"one producer warpgroup, 2 MMA warpgroup\(s\) of 32 columns"):
            check_plan(spec, dataclasses.replace(plan, producer_regs=104, consumer_regs=152))
        with pytest.raises(PlanError, match="stages must be in 13..64"):
            check_plan(spec, dataclasses.replace(plan, stages=12))
        # the defaults: the seesaw (for fp8 converting in place); this layout for fp8 where the seesaw is not
        # generated (1.01-1.06x the split schedule on the H100)
        assert plan_for(spec).schedule == "seesaw"
        if spec.cache_dtype == "fp8_e4m3":
            fallback = plan_for(spec.replace(rope=0))  # no RoPE chunk: no seesaw
            assert (fallback.schedule, fallback.consumer_wgs, fallback.producer_wgs) == ("heads_n", 2, 1)
            # a pinned knob that rules both out falls back to the split schedule
            assert plan_for(spec, raw_stages=2).schedule == "split"
            # pinning a knob the seesaw sets itself keeps it; one it rules out goes to this layout
            assert plan_for(spec, consumer_wgs=2).schedule == "seesaw"
            assert plan_for(spec, stages=14) == dataclasses.replace(plan, stages=14)
    # 128 rows: two column blocks of 64
    many = plan_for(MLASpec(q_heads=128, cache_dtype="fp8_e4m3"), schedule="heads_n", consumer_wgs=2)
    assert (many.block_m, many.producer_wgs) == (64, 1)
