"""Differential tests of the generated kernels against the float32 reference, on an H100.

Every call poisons its outputs first (NaN), the cache holds NaN past every
sequence end and in unused pages, and block-table entries past the used pages
are garbage; every output element is compared (FlashMLA's tolerance:
|out - ref| <= 8e-4 + 2/128 |ref|, |lse - ref| <= 1e-6 + 1.2e-4 |ref|).

fp8_e4m3 caches: the reference reads the same packed rows the way the kernel
does (fp8 * scale in float32, rounded once to the query dtype), so both see the
same keys and values and the same tolerance applies. What e4m3 itself costs
against the unquantized cache (relative error <= 2^-4 per value, 2^-10 * scale
for subnormals) is bounded in tests/test_fp8_cache.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import mlagen.jit
from mlagen.plan import PlanError, parse_knobs, plan_for
from mlagen.runtime import MLAInputError
from mlagen.testing import assert_close_mla, make_problem, seqlens, with_score_jumps
from mlagen.variants import kernel_variants, plan_variants

pytestmark = pytest.mark.gpu

VARIANTS = kernel_variants()
_kernels: dict[str, object] = {}


def plan_overrides() -> dict:
    """Plan knobs pinned for the whole suite: MLAGEN_TEST_PLAN="schedule=seesaw" runs it on that schedule
    (variants the knobs do not fit keep the planner's choice)."""
    return parse_knobs(os.environ.get("MLAGEN_TEST_PLAN", ""))


def drawn_variants() -> list[str] | None:
    """The variants the drawn-case test samples: all, or those named in MLAGEN_GPU_VARIANTS (space or
    comma separated) for a run aimed at a few kernels."""
    names = os.environ.get("MLAGEN_GPU_VARIANTS", "").replace(",", " ").split()
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"MLAGEN_GPU_VARIANTS: unknown variant(s) {unknown}; known: {sorted(VARIANTS)}")
    return names or None


def kernel_for(name: str):
    if name not in _kernels:
        spec = VARIANTS[name]
        try:
            plan = plan_for(spec, **plan_overrides())
        except PlanError:
            plan = plan_for(spec)
        _kernels[name] = mlagen.jit.compile(spec, plan)
    return _kernels[name]


