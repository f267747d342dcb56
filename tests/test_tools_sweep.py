"""tools/sweep_cell.py checks each distinct plan in a child process under a timeout before timing any:
a plan whose kernel hangs (2026-12-06: a register split over the CTA's launch allocation hung in
setmaxnreg and took a whole device call with it) or fails is reported and left out, the others timed."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import sweep_cell  # noqa: E402


def _args(**kw):
    base = dict(h_q=64, s_q=1, batch=128, page=64, s_k=[8192, 16384], max_q=None, cache="fp8_e4m3",
                check_timeout=2.0)
    base.update(kw)
    return argparse.Namespace(**base)


def test_run_child_reports_a_hang_a_failure_and_passes_a_finish():
    assert sweep_cell.run_child([sys.executable, "-c", "import time; time.sleep(30)"], 1) == (
        "no result after 1 s (a hang?): killed")
    why = sweep_cell.run_child([sys.executable, "-c", "import sys; sys.exit('AssertionError: lse mismatch')"], 30)
    assert why.startswith("failed (exit 1): ") and "lse mismatch" in why
    assert sweep_cell.run_child([sys.executable, "-c", "print('ok')"], 30) is None


def test_child_command_repeats_the_cell_and_names_one_plan():
    command = sweep_cell.child_command(_args(), "schedule=heads_n,consumer_wgs=2")
    assert command[:3] == [sys.executable, sweep_cell.__file__, "--one-check"]
    text = " ".join(command[3:])
    assert "--h-q 64 --s-q 1 --batch 128 --page 64 --s-k 8192 16384" in text
    assert "--plan schedule=heads_n,consumer_wgs=2" in text and "--cache fp8_e4m3" in text
    assert "--max-q" not in text
    assert "--max-q 2" in " ".join(sweep_cell.child_command(_args(max_q=2, cache=None), ""))
    assert "--cache" not in sweep_cell.child_command(_args(cache=None), "")


def test_plans_that_hang_or_fail_are_left_out_and_the_rest_kept_in_order(capsys):
    codes = {"": "print('ok')", "hang": "import time; time.sleep(30)", "bad": "import sys; sys.exit('wrong')"}
    ran = []

    def command(args, text):
        ran.append(text)
        return [sys.executable, "-c", codes[text]]

    kept = sweep_cell.prechecked(_args(), ["", "hang", "bad", ""], command=command)
    assert kept == ["", ""]
    assert sorted(ran) == ["", "bad", "hang"]  # each distinct plan checked once
    out = capsys.readouterr().out
    assert "[plan 'hang'] no result after 2 s (a hang?): killed; not timed" in out
    assert "[plan 'bad'] failed (exit 1): wrong; not timed" in out
