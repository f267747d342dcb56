"""Rendering: deterministic, valid Python, spec-dependent code, the template hash, generated/ up to date."""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import mlagen
from mlagen.codegen import MAIN_TEMPLATE, render, template_dir, template_hash, write_generated
from mlagen.plan import KernelPlan, PlanError, plan_for, supports
from mlagen.spec import MLASpec, list_spec_files, load_spec
from mlagen.testing import specs

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
GENERATED = REPO / "generated"
SPEC_FILES = {p.name: load_spec(p) for p in list_spec_files(SPECS)}
SUPPORTED = sorted(name for name, s in SPEC_FILES.items() if supports(s) is None)

# Code that exists only with one feature: the causal limit of query token t_q, and the address of an
# LSE store into the (batch, q_heads, s_q) output.
CAUSAL_CODE = "query token t of a request of length L sees keys 0 .. L - s_q + t"
LSE_STORE = "lse_ptr + (req * H_Q + h) * s_q"


@pytest.fixture
def no_template_override(monkeypatch):
    monkeypatch.delenv("MLAGEN_TEMPLATE_DIR", raising=False)


def render_for(spec: MLASpec, **knobs):
    return render(spec, plan_for(spec, **knobs))


def header(source: str) -> list[str]:
    return [line for line in source.splitlines()[:8] if line.startswith("#")]


def test_render_is_deterministic(no_template_override):
    spec = SPEC_FILES["deepseek_v3_mtp.py"]
    a, b = render_for(spec), render_for(spec)
    assert a.source == b.source and a.source_hash == b.source_hash
    assert a.source.encode() == b.source.encode()
    assert a.module_name == b.module_name == f"{spec.name}__{a.plan.tag}".replace("-", "_")
    # nothing machine- or time-dependent in the file
    assert str(REPO) not in a.source and os.path.expanduser("~") + "/" not in a.source


def test_header_names_spec_plan_templates_and_version(no_template_override):
    spec = SPEC_FILES["deepseek_v3.py"]
    rendered = render_for(spec)
    head = "\n".join(header(rendered.source))
    assert f"# spec: {spec.key}" in head
    assert f"# plan: {rendered.plan.key}" in head
    assert rendered.template_hash == template_hash()
    assert f"templates sha256 {template_hash()[:16]}" in head
    assert f"mlagen {mlagen.__version__}" in head
    assert MAIN_TEMPLATE in head and "mlagen build" in head
    # the constants the kernel compiles against
    assert f'SPEC_KEY = "{spec.key}"' in rendered.source
    assert f"PLAN_KEY = '{rendered.plan.key}'" in rendered.source
    assert f"SCALE = {spec.scale!r}" in rendered.source


