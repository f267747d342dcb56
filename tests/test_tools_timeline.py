"""tools/timeline_patch.py and tools/timeline_cell.py without a GPU: the stamps go into the heads_n
template (also on top of the streaming ablation) and render to valid Python, and the summary of a
synthetic timeline gives back the step lengths it was built from."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import timeline_cell  # noqa: E402
import timeline_patch  # noqa: E402

STREAM = REPO / "docs" / "perf" / "experiments" / "2026-12-04" / "ablate-headsn-stream.patch"
# adopted after the streaming ablations were written, newest first: they apply to the templates without these
LATER_HEADS_N_ADOPTIONS = [REPO / "docs" / "perf" / "experiments" / "2026-12-07t" / "opaque-shared.patch",
                           REPO / "docs" / "perf" / "experiments" / "2026-12-07s" / "headsn-desc-beside.patch"]


def _templates_for_ablations(tdir):
    """A copy of the templates at ``tdir`` as the heads_n ablations were written against."""
    shutil.copytree(REPO / "templates", tdir)
    for patch in LATER_HEADS_N_ADOPTIONS:
        subprocess.run(["patch", "-s", "-R", "-p1", "-i", str(patch)], cwd=tdir, check=True)
    return tdir


def _stamped(tmp_path, with_stream=False):
    tdir = tmp_path / "templates"
    if with_stream:
        _templates_for_ablations(tdir)
        # outside a repository `git apply` is a plain patch program (and git is there wherever CI cloned)
        subprocess.run(["git", "apply", "-p1", str(STREAM)], cwd=tdir, check=True)
    else:
        shutil.copytree(REPO / "templates", tdir)
    timeline_patch.patch(tdir)
    return tdir


@pytest.mark.parametrize("with_stream", [False, True])
@pytest.mark.parametrize("cache", [None, "fp8_e4m3"])
def test_stamps_render_in_heads_n(tmp_path, monkeypatch, with_stream, cache):
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    tdir = _stamped(tmp_path, with_stream)
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
    spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache=cache))
    plan = plan_for(spec)
    assert plan.schedule == "heads_n"
    source = render(spec, plan).source
    compile(source, "kernel.py", "exec")
    assert "self.stamp(tl, seq, c, 1)" in source and "self.stamp(tl, seq, m, 5)" in source
    assert ("self.stamp(tl, seq, c, 2)" in source) == (cache is not None)
    assert ("ABLATION noconv" in source) == (with_stream and cache is not None)
    # the checkout's own templates carry no stamps
    monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")
    assert "self.stamp(" not in render(spec, plan).source


def test_patch_refuses_templates_it_does_not_match(tmp_path):
    tdir = _stamped(tmp_path)
    with pytest.raises(SystemExit, match="timeline_patch: expected 1"):
        timeline_patch.patch(tdir)   # already stamped


def test_summary_recovers_step_lengths():
    parts, nt, chunks, ring = 3, 4, 3, 2
    stamps = np.zeros((parts, nt, chunks, timeline_patch.TL_FIELDS), dtype=np.int64)
    for p in range(2):   # part 2 recorded nothing (a CTA with too few tiles)
        for t in range(nt):
            for c in range(chunks):
                g = t * chunks + c
                f0 = 1_000_000 * (p + 1) + 1000 * g   # clock64 is never 0 (0 = not recorded)
                stamps[p, t, c, :6] = np.cumsum([f0, 10, 100, 20, 5, 50])
    rows = {name: (n, med) for name, n, med, _, _ in timeline_cell.summarise(stamps, ring, 1000.0)}
    assert rows["TMA wait for a free slot"] == (24, 10)
    assert rows["issue -> landed (converter)"][1] == 100
    assert rows["conversion"][1] == 20
    assert rows["converted -> MMA sees full"][1] == 5
    assert rows["issue -> MMA sees full"][1] == 125
    assert rows["MMA hold until release"][1] == 50
    # chunk g + ring is issued 1000 * ring + 10 after chunk g's stamp 0; g was released 185 after it
    assert rows["release -> next copy into the slot"] == (2 * (nt * chunks - ring), 1000 * ring + 10 - 185)
    assert rows["tile pace, TMA (chunk 0 issued)"] == (2 * (nt - 1), 1000 * chunks)
    # chunk g + 1's wait begins 1000 after chunk g's, whose copy was issued 10 after its own wait began
    assert rows["TMA issue -> next wait, within a tile"] == (2 * nt * (chunks - 1), 990)
    assert rows["TMA issue -> next wait, tile boundary"] == (2 * (nt - 1), 990)
    assert rows["mean tile pace per CTA (TMA)"] == (2, 1000 * chunks)
    per_chunk = timeline_cell.by_chunk(stamps)
    assert [c for c, _, _ in per_chunk] == list(range(chunks))
    assert all(w == 10 and trip == 175 for _, w, trip in per_chunk)
    text = timeline_cell.format_rows(timeline_cell.summarise(stamps, ring, 1000.0), 1000.0)
    assert "MMA hold until release" in text and "50 ns" in text


FP8RING = REPO / "docs" / "perf" / "experiments" / "2026-12-05"


@pytest.mark.parametrize("name, ring", [("ablate-headsn-stream-fp8ring50.patch", "2 * STAGES"),
                                        ("ablate-headsn-stream-fp8ring20.patch", "20")])
def test_fp8ring_ablations_apply_and_render(tmp_path, monkeypatch, name, ring):
    """The fp8-slot streaming ablations (the model test of docs/perf/README.md) apply to the checkout's
    templates, take the timeline stamps, and render: the ring is re-cut into 4 KB slots over the same
    bytes, the RoPE loaded as two raw chunks."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    tdir = _templates_for_ablations(tmp_path / "templates")
    subprocess.run(["git", "apply", "-p1", str(FP8RING / name)], cwd=tdir, check=True)
    timeline_patch.patch(tdir)
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
    spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache="fp8_e4m3"))
    source = render(spec, plan_for(spec)).source
    compile(source, "kernel.py", "exec")
    assert "ABLATION noconv" in source and "ABLATION fp8ring" in source
    assert f"RING = {ring}\n" in source
    assert "assert RING * RAW_CHUNK_WORDS <= STAGES * RING_CHUNK_WORDS" in source
    # the bf16 kernel is untouched by it (the fp8 branch of the template only)
    bf16 = cell_spec(dict(h_q=16, s_q=1, page=64, cache=None))
    assert "ABLATION fp8ring" not in render(bf16, plan_for(bf16)).source


