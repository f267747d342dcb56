"""The patches of the next GPU round (docs/perf/experiments/2026-12-06/retime.txt: correct variants to time
again) still apply to the checkout's templates, render to valid Python and change the kernels of the cells
they are timed on, so its run-next-7.sh measures what its README says (a patch that no longer applies
would stop the GPU run; one that changes nothing would time main against itself)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RETIME = REPO / "docs" / "perf" / "experiments" / "2026-12-06" / "retime.txt"


def _code(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if "templates sha256" not in line)


def _rows():
    rows = []
    for line in RETIME.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, patch, *cells = line.split()
            rows.append((name, patch, cells))
    return rows


def test_the_round_lists_heads_n_and_seesaw_variants():
    rows = _rows()
    assert len(rows) >= 10 and len({name for name, _, _ in rows}) == len(rows)
    assert {cells[0].split(",")[0] for _, _, cells in rows} == {"16", "128"}


@pytest.mark.parametrize("name, patch, cells", _rows(), ids=[r[0] for r in _rows()])
def test_patch_applies_and_changes_its_cells(tmp_path, monkeypatch, name, patch, cells):
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    base_dir = _templates_before_1207s(tmp_path / "base")
    tdir = tmp_path / "templates"
    shutil.copytree(base_dir, tdir)
    # as run-next-7.sh applies them (patch(1): some need its offsets and fuzz, which git apply refuses)
    subprocess.run(["patch", "-s", "-p1", "-i", str(REPO / patch)], cwd=tdir, check=True)
    for cell in cells:
        h, s_q, _batch, _s_k, *rest = cell.split(",")
        spec = cell_spec(dict(h_q=int(h), s_q=int(s_q), page=64, cache=rest[0] if rest else None))
        plan = plan_for(spec)
        monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
        source = render(spec, plan).source
        compile(source, "kernel.py", "exec")
        monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(base_dir))
        # the header names the templates' hash, which any edit changes: compare the code only
        assert _code(source) != _code(render(spec, plan).source), f"{name} changes nothing in {spec.key}"
        monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")


# Repo-level patches of the next GPU round (they touch the planner as well as the templates): they
# must still apply to the checkout, or the round's run script stops at its first line.
NEXT_ROUND_PATCHES = [
    "docs/perf/experiments/2026-12-06b/seesaw-n32.patch",
    "docs/perf/experiments/2026-12-06d/headsn-dims.patch",
    "docs/perf/experiments/2026-12-06e/fp8-regs-f16.patch",
    "docs/perf/experiments/2026-12-07m/partials-16bit.patch",
]


# Template patches adopted after other sessions' patches were written, oldest first: a prepared patch is
# applied to the templates with every adoption after it taken back out, as they were when it was written.
ADOPTED = [
    # the many-pieces merge rewritten (2026-12-07q)
    REPO / "docs" / "perf" / "experiments" / "2026-12-07q" / "merge-online2.patch",
    # seesaw wgmma descriptors beside each wgmma and KV loads EVICT_FIRST (2026-12-07s: commit 40f4d26's diff)
    REPO / "docs" / "perf" / "experiments" / "2026-12-07s" / "adopted.patch",
    # heads_n ring-slot descriptors beside their wgmmas (2026-12-07s/headsn-desc-beside.patch, adopted in 7572482)
    REPO / "docs" / "perf" / "experiments" / "2026-12-07s" / "headsn-desc-beside.patch",
    # the decode grid as a PDL dependent (2026-12-07t/decode-pdl.patch)
    REPO / "docs" / "perf" / "experiments" / "2026-12-07t" / "decode-pdl.patch",
    # the opaque-value helper shared by the seesaw and heads_n (2026-12-07t/opaque-shared.patch; same SASS)
    REPO / "docs" / "perf" / "experiments" / "2026-12-07t" / "opaque-shared.patch",
    # the fp8 seesaw over a 2-CTA cluster, a plan variant (2026-12-07u/fp8-cluster.patch; cluster=1 kernels unchanged)
    REPO / "docs" / "perf" / "experiments" / "2026-12-07u" / "fp8-cluster.patch",
    # pairs rounded up to whole clusters (an empty m-block beside an odd last one; 2026-12-07v/pairs-by-sq.patch)
    REPO / "docs" / "perf" / "experiments" / "2026-12-07v" / "pairs-by-sq.patch",
]


def _templates_before(dest: Path, adoption: Path) -> Path:
    """A copy of the templates at dest with ``adoption`` and every later adopted patch taken back out."""
    shutil.copytree(REPO / "templates", dest)
    for patch in reversed(ADOPTED[ADOPTED.index(adoption):]):
        subprocess.run(["patch", "-s", "-R", "-p1", "-i", str(patch)], cwd=dest, check=True)
    return dest


def _templates_before_merge_online(dest: Path) -> Path:
    """The templates the earlier sessions' patches and probes were written against (before merge-online2)."""
    return _templates_before(dest, ADOPTED[0])