def test_rendered_module_is_valid_python_with_an_entry_point(no_template_override):
    tree = ast.parse(render_for(SPEC_FILES["deepseek_v3.py"]).source)
    names = {node.name for node in tree.body if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    # what mlagen.jit and the runtime use
    assert {"MLADecodeLauncher", "compile_launcher"} <= names
    assert {"SPEC_KEY", "PLAN_KEY"} <= assigned


@given(specs(cache_dtype=None), st.sampled_from([None, dict(block_n=32), dict(stages=1), dict(consumer_wgs=1)]))
def test_random_supported_specs_render_valid_python(spec, knobs):
    try:
        plan = plan_for(spec, **(knobs or {}))
    except PlanError:
        assume(False)
    rendered = render(spec, plan)
    ast.parse(rendered.source, filename=rendered.module_name + ".py")
    src = rendered.source
    assert (CAUSAL_CODE in src) == spec.causal
    assert (LSE_STORE in src) == spec.lse
    assert f"H_Q = {spec.q_heads}\n" in src and f"PAGE = {spec.page}\n" in src
    assert f"NUM_WG = {plan.consumer_wgs} " in src and f"STAGES = {plan.stages}\n" in src
    assert rendered.module_name.isidentifier()


# (packed fp8 rows must be a multiple of 16 bytes, which with a rope multiple of 8 only latent 512 gives)
@given(specs(cache_dtype="fp8_e4m3", latent=512, rope=st.sampled_from([0, 32, 64]), rope_at="tail",
             q_heads=st.integers(1, 32), max_q=st.integers(1, 3)),
       st.sampled_from([None, dict(schedule="heads_n")]))
def test_random_fp8_specs_render_valid_python_on_both_schedules(spec, knobs):
    try:
        plan = plan_for(spec, **(knobs or {}))
    except PlanError:
        assume(False)
    src = render(spec, plan).source
    ast.parse(src)
    assert (CAUSAL_CODE in src) == spec.causal
    assert ("S^T = K.Q^T" in src) == (plan.schedule == "heads_n")
    assert f"PRODUCER_WGS = {plan.producer_wgs} " in src and f"DEQ_WARPS = {4 * plan.producer_wgs - 1} " in src


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("lse", [False, True])
def test_causal_and_lse_code_appear_only_when_asked(causal, lse):
    spec = MLASpec(q_heads=16, max_q=4, causal=causal, lse=lse)
    src = render_for(spec).source
    assert (CAUSAL_CODE in src) == causal
    assert (LSE_STORE in src) == lse
    # max_q == 1 forces causal off: no causal code either
    assert CAUSAL_CODE not in render_for(MLASpec(q_heads=16, max_q=1, causal=True)).source


@pytest.mark.parametrize("schedule", ["seesaw", "split", "heads_n"])
@pytest.mark.parametrize("kv_heads", [1, 2])
def test_q_rows_come_by_tma_only_with_one_kv_head(schedule, kv_heads):
    # one KV head: a CTA's query rows are consecutive rows of q, loaded by the TMA warp per segment;
    # two: rows of one KV head interleave with the other's, so the MMA threads gather them (load_q)
    caches = {"seesaw": (None,), "split": (None, "fp8_e4m3"), "heads_n": (None, "fp8_e4m3")}[schedule]
    for cache in caches:
        heads = 32 if schedule == "heads_n" else 64  # heads_n: at most 32 query rows per KV head
        spec = MLASpec(q_heads=heads, kv_heads=kv_heads, max_q=1, causal=True, cache_dtype=cache)
        src = render_for(spec, schedule=schedule).source
        assert ("pq = self.issue_q(" in src) == (kv_heads == 1)
        assert ("q_pipe.consumer_wait(cq)" in src) == (kv_heads == 1)
        assert ("self.load_q(sQ, q_ptr" in src) == (kv_heads != 1)


@pytest.mark.parametrize("rope_at, order", [("tail", "(0, 1, 2, 3, 4, 5, 6, 7, 8, )"),
                                             ("head", "(1, 2, 3, 4, 5, 6, 7, 8, 0, )")])
def test_heads_n_over_a_16_bit_cache_loads_chunks_as_they_are(rope_at, order):
    # no converting warps, scales or landed barriers; value rows past the end are zeroed by the MMA
    # warpgroup; ring chunk c holds key-row chunk KV_COL[c]: the latent chunks first, then the RoPE
    src = render_for(MLASpec(q_heads=16, rope_at=rope_at), schedule="heads_n").source
    assert "def convert(" not in src and "load_full" not in src and "sScale" not in src
    assert "self.zero_value_rows(sK, chunk0" in src
    assert f"KV_COL = {order}" in src
    fp8 = render_for(MLASpec(q_heads=16, cache_dtype="fp8_e4m3"), schedule="heads_n").source
    assert "def convert(" in fp8 and "zero_value_rows" not in fp8


def _copy_templates(dest: Path) -> Path:
    shutil.copytree(REPO / "templates", dest)
    return dest


def test_template_hash_follows_kernel_templates_only(tmp_path, monkeypatch, no_template_override):
    spec = SPEC_FILES["deepseek_v3.py"]
    real = template_hash()
    plain = render_for(spec)

    # an unchanged copy elsewhere hashes the same: names and contents, not the path
    same = _copy_templates(tmp_path / "same")
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(same))
    assert template_dir() == same and template_hash() == real
    assert render_for(spec).source == plain.source

    # a changed kernel template changes the hash, the header, the kernel identity
    edited = _copy_templates(tmp_path / "edited")
    decode = edited / "sm90" / "_common.py.j2"
    decode.write_text(decode.read_text() + "\n# an edit\n")
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(edited))
    assert template_hash() != real
    changed = render_for(spec)
    assert changed.template_hash == template_hash() and f"sha256 {template_hash()[:16]}" in changed.source
    assert changed.source != plain.source

    # a new kernel template file changes it too
    added = _copy_templates(tmp_path / "added")
    (added / "sm90" / "_extra.py.j2").write_text("# unused\n")
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(added))
    assert template_hash() != real

    # files outside templates/sm90 (other templates, notes) do not
    outside = _copy_templates(tmp_path / "outside")
    (outside / "export").mkdir(exist_ok=True)
    (outside / "export" / "extra.h.j2").write_text("{{ anything }}\n")
    (outside / "other").mkdir()
    (outside / "other" / "setup.py.j2").write_text("{{ anything }}\n")
    (outside / "README.md").write_text("notes\n")
    (outside / "sm90" / "NOTES.txt").write_text("not a template\n")
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(outside))
    assert template_hash() == real
    assert render_for(spec).source == plain.source


