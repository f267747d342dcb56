"""tools/timeline_seesaw.py without a GPU: the stamps go into the seesaw template (plain, with a cluster,
and on a 16-token page) and render to valid Python with every field stamped once, and the summary of a
synthetic timeline gives back the step lengths it was built from."""

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import timeline_seesaw  # noqa: E402


@pytest.fixture(scope="module")
def stamped(tmp_path_factory):
    tdir = tmp_path_factory.mktemp("tls") / "templates"
    shutil.copytree(REPO / "templates", tdir)
    timeline_seesaw.patch(tdir)
    return tdir


@pytest.mark.parametrize("h_q, s_q, page, knobs", [(128, 1, 64, {}), (128, 2, 64, {"cluster": 2}), (64, 2, 16, {})])
def test_stamps_render_in_the_seesaw(stamped, monkeypatch, h_q, s_q, page, knobs):
    from mlagen.bench import cell_spec
    from mlagen.codegen import render
    from mlagen.plan import plan_for

    monkeypatch.setenv("MLAGEN_TEMPLATE_DIR", str(stamped))
    spec = cell_spec(dict(h_q=h_q, s_q=s_q, page=page, cache=None))
    plan = plan_for(spec, schedule="seesaw", **knobs)
    source = render(spec, plan).source
    compile(source, "kernel.py", "exec")
    fields = [int(f) for f in re.findall(r"self\.stamp\(tl(?: \+ \(pseq, tl_on\))?, (\d+)\)", source)]
    # every producer and consumer field once; the group-full fields through qk's computed field
    assert sorted(fields) == [0, 1, 2, 3, 4, 5, 6, 7, 10, 13, 14, 15, 16, 17, 18, 20, 23, 24, 25, 26, 27, 28]
    assert "self.stamp(tl, (11 if buf == 0 else 21) + grp)" in source
    monkeypatch.delenv("MLAGEN_TEMPLATE_DIR")
    assert "self.stamp(" not in render(spec, plan).source


def test_patch_refuses_templates_it_does_not_match(stamped, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(stamped, again)
    with pytest.raises(SystemExit, match="timeline_seesaw: expected 1"):
        timeline_seesaw.patch(again)   # already stamped


def test_summary_recovers_step_lengths():
    parts, pairs = 2, 5
    stamps = np.zeros((parts, pairs, timeline_seesaw.TL_FIELDS), dtype=np.int64)
    pace = 4000
    offsets = {0: 0, 1: 100, 2: 120, 3: 200, 4: 2000, 5: 2100, 6: 2120, 7: 2200,
               10: 300, 11: 900, 12: 1000, 13: 1600, 14: 1900, 15: 2000, 16: 2400, 17: 2600, 18: 3100,
               20: 310, 21: 2700, 22: 2800, 23: 3300, 24: 3350, 25: 3400, 26: 3500, 27: 3600, 28: 3900}
    for p in range(parts):
        for k in range(pairs):
            for f, t in offsets.items():
                stamps[p, k, f] = 10_000 + p * 7 + k * pace + t
    rows = {name: (n, med) for name, n, med, _, _ in timeline_seesaw.summarise(stamps)}
    assert rows["pair pace (A's Q.K^T call to the next)"] == (parts * (pairs - 1), pace)
    assert rows["load: a-left issued -> A sees it full"] == (parts * pairs, 800)
    assert rows["B: Q.K^T call -> b-right full (data wait)"][1] == 2390
    assert rows["A: P.V_b done -> next Q.K^T call"] == (parts * (pairs - 1), pace - 3100 + 300)
    # an unrecorded stamp (zero) drops that sample
    stamps[0, 0, 11] = 0
    rows = {name: n for name, n, *_ in timeline_seesaw.summarise(stamps)}
    assert rows["load: a-left issued -> A sees it full"] == parts * pairs - 1
