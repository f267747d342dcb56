"""The issues' performance targets, checked on bench results.

`mlagen bench` prints these after each grid, and `tools/compare_runs.py` prints them on the medians of
several runs (the issues judge medians of three). Each check compares cells of one run or one median
set, never numbers from elsewhere:

- pages: a page size other than 64 within +10% of page 64's time, same shape, at s_k >= 8192
- fp16: within +3% of bf16's time, same shape
- long context: batch <= 8 at s_k >= 32k reaches ratio 0.80
- 16k: the default grid's s_k = 16384 cells reach ratio 0.90
- fp8 ratio: an fp8 cache at s_k >= 8192 and h_q <= 64 reaches ratio 0.85
- fp8 speed: an fp8 cache at h_q 16 and 32, s_q 1, runs 1.6x the tokens/s of its 16-bit-cache twin

Cells are the bench's JSON dicts (`dataclasses.asdict(BenchCell)`); only kind "mlagen" cells of specs compiled for
exactly the cell's s_q count (the issues' grids; the "mixed" grid's calls with fewer tokens than max_q do not).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from mlagen.spec import FP8_CACHE

PAGE_SLOWDOWN = 0.10
FP16_SLOWDOWN = 0.03
LONG_RATIO = 0.80
LONG_MAX_BATCH = 8
LONG_MIN_S_K = 32768
S_K_16K_RATIO = 0.90
FP8_RATIO = 0.85
FP8_SPEEDUP = 1.6
_EPS = 1e-9  # a slowdown of exactly the tolerance meets it, whatever the float rounding of the time quotient


@dataclass(frozen=True)
class TargetCheck:
    target: str   # which target, as in the module docstring
    cell: str     # the cell it was checked on
    value: str    # what was measured, as printed
    met: bool


def _time(c: dict) -> float:
    return c["graph_ms"] if c.get("graph_ms") is not None else c["call_ms"]


def _cache(c: dict) -> str:
    return c.get("cache_dtype") or c["dtype"]


def _name(c: dict) -> str:
    cache = " fp8" if _cache(c) == FP8_CACHE else ""
    return f"h={c['h_q']} s_q={c['s_q']} s_k={c['s_k']} b={c['batch']} p={c['page']} {c['dtype']}{cache}"


def _shape(c: dict, *, page: int | None = None, dtype: str | None = None, cache: str | None = None) -> tuple:
    dt = dtype or c["dtype"]
    return (c["h_q"], c["s_q"], c["s_k"], c["batch"], page or c["page"], dt, cache or _cache(c))


def check(cells: Iterable[dict]) -> list[TargetCheck]:
    """Every target that applies to these cells, in the cells' order."""
    ours = [c for c in cells if c.get("kind", "mlagen") == "mlagen" and c.get("max_q") in (None, c["s_q"])]
    by_shape = {_shape(c): c for c in ours}
    checks = []
    for c in ours:
        cache = _cache(c)
        sixteen_bit = cache != FP8_CACHE
        if c["page"] != 64 and c["s_k"] >= 8192:
            twin = by_shape.get(_shape(c, page=64))
            if twin:
                slower = _time(c) / _time(twin) - 1
                checks.append(TargetCheck(f"page {c['page']} within +{PAGE_SLOWDOWN:.0%} of page 64", _name(c),
                                          f"{slower:+.1%}", slower <= PAGE_SLOWDOWN + _EPS))
        if c["dtype"] == "fp16" and sixteen_bit:
            twin = by_shape.get(_shape(c, dtype="bf16", cache="bf16"))
            if twin:
                slower = _time(c) / _time(twin) - 1
                checks.append(TargetCheck(f"fp16 within +{FP16_SLOWDOWN:.0%} of bf16", _name(c), f"{slower:+.1%}",
                                          slower <= FP16_SLOWDOWN + _EPS))
        if c["batch"] <= LONG_MAX_BATCH and c["s_k"] >= LONG_MIN_S_K:
            checks.append(TargetCheck(f"long context ratio >= {LONG_RATIO}", _name(c), f"{c['ratio']:.3f}",
                                      c["ratio"] >= LONG_RATIO))
        if (c["s_k"] == 16384 and c["batch"] == 128 and c["page"] == 64 and sixteen_bit and c["dtype"] == "bf16"
                and c["s_q"] in (1, 2)):
            checks.append(TargetCheck(f"16k ratio >= {S_K_16K_RATIO}", _name(c), f"{c['ratio']:.3f}",
                                      c["ratio"] >= S_K_16K_RATIO))
        if cache == FP8_CACHE and c["s_k"] >= 8192 and c["h_q"] <= 64:
            checks.append(TargetCheck(f"fp8 ratio >= {FP8_RATIO}", _name(c), f"{c['ratio']:.3f}",
                                      c["ratio"] >= FP8_RATIO))
        if cache == FP8_CACHE and c["s_q"] == 1 and c["h_q"] in (16, 32) and c.get("speedup_vs_16bit") is not None:
            checks.append(TargetCheck(f"fp8 tokens/s >= {FP8_SPEEDUP}x the 16-bit cache's", _name(c),
                                      f"x{c['speedup_vs_16bit']:.2f}", c["speedup_vs_16bit"] >= FP8_SPEEDUP))
    return checks


def summary_lines(checks: list[TargetCheck]) -> list[str]:
    """One line per target: how many of its cells meet it, and the cells that do not."""
    by_target: dict[str, list[TargetCheck]] = defaultdict(list)
    for c in checks:
        by_target[c.target].append(c)
    lines = []
    for target, group in by_target.items():
        met = sum(c.met for c in group)
        line = f"target {target}: met on {met} of {len(group)}"
        missed = [f"{c.cell} {c.value}" for c in group if not c.met]
        if missed:
            line += "; missed: " + ", ".join(missed)
        lines.append(line)
    return lines


def median_cells(runs: list[list[dict]]) -> list[dict]:
    """The cells of several runs of one grid, each field the issues judge (time, ratio, fp8 speedup) replaced by its
    median over the runs that measured that cell; the first run's order."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    order = []
    for run in runs:
        for c in run:
            if c.get("kind", "mlagen") != "mlagen":
                continue
            key = _shape(c)
            if key not in groups:
                order.append(key)
            groups[key].append(c)
    merged = []
    for key in order:
        group = groups[key]
        cell = dict(group[0])
        cell["graph_ms"] = statistics.median(_time(c) for c in group)
        cell["ratio"] = statistics.median(c["ratio"] for c in group)
        speedups = [c["speedup_vs_16bit"] for c in group if c.get("speedup_vs_16bit") is not None]
        cell["speedup_vs_16bit"] = statistics.median(speedups) if speedups else None
        cell["runs"] = len(group)
        merged.append(cell)
    return merged
