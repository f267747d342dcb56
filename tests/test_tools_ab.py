"""tools/ab_templates.py refuses an A/B in which two template folders load one kernel (it would time a
kernel against itself, as every VARIANTS-mode A/B did before the jit memo held the template hash).
Each kernel first runs in a child process under a timeout (its reference check and one call per timed
length): a hang is killed and reported, a failure reported with its last lines; such a variant is left out
of the A/B, while a base that fails stops it."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import ab_templates  # noqa: E402


def _kernel(key: str):
    return SimpleNamespace(identity=SimpleNamespace(key=key, name=f"mla_x__{key}"))


def test_distinct_kernels_pass():
    ab_templates._assert_distinct({"base": _kernel("a"), "stream": _kernel("b"), "nocopy": _kernel("c")})


@pytest.mark.parametrize("same", ["object", "identity"])
def test_one_kernel_under_two_names_is_refused(same):
    base = _kernel("a")
    other = base if same == "object" else _kernel("a")
    with pytest.raises(SystemExit, match="stream and base load the same kernel"):
        ab_templates._assert_distinct({"base": base, "stream": other})


def _child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_precheck_reports_a_hang_and_kills_it():
    why = ab_templates._precheck("16,1,128,16384", "stilp", "/x", "/c", True, timeout=1,
                                 command=_child("import time; time.sleep(30)"))
    assert why == "no result after 1 s (a hang?): killed"


def test_precheck_reports_a_failed_check_with_its_last_lines():
    code = "import sys; print('checking'); sys.exit('AssertionError: out mismatch at (0, 0, 3)')"
    why = ab_templates._precheck("16,1,128,16384", "stilp", "/x", "/c", True, timeout=30, command=_child(code))
    assert why.startswith("failed (exit 1): ") and "out mismatch" in why


def test_precheck_passes_a_kernel_that_finishes():
    assert ab_templates._precheck("16,1,128,16384", "base", None, "/c", True, timeout=30,
                                  command=_child("print('ok')")) is None


def test_precheck_child_command_names_the_cell_folder_and_mode(monkeypatch):
    seen = {}

    def fake_run(command, **kwargs):
        seen["command"], seen["timeout"] = command, kwargs["timeout"]
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert ab_templates._precheck("32,1,128,8192:16384,fp8_e4m3", "nocopy", "/t/nocopy", "/c", False, 90) is None
    assert seen["command"][1:] == [str(Path(ab_templates.__file__).resolve()), "--one",
                                   "32,1,128,8192:16384,fp8_e4m3", "/t/nocopy", "/c", "run"]
    assert seen["timeout"] == 90


def test_a_variant_that_fails_its_precheck_is_left_out_and_the_rest_timed(monkeypatch, capsys):
    whys = {"base": None, "hangs": "no result after 90 s (a hang?): killed", "good": None}
    monkeypatch.setattr(ab_templates, "_precheck", lambda text, name, *args: whys[name])
    monkeypatch.setattr(ab_templates, "kernel_for", lambda spec, tmpl, cache: _kernel(tmpl or "base"))
    monkeypatch.setattr(ab_templates, "measure_ceilings", lambda: SimpleNamespace(describe=lambda: "ceilings"))
    monkeypatch.setattr(ab_templates, "run_cell", lambda *a, **k: [SimpleNamespace(graph_ms=1.0, floor_ms=0.5,
                                                                                  telemetry=None)])
    monkeypatch.setattr(ab_templates, "check", lambda kernel, spec: pytest.fail("checked in-process again"))
    monkeypatch.setenv("VARIANTS", "hangs=/t/hangs,good=/t/good")
    monkeypatch.setattr(sys, "argv", ["ab_templates.py", "16,1,128,4096"])
    ab_templates.main()
    out = capsys.readouterr().out
    assert "hangs: no result after 90 s (a hang?): killed; left out of this cell's A/B" in out
    timing = next(line for line in out.splitlines() if line.startswith("bf16 p64 h 16"))
    assert "base 1.0000/1.0000" in timing and "good 1.0000/1.0000" in timing and "hangs" not in timing


def test_a_base_that_fails_its_precheck_stops_the_ab(monkeypatch):
    monkeypatch.setattr(ab_templates, "_precheck", lambda text, name, *args: "failed (exit 1): wrong" if name == "base"
                        else None)
    monkeypatch.setattr(ab_templates, "measure_ceilings", lambda: SimpleNamespace(describe=lambda: "ceilings"))
    monkeypatch.setenv("VARIANTS", "good=/t/good")
    monkeypatch.setattr(sys, "argv", ["ab_templates.py", "16,1,128,4096"])
    with pytest.raises(SystemExit, match="16,1,128,4096: base failed"):
        ab_templates.main()