def _templates_before_1207s(dest: Path) -> Path:
    """The templates the sixteenth to eighteenth sessions' prepared patches were written against."""
    return _templates_before(dest, ADOPTED[1])


def _copy_checkout(dest: Path) -> None:
    """The parts of the checkout the repo-level patches touch (templates as before merge-online2)."""
    for part in ("mlagen", "tests", "tools"):
        shutil.copytree(REPO / part, dest / part)
    _templates_before_merge_online(dest / "templates")


@pytest.mark.parametrize("patch", NEXT_ROUND_PATCHES, ids=lambda p: Path(p).stem)
def test_next_round_patch_applies_to_the_checkout(tmp_path, patch):
    _copy_checkout(tmp_path)
    subprocess.run(["patch", "-s", "--dry-run", "-p1", "-i", str(REPO / patch)], cwd=tmp_path, check=True)


# The sixth session's stack (docs/perf/experiments/2026-12-06f/README.md): one-acc.patch on top of
# fp8-regs-f16.patch, and vrot.patch (templates only) on top of both, as its GPU calls applied them.
def test_fp8_regs_stack_of_the_sixth_session_applies(tmp_path):
    _copy_checkout(tmp_path)
    base = REPO / "docs" / "perf" / "experiments"
    for patch in (base / "2026-12-06e" / "fp8-regs-f16.patch", base / "2026-12-06f" / "one-acc.patch"):
        subprocess.run(["patch", "-s", "-p1", "-i", str(patch)], cwd=tmp_path, check=True)
    assert "def fold_group(" in (tmp_path / "templates" / "sm90" / "_heads_n_regs.py.j2").read_text()
    subprocess.run(["patch", "-s", "--dry-run", "-p1", "-i", str(base / "2026-12-06f" / "vrot.patch")],
                   cwd=tmp_path / "templates", check=True)


# Template patches of the thirteenth session's prepared call (docs/perf/experiments/2026-12-07m/run-next.sh applies
# them to copies of templates/): a patch that no longer applies would stop that call's A/B.
NEXT_TEMPLATE_PATCHES = [
    "docs/perf/experiments/2026-12-07m/combine-batch16.patch",
    "docs/perf/experiments/2026-12-07m/combine-batch32.patch",
    "docs/perf/experiments/2026-12-07m/partials-16bit-templates.patch",
]


@pytest.mark.parametrize("patch", NEXT_TEMPLATE_PATCHES, ids=lambda p: Path(p).stem)
def test_next_template_patch_applies(tmp_path, patch):
    _templates_before_merge_online(tmp_path / "templates")
    subprocess.run(["patch", "-s", "-p1", "-i", str(REPO / patch)], cwd=tmp_path / "templates", check=True)
    assert "PIECE_BATCH = " in (tmp_path / "templates" / "sm90" / "mla_decode.py.j2").read_text()


