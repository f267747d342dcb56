"""The experiment shell tools say how to call them and refuse what they cannot use, before any GPU work."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args, **env):
    return subprocess.run(["bash", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env}, timeout=60)


def test_patch_trial_prints_its_usage_without_arguments():
    r = _run("tools/patch_trial.sh")
    assert r.returncode == 2
    assert "OUT=$OUT bash tools/patch_trial.sh PATCH CELL" in r.stdout


def test_patch_trial_refuses_a_missing_patch(tmp_path):
    r = _run("tools/patch_trial.sh", tmp_path / "none.patch", "16,1,1,32768", OUT=str(tmp_path / "out"))
    assert r.returncode == 2
    assert "no such patch" in r.stderr
    assert not (tmp_path / "out").exists()


def test_patch_trial_refuses_a_patch_that_does_not_apply(tmp_path):
    bad = tmp_path / "bad.patch"
    bad.write_text("--- a/sm90/nothing.j2\n+++ b/sm90/nothing.j2\n@@ -1 +1 @@\n-not there\n+still not\n")
    r = _run("tools/patch_trial.sh", bad, "16,1,1,32768", OUT=str(tmp_path / "out"))
    assert r.returncode == 2
    assert "does not apply" in r.stderr
    assert not list((tmp_path / "out").glob("*.tar.xz"))


def test_ab_patch_prints_its_usage_without_arguments():
    r = _run("tools/ab_patch.sh")
    assert r.returncode == 2
    assert "bash tools/ab_patch.sh" in r.stdout


GRIDS3 = "docs/perf/experiments/2026-12-07s/run-grids3.sh"


def test_grids3_asks_for_the_commit_before_any_work(tmp_path):
    """run-grids3.sh (the next device session's median of three) names the commit sent in its JSON: without
    MLAGEN_COMMIT it stops at once, before nvidia-smi or a build."""
    r = _run(GRIDS3, OUT=str(tmp_path / "out"))
    assert r.returncode != 0 and "name the commit sent" in r.stderr
    assert not (tmp_path / "out").exists()


def test_grids3_runs_every_bench_grid():
    import re

    from mlagen.bench import GRIDS

    script = (REPO / GRIDS3).read_text()
    listed = re.search(r"GRIDS=\$\{GRIDS:-([a-z0-9,]+)\}", script).group(1).split(",")
    # every grid an issue judges ("mixed" times calls with fewer tokens than max_q, which no issue names)
    assert sorted(listed) == sorted(g for g in GRIDS if g != "mixed")
