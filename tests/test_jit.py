"""Compile and cache: every supported spec file compiles for sm_90a (no GPU), warm lookups, the cache
key, and the cache under concurrent and interrupted builds.

Compiling takes ~5-15 s per kernel here, so the spec files are built once per session, two at a time,
into the session's ``kernel_cache`` (shared with test_cli_build.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import mlagen
import mlagen.jit
from mlagen.codegen import render
from mlagen.jit import build, identity_for, instruction_counts, load
from mlagen.plan import UnsupportedSpecError, plan_for, search_space, supports
from mlagen.ptxas import PtxasNotFoundError, check_ptx, find_ptxas
from mlagen.sass import mma_loops
from mlagen.spec import MLASpec
from mlagen.variants import kernel_variants, spec_file_variants

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
SPEC_FILES = spec_file_variants(SPECS)
SUPPORTED = {name: s for name, s in SPEC_FILES.items() if supports(s) is None}
# one MMA warpgroup (64-wide latent) and 256-token pages; page 1 comes with deepseek_v3_page1
WGS1 = "h16_l64r16_p256_fp16"
TO_BUILD = {**SUPPORTED, WGS1: kernel_variants()[WGS1]}
SMALL = MLASpec(q_heads=16, latent=64, rope=16, page=256)
PTX_MUST_HAVE = (".target sm_90a", "wgmma.mma_async", "cp.async.bulk.tensor", "setmaxnreg")

# CuTe DSL reads CUTE_DSL_ARCH once, when it starts. mlagen.jit sets it only as a default before its
# first compile, so a process that loads the DSL first (load(), the racers below) must set it itself:
# without a GPU the DSL would otherwise target sm_100a and refuse the sm_90a instructions.
os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")


def assert_entry_valid(entry: Path, identity) -> dict:
    """A complete entry of ``identity``: meta.json written last and matching the files beside it."""
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["key"] == identity.key and meta["name"] == identity.name == entry.name
    assert meta["object_sha256"] == hashlib.sha256((entry / "kernel.o").read_bytes()).hexdigest()
    source = (entry / "kernel.py").read_text()
    assert meta["source_sha256"] == hashlib.sha256(source.encode()).hexdigest()
    assert source == render(identity.spec, identity.plan).source
    ptx = (entry / "kernel.ptx").read_text()
    assert meta["instructions"] == instruction_counts(ptx)
    for text in PTX_MUST_HAVE:
        assert text in ptx, text
    assert not list(entry.glob(".*.tmp-*")), "temp files left in the entry"
    return meta


@pytest.fixture(scope="module")
def built(kernel_cache) -> dict:
    """Every supported spec file and the one-warpgroup variant, built into the session cache."""
    results = {}
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(build, spec, cache_dir=str(kernel_cache)) for name, spec in TO_BUILD.items()}
        for name, future in futures.items():
            results[name] = future.result()
    return results


def test_what_is_built_covers_the_regimes():
    assert "deepseek_v3_fp8" in TO_BUILD and len(SUPPORTED) == len(SPEC_FILES)
    # fp8: heads_n on two MMA warpgroups of 32 columns (128 query rows per KV head), on one (16); the
    # split schedule: test_fp8_split_schedule_compiles
    assert plan_for(TO_BUILD["deepseek_v3_fp8"]).producer_wgs == 1
    assert plan_for(TO_BUILD["deepseek_v2_lite_fp8"]).schedule == "heads_n"
    assert plan_for(TO_BUILD[WGS1]).consumer_wgs == 1
    assert plan_for(TO_BUILD["deepseek_v3"]).consumer_wgs == 2
    assert {s.page for s in TO_BUILD.values()} >= {1, 16, 64, 128, 256}
    assert any(s.causal for s in TO_BUILD.values()) and {s.dtype for s in TO_BUILD.values()} == {"bf16", "fp16"}


@pytest.mark.parametrize("name", sorted(TO_BUILD))
def test_compiles_for_sm90a(built, kernel_cache, name):
    result = built[name]
    spec = TO_BUILD[name]
    assert result.identity == identity_for(spec)
    assert result.identity.plan == plan_for(spec)
    assert result.entry_dir == result.identity.entry_dir(kernel_cache)
    meta = assert_entry_valid(result.entry_dir, result.identity)
    assert meta == result.meta
    ptx = result.ptx_path.read_text()
    counts = result.meta["instructions"]
    assert counts["target_sm_90a"] is True
    assert counts["wgmma"] >= 2 and counts["tma_load"] >= 2
    assert counts["setmaxnreg"] == 2  # producer decreases, consumers increase
    assert f"setmaxnreg.dec.sync.aligned.u32 {result.identity.plan.producer_regs}" in ptx
    assert f"setmaxnreg.inc.sync.aligned.u32 {result.identity.plan.consumer_regs}" in ptx
    assert result.object_path.stat().st_size > 10_000
    assert result.compile_seconds is not None and result.compile_seconds > 0
    # (the session cache starts empty; test_cli_build.py or test_export.py may have built an entry first)


@pytest.mark.parametrize("name", sorted(TO_BUILD))
def test_ptxas_keeps_every_wgmma_pipelined(built, name):
    """ptxas serialises every wgmma of a kernel (C7514, C7518, ...) when it cannot prove accumulators
    untouched while one is in flight: correct, but a large part of the MMA rate lost, visible only here.
    A build runs ptxas -v on its PTX and keeps the report in meta.json."""
    ptxas = built[name].meta["ptxas"]
    assert ptxas is not None, "no ptxas found: the dev extras install it (nvidia-cuda-nvcc)"
    assert "error" not in ptxas, ptxas
    assert ptxas["serialized"] == [], f"{name}: ptxas serialises the wgmmas ({ptxas['serialized']})"
    assert ptxas["max_registers"] > 0  # the report was parsed


@pytest.mark.parametrize("name", sorted(TO_BUILD))
def test_tile_loops_keep_registers_out_of_local_memory(built, name):
    """A spill inside an MMA warpgroup's tile loop costs every tile (ptxas's spill total does not say
    where a spill is; one in the epilogue is harmless). The kernel's SASS (mlagen.sass) must have a tile
    loop (wgmma inside) and no local-memory load or store in any of them."""
    reports = mma_loops(built[name].object_path)
    assert reports, f"{name}: no loop issuing wgmma found in the SASS"
    allowed = allowed_tile_loop_loads(built[name].identity.plan)
    spilled = [r.describe() for r in reports if r.counts.get("STL", 0) or r.counts.get("LDL", 0) > allowed]
    assert not spilled, f"{name}: local memory in a tile loop: {spilled}"


def allowed_tile_loop_loads(plan) -> int:
    """Local loads a tile loop may keep, where measured: heads_n on two MMA warpgroups of 32 columns at
    registers 72/216 reloads three values per tile and runs 1.10x faster on the H100 than at 56/224,
    which has none but starves the converting warps (docs/perf/README.md). Stores never. (With causal
    masking, which no spec file uses on this layout, it reloads eight; the GPU suite covers those.)"""
    wide = plan.schedule == "heads_n" and plan.producer_wgs == 1 and plan.consumer_regs == 216
    return 3 if wide else 0


def test_heads_n_column_blocks_compile(kernel_cache):
    """More than 32 query rows per KV head on heads_n (a tuning candidate): 32 per CTA, the CTA's
    m-block offsetting its causal limits and its output rows. Two KV heads (Q gathered without TMA),
    four causal query tokens, fp8: two column blocks of 32."""
    spec = MLASpec(q_heads=32, kv_heads=2, page=128, max_q=4, causal=True, cache_dtype="fp8_e4m3")
    plan = plan_for(spec, schedule="heads_n")
    assert plan.block_m == 32 and plan.tag.startswith("m32n64")
    result = build(spec, plan, cache_dir=str(kernel_cache))
    assert result.identity.plan == plan
    meta = assert_entry_valid(result.entry_dir, result.identity)
    counts = meta["instructions"]
    assert counts["target_sm_90a"] is True and counts["wgmma"] >= 2 and counts["tma_load"] >= 2
    assert meta["ptxas"]["serialized"] == []
    assert "m_block * BLOCK_M + col0 + n" in (result.entry_dir / "kernel.py").read_text()
    # one block per KV head: no offset in the code (the default kernels keep their PTX)
    assert "m_block * BLOCK_M + col0 + n" not in render(MLASpec(q_heads=16, cache_dtype="fp8_e4m3"), plan_for(
        MLASpec(q_heads=16, cache_dtype="fp8_e4m3"))).source


def test_fp8_split_schedule_compiles(kernel_cache):
    """The fp8 split schedule (packed-row stages dequantized into half-tile buffers), no spec file's
    default since 128 query rows per KV head moved to heads_n (and then to the seesaw): still the planner's
    choice where neither is generated (pages under 8 tokens, a RoPE of no whole 64-column chunk) and a
    tuning candidate."""
    spec = TO_BUILD["deepseek_v3_fp8"]
    plan = plan_for(spec, schedule="split")
    assert plan.raw_stages >= 1 and plan_for(dataclasses.replace(spec, page=4)).schedule == "split"
    result = build(spec, plan, cache_dir=str(kernel_cache))
    meta = assert_entry_valid(result.entry_dir, result.identity)
    assert meta["instructions"]["wgmma"] >= 2 and meta["ptxas"]["serialized"] == []
    reports = mma_loops(result.object_path)
    assert reports and not [r.describe() for r in reports if r.local_memory]


def test_fp8_seesaw_compiles(kernel_cache):
    """The seesaw over an fp8 cache (unpaired: DeepSeek-V3 fp8's default pairs it, below): the 16-bit seesaw's MMA warpgroups (88
    wgmmas a pair, none serialised, no local memory in the pair loop at 224 registers), TMA boxes for the
    fp8 latent, the scale copies and the RoPE chunks, and three converting warps writing into the KV
    buffers in place."""
    spec = TO_BUILD["deepseek_v3_fp8"]
    plan = plan_for(spec, schedule="seesaw")
    assert plan == plan_for(spec, cluster=1)
    result = build(spec, plan, cache_dir=str(kernel_cache))
    meta = assert_entry_valid(result.entry_dir, result.identity)
    assert meta["instructions"]["wgmma"] == 88 and meta["ptxas"]["serialized"] == []
    assert f"setmaxnreg.inc.sync.aligned.u32 {plan.consumer_regs}" in result.ptx_path.read_text()
    reports = mma_loops(result.object_path)
    assert reports and not [r.describe() for r in reports if r.local_memory]
    assert "def convert_chunk(" in (result.entry_dir / "kernel.py").read_text()


def test_fp8_seesaw_pair_compiles(kernel_cache):
    """The fp8 seesaw over a 2-CTA cluster (DeepSeek-V3 fp8's default): each CTA loads and converts half of
    every tile's latent chunks and sends each converted chunk to the peer as one bulk copy completing on the
    peer's barrier (no per-value remote stores, no cluster-scope fence); the MMA warpgroups as unpaired."""
    spec = TO_BUILD["deepseek_v3_fp8"]
    plan = plan_for(spec, cluster=2)
    assert plan == plan_for(spec)
    result = build(spec, plan, cache_dir=str(kernel_cache))
    meta = assert_entry_valid(result.entry_dir, result.identity)
    assert meta["instructions"]["wgmma"] == 88 and meta["ptxas"]["serialized"] == []
    ptx = result.ptx_path.read_text()
    assert ptx.count("cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes") == 1
    assert "st.async" not in ptx and "st.shared::cluster" not in ptx
    assert "mbarrier.try_wait.parity.acquire.cluster" in ptx
    reports = mma_loops(result.object_path)
    assert reports and not [r.describe() for r in reports if r.local_memory]
    assert not [r.describe() for r in reports if r.counts.get("MEMBAR", 0)]


def test_fp8_pair_of_two_token_calls_compiles(kernel_cache):
    """Kimi-K2 fp8 with one drafted token: 2-token calls (128 rows per KV head) run the paired seesaw, built
    like DeepSeek-V3 fp8's; its launcher rounds the m-blocks up to whole clusters, so a 1-token call pinned to
    it runs an empty peer instead of failing to launch (the planner gives 1-token calls the unpaired kernel)."""
    from mlagen.plan import plans_by_s_q

    spec = TO_BUILD["kimi_k2_fp8_mtp"]
    by_s_q = plans_by_s_q(spec)
    assert by_s_q[1] == plan_for(spec) and by_s_q[2].cluster == 2
    result = build(spec, by_s_q[2], cache_dir=str(kernel_cache))
    meta = assert_entry_valid(result.entry_dir, result.identity)
    assert meta["instructions"]["wgmma"] == 88 and meta["ptxas"]["serialized"] == []
    source = (result.entry_dir / "kernel.py").read_text()
    assert "m_blocks = (m_blocks + CLUSTER - 1) // CLUSTER * CLUSTER" in source
    assert "CLUSTER" not in render(spec, by_s_q[1]).source
    ptx = result.ptx_path.read_text()
    assert ptx.count("cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes") == 1


def test_a_kernel_compiled_for_fewer_query_tokens_is_the_narrower_specs_kernel(kernel_cache):
    """DeepSeek-V3 TP4 MTP's 1-token calls run the heads_n plan with q_tokens=1: its identity, cache entry,
    rendered module and compiled kernel are those of the spec with max_q 1 (DeepSeek-V3 TP4 itself), so
    ``mlagen build`` of either file compiles it once."""
    from mlagen.plan import plans_by_s_q

    spec = TO_BUILD["deepseek_v3_tp4_mtp"]
    one = plans_by_s_q(spec)[1]
    narrow = TO_BUILD["deepseek_v3_tp4"]
    assert one.q_tokens == 1 and narrow == spec.replace(max_q=1)
    identity = identity_for(spec, one)
    assert identity.spec == narrow and identity.plan.q_tokens == 0
    assert identity.key == identity_for(narrow).key
    assert render(spec, one).source == render(narrow, plan_for(narrow)).source
    result = build(spec, one, cache_dir=str(kernel_cache))
    assert result.entry_dir == build(narrow, cache_dir=str(kernel_cache)).entry_dir
    assert_entry_valid(result.entry_dir, result.identity)
    # the seesaw serving both s_q is its own kernel
    assert identity_for(spec).spec == spec and identity_for(spec).plan.schedule == "seesaw"


def test_heads_n_with_three_producer_warpgroups_compiles(kernel_cache):
    """heads_n over fp8 with eleven converting warps (registers 88/232, a tuning candidate): 512 threads, and at 16
    columns the whole kernel fits the 128 registers a thread such a CTA is launched with (no spills)."""
    spec = TO_BUILD["deepseek_v2_lite_fp8"]
    plan = plan_for(spec, producer_regs=88, consumer_regs=232)
    assert (plan.schedule, plan.producer_wgs, plan.threads, plan.tag) == ("heads_n", 3, 512, "n64s25w1p3-headsn")
    result = build(spec, plan, cache_dir=str(kernel_cache))
    meta = assert_entry_valid(result.entry_dir, result.identity)
    ptxas = meta["ptxas"]
    assert ptxas["serialized"] == [] and ptxas["spill_store_bytes"] == ptxas["spill_load_bytes"] == 0
    assert ptxas["max_registers"] == 128
    ptx = result.ptx_path.read_text()
    assert "setmaxnreg.dec.sync.aligned.u32 88" in ptx and "setmaxnreg.inc.sync.aligned.u32 232" in ptx


def test_ptxas_report_catches_serialisation(tmp_path, monkeypatch):
    """The check above can fail: a ptxas that reports serialised wgmmas is caught, with its codes."""
    fake = tmp_path / "ptxas"
    fake.write_text(
        "#!/bin/sh\n"
        "echo \"ptxas info    : (C7514) Potential Performance Loss: wgmma.mma_async instructions are serialized "
        "due to non wgmma instructions reading accumulator registers of a wgmma\" >&2\n"
        "echo \"ptxas info    : (C7519) warpgroup.arrive is injected in around line 12 by compiler to allow use "
        "of registers in GMMA in function 'k'\" >&2\n"
        "echo \"ptxas info    : Used 168 registers, used 8 barriers\" >&2\n"
        "echo \"    24 bytes stack frame, 24 bytes spill stores, 72 bytes spill loads\" >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MLAGEN_PTXAS", str(fake))
    report = check_ptx(tmp_path / "any.ptx")
    assert report.codes == ("C7514",)  # the injected warpgroup.arrive (C7519) is not a serialisation
    assert (report.spill_store_bytes, report.spill_load_bytes, report.registers) == (24, 72, 168)
    # a build records it in meta.json and warns
    with pytest.warns(RuntimeWarning, match="serialises the wgmmas"):
        summary = mlagen.jit._ptxas_summary(tmp_path / "any.ptx", identity_for(SMALL))
    assert summary == {"serialized": ["C7514"], "spill_store_bytes": 24, "spill_load_bytes": 72,
                       "max_registers": 168}
    monkeypatch.setenv("MLAGEN_PTXAS", str(tmp_path / "missing"))
    with pytest.raises(PtxasNotFoundError, match="MLAGEN_PTXAS"):
        find_ptxas()


def test_warm_build_is_a_fast_lookup(built, kernel_cache, monkeypatch):
    for name in ("deepseek_v3", WGS1):
        first = built[name]
        again = build(TO_BUILD[name], cache_dir=kernel_cache)
        assert again.cold is False
        assert again.seconds < 0.5, again.seconds
        assert again.entry_dir == first.entry_dir and again.meta == first.meta
        assert again.compile_seconds == first.compile_seconds
    # MLAGEN_CACHE_DIR is the default cache
    monkeypatch.setenv(mlagen.jit.CACHE_ENV, str(kernel_cache))
    assert mlagen.jit.cache_root() == kernel_cache
    assert build(TO_BUILD["deepseek_v3"]).cold is False


def test_load_works_without_a_gpu(built):
    result = built[WGS1]
    launcher = load(result)
    assert callable(launcher)
    assert load(result) is launcher  # loaded once per process


def test_unsupported_spec_is_refused_before_compiling(tmp_path):
    with pytest.raises(UnsupportedSpecError, match="not supported yet"):
        build(MLASpec(q_heads=16, latent=256, rope=32, cache_dtype="fp8_e4m3"), cache_dir=tmp_path)
    assert not (tmp_path / "kernels").exists()


# ------------------------------------------------------------ identity
def test_key_follows_spec_and_compile_time_knobs():
    base = identity_for(SMALL)
    specs = [SMALL.replace(**c) for c in (dict(q_heads=32), dict(page=64), dict(dtype="fp16"), dict(lse=False),
                                           dict(max_q=2), dict(max_q=2, causal=True), dict(scale=0.5), dict(rope=64),
                                           dict(rope=64, rope_at="head"), dict(kv_heads=2))]
    keys = {identity_for(s).key for s in specs} | {base.key}
    assert len(keys) == len(specs) + 1
    # every plan of the search space is its own kernel
    spec = SPEC_FILES["minicpm3"]
    plans = search_space(spec) + [dataclasses.replace(plan_for(spec), split_kv=False)]
    keys = {identity_for(spec, p).key for p in plans}
    names = {identity_for(spec, p).name for p in plans}
    assert len(keys) == len(names) == len(plans)
    assert base.name.startswith(f"{SMALL.name}__{base.plan.tag}__")


def test_key_ignores_runtime_knobs():
    plan = plan_for(SMALL)
    a, b = identity_for(SMALL, plan), identity_for(SMALL, dataclasses.replace(plan, parts_per_sm=4))
    assert a.key == b.key and a.name == b.name and a.entry_dir() == b.entry_dir()
    assert a == identity_for(SMALL)  # the planner's plan, given or not


def test_key_follows_templates_versions(tmp_path, monkeypatch):
    base = identity_for(SMALL)
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tmp_path / "templates"))
    assert identity_for(SMALL).key == base.key  # same templates elsewhere
    edited = tmp_path / "edited"
    shutil.copytree(REPO / "templates", edited)
    path = edited / "sm90" / "_combine.py.j2"
    path.write_text(path.read_text().replace("COMBINE", "COMBINE ", 1))
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(edited))
    assert identity_for(SMALL).key != base.key
    monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")
    assert identity_for(SMALL).key == base.key

    monkeypatch.setattr(mlagen, "__version__", "999.0.0")
    assert identity_for(SMALL).key != base.key
    monkeypatch.undo()
    monkeypatch.setattr(mlagen.jit, "cutedsl_version", lambda: "0.0.1")
    assert identity_for(SMALL).key != base.key
    monkeypatch.undo()
    assert identity_for(SMALL).key == base.key


