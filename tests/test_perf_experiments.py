"""The patches of the latest experiments (docs/perf/experiments/2026-12-05b) still apply to the
checkout's templates and render to valid Python for the fp8 and bf16 heads_n kernels, so its
run-next.sh measures what its README says (a patch that no longer applies would stop the GPU run)."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXP = REPO / "docs" / "perf" / "experiments" / "2026-12-05b"
PATCHES = sorted(p.name for p in EXP.glob("*.patch"))


def test_the_experiment_has_patches():
    assert {"headsn-bt-ahead.patch", "headsn-kv-evict-first.patch", "ablate-headsn-stream-nobt.patch"} <= set(PATCHES)


@pytest.mark.parametrize("patch", PATCHES)
def test_patch_applies_and_renders(tmp_path, monkeypatch, patch):
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    tdir = tmp_path / "templates"
    shutil.copytree(REPO / "templates", tdir)
    subprocess.run(["git", "apply", "-p1", str(EXP / patch)], cwd=tdir, check=True)
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
    for cache in (None, "fp8_e4m3"):
        spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache=cache))
        plan = plan_for(spec)
        source = render(spec, plan).source
        compile(source, "kernel.py", "exec")
        monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")
        assert source != render(spec, plan).source, f"{patch} changes nothing in {spec.key}"
        monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