def test_partials_patches_agree():
    """run-partials.sh times the templates part and tests the repo-level patch: the same template edits."""
    base = REPO / "docs" / "perf" / "experiments" / "2026-12-07m"
    whole = (base / "partials-16bit.patch").read_text()
    templates = (base / "partials-16bit-templates.patch").read_text()
    hunks = [line for line in templates.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert hunks and all(line in whole.splitlines() for line in hunks)


# The fourteenth session's prepared call (docs/perf/experiments/2026-12-07n/run-next.sh): dynamic tiles in heads_n.
DYN = REPO / "docs" / "perf" / "experiments" / "2026-12-07n"


def test_dynamic_tiles_patch_applies_and_changes_only_16bit_heads_n(tmp_path, monkeypatch):
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    def code_lines(src):
        return [line for line in _code(src).splitlines() if line.strip()]

    tdir = tmp_path / "templates"
    shutil.copytree(REPO / "templates", tdir)
    subprocess.run(["patch", "-s", "-p1", "-i", str(DYN / "dynamic-tiles.patch")], cwd=tdir, check=True)
    for h_q, cache, dynamic in ((16, None, True), (32, None, True), (16, "fp8_e4m3", False), (128, None, False)):
        spec = cell_spec(dict(h_q=h_q, s_q=1, page=64, cache=cache))
        plan = plan_for(spec)
        monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
        source = render(spec, plan).source
        compile(source, "kernel.py", "exec")
        monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")
        assert ("self.take_tile(" in source) == dynamic, spec.key
        if not dynamic:   # the fp8 heads_n and the seesaw kernels are the base ones (up to blank lines)
            assert code_lines(source) == code_lines(render(spec, plan).source), spec.key


def test_dynamic_tiles_runtime_patch_applies_to_the_checkout(tmp_path):
    _copy_checkout(tmp_path)
    subprocess.run(["patch", "-s", "--dry-run", "-p1", "-i", str(DYN / "dynamic-tiles-runtime.patch")],
                   cwd=tmp_path, check=True)


def test_dynamic_tiles_split_covers_every_tile_once():
    import random

    module = _load("balance_model", DYN / "balance_model.py")
    rng = random.Random(1)
    for lens, parts in (([32768], 132), ([0, 1, 64, 65], 132), ([131072] * 4, 132), ([5000, 700, 0, 129, 64], 17)):
        module.model(lens, parts)
    for _ in range(200):
        module.model([rng.choice([0, 1, 63, 65, rng.randint(0, 100000)]) for _ in range(rng.choice([1, 3, 8, 40]))],
                     rng.choice([1, 2, 37, 132, 264]))
    with pytest.raises(AssertionError):   # the check is live: a joint range one tile too wide is caught
        module.model([32768], 132, widen=1)


def test_combine_per_request_patch_applies_and_changes_every_schedule(tmp_path, monkeypatch):
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    tdir = _templates_before_merge_online(tmp_path / "templates")
    subprocess.run(["patch", "-s", "-p1", "-i", str(DYN / "combine-per-request.patch")], cwd=tdir, check=True)
    for h_q, cache in ((128, None), (16, None), (16, "fp8_e4m3")):
        spec = cell_spec(dict(h_q=h_q, s_q=1, page=64, cache=cache))
        monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
        source = render(spec, plan_for(spec)).source
        compile(source, "kernel.py", "exec")
        monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")
        # every decode schedule counts its pieces, or the combine would wait for them forever
        assert "self.count_piece(" in source and "self.wait_for_pieces(" in source, spec.key
        assert source.count("self.leave_request(") == 2, spec.key   # both combine kernels count out


# The fifteenth session's phase probe (docs/perf/experiments/2026-12-07o/run-phases.sh).
PHASES = REPO / "docs" / "perf" / "experiments" / "2026-12-07o"


def _load(name: str, path: Path):
    from mlagen.jit import _import_source   # (registers the module, as the DSL needs for jitted sources)

    return _import_source(path, name)


def test_phase_stamps_render_and_keep_clear_of_the_timeline_fields(tmp_path, monkeypatch):
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import heads_n_tile_chunks, plan_for

    monkeypatch.setenv("TL_T0", "0")
    monkeypatch.setenv("TL_NT", "1")
    phase_patch = _load("phase_patch", PHASES / "phase_patch.py")
    import timeline_patch   # the module phase_patch stamps on top of (its window read from the environment)
    monkeypatch.setattr(timeline_patch, "TL_T0", 0)
    monkeypatch.setattr(timeline_patch, "TL_NT", 1)
    tdir = tmp_path / "templates"
    shutil.copytree(REPO / "templates", tdir)
    phase_patch.patch(tdir)
    spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache=None))
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
    source = render(spec, plan_for(spec)).source
    compile(source, "kernel.py", "exec")
    # every phase is written once per CTA (the last-tile stamp once per tile), at its own slot
    for name, (chunk, field) in phase_patch.SLOTS.items():
        if name not in ("tma_start", "last_copy"):   # timeline_patch's own span stamps
            assert f"self.stamp_at(tl, {chunk}, {field}" in source, name
    slots = list(phase_patch.SLOTS.values())
    assert len(set(slots)) == len(slots)
    # timeline_patch's chunk stamps use fields 0-5, field 6 of chunk 0 (its clock pairing) and field 7 of chunk 3
    # (the SM); the phases stay clear of them and inside one tile's chunks
    assert all(f >= 6 and (c, f) not in ((0, 6), (3, 7)) and c < heads_n_tile_chunks(spec) for c, f in slots)


def test_phase_probe_reads_times_from_the_first_entry(monkeypatch):
    import numpy as np

    monkeypatch.setenv("TL_T0", "0")   # (the probe sets its window's defaults in the environment)
    monkeypatch.setenv("TL_NT", "1")
    probe = _load("phase_probe", PHASES / "phase_probe.py")
    stamps = np.zeros((3, 1, 9, 8), dtype=np.int64)
    for part in range(3):
        for k, name in enumerate(probe.ORDER):
            chunk, field = probe.SLOTS[name]
            stamps[part, 0, chunk, field] = 10_000 + 1000 * part + 100 * k
    stamps[2, 0, probe.SLOTS["first_full"][0], probe.SLOTS["first_full"][1]] = 0   # part 2 ran no tile
    out = probe.summarise_call(probe.phases(stamps))
    assert out["entry (all CTAs)"] == (1.0, 1.8, 2.0)   # every CTA's entry counts for the spread
    assert out["end"][2] == 1.8   # part 1's end: 1000 ns + 8 x 100 ns after the first entry; part 2 is left out
    assert list(out)[1:] == list(probe.ORDER)


