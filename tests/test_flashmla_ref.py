"""The FlashMLA comparison path of ``mlagen bench``: what it refuses, and how its figures are labelled.

Timing FlashMLA needs a GPU and a library built by tools/flashmla_ref/build.sh; here, without either,
the parts that decide what is compared, and the errors a user gets, are checked.
"""

import pytest

from mlagen import MLASpec, flashmla_ref
from mlagen.bench import BenchCell, flashmla_summary, format_cell


def _spec(**kw):
    base = dict(q_heads=128, max_q=2, causal=True)
    base.update(kw)
    return MLASpec(**base)


def test_flashmla_shape_family_is_accepted():
    assert flashmla_ref.unsupported(_spec()) is None
    assert flashmla_ref.unsupported(_spec(dtype="fp16", q_heads=16, max_q=1)) is None


@pytest.mark.parametrize("kw, words", [
    (dict(page=16), "page 16"),
    (dict(latent=256), "d_qk 320 / d_v 256"),
    (dict(cache_dtype="fp8_e4m3"), "fp8_e4m3 cache"),
    (dict(rope_at="head"), "rope_at='head'"),
])
def test_flashmla_refuses_other_shapes_with_the_reason(kw, words):
    reason = flashmla_ref.unsupported(_spec(**kw))
    assert reason is not None and words in reason
    with pytest.raises(flashmla_ref.FlashMLARefError, match="cannot run this spec"):
        flashmla_ref.FlashMLARef(lib=None, spec=_spec(**kw), path="x.so")


def test_load_without_a_library_says_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.delenv(flashmla_ref.LIB_ENV, raising=False)
    with pytest.raises(flashmla_ref.FlashMLARefError, match=flashmla_ref.LIB_ENV):
        flashmla_ref.load(_spec())
    with pytest.raises(flashmla_ref.FlashMLARefError, match="build.sh"):
        flashmla_ref.load(_spec(), tmp_path / "missing.so")
    bad = tmp_path / "not-a-library.so"
    bad.write_text("no ELF here")
    with pytest.raises(flashmla_ref.FlashMLARefError, match="cannot load"):
        flashmla_ref.load(_spec(), bad)


def _cell(**kw):
    base = dict(kind="mlagen", spec_key="k", plan="p", h_q=128, s_q=1, s_k=4096, batch=128, page=64, dtype="bf16",
                mean_len=4096.0, graph_ms=0.3, call_ms=0.31, floor_ms=0.2, gbps=2000.0, tflops=400.0,
                ratio=0.667)
    base.update(kw)
    return BenchCell(**base)


def test_table_line_names_where_the_flashmla_figure_came_from():
    assert "FlashMLA(live) 0.70" in format_cell(_cell(flashmla_ratio=0.7, flashmla_source="live"))
    table = format_cell(_cell(flashmla_ratio=0.68, flashmla_source="flashmla-h100-2026-11-23.json"))
    assert "FlashMLA(H100 table) 0.68" in table
    assert "FlashMLA" not in format_cell(_cell())
    assert format_cell(_cell(kind="flashmla")).startswith("flashmla h=128")


def test_summary_counts_only_cells_timed_beside_flashmla_in_the_run():
    cells = [_cell(s_k=4096, ratio=0.70, flashmla_ratio=0.72, flashmla_source="live"),
             _cell(s_k=8192, ratio=0.86, flashmla_ratio=0.85, flashmla_source="live"),
             _cell(s_k=16384, ratio=0.95, flashmla_ratio=0.80, flashmla_source="flashmla-h100-2026-11-23.json"),
             _cell(kind="flashmla", s_k=8192, ratio=0.85)]
    line = flashmla_summary(cells)
    assert "on 1 of 2 cells" in line and "s_k=4096 0.700 vs 0.720" in line
    assert flashmla_summary([_cell(flashmla_ratio=0.7, flashmla_source="flashmla-h100-2026-11-23.json")]) == ""


def test_a_library_without_the_entry_points_is_refused():
    """A loadable shared object that is not the shim (here torch's extension module) is refused by name."""
    import torch

    with pytest.raises(flashmla_ref.FlashMLARefError, match="has no fmla_decode"):
        flashmla_ref.check_library(torch._C.__file__)


def test_bench_cli_checks_the_library_before_any_gpu_work(tmp_path, capsys):
    from mlagen.cli import main

    rc = main(["bench", "--flashmla", str(tmp_path / "missing.so")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--flashmla" in err and "build.sh" in err
