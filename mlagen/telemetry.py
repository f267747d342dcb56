"""GPU clocks, power and throttle reasons sampled while a benchmark cell runs (NVML).

A kernel's time depends on the SM clock, and the clock on the power the work draws: an H100
under a power cap lowers its clock, and how much it draws depends on the data the tensor cores
see (more toggling mantissa bits, more power). So a benchmark that compares two kernels, or two
dtypes, should say at which clock and power each ran. :class:`Telemetry` samples NVML on a
background thread for the duration of a ``with`` block.

NVML comes from ``nvidia-ml-py`` (``pip install 'mlagen[bench]'``); without it, or without an
NVIDIA driver, the sampler reports nothing and the benchmark runs as before.
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass

# NVML's clock-event ("throttle") reason bits: nvmlClocksEventReason* / nvmlClocksThrottleReason*
REASONS = {
    0x1: "idle",
    0x2: "app_clocks",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal",
    0x40: "hw_thermal",
    0x80: "hw_power_brake",
    0x100: "display_clocks",
}
# reasons that mean the clock was held below what the work asked for
LIMITING = {"sw_power_cap", "hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake"}


def reason_names(mask: int) -> list[str]:
    """The names of the reason bits set in ``mask`` (unknown bits as hex)."""
    names = [name for bit, name in REASONS.items() if mask & bit]
    unknown = mask & ~sum(REASONS)
    if unknown:
        names.append(hex(unknown))
    return names


@dataclass
class TelemetrySummary:
    samples: int
    sm_mhz_mean: float
    sm_mhz_min: float
    power_w_mean: float
    power_w_max: float
    power_limit_w: float | None
    reasons: list[str]          # every reason seen in any sample
    limited_share: float        # share of samples with a limiting reason (power cap, thermal, ...)
    # "instant" (NVML_FI_DEV_POWER_INSTANT) or "average" (nvmlDeviceGetPowerUsage: on Hopper an
    # average over about a second, so it lags the work being timed)
    power_source: str = "average"

    def short(self) -> str:
        """One line for a results table: ``1755 MHz 612 W/700 power-capped 80%``."""
        limit = f"/{self.power_limit_w:.0f}" if self.power_limit_w else ""
        text = f"{self.sm_mhz_mean:4.0f} MHz {self.power_w_mean:3.0f} W{limit}"
        limiting = sorted(set(self.reasons) & LIMITING)
        if limiting:
            text += f" {'+'.join(limiting)} {100 * self.limited_share:.0f}%"
        return text


def summarize(samples: list[tuple[float, float, int]], power_limit_w: float | None,
              power_source: str = "average") -> TelemetrySummary | None:
    """Summary of (sm MHz, watts, reason mask) samples; None if there are none."""
    if not samples:
        return None
    clocks = [s[0] for s in samples]
    watts = [s[1] for s in samples]
    masks = [s[2] for s in samples]
    seen = 0
    for m in masks:
        seen |= m
    limiting_bits = sum(bit for bit, name in REASONS.items() if name in LIMITING)
    return TelemetrySummary(
        samples=len(samples),
        sm_mhz_mean=round(statistics.fmean(clocks), 1),
        sm_mhz_min=round(min(clocks), 1),
        power_w_mean=round(statistics.fmean(watts), 1),
        power_w_max=round(max(watts), 1),
        power_limit_w=power_limit_w,
        reasons=reason_names(seen),
        limited_share=round(sum(1 for m in masks if m & limiting_bits) / len(masks), 3),
        power_source=power_source,
    )


def _nvml():
    """The pynvml module, initialised, or None."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:   # no driver / no NVML library: NVMLError subclasses, OSError
        return None
    return pynvml


def _handle(nvml, device_index: int):
    """NVML's handle for torch's device ``device_index`` (by UUID: CUDA_VISIBLE_DEVICES may renumber)."""
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(device_index).uuid)
        return nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
    except Exception:
        return nvml.nvmlDeviceGetHandleByIndex(device_index)


class Telemetry:
    """``with Telemetry() as t: ...`` then ``t.summary`` (None where NVML is unavailable).

    Samples every ``interval_s`` on a daemon thread; NVML calls release the GIL, so the
    timed launches are not held up.
    """

    def __init__(self, device_index: int = 0, interval_s: float = 0.01):
        self.device_index = device_index
        self.interval_s = interval_s
        self.summary: TelemetrySummary | None = None
        self._samples: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml = None
        self._h = None
        self._limit_w: float | None = None
        self._instant = False

    def _reasons(self) -> int:
        nvml, h = self._nvml, self._h
        get = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or \
            nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        return int(get(h))

    def _instant_mw(self) -> float | None:
        """Instantaneous board power in mW where the driver reports it, else None."""
        nvml = self._nvml
        field = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        get = getattr(nvml, "nvmlDeviceGetFieldValues", None)
        if field is None or get is None:
            return None
        try:
            v = get(self._h, [field])[0]
        except Exception:
            return None
        if getattr(v, "nvmlReturn", 1) != 0:
            return None
        # the union member named by valueType (0 double, 1 uint, 2 ulong, 3 ulonglong, 4 slonglong, 5 sint)
        member = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}.get(v.valueType, "uiVal")
        value = float(getattr(v.value, member))
        return value if value > 0 else None

    def _power_w(self) -> float:
        if self._instant:
            mw = self._instant_mw()
            if mw is not None:
                return mw / 1000.0
        return self._nvml.nvmlDeviceGetPowerUsage(self._h) / 1000.0

    def _sample(self) -> None:
        nvml, h = self._nvml, self._h
        self._samples.append((float(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM)), self._power_w(),
                              self._reasons()))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._sample()
            except Exception:   # a failing query ends the sampling, never the benchmark
                return

    def __enter__(self) -> "Telemetry":
        self._nvml = _nvml()
        if self._nvml is None:
            return self
        try:
            self._h = _handle(self._nvml, self.device_index)
            try:
                self._limit_w = self._nvml.nvmlDeviceGetEnforcedPowerLimit(self._h) / 1000.0
            except Exception:
                self._limit_w = None
            self._instant = self._instant_mw() is not None
            self._sample()          # fails here, not on the thread, if a query is unsupported
            self._samples.clear()   # taken before the work started
        except Exception:
            self._nvml = None
            return self
        self._thread = threading.Thread(target=self._loop, name="mlagen-telemetry", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self.summary = summarize(self._samples, self._limit_w, "instant" if self._instant else "average")