@pytest.mark.parametrize("patch, dynamic", [("bt-ahead.patch", False), ("dynamic-tiles-ahead.patch", True)])
def test_ahead_patches_change_only_heads_n(tmp_path, monkeypatch, patch, dynamic):
    """bt-ahead changes heads_n over 16-bit and fp8 caches, the dynamic variant over 16-bit caches only; the
    seesaw never."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    def code_lines(src):
        return [line for line in _code(src).splitlines() if line.strip()]

    base_dir = _templates_before_1207s(tmp_path / "base")
    tdir = tmp_path / "templates"
    shutil.copytree(base_dir, tdir)
    subprocess.run(["patch", "-s", "-p1", "-i", str(PHASES / patch)], cwd=tdir, check=True)
    for h_q, s_q, cache, changed in ((16, 1, None, True), (32, 1, None, True), (16, 2, None, True),
                                     (16, 1, "fp8_e4m3", not dynamic), (32, 1, "fp8_e4m3", not dynamic),
                                     (128, 1, None, False)):
        spec = cell_spec(dict(h_q=h_q, s_q=s_q, page=64, cache=cache))
        plan = plan_for(spec)
        monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
        source = render(spec, plan).source
        compile(source, "kernel.py", "exec")
        monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(base_dir))
        base = render(spec, plan).source
        monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")
        if changed:
            assert "next_pages[j] = mBT[tok // PAGE, req]" in source, spec.key
            assert ("self.take_tile(counter, lo)" in source) == dynamic, spec.key
        else:   # the fp8 heads_n and the seesaw kernels are the base ones (up to blank lines and unused registers)
            strip = [line for line in code_lines(source) if "next_pages" not in line and "next_boxes" not in line]
            assert strip == code_lines(base), spec.key


def test_tickets_taken_a_tile_ahead_cover_the_range_once():
    """dynamic-tiles-ahead.patch's protocol, interleaved at random: each interior CTA takes a first ticket, then
    at the top of every tile the next one, and stops after the tile whose successor ticket fell past the range;
    every tile of [lo, hi) runs exactly once, each CTA takes one failing ticket, and the last CTA out resets the
    counter word (tickets low 16 bits, CTAs done high 16 bits)."""
    import random

    TICKETS, DONE = 0xFFFF, 0x10000
    rng = random.Random(7)
    for _ in range(300):
        lo = rng.randint(0, 50)
        hi = lo + rng.choice([0, 1, 2, 5, 40, 300])
        n_int = rng.choice([2, 3, 7, 40, 132])
        word = [0]

        def atomic_add(v):
            before = word[0]
            word[0] += v
            return before

        done, ran = [], []
        # each CTA as a generator that yields between its atomics (a scheduling point)
        def cta():
            tile = lo + (atomic_add(1) & TICKETS)
            yield
            while tile < hi:
                nxt = lo + (atomic_add(1) & TICKETS)   # the next ticket, before this tile's copies
                yield
                ran.append(tile)
                tile = nxt
            before = atomic_add(DONE)
            if (before >> 16) == n_int - 1:
                word[0] = 0
            done.append(1)
            yield

        live = [cta() for _ in range(n_int)]
        while live:
            g = rng.choice(live)
            try:
                next(g)
            except StopIteration:
                live.remove(g)
        assert sorted(ran) == list(range(lo, hi))
        assert len(done) == n_int and word[0] == 0


MERGE = REPO / "docs" / "perf" / "experiments" / "2026-12-07p"


def _launch_pdl_flags(source: str) -> list[str]:
    import re

    return re.findall(r"use_pdl=(\w+)", source)


def test_many_pieces_merge_uses_pdl_behind_every_schedule():
    """Adopted in the seventeenth session (many-pdl-all-schedules.patch, h100-many-pdl-all/): both merges launch
    as programmatic dependents behind every schedule, and the seesaw and split kernels let dependents launch
    right after their work split only where the merge is the few-pieces kernel (parts < 4 x batch)."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    seen = set()
    for h_q, s_q, cache in ((16, 1, None), (16, 1, "fp8_e4m3"), (128, 1, None), (64, 2, None)):
        spec = cell_spec(dict(h_q=h_q, s_q=s_q, page=64, cache=cache))
        plan = plan_for(spec)
        seen.add(plan.schedule)
        source = render(spec, plan).source
        compile(source, "kernel.py", "exec")
        # the decode grid (a PDL dependent itself since decode-pdl.patch, 2026-12-07t), then the many-pieces
        # merge's two shapes (2026-12-07q), then the few-pieces merge
        assert _launch_pdl_flags(source) == ["True", "True", "True", "True"], spec.key
        # the merges wait for the decode grid wherever they may start early, the decode grid for its predecessor
        assert source.count("cute.arch.griddepcontrol_wait()") == 3
        if plan.schedule != "heads_n":
            assert "        if num_parts < 4 * batch:\n            cute.arch.griddepcontrol_launch_dependents()" in source
    assert {"heads_n", "seesaw"} <= seen


