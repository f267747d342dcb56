"""``mlagen build``: cold and warm builds, what it prints, --json, --plan, and one-line errors.

The DeepSeek-V3 kernel is compiled once, into the session's ``kernel_cache`` that test_jit.py shares.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlagen.cli import main
from mlagen.codegen import render
from mlagen.jit import identity_for
from mlagen.plan import consumer_registers, plan_for, smem_bytes
from mlagen.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
DSV3 = REPO / "specs" / "deepseek_v3.py"
# a spec the generator does not produce: fp8 rows of 256 + 4*2 + 2*32 = 328 bytes (TMA needs 16-byte rows)
UNSUPPORTED_SPEC = 'from mlagen import MLASpec\nspec = MLASpec(q_heads=16, latent=256, rope=32, cache_dtype="fp8_e4m3")\n'

# See test_jit.py: the DSL reads the target once, when it starts.
os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")


@pytest.fixture(autouse=True)
def _wide_output(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def field(out: str, label: str) -> str:
    """The value printed after ``label`` (the summary's aligned ``label  value`` lines)."""
    lines = [line[15:] for line in out.splitlines() if line[:15].rstrip() == label]
    assert len(lines) == 1, (label, out)
    return lines[0].strip()


@pytest.fixture(scope="module")
def cold(kernel_cache, tmp_path_factory):
    """``mlagen build specs/deepseek_v3.py`` compiling into the session cache."""
    generated = tmp_path_factory.mktemp("generated")
    argv = ["build", DSV3, "--cache", kernel_cache, "--generated", generated]
    entry = identity_for(load_spec(DSV3)).entry_dir(kernel_cache)
    if (entry / "meta.json").exists():
        argv.append("--force")  # test_jit.py ran first and built it: compile it again to see a cold build
    status, out, err = run(*argv)
    return status, out, err, generated, entry


def test_cold_build_prints_plan_compile_time_and_instructions(cold):
    status, out, err, generated, entry = cold
    assert status == 0 and err == "", err
    spec = load_spec(DSV3)
    plan = plan_for(spec)
    meta = json.loads((entry / "meta.json").read_text())
    assert field(out, "spec") == spec.key
    assert field(out, "plan").startswith(f"{plan.tag} (planner's choice)")
    for knob, value in plan.to_dict().items():
        assert f"{knob}={value}" in out, knob
    assert field(out, "shared memory").startswith(f"{smem_bytes(spec, plan)} bytes per CTA (limit 232448")
    assert field(out, "registers").startswith(f"~{consumer_registers(spec, plan)} per MMA thread")
    build = field(out, "build")
    m = re.fullmatch(r"cold: compiled now, cute\.compile (\d+\.\d\d) s, total (\d+\.\d\d) s", build)
    assert m, build
    compile_s, total_s = float(m.group(1)), float(m.group(2))
    assert compile_s == round(meta["compile_seconds"], 2) and 0 < compile_s <= total_s
    counts = meta["instructions"]
    assert counts["wgmma"] > 0 and counts["tma_load"] > 0 and counts["setmaxnreg"] == 2
    assert field(out, "instructions") == (
        f"wgmma {counts['wgmma']}, TMA {counts['tma_load']}, setmaxnreg {counts['setmaxnreg']} (PTX .target sm_90a)"
    )
    ptxas = meta["ptxas"]
    assert ptxas["serialized"] == [] and field(out, "ptxas") == (
        f"wgmmas pipelined, spills {ptxas['spill_store_bytes']} B stored / {ptxas['spill_load_bytes']} B loaded")
    rendered = render(spec, plan)
    source = generated / f"{rendered.module_name}.py"
    assert field(out, "generated") == str(source) and source.read_text() == rendered.source
    assert field(out, "cache entry") == str(entry)
    assert field(out, "object") == str(entry / "kernel.o") and (entry / "kernel.o").stat().st_size > 0
    assert field(out, "PTX") == str(entry / "kernel.ptx") and ".target sm_90a" in (entry / "kernel.ptx").read_text()


def test_second_build_is_warm(cold, kernel_cache, tmp_path):
    status, out, err = run("build", DSV3, "--cache", kernel_cache, "--generated", tmp_path)
    assert status == 0 and err == ""
    build = field(out, "build")
    m = re.fullmatch(r"warm: found in the cache in (\d+\.\d+) s \(cute\.compile took (\d+\.\d\d) s when built\)", build)
    assert m, build
    assert float(m.group(1)) < 0.5
    assert field(out, "cache entry") == str(cold[4])
    assert "instructions" in out and "wgmma" in field(out, "instructions")


def test_json_in_a_fresh_process_uses_mlagen_cache_dir(cold, kernel_cache, tmp_path):
    env = {**os.environ, "MLAGEN_CACHE_DIR": str(kernel_cache), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "mlagen", "build", str(DSV3), "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    info = json.loads(proc.stdout)
    spec = load_spec(DSV3)
    plan = plan_for(spec)
    assert info["cold"] is False and info["seconds"] < 0.5
    assert info["spec_key"] == spec.key and info["plan"] == plan.to_dict() and info["plan_tag"] == plan.tag
    assert info["pinned"] == {}
    assert info["smem_bytes"] == smem_bytes(spec, plan) and info["consumer_registers"] == consumer_registers(spec, plan)
    assert info["compile_seconds"] > 0
    assert info["instructions"]["wgmma"] > 0 and info["instructions"]["target_sm_90a"] is True
    assert info["cache"] == str(kernel_cache) and info["entry"] == str(cold[4])
    # the default --generated is generated/ of the current directory
    rendered = render(spec, plan)
    assert Path(info["generated"]) == Path("generated") / f"{rendered.module_name}.py"
    assert (tmp_path / info["generated"]).read_text() == rendered.source
    assert Path(info["object"]).is_file() and Path(info["ptx"]).is_file()


def test_a_spec_whose_plan_depends_on_s_q_builds_every_kernel(kernel_cache, tmp_path):
    """Kimi-K2 fp8 with one drafted token: 1-token calls run the unpaired seesaw (the plan serving every s_q),
    2-token calls the m-block pair; ``mlagen build`` compiles both (the pair is what ``mlagen.compile`` loads for
    them), writes both modules to --generated and names the second in its summary and JSON."""
    from mlagen.plan import plans_by_s_q

    path = REPO / "specs" / "kimi_k2_fp8_mtp.py"
    spec = load_spec(path)
    by_s_q = plans_by_s_q(spec)
    status, out, err = run("build", path, "--cache", kernel_cache, "--generated", tmp_path / "gen", "--json")
    assert status == 0 and err == "", err
    info = json.loads(out)
    assert info["plan"] == plan_for(spec).to_dict() == by_s_q[1].to_dict()
    assert info["plans_by_s_q"] == {"1": by_s_q[1].tag, "2": by_s_q[2].tag}
    (also,) = info["also_built"]
    assert also["plan_tag"] == by_s_q[2].tag == "n64s2w2c2-seesaw" and also["s_q"] == [2]
    assert Path(also["object"]).is_file()
    assert sorted(f.name for f in (tmp_path / "gen").iterdir()) == sorted(
        f"{render(spec, by_s_q[q]).module_name}.py" for q in (1, 2))
    status, out, err = run("build", path, "--cache", kernel_cache, "--generated", tmp_path / "gen")
    assert status == 0 and field(out, "plan").startswith("n64s2w2-seesaw (planner's choice)")
    assert field(out, "s_q 2").startswith("n64s2w2c2-seesaw (cached; mlagen.compile picks it by s_q): ")
    # a pinned knob builds the one plan it names
    status, out, err = run("build", path, "--cache", kernel_cache, "--generated", tmp_path / "pinned", "--json",
                           "--plan", "cluster=2")
    info = json.loads(out)
    assert status == 0 and info["plan_tag"] == "n64s2w2c2-seesaw" and info["also_built"] == []


def test_a_spec_whose_small_s_q_run_a_narrower_kernel_builds_it(kernel_cache, tmp_path):
    """DeepSeek-V3 TP4 with one drafted token: 2-token calls run the seesaw (the plan serving every s_q), 1-token
    calls the heads_n kernel compiled for one token, which is DeepSeek-V3 TP4's own kernel and module."""
    from mlagen.plan import plans_by_s_q

    path = REPO / "specs" / "deepseek_v3_tp4_mtp.py"
    spec = load_spec(path)
    by_s_q = plans_by_s_q(spec)
    status, out, err = run("build", path, "--cache", kernel_cache, "--generated", tmp_path / "gen", "--json")
    assert status == 0 and err == "", err
    info = json.loads(out)
    assert info["plan"] == plan_for(spec).to_dict() == by_s_q[2].to_dict()
    (also,) = info["also_built"]
    assert also["plan_tag"] == by_s_q[1].tag == "n64s23w2-headsn-q1" and also["s_q"] == [1]
    tp4 = load_spec(REPO / "specs" / "deepseek_v3_tp4.py")
    narrow_module = render(tp4, plan_for(tp4)).module_name
    assert render(spec, by_s_q[1]).module_name == narrow_module
    assert sorted(f.name for f in (tmp_path / "gen").iterdir()) == sorted(
        [f"{render(spec, by_s_q[2]).module_name}.py", f"{narrow_module}.py"])
    # pinned, it builds that one kernel, and its shared memory is the narrower kernel's
    status, out, err = run("build", path, "--cache", kernel_cache, "--generated", tmp_path / "pinned", "--json",
                           "--plan", "q_tokens=1")
    info = json.loads(out)
    assert status == 0 and info["plan_tag"] == "n64s23w2-headsn-q1" and info["also_built"] == []
    from mlagen.plan import kernel_spec, smem_bytes

    assert info["smem_bytes"] == smem_bytes(*kernel_spec(spec, by_s_q[1]))


def test_pinned_knobs_equal_to_the_plan_reuse_the_kernel(cold, kernel_cache, tmp_path):
    # parts_per_sm is chosen at run time: it does not make another kernel
    status, out, err = run("build", DSV3, "--cache", kernel_cache, "--generated", tmp_path, "--json",
                           "--plan", "block_n=64", "--plan", "stages=2", "--plan", "parts_per_sm=3")
    assert status == 0 and err == ""
    info = json.loads(out)
    assert info["pinned"] == {"block_n": 64, "stages": 2, "parts_per_sm": 3}
    assert info["plan"]["parts_per_sm"] == 3 and info["cold"] is False and info["entry"] == str(cold[4])
    status, out, _ = run("build", DSV3, "--cache", kernel_cache, "--generated", tmp_path, "--plan", "split_kv=true")
    assert status == 0 and field(out, "plan").endswith("(pinned: split_kv=True)")


def assert_one_line_error(status, out, err, *words):
    assert status == 2 and out == ""
    assert err.startswith("mlagen: error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, (word, err)


def test_unsupported_spec_is_a_one_line_error(tmp_path):
    path = tmp_path / "narrow_fp8.py"
    path.write_text(UNSUPPORTED_SPEC)
    status, out, err = run("build", path, "--cache", tmp_path / "cache", "--generated", tmp_path / "gen")
    assert_one_line_error(status, out, err, "not supported yet", "fp8", "328 bytes", str(path))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "gen").exists()


def test_missing_spec_file(tmp_path):
    status, out, err = run("build", tmp_path / "nope.py", "--cache", tmp_path / "cache")
    assert_one_line_error(status, out, err, "no such spec file")


def test_broken_spec_file(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("from mlagen import MLASpec\nspec = MLASpec(q_heads=128, page=48)\n")
    status, out, err = run("build", path, "--cache", tmp_path / "cache")
    assert_one_line_error(status, out, err, "MLASpec.page = 48", str(path))


@pytest.mark.parametrize(
    "knob,words",
    [
        ("stages=6", ["shared memory", "232448"]),
        ("block_n=48", ["block_n = 48"]),
        ("consumer_wgs=3", ["consumer_wgs = 3"]),
        ("consumer_regs=100", ["consumer_regs"]),
        ("foo=1", ["--plan", "unknown plan knob 'foo'"]),
        ("stages", ["--plan", "KEY=VALUE"]),
        ("stages=two", ["--plan", "stages takes an integer"]),
        ("split_kv=maybe", ["--plan", "split_kv takes true or false"]),
    ],
)
def test_bad_plan_knobs_are_one_line_errors(tmp_path, knob, words):
    status, out, err = run("build", DSV3, "--plan", knob, "--cache", tmp_path / "cache", "--generated", tmp_path / "gen")
    assert_one_line_error(status, out, err, *words)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "gen").exists()


def test_errors_do_not_load_the_compiler(tmp_path):
    path = tmp_path / "narrow_fp8.py"
    path.write_text(UNSUPPORTED_SPEC)
    code = (
        "import sys; from mlagen.cli import main;"
        f"assert main(['build', {str(path)!r}]) == 2;"
        "assert main(['build', 'specs/deepseek_v3.py', '--plan', 'stages=9']) == 2;"
        "bad = [m for m in ('torch', 'cutlass') if m in sys.modules]; assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("not supported yet") == 1 and proc.stderr.count("stages = 9") == 1


def test_several_spec_files_build_in_order_and_a_failing_one_is_an_error_line(cold, kernel_cache, tmp_path):
    """``mlagen build A B C``: a summary per built spec file in the order given, one error line per spec file that
    fails (the others still build), a count, exit status 2; ``--json`` prints a list of the objects."""
    broken = tmp_path / "bad.py"
    broken.write_text("from mlagen import MLASpec\nspec = MLASpec(q_heads=128, page=48)\n")
    status, out, err = run("build", broken, DSV3, tmp_path / "nope.py", "--cache", kernel_cache,
                           "--generated", tmp_path / "gen")
    assert status == 2
    assert err.splitlines() == [f"mlagen: error: {broken}:2: MLASpec.page = 48: must be a power of two in 1..256",
                                f"mlagen: error: {tmp_path / 'nope.py'}: no such spec file"]
    assert out.count("spec file      ") == 1 and f"spec file      {DSV3}: " in out
    assert out.rstrip().endswith("built 1 of 3 spec files (0 compiled now, 1 from the cache); 2 failed (above)")
    status, out, err = run("build", DSV3, DSV3, "--cache", kernel_cache, "--generated", tmp_path / "gen", "--json")
    infos = json.loads(out)
    assert status == 0 and err == "" and [i["spec_file"] for i in infos] == [str(DSV3)] * 2
    assert not any(i["cold"] for i in infos) and infos[0]["kernel_key"] == infos[1]["kernel_key"]


def test_several_spec_files_in_worker_processes(cold, kernel_cache, tmp_path):
    broken = tmp_path / "bad.py"
    broken.write_text("from mlagen import MLASpec\nspec = MLASpec(q_heads=128, page=48)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "mlagen", "build", str(DSV3), str(broken), "--jobs", "2",
                           "--cache", str(kernel_cache), "--generated", str(tmp_path / "gen")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"mlagen: error: {broken}:2: MLASpec.page = 48: must be a power of two in 1..256"
    assert f"spec file      {DSV3}: " in proc.stdout and "build          warm: found in the cache" in proc.stdout
    assert proc.stdout.rstrip().endswith("built 1 of 2 spec files (0 compiled now, 1 from the cache); 1 failed (above)")


@pytest.mark.parametrize("jobs", ["0", "two"])
def test_jobs_must_be_a_positive_integer(tmp_path, jobs):
    status, out, err = run("build", DSV3, DSV3, "--jobs", jobs, "--cache", tmp_path / "cache")
    assert_one_line_error(status, out, err, "--jobs", f"{jobs!r} must be at least 1" if jobs == "0"
                          else f"{jobs!r} is not an integer")
