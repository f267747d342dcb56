"""What ptxas says about a generated kernel's PTX: serialised wgmmas, spills, registers.

ptxas quietly serialises every ``wgmma`` of a kernel when it cannot prove that no other
instruction touches an accumulator while a wgmma is in flight (warnings C7514, C7515, C7518, ...:
"Potential Performance Loss: wgmma.mma_async instructions are serialized"). The kernel stays
correct and loses a large part of its MMA rate, so nothing but this report shows it. The CPU test
suite runs :func:`check_ptx` on every kernel it builds (``tests/test_jit.py``), so a template
change that trips it fails there, not weeks later on a GPU.

ptxas comes from ``$MLAGEN_PTXAS``, the ``nvidia-cuda-nvcc`` wheel (a dev dependency), or
``PATH``, in that order.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PtxasNotFoundError", "PtxasReport", "check_ptx", "find_ptxas"]

# "Potential Performance Loss: wgmma.mma_async instructions are serialized due to ..."
_SERIALIZED = re.compile(r"\((C\d+)\)[^\n]*wgmma[^\n]*serializ", re.IGNORECASE)
_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_REGISTERS = re.compile(r"Used (\d+) registers")


class PtxasNotFoundError(RuntimeError):
    """No ptxas to run: install the dev extras (``nvidia-cuda-nvcc``) or set ``MLAGEN_PTXAS``."""


@dataclass(frozen=True)
class PtxasReport:
    """ptxas -v on one PTX file: the serialisation warnings and the largest spill and register use."""

    serialized: tuple[str, ...]   # the warning lines, e.g. "(C7514) Potential Performance Loss: ..."
    spill_store_bytes: int
    spill_load_bytes: int
    registers: int
    output: str

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(_SERIALIZED.search(line).group(1) for line in self.serialized)


def _wheel_ptxas() -> Path | None:
    try:
        import nvidia  # namespace package of NVIDIA's CUDA wheels
    except ImportError:
        return None
    for root in getattr(nvidia, "__path__", []):
        for candidate in sorted(Path(root).glob("cu*/bin/ptxas"), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    return None


def find_ptxas() -> str:
    """The ptxas to run (see the module doc); :class:`PtxasNotFoundError` if there is none."""
    env = os.environ.get("MLAGEN_PTXAS")
    if env:
        if not os.access(env, os.X_OK):
            raise PtxasNotFoundError(f"MLAGEN_PTXAS={env!r} is not an executable file")
        return env
    wheel = _wheel_ptxas()
    if wheel is not None:
        return str(wheel)
    found = shutil.which("ptxas")
    if found:
        return found
    raise PtxasNotFoundError(
        "no ptxas found: `pip install -e '.[dev]'` installs it (nvidia-cuda-nvcc), or set MLAGEN_PTXAS "
        "to a ptxas of CUDA 12.3 or newer")


def check_ptx(ptx_path: str | os.PathLike, arch: str = "sm_90a", ptxas: str | None = None,
              timeout: float = 300) -> PtxasReport:
    """Assemble ``ptx_path`` for ``arch`` with ``ptxas -v`` (output discarded) and report what it said."""
    exe = ptxas or find_ptxas()
    proc = subprocess.run([exe, f"-arch={arch}", "-v", "-o", os.devnull, str(ptx_path)],
                          capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed on {ptx_path} (exit {proc.returncode}):\n{output[-4000:]}")
    serialized = tuple(line.strip() for line in output.splitlines() if _SERIALIZED.search(line))
    spills = [tuple(map(int, m)) for m in _SPILLS.findall(output)] or [(0, 0)]
    registers = [int(m) for m in _REGISTERS.findall(output)] or [0]
    return PtxasReport(serialized=serialized, spill_store_bytes=max(s for s, _ in spills),
                       spill_load_bytes=max(l for _, l in spills), registers=max(registers), output=output)