def test_adopted_many_pdl_all_schedules_patch_is_in_the_templates(tmp_path):
    """The committed patch is what the templates carry: it reverses cleanly on a copy of them (taken back to
    before the later merge-online2.patch, whose launcher hunk overlaps it)."""
    tdir = _templates_before_merge_online(tmp_path / "templates")
    subprocess.run(["patch", "-s", "-R", "-p1", "--dry-run", "-i", str(MERGE / "many-pdl-all-schedules.patch")],
                   cwd=tdir, check=True)


@pytest.mark.parametrize("merge", ["one-round", "two-pass"])
def test_merge_probe_stamps_render_and_read_back(tmp_path, monkeypatch, merge):
    """merge_probe.py (run-merge-probe.sh): the stamped merge renders, for the templates' one-round merge
    (2026-12-07q) and for the two-pass one before it, writes its six stamps where `stamps_of` reads them (row
    16 + g, columns 16 x slice of part 0's first piece), and the summary counts from the earliest entry."""
    import numpy as np

    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    probe = _load("merge_probe", MERGE / "merge_probe.py")
    tdir = tmp_path / "templates"
    if merge == "one-round":
        shutil.copytree(REPO / "templates", tdir)
    else:
        _templates_before_merge_online(tdir)
    assert probe.order_of(tdir)[3] == ("round1" if merge == "one-round" else "lse")
    probe.patch(tdir)
    spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache=None))
    plan = plan_for(spec)
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
    source = render(spec, plan).source
    compile(source, "kernel.py", "exec")
    assert "at = ((HPK + g) * LATENT + (gs % COMBINE_SLICES) * 16) // 2" in source
    assert "t_round = _globaltimer()" in source or merge == "two-pass"
    assert (plan.block_m, spec.d_v) == (probe.ROWS, probe.LATENT)
    words = np.zeros(probe.ROWS * probe.LATENT // 2 * 3, dtype=np.int64)
    for g in range(16):
        for c in range(probe.SLICES):
            at = ((16 + g) * probe.LATENT + c * 16) // 2
            words[at:at + 6] = 5_000 + 100 * g + np.arange(6) * 1_000
    st = probe.stamps_of(words)
    assert st.shape == (16, probe.SLICES, 6)
    order = probe.order_of(tdir)
    out = probe.summarise(st, order)
    assert out["entry"] == (0.75, 1.5)   # median over rows 0-15 of 100 g ns, max 1.5 us
    assert out["end"][1] == 5.5 and list(out) == list(order)


ONLINE = REPO / "docs" / "perf" / "experiments" / "2026-12-07q"


def test_merge_online_patches(tmp_path, monkeypatch):
    """merge-online.patch (tried) and merge-online2.patch (adopted, so the templates carry it): the many-pieces
    merge needs no LSE pass of its own and stages pieces within 72 KB of shared memory for every latent width a
    spec allows; the adopted one launches the wide shape only up to MANY_WIDE_ROWS merged rows, the narrow one
    above."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache=None))
    before = _templates_before_merge_online(tmp_path / "before" / "templates")
    tried = tmp_path / "merge-online" / "templates"
    shutil.copytree(before, tried)
    subprocess.run(["patch", "-s", "-p1", "-i", str(ONLINE / "merge-online.patch")], cwd=tried, check=True)
    for name, tdir in (("merge-online", tried), ("merge-online2", REPO / "templates")):
        monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
        source = render(spec, plan_for(spec)).source
        compile(source, "kernel.py", "exec")
        many = source[source.index("class SplitCombineMany"):]
        assert "merged_lse" not in many and "cp_async_wait_group(0)" in many
        names = ("COMBINE_SLICES", "COPY_COLS", "MANY_THREADS", "PIECE_BATCH", "MANY_WIDE", "MANY_NARROW")
        head = "\n".join(line for line in source.splitlines() if line.startswith(tuple(n + " = " for n in names)))
        for latent in range(64, 1025, 64):
            ns = {"LATENT": latent}
            exec(head, ns)
            slice_bytes = latent // ns["COMBINE_SLICES"] * 4
            shapes = ([(ns["MANY_THREADS"] // 32, ns["PIECE_BATCH"])] if name == "merge-online"
                      else [ns["MANY_WIDE"], ns["MANY_NARROW"]])
            for warps, pieces in shapes:
                assert pieces >= 1 and warps * pieces * slice_bytes <= 72 * 1024, (name, latent)
            if latent == 512:
                assert shapes[0][0] * shapes[0][1] >= 132
        if name == "merge-online2":
            assert "if batch * H_KV * m_rows <= MANY_WIDE_ROWS:" in source
            assert "block=[MANY_WIDE[0] * 32, 1, 1]" in source and "block=[MANY_NARROW[0] * 32, 1, 1]" in source


def test_merge_lse_async_patch_applies(tmp_path, monkeypatch):
    """merge-lse-async.patch (run-merge-lse-async.sh, measured and not adopted: README §4) still renders on the
    templates, both merges taking their LSEs by cp.async."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    tdir = tmp_path / "templates"
    shutil.copytree(REPO / "templates", tdir)
    subprocess.run(["patch", "-s", "-p1", "-i", str(ONLINE / "merge-lse-async.patch")], cwd=tdir, check=True)
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
    spec = cell_spec(dict(h_q=16, s_q=1, page=64, cache=None))
    source = render(spec, plan_for(spec)).source
    compile(source, "kernel.py", "exec")
    assert source.count("cute.copy(lse_atom, ") == 2 and "FEW_BATCH = 4" in source


def test_adopted_kv_evict_first(tmp_path):
    """kv-evict-first.patch (run-kv-evict.sh; adopted in 40f4d26): every schedule's KV tile loads carry the
    EVICT_FIRST L2 policy (fp8 scale and RoPE loads included), the query's load does not; the patch as
    prepared applies to the templates before that adoption and gives its kernels."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for
    from mlagen.variants import kernel_variants

    specs = [cell_spec(dict(h_q=h, s_q=1, page=64, cache=c)) for h in (16, 128) for c in (None, "fp8_e4m3")]
    specs.append(kernel_variants()["h40_l256r32_p64"])
    schedules = set()
    for spec in specs:
        plan = plan_for(spec)
        schedules.add(plan.schedule)
        source = render(spec, plan).source
        compile(source, "kernel.py", "exec")
        assert "KV_EVICT_FIRST = 0x12F0000000000000" in source
        assert source.count("cache_policy=kv_policy()") >= 1, spec.key
        assert "cute.copy(tma_atom_q, tQgQ[None, 0, ch], tQsQ[None, 0, ch], tma_bar_ptr=q_pipe.producer_get_barrier(state))" \
            in source or "tma_atom_q" not in source
    assert {"heads_n", "seesaw", "split"} <= schedules
    tdir = _templates_before_1207s(tmp_path / "templates")
    subprocess.run(["patch", "-s", "-p1", "-i", str(ONLINE / "kv-evict-first.patch")], cwd=tdir, check=True)
    # the templates right after 40f4d26: the later adoptions taken back out
    after = _templates_before(tmp_path / "after", ADOPTED[2])
    for name in ("_heads_n.py.j2", "_split.py.j2", "_fp8.py.j2", "mla_decode.py.j2"):
        assert (tdir / "sm90" / name).read_text() == (after / "sm90" / name).read_text(), name


def test_prepared_merge_few_staged_patch(tmp_path, monkeypatch):
    """merge-few-staged.patch (run-merge-few-staged.sh): the few-pieces merge stages two pieces a round by cp.async,
    its LSEs too, and copies and weighs only the pieces there are; the many-pieces merge is left as it is."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    base = render(cell_spec(dict(h_q=16, s_q=1, page=64, cache=None)),
                  plan_for(cell_spec(dict(h_q=16, s_q=1, page=64, cache=None)))).source
    tdir = tmp_path / "templates"
    shutil.copytree(REPO / "templates", tdir)
    subprocess.run(["patch", "-s", "-p1", "-i", str(ONLINE / "merge-few-staged.patch")], cwd=tdir, check=True)
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
    for h_q, cache in ((16, None), (128, None), (16, "fp8_e4m3")):
        spec = cell_spec(dict(h_q=h_q, s_q=1, page=64, cache=cache))
        source = render(spec, plan_for(spec)).source
        compile(source, "kernel.py", "exec")
        few = source[source.index("class SplitCombine:"):source.index("class SplitCombineMany")]
        assert "FEW_BATCH = 2" in source and few.count("if i0 + u <= last:") == 2 and "cute.copy(lse_atom" in few
        if h_q == 16 and cache is None:
            assert source[source.index("class SplitCombineMany"):] == base[base.index("class SplitCombineMany"):]