# ------------------------------------------------------------ cache robustness
_RACER = r"""
import json, sys, time
from pathlib import Path
import cutlass  # load the compiler before the start line, so both racers start together
from mlagen.jit import build
from mlagen.spec import MLASpec

spec, cache, gate, me = MLASpec.from_dict(json.loads(sys.argv[1])), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
(gate / me).touch()
deadline = time.time() + 300
while len(list(gate.iterdir())) < 2 and time.time() < deadline:
    time.sleep(0.005)
r = build(spec, cache_dir=cache)
print(json.dumps({"cold": r.cold, "seconds": r.seconds, "key": r.identity.key, "entry": str(r.entry_dir)}))
"""

_BUILDER = r"""
import json, sys
from mlagen.jit import build
from mlagen.spec import MLASpec

build(MLASpec.from_dict(json.loads(sys.argv[1])), cache_dir=sys.argv[2])
"""


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(mlagen.jit.CACHE_ENV, None)
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env, text=True, **kwargs)


def test_two_processes_compiling_the_same_kernel(tmp_path):
    cache, gate = tmp_path / "cache", tmp_path / "gate"
    gate.mkdir()
    spec_json = json.dumps(SMALL.to_dict())
    procs = [
        _python(_RACER, spec_json, str(cache), str(gate), f"racer{i}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sorted(r["cold"] for r in results) == [False, True], results  # exactly one compiled
    assert results[0]["key"] == results[1]["key"] and results[0]["entry"] == results[1]["entry"]
    compiler = next(r for r in results if r["cold"])
    waiter = next(r for r in results if not r["cold"])
    # the other one waited on the lock for the compile instead of finding a finished entry at once
    assert waiter["seconds"] > 1.0, results
    identity = identity_for(SMALL)
    entry = identity.entry_dir(cache)
    meta = assert_entry_valid(entry, identity)
    assert meta["compile_seconds"] <= compiler["seconds"]
    assert [p.name for p in (cache / "kernels").iterdir()] == [entry.name]
    after = build(SMALL, cache_dir=cache)
    assert after.cold is False and after.meta == meta


def test_compile_killed_half_way_is_rebuilt(tmp_path, caplog):
    cache = tmp_path / "cache"
    identity = identity_for(SMALL)
    entry = identity.entry_dir(cache)
    proc = _python(_BUILDER, json.dumps(SMALL.to_dict()), str(cache), stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (entry / "kernel.py").exists():
        assert proc.poll() is None, f"the builder ended before writing kernel.py: {proc.stderr.read()[-3000:]}"
        assert time.time() < deadline, "the builder never wrote kernel.py"
        time.sleep(0.01)
    assert not (entry / "meta.json").exists(), "too late: the compile already finished"
    proc.kill()  # SIGKILL: no cleanup, the lock dies with the process
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -9
    assert (entry / "kernel.py").exists() and not (entry / "meta.json").exists()

    # rebuilt here, first behind another holder of the build lock: each step is logged at INFO ("mlagen")
    from filelock import FileLock

    caplog.set_level(logging.INFO, logger="mlagen")
    holder = FileLock(str(identity.lock_path(cache)))
    holder.acquire()
    results = []
    builder = threading.Thread(target=lambda: results.append(build(SMALL, cache_dir=cache)))
    builder.start()
    deadline = time.time() + 60
    while not any("waiting for another process" in r.getMessage() for r in caplog.records):
        assert time.time() < deadline and builder.is_alive(), [r.getMessage() for r in caplog.records]
        time.sleep(0.01)
    holder.release()
    builder.join(timeout=300)
    result = results[0]
    assert result.cold is True and result.entry_dir == entry
    messages = [r.getMessage() for r in caplog.records if r.name == "mlagen"]
    assert [m.split(" ")[0] for m in messages] == ["waiting", "compiling", "compiled"], messages
    assert identity.name in messages[1] and str(entry) in messages[1] and "sm_90a" in messages[1]
    assert_entry_valid(entry, identity)
    caplog.clear()
    assert build(SMALL, cache_dir=cache).cold is False
    assert not caplog.records  # a warm build says nothing


def _truncate_object(entry: Path) -> None:
    data = (entry / "kernel.o").read_bytes()
    (entry / "kernel.o").write_bytes(data[: len(data) // 2])


def _flip_object_byte(entry: Path) -> None:
    data = bytearray((entry / "kernel.o").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (entry / "kernel.o").write_bytes(bytes(data))


def _stale_meta(entry: Path) -> None:
    meta = json.loads((entry / "meta.json").read_text())
    meta["key"] = "0" * len(meta["key"])  # an entry of some other identity (e.g. older templates)
    (entry / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("damage", [_truncate_object, _flip_object_byte, _stale_meta],
                         ids=["truncated-object", "corrupted-object", "stale-meta"])
def test_damaged_entry_is_recompiled_not_trusted(built, kernel_cache, tmp_path, damage):
    source = built[WGS1]
    cache = tmp_path / "cache"
    entry = cache / "kernels" / source.entry_dir.name
    shutil.copytree(source.entry_dir, entry)
    assert build(source.identity.spec, cache_dir=cache).cold is False  # the copy is a valid entry
    damage(entry)
    result = build(source.identity.spec, cache_dir=cache)
    assert result.cold is True and result.entry_dir == entry
    assert_entry_valid(entry, source.identity)


def test_compile_memo_tells_template_folders_apart(tmp_path, monkeypatch):
    """One process that switches MLAGEN_TEMPLATE_DIR (tools/ab_templates.py's A/B of template folders)
    gets each folder's kernel: the in-process memo is keyed on the template hash too. (Without it,
    every variant of such an A/B timed the first folder's kernel.)"""
    import mlagen.runtime

    built = []

    def fake_build(spec, plan=None, *, device=None, cache_dir=None, **_):
        built.append(identity_for(spec, plan))
        return built[-1]

    monkeypatch.setattr(mlagen.jit, "build", fake_build)
    monkeypatch.setattr(mlagen.jit, "load", lambda result: object())
    monkeypatch.setattr(mlagen.runtime, "MLADecodeKernel", lambda result, launcher, facts: (result, launcher))
    spec = MLASpec(q_heads=16)
    plan = plan_for(spec)
    variant = tmp_path / "templates"
    shutil.copytree(mlagen.codegen.template_dir(), variant)
    with (variant / "sm90" / "_common.py.j2").open("a") as f:
        f.write("\n{# a variant #}\n")
    monkeypatch.delenv("MLAGEN_TEMPLATE_DIR", raising=False)
    base = mlagen.jit.compile(spec, plan, cache_dir=tmp_path / "cache", device="cpu")
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(variant))
    other = mlagen.jit.compile(spec, plan, cache_dir=tmp_path / "cache", device="cpu")
    monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")
    again = mlagen.jit.compile(spec, plan, cache_dir=tmp_path / "cache", device="cpu")
    assert other is not base and again is base
    assert base[0].template_hash != other[0].template_hash and len(built) == 2
