"""The mlagen command line: output of specs/show, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlagen.cli import commands, main
from mlagen.spec import list_spec_files, load_spec

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"


@pytest.fixture(autouse=True)
def _wide_output(monkeypatch):
    # Piped output is 200 columns wide unless COLUMNS says otherwise; the
    # checks below look for whole keys and table cells.
    monkeypatch.delenv("COLUMNS", raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_specs_lists_every_spec_file(capsys):
    status, out, err = run(capsys, "specs", str(SPECS))
    assert status == 0 and err == ""
    lines = out.splitlines()
    for path in list_spec_files(SPECS):
        row = next(line for line in lines if line.startswith(path.name + " "))
        assert row.rstrip().endswith(load_spec(path).key)
    assert "DeepSeek-V3" in out and "MiniCPM3-4B" in out and "2 causal" in out and "bf16/fp8_e4m3" in out


def test_specs_defaults_to_specs_dir(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    status, out, _ = run(capsys, "specs")
    assert status == 0 and "deepseek_v3_tp8.py" in out


def test_show_deepseek_v3(capsys):
    status, out, err = run(capsys, "show", str(SPECS / "deepseek_v3.py"))
    assert status == 0 and err == ""
    spec = load_spec(SPECS / "deepseek_v3.py")
    for text in ("81920", "1152", "71.1×", "128 × (192 + 128) × 2", "GQA-8", "5120", spec.key, spec.short_hash, spec.name):
        assert text in out, text
    assert repr(spec.scale) in out
    for field in ("q_heads", "latent", "rope", "kv_heads", "dtype", "cache_dtype", "page", "max_q", "causal", "scale", "lse", "rope_at", "arch"):
        assert field in out
    assert "H100" in out and "H200" in out and "memory-bound" in out
    assert "batch 64, seqlen 4096, s_q 1" in out


def test_show_cost_options_and_fp8_row(capsys):
    status, out, _ = run(capsys, "show", str(SPECS / "deepseek_v3_fp8.py"), "--batch", "8", "--seqlen", "1000", "--s-q", "1")
    assert status == 0
    assert "batch 8, seqlen 1000, s_q 1" in out
    assert "656" in out  # this spec's fp8 cache row


def test_show_spec_without_model(capsys, tmp_path):
    path = tmp_path / "plain.py"
    path.write_text("from mlagen import MLASpec\nspec = MLASpec(q_heads=32, latent=256, rope=32, max_q=2)\n")
    status, out, _ = run(capsys, "show", str(path))
    assert status == 0
    assert "MHA" not in out and "default: 1/sqrt(d_qk) = 1/sqrt(288)" in out
    assert "s_q 2" in out  # the cost defaults to the spec's max_q


BROKEN = {
    "invalid.py": ("from mlagen import MLASpec\nspec = MLASpec(q_heads=128, page=48)\n", "MLASpec.page = 48"),
    "nospec.py": ("x = 1\n", "defines no `spec`"),
    "syntax.py": ("spec = (\n", "syntax error"),
    "raises.py": ("raise RuntimeError('boom\\nsecond line')\n", "RuntimeError: boom"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_show_broken_spec_file_is_one_line_error(capsys, tmp_path, name):
    text, expected = BROKEN[name]
    path = tmp_path / name
    path.write_text(text)
    status, out, err = run(capsys, "show", str(path))
    assert status == 2 and out == ""
    assert err.startswith("mlagen: error: ") and err.count("\n") == 1
    assert str(path) in err and expected in err


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["show", "no/such/file.py"], "no such spec file"),
        (["show"], "required: spec"),
        (["show", "specs/deepseek_v3.py", "--batch", "0"], "--batch"),
        (["show", "specs/deepseek_v3.py", "--seqlen", "x"], "--seqlen"),
        (["specs", "no/such/dir"], "no such directory"),
        (["build"], "required: spec"),
        (["tune"], "a spec file is required"),
        ([], "no command given"),
    ],
)
def test_usage_errors_are_one_line(capsys, monkeypatch, argv, expected):
    monkeypatch.chdir(REPO)
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.startswith("mlagen: error: ") and err.count("\n") == 1 and expected in err


def test_specs_reports_broken_files(capsys, tmp_path):
    (tmp_path / "good.py").write_text("from mlagen import MLASpec\nspec = MLASpec(q_heads=8)\n")
    (tmp_path / "bad.py").write_text("x = 1\n")
    status, out, err = run(capsys, "specs", str(tmp_path))
    assert status == 2
    assert "good.py" in out and "bad.py" in out
    assert err.startswith("mlagen: error: ") and err.count("\n") == 1 and "defines no `spec`" in err


def test_only_existing_commands_are_registered(capsys):
    names = [c.name for c in commands()]
    assert names == ["specs", "show", "new", "build", "bench", "tune", "export"]
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in names:
        assert name in out


def test_python_dash_m_and_no_traceback():
    ok = subprocess.run(
        [sys.executable, "-m", "mlagen", "show", "specs/deepseek_v3.py"], cwd=REPO, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "71.1×" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "mlagen", "show", "specs/missing.py"], cwd=REPO, capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "mlagen: error: specs/missing.py: no such spec file\n"


def test_show_does_not_import_torch():
    code = (
        "import sys; from mlagen.cli import main; status = main(['show', 'specs/deepseek_v3.py']);"
        "assert status == 0; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True)


@pytest.mark.parametrize("argv, message", [(["--chain", "0"], "--chain 0: must be 1 or more"),
                                           (["--chain", "4", "--no-graphs"], "--chain needs the graph replays")])
def test_bench_chain_is_checked_before_any_gpu_work(capsys, argv, message):
    from mlagen.cli import main

    assert main(["bench", *argv]) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------ mlagen new
@pytest.fixture
def v3_config(tmp_path):
    import json

    from hf_configs import HF_CONFIGS

    folder = tmp_path / "DeepSeek-V3"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(HF_CONFIGS["DeepSeek-V3"]))
    return folder


def test_new_writes_a_spec_file_from_a_config(capsys, v3_config, tmp_path):
    from mlagen.models import DEEPSEEK_V3
    from mlagen.spec import load_spec_file

    out_file = tmp_path / "specs" / "v3_tp8.py"
    status, out, err = run(capsys, "new", str(out_file), "--config", str(v3_config), "--tp", "8")
    assert status == 0 and err == "" and out.splitlines()[-1] == f"next: mlagen build {out_file}"
    written = load_spec_file(out_file)
    assert written.spec == load_spec(SPECS / "deepseek_v3_tp8.py")  # the same numbers as the hand-written file
    assert written.model.name == "DeepSeek-V3" and written.model == DEEPSEEK_V3
    assert written.title.startswith("DeepSeek-V3 decode: 16 heads (128 over 8 GPUs) over a 512 + 64 latent cache")
    assert str(v3_config) not in out_file.read_text().split('"""')[2]  # the numbers, not a path to the config
    # speculative decoding is causal unless --no-causal; an fp8 cache
    status, _, _ = run(capsys, "new", str(tmp_path / "mtp.py"), "--config", str(v3_config), "--max-q", "2",
                       "--cache-dtype", "fp8_e4m3")
    mtp = load_spec(tmp_path / "mtp.py")
    assert status == 0 and mtp == load_spec(SPECS / "deepseek_v3_mtp.py").replace(cache_dtype="fp8_e4m3")
    run(capsys, "new", str(tmp_path / "nc.py"), "--config", str(v3_config), "--max-q", "3", "--no-causal")
    assert load_spec(tmp_path / "nc.py").max_q == 3 and not load_spec(tmp_path / "nc.py").causal