DESC = REPO / "docs" / "perf" / "experiments" / "2026-12-07r"


def test_adopted_seesaw_desc_beside(tmp_path, monkeypatch):
    """seesaw-desc-beside.patch (run-desc.sh; adopted in 40f4d26 with its unused fragments dropped): the seesaw's
    Q.K^T and P.V take the shared-memory tensors and build each step's operands from an opaque zero offset, for
    16-bit and fp8 caches; the prepared patch still applies to the templates it was written against and leaves
    heads_n kernels as they were."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    cells = [dict(h_q=128, s_q=1, cache=None), dict(h_q=64, s_q=2, cache=None), dict(h_q=128, s_q=1, cache="fp8_e4m3"),
             dict(h_q=16, s_q=1, cache=None)]
    specs = [cell_spec(dict(page=64, **c)) for c in cells]
    for spec in specs:
        plan = plan_for(spec)
        source = render(spec, plan).source
        if plan.schedule == "seesaw":
            qk = source[source.index("    def qk("):source.index("    def needs_mask(")]
            assert qk.count("_opaque_zero(512)") == 2 and "tSrQ" not in qk, spec.key
            assert source.count("self.qk(qk_mma, sQ, sK, wtid, ") == 2
            pv = source[source.index("    def pv("):source.index("    def pair_a(")]
            assert pv.count("_opaque_zero(512)") == 2 and "tOrV" not in pv, spec.key
            assert source.count("self.pv(pv_ss, acc_o, sPA, sVt, wtid, 0)") == 2
            assert "tSrK" not in source and "tOrP1" not in source, spec.key
        else:
            assert spec.q_heads == 16 and "_opaque_zero" not in source
    base_dir = _templates_before_1207s(tmp_path / "base")
    tdir = tmp_path / "templates"
    shutil.copytree(base_dir, tdir)
    subprocess.run(["patch", "-s", "-p1", "-i", str(DESC / "seesaw-desc-beside.patch")], cwd=tdir, check=True)
    spec = specs[-1]
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
    patched = render(spec, plan_for(spec)).source
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(base_dir))
    assert _code(patched) == _code(render(spec, plan_for(spec)).source)


def test_desc_probe_rewrites_descriptor_adds():
    """desc_probe.py's PTX rewrites: a low-word add after a 64-bit split becomes one 64-bit add; reads of the
    shared-memory base go through a lane-0 shuffle."""
    import importlib.util

    loaded = importlib.util.spec_from_file_location("desc_probe", DESC / "desc_probe.py")
    probe = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(probe)
    ptx = ("\t.reg .b32 \t%r<9>;\n\tmov.u32 \t%r1, __dynamic_shmem__0;\n\tmov.b64 \t{%r2, %r3}, %rd4;\n"
           "\tadd.s32 \t%r5, %r2, 512;\n\tmov.b64 \t%rd6, {%r5, %r3};\n\tor.b32 \t%r7, %r2, 2;\n\tmov.b64 \t%rd8, {%r7, %r3};")
    wide = probe.add64(ptx)
    assert "add.s64 \t%rd6, %rd4, 512;" in wide and "or.b64 \t%rd8, %rd4, 2;" in wide and "add.s32" not in wide
    shuffled = probe.uniform_base(ptx)
    assert "shfl.sync.idx.b32 \t%r1, %ru0, 0, 31, -1;" in shuffled and ".reg .b32 \t%ru<128>;" in shuffled
    loop = ptx + "\n\tbar.sync 0;\n\t{\n\twgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%f1}, %rd6, %rd8, p;\n\t}"
    sunk = probe.sink(loop).splitlines()
    assert sunk.index("\tbar.sync 0;") < sunk.index("\tadd.s32 \t%r5, %r2, 512;") < sunk.index("\t{")
    assert sunk.index("\tbar.sync 0;") < sunk.index("\tmov.b64 \t%rd8, {%r7, %r3};") < sunk.index("\t{")


NINETEENTH = REPO / "docs" / "perf" / "experiments" / "2026-12-07s"


def test_adopted_headsn_desc_beside(tmp_path, monkeypatch):
    """headsn-desc-beside.patch (README §6; adopted in 7572482 after the H100 A/B, headsn/ab.txt): heads_n's S^T and
    O^T index their ring chunk through an opaque copy of the slot at every wgmma, for 16-bit and fp8 caches; the
    patch touches heads_n's template only, which seesaw kernels do not include."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    cells = [dict(h_q=16, s_q=1, cache=None), dict(h_q=32, s_q=1, cache="fp8_e4m3"), dict(h_q=16, s_q=2, cache=None),
             dict(h_q=128, s_q=1, cache=None)]
    specs = [cell_spec(dict(page=64, **c)) for c in cells]
    patch = ADOPTED[2]
    assert {line.split()[1] for line in patch.read_text().splitlines() if line.startswith("+++ ")} == \
        {"b/sm90/_heads_n.py.j2"}
    base_dir = _templates_before(tmp_path / "base", patch)
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(base_dir))
    base = {spec.key: render(spec, plan_for(spec)).source for spec in specs}
    monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")
    schedules = set()
    for spec in specs:
        plan = plan_for(spec)
        source = render(spec, plan).source
        schedules.add(plan.schedule)
        if plan.schedule == "heads_n":
            assert "tSrK[None, None, k, _opaque(slot)]" in source and "tOrV[None, None, k, _opaque(slot)]" in source
            assert "tSrK[None, None, k, slot]" not in source and "tOrV[None, None, k, slot]" not in source
            assert "tSrK[None, None, k, slot]" in base[spec.key], spec.key
        else:
            assert plan.schedule == "seesaw" and "ring_slot" not in source, spec.key
    assert schedules == {"heads_n", "seesaw"}


