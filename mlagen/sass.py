"""The SASS of a built kernel: where its loops are and what their instructions are.

ptxas's report (:mod:`mlagen.ptxas`) gives a kernel's spills as one number, not where they are. A
local-memory access in the epilogue costs once per segment; one in an MMA warpgroup's tile loop
costs every tile. This module takes the sm_90a cubin out of a built entry's ``kernel.o``,
disassembles it (``cuobjdump -sass``, which runs ``nvdisasm``: NVIDIA's ``nvidia-cuda-cuobjdump``
and ``nvidia-cuda-nvdisasm`` wheels, dev dependencies, or ``PATH``), finds the loops (backward
branches) and counts what the innermost loops issuing ``HGMMA`` (the tile loops) execute. The CPU
test suite checks every kernel it builds this way (``tests/test_jit.py``).

    python -m mlagen.sass path/to/entry/kernel.o      # the tile loops of each kernel function
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LoopReport", "SassToolNotFoundError", "cubins_of", "disassemble", "functions", "loops", "mma_loops"]

_EM_CUDA = 190
# instruction kinds counted per loop: opcode prefixes (the first word of an instruction)
KINDS = ("HGMMA", "LDL", "STL", "LDS", "STS", "LDG", "STG", "BAR", "SYNCS", "UTMALDG", "MUFU", "SHFL",
         "WARPGROUP", "R2UR", "F2FP")
_INSTRUCTION = re.compile(r"^\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_FUNCTION = re.compile(r"Function\s*:\s*(\S+)")
_BRANCH = re.compile(r"\bBRA\b[^;]*?0x([0-9a-f]+)")  # a direct branch and its target address


class SassToolNotFoundError(RuntimeError):
    """cuobjdump or nvdisasm is missing."""


@dataclass(frozen=True)
class LoopReport:
    function: str
    start: int  # address of the loop's first instruction (its branch target)
    end: int    # address of its backward branch
    counts: dict = field(default_factory=dict)  # instruction kind -> how many in the loop body

    @property
    def local_memory(self) -> int:
        """Local-memory loads and stores in the loop: spilled registers (or stack arrays)."""
        return self.counts.get("LDL", 0) + self.counts.get("STL", 0)

    def describe(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        return f"{self.function[:60]} loop {self.start:#x}-{self.end:#x}: {counts}"


def cubins_of(blob: bytes) -> list[bytes]:
    """The CUDA ELF images (cubins) embedded in a host object such as an entry's ``kernel.o``."""
    found, at = [], blob.find(b"\x7fELF", 1)
    while at >= 0:
        head = blob[at:at + 64]
        if len(head) == 64 and head[4] == 2 and struct.unpack_from("<H", head, 18)[0] == _EM_CUDA:
            phoff, shoff = struct.unpack_from("<QQ", head, 32)
            phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 54)
            size = max(shoff + shentsize * shnum, phoff + phentsize * phnum)
            found.append(blob[at:at + size])
        at = blob.find(b"\x7fELF", at + 4)
    return found


def _wheel_tool(name: str) -> Path | None:
    try:
        import nvidia  # namespace package of NVIDIA's CUDA wheels
    except ImportError:
        return None
    for root in getattr(nvidia, "__path__", []):
        for candidate in sorted(Path(root).glob(f"cu*/bin/{name}"), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    return None


def _tool(name: str) -> str:
    found = _wheel_tool(name) or shutil.which(name)
    if not found:
        raise SassToolNotFoundError(
            f"no {name} found: `pip install -e '.[dev]'` installs it (nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm)")
    return str(found)


def disassemble(cubin: bytes, timeout: float = 120) -> str:
    """``cuobjdump -sass`` of one cubin (nvdisasm from the same wheels is put first on its PATH)."""
    cuobjdump, nvdisasm = _tool("cuobjdump"), _tool("nvdisasm")
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(nvdisasm).parent), os.environ.get("PATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        done = subprocess.run([cuobjdump, "-sass", str(path)], capture_output=True, text=True, env=env,
                              timeout=timeout)
    if done.returncode != 0 or "Function" not in done.stdout:
        raise RuntimeError(f"cuobjdump -sass failed (exit {done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    return done.stdout


def functions(sass: str) -> dict[str, list[tuple[int, str]]]:
    """Each kernel function's instructions as (address, text), in address order."""
    out: dict[str, list[tuple[int, str]]] = {}
    current = None
    for line in sass.splitlines():
        named = _FUNCTION.search(line)
        if named:
            current = out.setdefault(named.group(1), [])
            continue
        ins = _INSTRUCTION.match(line)
        if ins and current is not None:
            current.append((int(ins.group(1), 16), ins.group(2)))
    return out


def _kind(text: str) -> str | None:
    opcode = text.split()[0] if not text.startswith("@") else text.split()[1]
    for kind in KINDS:
        if opcode.startswith(kind):
            return kind
    return None


def loops(instructions: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """(first, last) addresses of every loop: a branch to an earlier address closes one."""
    found = set()
    for address, text in instructions:
        target = _BRANCH.search(text)
        if target and int(target.group(1), 16) <= address:
            found.add((int(target.group(1), 16), address))
    return sorted(found)


def _count(instructions, first: int, last: int) -> dict:
    return dict(collections.Counter(k for a, t in instructions if first <= a <= last for k in [_kind(t)] if k))


def mma_loops(object_path: str | os.PathLike) -> list[LoopReport]:
    """The innermost loops that issue wgmma (the tile loops), in every kernel function of the
    cubin(s) in ``object_path`` (an entry's ``kernel.o``)."""
    reports = []
    for cubin in cubins_of(Path(object_path).read_bytes()):
        for name, instructions in functions(disassemble(cubin)).items():
            with_mma = [(s, e) for s, e in loops(instructions) if _count(instructions, s, e).get("HGMMA")]
            # smallest first, and none overlapping one already taken: a segment loop that the
            # compiler re-enters at several points closes several larger ranges around a tile loop
            innermost: list[tuple[int, int]] = []
            for s, e in sorted(with_mma, key=lambda r: r[1] - r[0]):
                if all(e < s2 or e2 < s for s2, e2 in innermost):
                    innermost.append((s, e))
            reports += [LoopReport(name, s, e, _count(instructions, s, e)) for s, e in sorted(innermost)]
    return reports


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m mlagen.sass", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("objects", nargs="+", metavar="kernel.o", help="a built entry's kernel.o")
    args = parser.parse_args(argv)
    missing = [path for path in args.objects if not Path(path).is_file()]
    if missing:
        parser.error("no such file: " + ", ".join(missing))
    for path in args.objects:
        print(path)
        for report in mma_loops(path):
            print("  " + report.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
