"""The benchmark's clock/power sampler, without a GPU: a fake NVML module stands in for pynvml."""

from __future__ import annotations

import sys
import time
import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlagen.bench import BenchCell, Ceilings, format_cell
from mlagen.telemetry import LIMITING, REASONS, Telemetry, TelemetrySummary, reason_names, summarize


def fake_nvml(clock_mhz=1755, power_mw=650_000, reasons=0x4, fail_init=False):
    """A pynvml stand-in whose device answers fixed values (and counts the queries)."""
    m = types.ModuleType("pynvml")
    m.NVML_CLOCK_SM = 1
    m.queries = 0

    def init():
        if fail_init:
            raise OSError("NVML Shared Library Not Found")

    def by_uuid(uuid):
        raise RuntimeError("no such device")     # forces the index fallback

    def clock(h, kind):
        assert h == "dev0" and kind == m.NVML_CLOCK_SM
        m.queries += 1
        return clock_mhz

    m.nvmlInit = init
    m.nvmlDeviceGetHandleByUUID = by_uuid
    m.nvmlDeviceGetHandleByIndex = lambda i: f"dev{i}"
    m.nvmlDeviceGetClockInfo = clock
    m.nvmlDeviceGetPowerUsage = lambda h: power_mw
    m.nvmlDeviceGetEnforcedPowerLimit = lambda h: 700_000
    m.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: reasons
    return m


def test_instantaneous_power_is_preferred_where_the_driver_has_it(monkeypatch):
    nvml = fake_nvml(power_mw=650_000)
    nvml.NVML_FI_DEV_POWER_INSTANT = 186

    def fields(h, ids):
        assert ids == [186]
        return [types.SimpleNamespace(nvmlReturn=0, valueType=1, value=types.SimpleNamespace(uiVal=612_000))]

    nvml.nvmlDeviceGetFieldValues = fields
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with Telemetry(interval_s=0.001) as t:
        deadline = time.monotonic() + 0.2
        while nvml.queries < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
    assert t.summary.power_w_mean == 612 and t.summary.power_source == "instant"


def test_reason_bits_decode_by_name_and_keep_unknown_bits():
    assert reason_names(0) == []
    assert reason_names(0x4 | 0x40) == ["sw_power_cap", "hw_thermal"]
    assert reason_names(0x1000 | 0x1) == ["idle", "0x1000"]
    assert LIMITING <= set(REASONS.values())


def test_summary_of_samples():
    s = summarize([(1980.0, 500.0, 0x0), (1700.0, 700.0, 0x4), (1710.0, 690.0, 0x4), (1980.0, 480.0, 0x1)], 700.0)
    assert s.samples == 4
    assert s.sm_mhz_mean == pytest.approx(1842.5)
    assert s.sm_mhz_min == 1700.0
    assert s.power_w_max == 700.0
    assert s.reasons == ["idle", "sw_power_cap"]
    assert s.limited_share == 0.5
    assert s.short() == "1842 MHz 592 W/700 sw_power_cap 50%"
    assert summarize([], 700.0) is None


@given(st.lists(st.tuples(st.floats(100, 2500), st.floats(10, 800), st.integers(0, 0x1FF)), min_size=1, max_size=50))
def test_summary_bounds(samples):
    s = summarize(samples, None)
    assert s.sm_mhz_min <= s.sm_mhz_mean + 0.1
    assert 0.0 <= s.limited_share <= 1.0
    assert s.power_w_mean <= s.power_w_max + 0.1
    assert ("W/" in s.short()) is False


def test_sampler_collects_while_the_block_runs(monkeypatch):
    nvml = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with Telemetry(interval_s=0.001) as t:
        deadline = time.monotonic() + 0.2
        while nvml.queries < 5 and time.monotonic() < deadline:
            time.sleep(0.005)
    s = t.summary
    assert s is not None and s.samples >= 4        # the probe sample taken before the work is dropped
    assert (s.sm_mhz_mean, s.power_w_mean, s.power_limit_w) == (1755, 650, 700)
    assert s.reasons == ["sw_power_cap"] and s.limited_share == 1.0
    assert s.power_source == "average"     # the fake has no field values


@pytest.mark.parametrize("module", [None, "broken"])
def test_sampler_reports_nothing_without_nvml(monkeypatch, module):
    # None in sys.modules makes `import pynvml` raise ImportError
    monkeypatch.setitem(sys.modules, "pynvml", None if module is None else fake_nvml(fail_init=True))
    with Telemetry(interval_s=0.001) as t:
        time.sleep(0.01)
    assert t.summary is None


def test_bench_lines_show_clock_and_power():
    tel = summarize([(1650.0, 699.0, 0x4)], 700.0)
    cell = BenchCell(kind="mlagen", spec_key="k", plan="p", h_q=128, s_q=1, s_k=8192, batch=128, page=64,
                     dtype="fp16", mean_len=8000.0, graph_ms=0.61, call_ms=0.59, floor_ms=0.41, gbps=1.0,
                     tflops=1.0, ratio=0.67, telemetry=tel.__dict__)
    assert format_cell(cell).endswith("ratio 0.670 [1650 MHz 699 W/700 sw_power_cap 100%]")
    cell.telemetry = None
    assert format_cell(cell).endswith("ratio 0.670")
    ceilings = Ceilings(2970.0, 720.0, copy_telemetry=tel.__dict__, matmul_telemetry=tel.__dict__)
    assert "[copy at 1650 MHz" in ceilings.describe()
    assert Ceilings(2970.0, 720.0).describe() == "ceilings: copy 2970.0 GB/s (read+write), bf16 matmul 720.0 TFLOP/s"
    assert isinstance(TelemetrySummary(**tel.__dict__), TelemetrySummary)