def test_adopted_opaque_shared(tmp_path, monkeypatch):
    """opaque-shared.patch (2026-12-07t; the same SASS for the seesaw h_q 128 and heads_n fp8 h_q 32 kernels): one
    ``_opaque`` helper in mla_decode.py.j2 serves heads_n's ring slots and the seesaw's zero offsets; before it each
    schedule carried its own copy of the asm."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    asm = '"mov.b32 $0, $1;", "=r,r", has_side_effects=True'
    specs = [cell_spec(dict(h_q=h, s_q=1, page=64, cache=c)) for h in (16, 128) for c in (None, "fp8_e4m3")]
    before = _templates_before(tmp_path / "before", ADOPTED[4])
    for spec in specs:
        plan = plan_for(spec)
        source = render(spec, plan).source
        assert source.count("def _opaque(") == 1 and source.count(asm) == 1, spec.key
        if plan.schedule == "seesaw":
            assert "return cute.assume(_opaque(0), divby=align_elems)" in source
        monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(before))
        old = render(spec, plan).source
        monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")
        assert old.count(asm) == 1 and ("def _opaque(" in old) == (plan.schedule == "heads_n"), spec.key


TWENTIETH = REPO / "docs" / "perf" / "experiments" / "2026-12-07t"


def test_prepared_headsn_fp8_vote_patch(tmp_path, monkeypatch):
    """headsn-fp8-vote.patch (2026-12-07t README §2-3; measured x1.011-x1.032 slower, not adopted): heads_n's fp8
    converting warps take the fast path on one warp vote per chunk (no branch per row), through the chunk store the
    seesaw's converters then share; 16-bit kernels render the same code, only the vote helper moved to the module's
    head. It still applies to the templates, so it can be re-run."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    cells = [dict(h_q=16, s_q=1, cache="fp8_e4m3"), dict(h_q=32, s_q=1, cache="fp8_e4m3"),
             dict(h_q=128, s_q=1, cache="fp8_e4m3"), dict(h_q=16, s_q=1, cache=None), dict(h_q=128, s_q=1, cache=None)]
    specs = [cell_spec(dict(page=64, **c)) for c in cells]
    base = {spec.key: render(spec, plan_for(spec)).source for spec in specs}
    tdir = tmp_path / "templates"
    shutil.copytree(REPO / "templates", tdir)
    subprocess.run(["patch", "-s", "-p1", "-i", str(TWENTIETH / "headsn-fp8-vote.patch")], cwd=tdir, check=True)
    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
    for spec in specs:
        plan = plan_for(spec)
        source = render(spec, plan).source
        compile(source, "kernel.py", "exec")
        if spec.cache_dtype == "fp8_e4m3":
            assert source.count("def _store_chunk_rows(") == 1 and source.count("if _warp_any(slow) == 0:") == 1
            # one converter per schedule calls it
            assert len(re.findall(r"^ +_store_chunk_rows\(sKw, words, scale_bits, ", source, re.M)) == 1, spec.key
            assert "_warp_any(slow)" in base[spec.key] or plan.schedule == "heads_n"
        else:
            moved = base[spec.key].count("def _warp_any(") == source.count("def _warp_any(")
            assert moved or plan.schedule == "heads_n", spec.key
            assert "_store_chunk_rows" not in source