def run_checked(kernel, problem, **kwargs):
    """Run with NaN-poisoned outputs and compare every element with the reference."""
    spec = kernel.spec
    p = problem
    out = torch.full((p.batch, p.s_q, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda")
    lse = None
    if spec.lse:
        lse = torch.full((p.batch, spec.q_heads, p.s_q), float("nan"), dtype=torch.float32, device="cuda")
    result = kernel(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse, **kwargs)
    got_out, got_lse = result if spec.lse else (result, None)
    assert got_out.data_ptr() == out.data_ptr()
    ref_out, ref_lse = p.reference(torch.float32)
    assert_close_mla(got_out, got_lse, ref_out, ref_lse if spec.lse else None,
                     context=f"{p.describe()}\nrepro: {p.repro()}")
    return got_out, got_lse


@st.composite
def cases(draw, names=None, max_batch=64, max_len=4096):
    name = draw(st.sampled_from(sorted(names or VARIANTS)))
    spec = VARIANTS[name]
    batch = draw(st.one_of(st.integers(1, 4), st.integers(1, max_batch)))
    s_q = draw(st.integers(1, spec.max_q))
    lens = draw(seqlens(spec.page, max_len, batch))
    seed = draw(st.integers(0, 2**31 - 1))
    parts = draw(st.one_of(st.none(), st.integers(1, 200)))
    return name, make_problem(spec, batch=batch, seqlens=lens, s_q=s_q, seed=seed, device="cuda"), parts


def test_variants_against_reference(gpu_examples):
    # MLAGEN_GPU_SHRINK=0 reports the first failing case as drawn (shrinking re-runs kernels)
    phases = [Phase.explicit, Phase.reuse, Phase.generate]
    if os.environ.get("MLAGEN_GPU_SHRINK", "1") != "0":
        phases.append(Phase.shrink)

    @settings(max_examples=gpu_examples, deadline=None, database=None, phases=phases,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(cases(names=drawn_variants()))
    def check(case):
        name, problem, parts = case
        run_checked(kernel_for(name), problem, num_parts=parts)

    check()


@pytest.mark.parametrize("name", sorted(plan_variants()))
def test_opt_in_plans_against_reference(name, gpu_examples):
    """The plan knobs the planner does not pick by default (e.g. cluster=2) on the variants they fit:
    drawn problems as above, a long sequence, and maxima that jump mid-sequence."""
    base, knobs = plan_variants()[name]
    spec = VARIANTS[base]
    kernel = mlagen.jit.compile(spec, plan_for(spec, **knobs))
    assert all(getattr(kernel.plan, k) == v for k, v in knobs.items())

    @settings(max_examples=max(10, gpu_examples // 4), deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(cases(names=[base]))
    def check(case):
        _, problem, parts = case
        run_checked(kernel, problem, num_parts=parts)

    check()
    check_long_context(kernel, spec)
    check_score_jumps(kernel, spec)


@pytest.mark.parametrize("name", ["kimi_k2_fp8_mtp", "deepseek_v3_tp4_mtp", "deepseek_v3_tp4_mtp+fp8"])
def test_compile_dispatches_on_s_q_where_the_plans_differ(name):
    """Specs whose calls run another kernel by s_q, through ``mlagen.compile`` without a plan, each s_q against
    the reference with lengths 0, 1 and non-multiples of the page, eagerly and alternating s_q on one kernel
    object:
    - Kimi-K2 over an fp8 cache with one drafted token (specs/kimi_k2_fp8_mtp.py): 2-token calls fill m-block
      pairs (128 rows per KV head) and run the pair, 1-token calls (64) the unpaired seesaw;
    - DeepSeek-V3 TP4 with one drafted token (specs/deepseek_v3_tp4_mtp.py; and over an fp8 cache): 2-token
      calls (64 rows) run the seesaw, 1-token calls (32) the heads_n kernel compiled for one token."""
    from mlagen.dispatch import TunedKernel
    from mlagen.plan import kernel_spec
    from mlagen.spec import load_spec_file

    stem, _, cache = name.partition("+")
    spec = load_spec_file(Path(__file__).resolve().parents[2] / "specs" / f"{stem}.py").spec
    if cache:
        spec = spec.replace(cache_dtype="fp8_e4m3")
    kernel = mlagen.jit.compile(spec, tuned=False)
    assert isinstance(kernel, TunedKernel)
    lens = [5000, 0, 1, 700, 12345, 64]
    for s_q, seed in ((1, 41), (2, 42), (1, 43), (2, 44)):
        problem = make_problem(spec, batch=len(lens), seqlens=lens, s_q=s_q, seed=seed, device="cuda")
        chosen = kernel.kernel_for(problem.batch, s_q, problem.block_table.shape[1])
        plan = plan_for(spec, s_q=s_q)
        assert (chosen.spec, chosen.plan) == kernel_spec(spec, plan), chosen
        if stem == "kimi_k2_fp8_mtp":
            assert plan.cluster == s_q, plan.tag
        else:
            assert (plan.schedule, chosen.spec.max_q) == (("heads_n", 1) if s_q == 1 else ("seesaw", 2)), plan.tag
        run_checked(kernel, problem)
        run_checked(kernel, with_score_jumps(problem), num_parts=1)


def check_long_context(kernel, spec):
    lens = [32768, 1, 12345, 0] if spec.page != 1 else [32768, 3000]
    problem = make_problem(spec, batch=len(lens), seqlens=lens, s_q=spec.max_q, seed=7, device="cuda")
    run_checked(kernel, problem)


def check_score_jumps(kernel, spec):
    base = make_problem(spec, batch=5, seqlens=[3000, 0, 700, 37, 1], s_q=spec.max_q, seed=13, device="cuda")
    problem = with_score_jumps(base)
    for parts in (1, None):
        run_checked(kernel, problem, num_parts=parts)


@pytest.mark.parametrize("name", ["h128_p64_bf16", "h16_p64_bf16", "h128_p64_q2_causal", "h16_p1", "h40_l256r32_p64",
                                  "h128_p64_fp8", "h64_p1_fp16_fp8"])
def test_long_context(name):
    check_long_context(kernel_for(name), VARIANTS[name])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_scores_that_jump_mid_sequence(name):
    """Running maxima that jump mid-sequence by far more than heads_n's lazy-rescale slack (2^8), in one
    CTA (num_parts=1) and split over many; odd heads see the spikes as very negative scores."""
    check_score_jumps(kernel_for(name), VARIANTS[name])


def test_large_batch_deepseek_shape():
    spec = VARIANTS["h128_p64_bf16"]
    g = torch.Generator().manual_seed(3)
    lens = (torch.randn(128, generator=g) * 2048 + 4096).clamp(1, 8192).int().tolist()
    problem = make_problem(spec, batch=128, seqlens=lens, s_q=1, seed=11, device="cuda")
    run_checked(kernel_for("h128_p64_bf16"), problem)


@pytest.mark.parametrize("parts", [None, 7])
@pytest.mark.parametrize("name", ["h16_p64_bf16", "h128_p64_bf16", "h40_l256r32_p64", "h16_p16_q2_causal_fp8"])
def test_batch_beyond_one_scan_of_the_lengths(name, parts):
    """More requests than a decode CTA has threads (384): the work split scans the lengths in several
    rounds (one round below that). Short requests, empty ones and page edges; all three schedules."""
    spec = VARIANTS[name]
    g = torch.Generator().manual_seed(21)
    lens = torch.randint(0, 3 * spec.page + 2, (1000,), generator=g)
    lens[::97] = 0
    lens[1::89] = spec.page
    s_q = min(spec.max_q, 2)
    problem = make_problem(spec, batch=1000, seqlens=lens.tolist(), s_q=s_q, seed=13, device="cuda")
    run_checked(kernel_for(name), problem, **({} if parts is None else {"num_parts": parts}))


@pytest.mark.parametrize("name", ["h16_p64_bf16", "h3_p32_q8_causal", "h16_l64r16_p256_fp16", "h32_l192r64_p8",
                                  "h128_p64_bf16", "h40_p64_q2_causal_fp8"])
def test_many_pieces_merge_shapes(name):
    """The many-pieces merge (parts >= 4 x batch) in its shapes: one request over 132 parts (one round of the
    wide merge where the rows are few) and over 300 (several rounds, the running maximum rescaled between
    them), and five requests (empty and page-edge ones among them) whose rows take the narrow merge where
    they are many. Causal variants give rows that some pieces see no key of."""
    spec = VARIANTS[name]
    one = make_problem(spec, batch=1, seqlens=[20000 if spec.page != 1 else 6000], s_q=spec.max_q, seed=3,
                       device="cuda")
    for parts in (132, 300):
        run_checked(kernel_for(name), one, num_parts=parts)
    five = make_problem(spec, batch=5, seqlens=[9000, 0, 3001, spec.page, 777], s_q=spec.max_q, seed=4,
                        device="cuda")
    run_checked(kernel_for(name), five, num_parts=200)


def _one_layer_of_a_big_pool(problem, min_bytes=(1 << 32) + (1 << 30)):
    """``problem`` with its cache moved into layer 1 of a two-layer pool of more than 4 GiB, ``(num_pages, 2,
    page, kv_heads, row)`` (a page stride of two pages), its pages at the far end (byte offsets past 2^32),
    everything else poison: NaN, or 0xFF bytes (NaN scales) for packed fp8 rows."""
    import dataclasses

    kv = problem.kv_cache
    page_bytes = kv[0].numel() * kv.element_size()
    num_pages = max(kv.shape[0], -(-min_bytes // (2 * page_bytes)))
    pool = torch.empty((num_pages, 2, *kv.shape[1:]), dtype=kv.dtype, device="cuda")
    if kv.dtype in (torch.uint8, torch.float8_e4m3fn):
        pool.view(torch.uint8).fill_(255)
    else:
        pool.fill_(float("nan"))
    shift = num_pages - kv.shape[0]
    layer = pool[:, 1]
    layer[shift:] = kv
    bt = problem.block_table
    moved = torch.where((bt >= 0) & (bt < kv.shape[0]), bt + shift, bt)  # garbage entries stay garbage
    return dataclasses.replace(problem, kv_cache=layer, block_table=moved)


@pytest.mark.parametrize("name", ["h128_p64_bf16", "h16_p64_bf16", "h40_l256r32_p64", "h64_kv2_p4_q2_causal_fp16",
                                  "h128_p64_fp8", "h16_p16_q2_causal_fp8", "h64_p1_fp16_fp8"])
def test_one_layer_of_a_pool_past_4_gib(name):
    """The cache as one layer's view of a multi-layer pool (page stride twice the page) whose used pages lie
    more than 4 GiB in: TMA boxes and row addresses past 32-bit byte offsets, on every schedule and cache
    kind."""
    spec = VARIANTS[name]
    lens = [3 * spec.page + 5, 0, 1, 2 * spec.page] if spec.page > 1 else [300, 0, 1, 64]
    problem = make_problem(spec, batch=4, seqlens=lens, s_q=spec.max_q, seed=17, device="cuda")
    big = _one_layer_of_a_big_pool(problem)
    assert big.kv_cache.stride(0) == 2 * problem.kv_cache.stride(0)
    assert big.block_table[0, 0].item() * big.kv_cache.stride(0) * big.kv_cache.element_size() > 1 << 32
    for parts in (1, None):
        run_checked(kernel_for(name), big, num_parts=parts)
    del big
    torch.cuda.empty_cache()


@pytest.mark.parametrize("parts", [1, 2, 3, 17, 132, 1000])
@pytest.mark.parametrize("name", ["h128_p64_q2_causal", "h32_kv2_p64_q2_causal"])
def test_split_count_does_not_change_result(name, parts):
    # (the second: heads_n with two MMA warpgroups, Q loaded by both, partial last tiles)
    spec = VARIANTS[name]
    problem = make_problem(spec, batch=5, seqlens=[700, 64, 0, 5000, 129], s_q=2, seed=5, device="cuda")
    run_checked(kernel_for(name), problem, num_parts=parts)


def test_cuda_graph_replay_matches_eager():
    """Capture one call, replay it: same result as eager; new inputs in the same buffers are honoured
    (the split schedule is recomputed on the GPU at every replay)."""
    name = "h64_p16_q4_causal_fp16"
    kernel = kernel_for(name)
    spec = VARIANTS[name]
    lens_a, lens_b = [100, 1000, 0, 17, 4096, 333], [5, 2000, 64, 0, 1, 4000]
    pages = max(sum(-(-n // spec.page) for n in lens) for lens in (lens_a, lens_b)) + 8
    a = make_problem(spec, batch=6, seqlens=lens_a, s_q=4, seed=9, device="cuda", num_pages=pages)
    b = make_problem(spec, batch=6, seqlens=lens_b, s_q=4, seed=10, device="cuda", num_pages=pages)
    width = max(a.block_table.shape[1], b.block_table.shape[1])

    def padded(bt):
        full = torch.full((bt.shape[0], width), -1, dtype=torch.int32, device="cuda")
        full[:, : bt.shape[1]] = bt
        return full

    q, kv, bt, lens = a.q.clone(), a.kv_cache.clone(), padded(a.block_table), a.cache_seqlens.clone()
    eager_out, eager_lse = kernel(q, kv, bt, lens)
    out = torch.full_like(eager_out, float("nan"))
    lse = torch.full_like(eager_lse, float("nan"))
    ws = kernel.workspace(6, 4, "cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture
        kernel(q, kv, bt, lens, out=out, lse=lse, workspace=ws)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        kernel(q, kv, bt, lens, out=out, lse=lse, workspace=ws)
    for _ in range(3):
        out.fill_(float("nan"))
        lse.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out, eager_out)
        assert torch.equal(lse, eager_lse)
    q.copy_(b.q)
    kv.copy_(b.kv_cache)
    bt.copy_(padded(b.block_table))
    lens.copy_(b.cache_seqlens)
    out.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    ref_out, ref_lse = b.reference(torch.float32)
    assert_close_mla(out, lse, ref_out, ref_lse, context=b.describe())


@pytest.mark.parametrize("name", ["h16_p64_bf16", "h128_p64_bf16", "h16_p16_q2_causal_fp8", "h128_p64_fp8"])
def test_back_to_back_calls_share_the_workspace(name):
    """Calls queued back to back on one stream, sharing one split workspace, eagerly and captured in one graph:
    each decode grid is a programmatic dependent (PDL) of the previous call's merge, which may still be reading
    the partials the next decode writes; every output must match its own reference."""
    kernel = kernel_for(name)
    spec = VARIANTS[name]
    s_q = min(spec.max_q, 2)
    problems = [make_problem(spec, batch=2, seqlens=lens, s_q=s_q, seed=seed, device="cuda")
                for seed, lens in ((31, [9000, 1500]), (32, [300, 12000]), (33, [0, 7000]))]
    ws = kernel.workspace(2, s_q, "cuda")

    def outputs():
        return [(torch.full((2, s_q, spec.q_heads, spec.d_v), float("nan"), dtype=p.q.dtype, device="cuda"),
                 torch.full((2, spec.q_heads, s_q), float("nan"), dtype=torch.float32, device="cuda") if spec.lse
                 else None) for p in problems]

    def call_all(outs):
        for p, (out, lse) in zip(problems, outs):
            kernel(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=out, lse=lse, workspace=ws, validate=False)

    def check(outs):
        for p, (out, lse) in zip(problems, outs):
            ref_out, ref_lse = p.reference(torch.float32)
            assert_close_mla(out, lse, ref_out, ref_lse if spec.lse else None, context=p.describe())

    eager = outputs()
    for _ in range(3):
        call_all(eager)
    torch.cuda.synchronize()
    check(eager)
    captured = outputs()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture
        call_all(captured)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call_all(captured)
    for _ in range(3):
        for out, lse in captured:
            out.fill_(float("nan"))
            if lse is not None:
                lse.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        check(captured)


def test_bad_inputs_raise_before_launch():
    name = "h16_p64_bf16"
    kernel = kernel_for(name)
    spec = VARIANTS[name]
    p = make_problem(spec, batch=2, seqlens=[100, 5], s_q=1, seed=1, device="cuda")
    args = (p.q, p.kv_cache, p.block_table, p.cache_seqlens)
    with pytest.raises(MLAInputError, match="dtype"):
        kernel(p.q.half(), *args[1:])
    with pytest.raises(MLAInputError, match="shape"):
        kernel(p.q[:, :, :8], *args[1:])
    with pytest.raises(MLAInputError, match="CUDA"):
        kernel(p.q.cpu(), *args[1:])
    strided_q = torch.zeros(*p.q.shape[:3], spec.d_qk + 8, dtype=p.q.dtype, device="cuda")[..., : spec.d_qk]
    with pytest.raises(MLAInputError, match="contiguous"):
        kernel(strided_q, *args[1:])
    with pytest.raises(MLAInputError, match="s_q"):
        kernel(torch.cat([p.q, p.q], dim=1), *args[1:])
    bt = p.block_table.clone()
    bt[0, 0] = p.num_pages
    with pytest.raises(MLAInputError, match=r"block_table\[0, 0\]"):
        kernel(p.q, p.kv_cache, bt, p.cache_seqlens)
    lens = p.cache_seqlens.clone()
    lens[1] = spec.page * p.block_table.shape[1] + 1
    with pytest.raises(MLAInputError, match=r"cache_seqlens\[1\]"):
        kernel(p.q, p.kv_cache, p.block_table, lens)
    with pytest.raises(MLAInputError, match="int32"):
        kernel(p.q, p.kv_cache, p.block_table.long(), p.cache_seqlens)


def test_fp8_bad_inputs_raise_before_launch():
    name = "h16_p16_q2_causal_fp8"
    kernel = kernel_for(name)
    spec = VARIANTS[name]
    p = make_problem(spec, batch=2, seqlens=[100, 5], s_q=2, seed=1, device="cuda")
    rest = (p.block_table, p.cache_seqlens)
    # the kernel takes the rows as uint8 or as FlashMLA's float8_e4m3fn view
    run_checked(kernel, p)
    out = kernel(p.q, p.kv_cache.view(torch.float8_e4m3fn), *rest)[0]
    assert torch.equal(out, kernel(p.q, p.kv_cache, *rest)[0])
    with pytest.raises(MLAInputError, match="packed fp8_e4m3 rows"):
        kernel(p.q, p.kv_source, *rest)
    with pytest.raises(MLAInputError, match="packed fp8 rows"):
        kernel(p.q, p.kv_cache[..., :-16], *rest)
    pool = torch.zeros(p.num_pages, spec.page * 656 + 8, dtype=torch.uint8, device="cuda")
    odd_stride = pool[:, : spec.page * 656].view(p.num_pages, spec.page, 1, 656)
    with pytest.raises(MLAInputError, match="16 bytes"):
        kernel(p.q, odd_stride, *rest)


@pytest.mark.parametrize("name", ["h16_p32_q3_causal_fp16_fp8", "h16_p16_q2_causal_fp8_seesaw"])
def test_fp8_seesaw_blocks_outside_the_fast_dequant_range(name):
    """The same for the seesaw's converting warps (beside h128_p64_fp8 below): its default above 32 rows
    (fp16 queries, three causal tokens), and pinned on 32 rows (``plan_variants``)."""
    base, knobs = plan_variants().get(name, (name, {}))
    spec = VARIANTS[base]
    lens = [700, 64, 0, 333]
    problem = make_problem(spec, batch=len(lens), seqlens=lens, s_q=spec.max_q, seed=21, device="cuda")
    counts = _with_extreme_blocks(problem, seed=22)
    assert min(counts.values()) > 100, counts
    kernel = mlagen.jit.compile(spec, plan_for(spec, **knobs)) if knobs else kernel_for(base)
    assert kernel.plan.schedule == "seesaw"
    run_checked(kernel, problem)


def _with_extreme_blocks(problem, seed: int):
    """Rewrite some 128-value blocks of the valid packed rows so the kernel's exact float32 dequant path
    runs: scale 2^8 (past both packed multiplies' exact range) over small e4m3 codes, subnormal ones
    mostly (values 0, ±0.5, ±1, ±1.5, and ±4 for one code in eight, as large as the other blocks' values get,
    so P's rounding stays inside the suite's tolerance), scales below the fast path's smallest (2^-130
    bf16, 2^-24 fp16), and scale 0.
    Poisoned (NaN-scale) rows are left as they are. Returns the per-kind block counts."""
    spec = problem.spec
    blocks = spec.latent // 128
    rows = problem.kv_cache.view(torch.uint8)
    scales = rows[..., spec.latent: spec.latent + 4 * blocks].contiguous().view(torch.float32)
    gen = torch.Generator(device=rows.device).manual_seed(seed)
    kind = torch.randint(0, 8, scales.shape, generator=gen, device=rows.device)
    kind = torch.where(torch.isfinite(scales), kind, torch.full_like(kind, 7))  # 7: keep
    tiny = 2.0**-130 if spec.dtype == "bf16" else 2.0**-24
    scales = torch.where(kind == 0, torch.full_like(scales, 2.0**8), scales)
    scales = torch.where(kind == 1, torch.full_like(scales, tiny), scales)
    scales = torch.where(kind == 2, torch.zeros_like(scales), scales)
    codes = rows[..., : spec.latent].view(*rows.shape[:-1], blocks, 128)
    small = torch.randint(0, 4, codes.shape, generator=gen, device=rows.device, dtype=torch.uint8)
    four = torch.randint(0, 8, codes.shape, generator=gen, device=rows.device) == 0
    small = torch.where(four, torch.full_like(small, 0x08), small)
    small |= torch.randint(0, 2, codes.shape, generator=gen, device=rows.device, dtype=torch.uint8) << 7
    codes = torch.where((kind == 0)[..., None], small, codes)
    rows[..., : spec.latent] = codes.reshape(*rows.shape[:-1], spec.latent)
    rows[..., spec.latent: spec.latent + 4 * blocks] = scales.view(torch.uint8).reshape(*rows.shape[:-1], -1)
    return {name: int((kind == k).sum()) for k, name in enumerate(("big", "tiny", "zero"))}


@pytest.mark.parametrize("name", ["h128_p64_fp8", "h64_p1_fp16_fp8", "h16_p16_q2_causal_fp8"])
def test_fp8_blocks_outside_the_fast_dequant_range(name):
    """Blocks whose rounded scale the packed 16-bit multiply cannot take exactly go through float32."""
    spec = VARIANTS[name]
    lens = [700, 64, 0, 333] if spec.page != 1 else [300, 5]
    problem = make_problem(spec, batch=len(lens), seqlens=lens, s_q=spec.max_q, seed=21, device="cuda")
    counts = _with_extreme_blocks(problem, seed=22)
    assert min(counts.values()) > 100, counts
    run_checked(kernel_for(name), problem)