def test_new_refuses_to_overwrite_and_to_write_what_is_not_generated(capsys, v3_config, tmp_path):
    import json

    from hf_configs import HF_CONFIGS

    target = tmp_path / "x.py"
    target.write_text("# mine\n")
    status, out, err = run(capsys, "new", str(target), "--config", str(v3_config))
    assert status == 2 and out == "" and err == f"mlagen: error: {target} exists (--force overwrites it)\n"
    assert target.read_text() == "# mine\n"
    assert run(capsys, "new", str(target), "--config", str(v3_config), "--force")[0] == 0
    assert load_spec(target) == load_spec(SPECS / "deepseek_v3.py")
    cpm = tmp_path / "cpm.json"
    cpm.write_text(json.dumps(HF_CONFIGS["MiniCPM3-4B"]))
    status, out, err = run(capsys, "new", str(tmp_path / "cpm_fp8.py"), "--config", str(cpm), "--cache-dtype", "fp8_e4m3")
    assert status == 2 and "not written" in err and "not supported yet" in err and "328" in err
    assert not (tmp_path / "cpm_fp8.py").exists()
    status, _, err = run(capsys, "new", str(tmp_path / "y.py"), "--config", str(tmp_path / "nowhere"))
    assert status == 2 and "cannot read" in err and not (tmp_path / "y.py").exists()