def test_write_generated_leaves_unchanged_files_alone(tmp_path, no_template_override):
    rendered = render_for(SPEC_FILES["minicpm3.py"])
    path = write_generated(rendered, tmp_path / "gen")
    assert path == tmp_path / "gen" / f"{rendered.module_name}.py"
    assert path.read_text() == rendered.source
    old = 1_000_000_000
    os.utime(path, (old, old))
    inode = path.stat().st_ino
    assert write_generated(rendered, tmp_path / "gen") == path
    assert path.stat().st_mtime == old and path.stat().st_ino == inode
    # a stale file is replaced whole, and no temp file is left behind
    path.write_text("stale\n")
    os.utime(path, (old, old))
    write_generated(rendered, tmp_path / "gen")
    assert path.read_text() == rendered.source and path.stat().st_mtime != old
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == [path.name]


# ------------------------------------------------------------ generated/
@pytest.mark.parametrize("name", SUPPORTED)
def test_generated_source_is_up_to_date(name, no_template_override):
    rendered = render_for(SPEC_FILES[name])
    path = GENERATED / f"{rendered.module_name}.py"
    fix = f"run `mlagen build specs/{name}` and commit {path.relative_to(REPO)}"
    assert path.exists(), f"generated/ lacks the module of specs/{name}: {fix}"
    assert path.read_bytes() == rendered.source.encode(), f"generated/{path.name} is stale: {fix}"


def test_generated_holds_only_modules_of_spec_files(no_template_override):
    """Every file in generated/ is the current rendering of a spec file (under the plan in its header), or of
    the narrower spec a spec file's small s_q are compiled for (``q_tokens``, ``kernel_spec``)."""
    from mlagen.plan import kernel_spec, plans_by_s_q

    by_key = {s.key: name for name, s in SPEC_FILES.items()}
    kernel_specs = {s.key: s for s in SPEC_FILES.values()}
    for name in SUPPORTED:
        for plan in plans_by_s_q(SPEC_FILES[name]).values():
            narrow = kernel_spec(SPEC_FILES[name], plan)[0]
            by_key.setdefault(narrow.key, name)
            kernel_specs.setdefault(narrow.key, narrow)
    files = sorted(GENERATED.iterdir())
    assert files and not (GENERATED / ".gitkeep").exists()
    for path in files:
        assert path.suffix == ".py", f"generated/{path.name}: only rendered modules belong in generated/"
        lines = header(path.read_text())
        spec_key = next(line[len("# spec: "):] for line in lines if line.startswith("# spec: "))
        plan_key = next(line[len("# plan: "):] for line in lines if line.startswith("# plan: "))
        assert spec_key in by_key, f"generated/{path.name} belongs to no file in specs/: delete it"
        name = by_key[spec_key]
        plan = KernelPlan.from_dict(json.loads(plan_key))
        rendered = render(kernel_specs[spec_key], plan)
        assert path.name == f"{rendered.module_name}.py"
        assert path.read_bytes() == rendered.source.encode(), (
            f"generated/{path.name} is stale: run `mlagen build specs/{name}`"
        )


# every latent width a spec accepts (multiples of 64 up to 1024) that the planner generates a kernel for
PLANNED_LATENTS = [n for n in range(64, 1025, 64) if supports(MLASpec(q_heads=16, latent=n, rope=64)) is None]


@pytest.mark.parametrize("latent", PLANNED_LATENTS)
def test_combine_slices_split_every_latent_into_whole_copies(latent, no_template_override):
    """The many-pieces merge takes a row's columns in COMBINE_SLICES CTAs; each lane's share of a slice must stay
    a whole number of COPY_COLS-float cp.async copies (16 or 8 bytes), for every latent width that is planned."""
    assert {256, 512} <= set(PLANNED_LATENTS)
    src = render_for(MLASpec(q_heads=16, latent=latent, rope=64)).source
    names = ("LATENT", "COMBINE_SLICES", "COPY_COLS", "MANY_WIDE", "MANY_NARROW")
    consts = {}
    exec("\n".join(line for line in src.splitlines() if line.split(" = ")[0] in names), consts)
    slices, copy = consts["COMBINE_SLICES"], consts["COPY_COLS"]
    assert consts["LATENT"] == latent and slices in (1, 2, 4) and copy in (2, 4)
    lane_cols = latent // 32 // slices
    assert lane_cols * 32 * slices == latent and lane_cols % copy == 0
    for warps, pieces in (consts["MANY_WIDE"], consts["MANY_NARROW"]):
        assert 1 <= pieces <= 32  # one LSE per lane of a batch
        assert warps * pieces * (latent // slices) * 4 <= 72 * 1024  # staged pieces' shared memory
    if latent in (256, 512):
        assert slices > 1 and copy == 4  # DeepSeek's and MiniCPM3's widths merge on several CTAs per row