def test_adopted_decode_pdl(tmp_path, monkeypatch):
    """decode-pdl.patch (2026-12-07t README §4; adopted after its H100 A/B with four calls per graph): every
    schedule's decode grid launches as a programmatic dependent and waits in griddepcontrol.wait at the top of the
    work split, before its first global access; the templates before it had neither."""
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for
    from mlagen.variants import kernel_variants

    specs = [cell_spec(dict(h_q=h, s_q=1, page=64, cache=c)) for h in (16, 128) for c in (None, "fp8_e4m3")]
    specs.append(kernel_variants()["h40_l256r32_p64"])
    before = _templates_before(tmp_path / "before", ADOPTED[3])
    schedules = set()
    for spec in specs:
        plan = plan_for(spec)
        schedules.add(plan.schedule)
        for tdir, adopted in ((None, True), (before, False)):
            if tdir is None:
                monkeypatch.delenv("MLAGEN_TEMPLATE_DIR", raising=False)
            else:
                monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(tdir))
            source = render(spec, plan).source
            decode_launch = source[source.index("class MLADecodeSm90"):source.index("    @cute.kernel")]
            assert ("stream=stream, use_pdl=True," in decode_launch) == adopted, spec.key
            find_work = source[source.index("    def find_work("):source.index("    def segment(")]
            assert ("cute.arch.griddepcontrol_wait()" in find_work) == adopted, spec.key
            if adopted:
                assert find_work.index("cute.arch.griddepcontrol_wait()") < find_work.index("mLens[")
    assert {"heads_n", "seesaw", "split"} <= schedules
