"""The issues' performance targets as checked on bench cells (mlagen.targets): which cells each target
applies to, its twin cell, its threshold on both sides, and medians over runs."""

import pytest

from mlagen.targets import check, median_cells, summary_lines


def _cell(**kw):
    base = dict(kind="mlagen", h_q=128, s_q=1, s_k=8192, batch=128, page=64, dtype="bf16", cache_dtype="bf16",
                graph_ms=1.0, call_ms=1.1, ratio=0.7, speedup_vs_16bit=None)
    base.update(kw)
    return base


def _by_target(checks):
    return {(c.target, c.cell): c for c in checks}


def test_pages_compare_with_page_64_of_the_same_shape_from_8k():
    cells = [_cell(page=64, graph_ms=1.0), _cell(page=16, graph_ms=1.10), _cell(page=32, graph_ms=1.105),
             _cell(page=16, s_k=4096, graph_ms=2.0), _cell(page=16, h_q=16, graph_ms=0.5)]
    checks = [c for c in check(cells) if c.target.startswith("page")]
    assert [(c.target, c.value, c.met) for c in checks] == [
        ("page 16 within +10% of page 64", "+10.0%", True), ("page 32 within +10% of page 64", "+10.5%", False)]
    # s_k 4096 is outside the target; h_q 16 has no page-64 twin in these cells: no check for either


def test_time_falls_back_to_the_python_call_without_graphs():
    cells = [_cell(page=64, graph_ms=None, call_ms=1.0), _cell(page=128, graph_ms=None, call_ms=1.2)]
    (c,) = [c for c in check(cells) if c.target.startswith("page")]
    assert c.value == "+20.0%" and not c.met


def test_fp16_against_bf16_within_three_percent():
    cells = [_cell(dtype="bf16", cache_dtype="bf16", graph_ms=1.0), _cell(dtype="fp16", cache_dtype="fp16", graph_ms=1.03),
             _cell(s_q=2, dtype="bf16", cache_dtype="bf16", graph_ms=1.0),
             _cell(s_q=2, dtype="fp16", cache_dtype="fp16", graph_ms=1.035)]
    checks = [c for c in check(cells) if c.target.startswith("fp16")]
    assert [c.met for c in checks] == [True, False]


def test_long_context_ratio_applies_to_small_batches_from_32k():
    cells = [_cell(batch=8, s_k=32768, ratio=0.80), _cell(batch=1, s_k=131072, ratio=0.799),
             _cell(batch=16, s_k=32768, ratio=0.1), _cell(batch=8, s_k=16384, ratio=0.1)]
    checks = [c for c in check(cells) if c.target.startswith("long")]
    assert [(c.cell.split()[3], c.met) for c in checks] == [("b=8", True), ("b=1", False)]


def test_16k_target_only_on_the_default_grid_shape():
    cells = [_cell(s_k=16384, ratio=0.90), _cell(s_k=16384, s_q=2, ratio=0.89), _cell(s_k=16384, page=16, ratio=0.5),
             _cell(s_k=16384, dtype="fp16", cache_dtype="fp16", ratio=0.5), _cell(s_k=16384, s_q=4, ratio=0.5),
             _cell(s_k=16384, cache_dtype="fp8_e4m3", ratio=0.5)]
    checks = [c for c in check(cells) if c.target.startswith("16k")]
    assert [c.met for c in checks] == [True, False]


def test_fp8_ratio_and_speedup_targets():
    cells = [_cell(h_q=64, s_k=8192, cache_dtype="fp8_e4m3", ratio=0.85),
             _cell(h_q=128, s_k=8192, cache_dtype="fp8_e4m3", ratio=0.4),     # h_q > 64: not a ratio target
             _cell(h_q=16, s_k=4096, cache_dtype="fp8_e4m3", ratio=0.7, speedup_vs_16bit=1.6),
             _cell(h_q=32, s_k=16384, cache_dtype="fp8_e4m3", ratio=0.849, speedup_vs_16bit=1.59),
             _cell(h_q=16, s_q=2, s_k=16384, cache_dtype="fp8_e4m3", ratio=0.9, speedup_vs_16bit=1.1)]  # s_q 2: no x1.6
    got = [(c.target.split()[1], c.cell.split()[0], c.met) for c in check(cells) if c.target.startswith("fp8")]
    assert got == [("ratio", "h=64", True), ("tokens/s", "h=16", True), ("ratio", "h=32", False),
                   ("tokens/s", "h=32", False), ("ratio", "h=16", True)]


def test_only_our_cells_count():
    cells = [_cell(page=64, graph_ms=1.0), _cell(kind="flashmla", page=16, graph_ms=9.0),
             _cell(kind="torch", batch=1, s_k=32768, ratio=0.01)]
    assert check(cells) == []


def test_calls_with_fewer_tokens_than_max_q_are_not_the_issues_cells():
    """The "mixed" grid times specs with max_q above the call's s_q: no issue judges those shapes."""
    fp8 = dict(h_q=16, s_k=16384, cache_dtype="fp8_e4m3", ratio=0.9, speedup_vs_16bit=1.7)
    assert check([_cell(max_q=4, **fp8), _cell(max_q=2, s_k=16384, ratio=0.95)]) == []
    assert [c.met for c in check([_cell(max_q=1, **fp8)])] == [True, True]


def test_summary_lists_misses_per_target():
    cells = [_cell(page=64, graph_ms=1.0), _cell(page=16, graph_ms=1.5), _cell(page=16, s_k=16384, graph_ms=1.0),
             _cell(page=64, s_k=16384, graph_ms=1.0, ratio=0.95)]
    lines = summary_lines(check(cells))
    assert lines[0] == ("target page 16 within +10% of page 64: met on 1 of 2; missed: "
                        "h=128 s_q=1 s_k=8192 b=128 p=16 bf16 +50.0%")
    assert lines[1] == "target 16k ratio >= 0.9: met on 1 of 1"
    assert summary_lines([]) == []


def test_medians_over_runs_replace_time_ratio_and_speedup():
    runs = [[_cell(graph_ms=1.0, ratio=0.70), _cell(page=16, graph_ms=1.2, ratio=0.6)],
            [_cell(graph_ms=3.0, ratio=0.90), _cell(page=16, graph_ms=1.0, ratio=0.8), _cell(kind="flashmla")],
            [_cell(graph_ms=2.0, ratio=0.80)]]
    merged = median_cells(runs)
    assert [(c["page"], c["graph_ms"], c["ratio"], c["runs"]) for c in merged] == [
        (64, 2.0, 0.80, 3), (16, pytest.approx(1.1), pytest.approx(0.7), 2)]
    (page16,) = [c for c in check(merged) if c.target.startswith("page")]
    assert page16.value == "-45.0%" and page16.met
