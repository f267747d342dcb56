"""What ptxas makes of the seesaw's wgmma descriptors, and of two PTX rewrites of them (CPU only).

The seventeenth-session SASS of the h_q 128 seesaw spends ~4 instructions beside each HGMMA on its descriptors
(VIADD on a vector register, R2UR, UMOV of the constant high word) where FlashMLA's loop uses UIADD3 in the
uniform datapath. Two guesses at the cause, each tested by rewriting the kernel's PTX and assembling it again:

- ``add64``: the descriptors' offsets added as 64-bit values (``add.s64``) instead of on the low word after a
  ``mov.b64 {lo, hi}`` split, as the DSL writes them;
- ``uniform_base``: the dynamic shared-memory base passed through ``shfl.sync.idx`` (lane 0), so ptxas knows it
  is warp-uniform (the base comes from ``S2R SR_CgaCtaId`` otherwise);
- ``sink``: each descriptor's two defining instructions (low word + offset, the 64-bit join) moved from the top
  of the tile loop's body, where LLVM hoisted all 88 of them, to just before the wgmma that uses it. This is the
  one that changes ptxas's code, and what ``seesaw-desc-beside.patch`` does from the template.

    python docs/perf/experiments/2026-12-07r/desc_probe.py [CACHE_DIR]

Builds the batch-128 h_q 128 s_q 1 cell's kernel (the planner's plan) unless cached, then prints, per PTX
version, the instructions of the innermost HGMMA loops by kind. The rewritten kernels are never run.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from mlagen import sass
from mlagen.bench import cell_spec
from mlagen.jit import build
from mlagen.plan import plan_for
from mlagen.ptxas import find_ptxas

KINDS = ("HGMMA", "R2UR", "UMOV", "UIADD3", "VIADD", "IADD3", "IMAD", "LOP3", "FMUL", "FFMA")


def add64(ptx: str) -> str:
    """``mov.b64 {lo, hi}, d`` ... ``add.s32 lo2, lo, K; mov.b64 e, {lo2, hi}`` -> ``add.s64 e, d, K``."""
    lines, out, halves, i = ptx.split("\n"), [], {}, 0
    while i < len(lines):
        line = lines[i]
        split = re.match(r"\s*mov\.b64\s+\{(%r\d+), (%r\d+)\}, (%rd\d+);", line)
        if split:
            halves[split.group(1)] = (split.group(3), split.group(2))
        op = re.match(r"\s*(add\.s32|or\.b32)\s+(%r\d+), (%r\d+), (\d+);", line)
        if op and op.group(3) in halves and i + 1 < len(lines):
            join = re.match(r"\s*mov\.b64\s+(%rd\d+), \{(%r\d+), (%r\d+)\};", lines[i + 1])
            whole, high = halves[op.group(3)]
            if join and join.group(2) == op.group(2) and join.group(3) == high:
                wide = "add.s64" if op.group(1) == "add.s32" else "or.b64"
                out.append(f"\t{wide} \t{join.group(1)}, {whole}, {op.group(4)};")
                i += 2
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def uniform_base(ptx: str) -> str:
    """Every read of the dynamic shared-memory base in the decode kernel (the first function) through
    ``shfl.sync.idx`` from lane 0."""
    out, n, declared, first_function = [], 0, False, True
    for line in ptx.split("\n"):
        if line.startswith(".visible .entry") and declared:
            first_function = False
        if not declared and re.match(r"\s*\.reg \.b32\s+%r<\d+>;", line):
            out += [line, "\t.reg .b32 \t%ru<128>;"]
            declared = True
            continue
        base = re.match(r"\s*mov\.u32\s+(%r\d+), __dynamic_shmem__0;", line)
        if base and first_function and n < 128:
            out += [f"\tmov.u32 \t%ru{n}, __dynamic_shmem__0;", f"\tshfl.sync.idx.b32 \t{base.group(1)}, %ru{n}, 0, 31, -1;"]
            n += 1
            continue
        out.append(line)
    return "\n".join(out)


def sink(ptx: str) -> str:
    """Each ``add/or lo2, lo, K; mov.b64 d, {lo2, hi}`` whose ``d`` feeds exactly one wgmma (and nothing else)
    moved to just before that wgmma's inline-asm block."""
    lines = ptx.split("\n")
    defs = {}
    for i in range(len(lines) - 1):
        op = re.match(r"\s*(add\.s32|or\.b32)\s+(%r\d+), (%r\d+), (\d+);", lines[i])
        join = re.match(r"\s*mov\.b64\s+(%rd\d+), \{(%r\d+), (%r\d+)\};", lines[i + 1])
        if op and join and join.group(2) == op.group(2):
            defs[join.group(1)] = i
    uses: dict = {}
    mentions: collections.Counter = collections.Counter()
    for i, line in enumerate(lines):
        for reg in set(re.findall(r"%rd\d+\b", line)):
            mentions[reg] += 1
            if "wgmma.mma_async" in line:
                uses.setdefault(reg, []).append(i)
    moved, before = set(), collections.defaultdict(list)
    for reg, i in defs.items():
        if len(uses.get(reg, [])) == 1 and mentions[reg] == 2 and uses[reg][0] > i:
            j = uses[reg][0]
            while not lines[j].strip().startswith("{"):
                j -= 1
            moved |= {i, i + 1}
            before[j] += lines[i:i + 2]
    return "\n".join(out for i, line in enumerate(lines) for out in before.get(i, []) + ([] if i in moved else [line]))


def loop_counts(cubin: bytes) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for name, instructions in sass.functions(sass.disassemble(cubin)).items():
        if "MLADecode" not in name:
            continue
        ranges = [(s, e) for s, e in sass.loops(instructions)
                  if any("HGMMA" in t for a, t in instructions if s <= a <= e)]
        innermost = []
        for s, e in sorted(ranges, key=lambda r: r[1] - r[0]):
            if all(e < s2 or e2 < s for s2, e2 in innermost):
                innermost.append((s, e))
        for s, e in innermost:
            for a, t in instructions:
                if s <= a <= e:
                    opcode = t.split()[1] if t.startswith("@") else t.split()[0]
                    counts["all"] += 1
                    counts.update(k for k in KINDS if opcode.split(".")[0] == k)
    return counts


def main() -> int:
    cache = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="desc-probe-")
    spec = cell_spec(dict(h_q=128, s_q=1, page=64, cache=None))
    entry = build(spec, plan_for(spec), cache_dir=cache).entry_dir
    ptx = (Path(entry) / "kernel.ptx").read_text()
    ptxas = find_ptxas()
    print(f"{entry.name}; ptxas {subprocess.run([ptxas, '--version'], capture_output=True, text=True).stdout.split()[-1]}")
    print("version       " + " ".join(f"{k:>7}" for k in ("all",) + KINDS))
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("as built", ptx), ("add64", add64(ptx)), ("uniform_base", uniform_base(ptx)),
                           ("sink", sink(ptx))):
            src, obj = Path(tmp) / "k.ptx", Path(tmp) / "k.cubin"
            src.write_text(text)
            subprocess.run([ptxas, "-arch=sm_90a", str(src), "-o", str(obj)], check=True)
            counts = loop_counts(obj.read_bytes())
            print(f"{name:13} " + " ".join(f"{counts[k]:>7}" for k in ("all",) + KINDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