def test_timeline_cell_ring_geometry():
    from mlagen.bench import cell_spec
    from mlagen.plan import plan_for

    spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache="fp8_e4m3"))
    plan = plan_for(spec)
    assert timeline_cell.ring_geometry(spec, plan) == (plan.stages, 9)
    assert timeline_cell.ring_geometry(spec, plan, 50, 10) == (50, 10)
    with pytest.raises(SystemExit, match="cannot hold a tile"):
        timeline_cell.ring_geometry(spec, plan, 8, 10)
    with pytest.raises(SystemExit, match="must be positive"):
        timeline_cell.ring_geometry(spec, plan, 0, 10)


def test_spans_read_the_globaltimer_stamps():
    parts, nt, chunks = 2, 4, 3
    stamps = np.zeros((parts, nt, chunks, timeline_patch.TL_FIELDS), dtype=np.int64)
    for p in range(parts):
        for t in range(nt):
            stamps[p, t, 0, 1] = 10_000 + 3000 * t          # 3000 cycles per tile ...
            stamps[p, t, 0, 6] = 5_000_000 + 2000 * t       # ... in 2000 ns: a 1500 MHz clock
        stamps[p, 0, 1, 7] = 5_000_000 + 1000 * p           # TMA warp starts: 0 and 1 us
        stamps[p, 0, 2, 7] = 5_000_000 + 400_000 + 100_000 * p   # last copies: 400 and 500 us
    clock, span = timeline_cell.spans(stamps)
    assert "median 1500 MHz" in clock and "mean tile pace 2000 ns" in clock
    assert "starts 0.0-1.0" in span and "max 500.0" in span and "span median 449.5" in span
    stamps[:, :, :, 6:] = 0   # stamps without the globaltimer fields: nothing claimed
    assert timeline_cell.spans(stamps) == []
