"""tools/call_breakdown.py: its cell syntax and how it pairs each decode kernel with its combine."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import call_breakdown as cb  # noqa: E402


def kernel(name, ts, dur):
    return dict(cat="kernel", ph="X", name=name, ts=ts, dur=dur)


def test_cells_parse_with_and_without_a_cache():
    assert cb.parse_cell("16,1,1,32768") == dict(h_q=16, s_q=1, batch=1, s_k=32768, cache=None)
    assert cb.parse_cell("32,2,128,4096,fp8_e4m3")["cache"] == "fp8_e4m3"


def test_each_decode_pairs_with_the_combine_before_the_next_decode():
    events = [kernel("kernel_MLADecodeSm90_0", 0, 40), kernel("kernel_SplitCombineMany_1", 42, 10),
              kernel("kernel_MLADecodeSm90_0", 60, 40), kernel("kernel_SplitCombine_1", 95, 8),  # PDL: overlaps
              kernel("kernel_MLADecodeSm90_0", 120, 30), kernel("memset", 151, 1)]  # no combine after the last
    rows = cb.pair_calls(events)
    assert rows[0] == dict(decode=40, combine=10, gap=2, span=52)
    assert rows[1] == dict(decode=40, combine=8, gap=-5, span=43)
    assert rows[2] == dict(decode=30, combine=0.0, gap=0.0, span=30)


def test_the_trace_reader_keeps_kernels_in_time_order(tmp_path):
    import json

    path = tmp_path / "trace.json"
    path.write_text(json.dumps(dict(traceEvents=[kernel("b", 5, 1), dict(cat="cpu_op", ph="X", name="x", ts=0, dur=1),
                                                 kernel("a", 1, 1)])))
    assert [e["name"] for e in cb.kernel_events(path)] == ["a", "b"]
