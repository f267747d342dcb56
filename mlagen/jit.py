"""Compile and cache: spec + plan -> rendered module -> ``cute.compile`` (sm_90a) -> object on disk.

One :class:`KernelIdentity` derives every key and path of a kernel (like
FlashInfer's ``JitSpec``): the cache key hashes the spec key, the plan, the
template sources, the mlagen and CuTe DSL versions and the target arch.

Cache layout under ``$MLAGEN_CACHE_DIR`` (default ``~/.cache/mlagen``)::

    kernels/<spec name>__<plan tag>__<key>/
        kernel.py     the rendered CuTe DSL module (readable, importable on its own)
        kernel.ptx    the PTX, kept for inspection and instruction checks
        kernel.o      the compiled host launcher + cubin (``dump_to_object``)
        meta.json     written last: an entry without it is incomplete and rebuilt; it also keeps
                      what ptxas -v said (serialised wgmmas, spills; mlagen.ptxas)
    locks/<name>.lock

Builds hold a file lock, and every file is written to a temp name and renamed,
so a compile killed half-way or two processes compiling the same kernel never
leave an entry that the next call would trust. Compiling needs no GPU.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mlagen.codegen import atomic_write, render, template_hash
from mlagen.device import H100_SXM, DeviceFacts
from mlagen.plan import KernelPlan, check_plan, kernel_spec, plan_for
from mlagen.spec import MLASpec

# A cold build takes 5-60 s (cute.compile): at INFO, say so before and after, so that a first call that compiles
# (mlagen.compile, the torch op, mlagen.flash_mla) does not look like a hang.
log = logging.getLogger("mlagen")

__all__ = [
    "BuildResult",
    "KernelIdentity",
    "build",
    "cache_root",
    "compile",
    "cutedsl_version",
    "identity_for",
    "instruction_counts",
    "load",
]

CACHE_ENV = "MLAGEN_CACHE_DIR"
_LOCK_TIMEOUT_S = 900
_loaded: dict[str, object] = {}
_kernels: dict[tuple, object] = {}
_memo_lock = threading.Lock()


def cache_root() -> Path:
    """``$MLAGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/mlagen``, else ``~/.cache/mlagen``."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlagen"


def cutedsl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nvidia-cutlass-dsl")
    except PackageNotFoundError:
        # A GPU host may carry the DSL on PYTHONPATH without package metadata.
        try:
            return version("nvidia-cutlass-dsl-libs-base")
        except PackageNotFoundError:
            import cutlass

            return str(getattr(cutlass, "__version__", "unknown"))


@dataclass(frozen=True)
class KernelIdentity:
    """Everything that determines a compiled kernel, and every name derived from it."""

    spec: MLASpec
    plan: KernelPlan
    template_hash: str
    mlagen_version: str
    cutedsl_version: str
    arch: str

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "spec_key": self.spec.key,
            "plan": self.plan.compile_dict(),
            "template_hash": self.template_hash,
            "mlagen_version": self.mlagen_version,
            "cutedsl_version": self.cutedsl_version,
            "arch": self.arch,
        }

    @property
    def key(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @property
    def name(self) -> str:
        return f"{self.spec.name}__{self.plan.tag}__{self.key[:10]}"

    @property
    def symbol(self) -> str:
        """Function prefix inside the object file (unique per identity)."""
        return f"mlagen_{self.key[:16]}"

    def entry_dir(self, root: Path | None = None) -> Path:
        return (root or cache_root()) / "kernels" / self.name

    def lock_path(self, root: Path | None = None) -> Path:
        return (root or cache_root()) / "locks" / f"{self.name}.lock"


def identity_for(spec: MLASpec, plan: KernelPlan | None = None, device: DeviceFacts = H100_SXM) -> KernelIdentity:
    """The identity of ``spec`` under ``plan`` (checked), or under the planner's choice. A plan with
    ``q_tokens`` below ``max_q`` is the kernel of the narrower spec (:func:`mlagen.plan.kernel_spec`), and
    shares its cache entry."""
    from mlagen import __version__

    plan = check_plan(spec, plan, device) if plan is not None else plan_for(spec, device)
    spec, plan = kernel_spec(spec, plan)
    return KernelIdentity(
        spec=spec,
        plan=plan,
        template_hash=template_hash(),
        mlagen_version=__version__,
        cutedsl_version=cutedsl_version(),
        arch=spec.arch,
    )


@dataclass
class BuildResult:
    identity: KernelIdentity
    entry_dir: Path
    cold: bool                       # compiled by this call (True) or found in the cache
    seconds: float                   # wall time of this build or lookup
    compile_seconds: float | None    # cute.compile time recorded when the entry was built
    meta: dict = field(default_factory=dict)

    @property
    def object_path(self) -> Path:
        return self.entry_dir / "kernel.o"

    @property
    def source_path(self) -> Path:
        return self.entry_dir / "kernel.py"

    @property
    def ptx_path(self) -> Path:
        return self.entry_dir / "kernel.ptx"


def _read_meta(identity: KernelIdentity, entry: Path) -> dict | None:
    """The entry's metadata if the entry is complete and belongs to ``identity``, else None."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        obj = (entry / "kernel.o").read_bytes()
    except (OSError, ValueError):
        return None
    if meta.get("key") != identity.key or meta.get("object_sha256") != hashlib.sha256(obj).hexdigest():
        return None
    return meta


def _import_source(path: Path, module_name: str):
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    # The DSL reads the source of jitted functions through their module.
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    return module


def instruction_counts(ptx: str) -> dict:
    """Counts of the instructions a plan promises: wgmma, TMA loads, setmaxnreg."""
    return {
        "wgmma": ptx.count("wgmma.mma_async"),
        "tma_load": ptx.count("cp.async.bulk.tensor"),
        "setmaxnreg": ptx.count("setmaxnreg"),
        "target_sm_90a": ".target sm_90a" in ptx,
    }


def _target(arch: str) -> None:
    """Make the DSL compile for ``arch``.

    The DSL reads CUTE_DSL_ARCH once, when it starts; without a GPU it would
    otherwise default to another architecture. A process that loaded it
    before (e.g. to load a kernel) gets the setting applied to the live DSL.
    """
    os.environ.setdefault("CUTE_DSL_ARCH", arch)
    if "cutlass" in sys.modules:
        from cutlass.cutlass_dsl import CuTeDSL

        CuTeDSL._get_dsl().envar.arch = arch


def _compile_entry(identity: KernelIdentity, entry: Path) -> dict:
    _target(identity.arch)
    # mlagen's cache is the cache: the DSL must really compile so that the PTX is written.
    os.environ.setdefault("CUTE_DSL_DISABLE_FILE_CACHING", "1")
    rendered = render(identity.spec, identity.plan)
    entry.mkdir(parents=True, exist_ok=True)
    (entry / "meta.json").unlink(missing_ok=True)
    for stale in entry.glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)
    atomic_write(entry / "kernel.py", rendered.source)
    module = _import_source(entry / "kernel.py", f"mlagen_generated_{identity.key}")
    with tempfile.TemporaryDirectory(prefix="mlagen-ptx-") as dump:
        start = time.perf_counter()
        compiled = module.compile_launcher(options=f"--keep-ptx --dump-dir={dump}")
        compile_s = time.perf_counter() - start
        ptx_files = sorted(Path(dump).glob("*.ptx"))
        # the dumped PTX may end in NUL padding
        ptx = ptx_files[-1].read_bytes().rstrip(b"\0").decode() if ptx_files else ""
    obj = compiled.dump_to_object(identity.symbol)
    atomic_write(entry / "kernel.ptx", ptx)
    atomic_write(entry / "kernel.o", obj)
    ptxas = _ptxas_summary(entry / "kernel.ptx", identity)
    meta = {
        **identity.to_dict(),
        "key": identity.key,
        "name": identity.name,
        "symbol": identity.symbol,
        "source_sha256": rendered.source_hash,
        "object_sha256": hashlib.sha256(obj).hexdigest(),
        "compile_seconds": round(compile_s, 3),
        "instructions": instruction_counts(ptx),
        "ptxas": ptxas,
    }
    atomic_write(entry / "meta.json", json.dumps(meta, indent=1, sort_keys=True))
    return meta


def _ptxas_summary(ptx_path: Path, identity: KernelIdentity) -> dict | None:
    """What ``ptxas -v`` says of the kernel (see :mod:`mlagen.ptxas`), kept in meta.json; None where no
    ptxas is installed. Serialised wgmmas (correct code, a large part of the MMA rate lost) warn."""
    from mlagen.ptxas import PtxasNotFoundError, check_ptx

    try:
        report = check_ptx(ptx_path, identity.arch)
    except PtxasNotFoundError:
        return None
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # never fail a build over the report
        return {"error": str(exc)[-500:]}
    if report.serialized:
        warnings.warn(f"ptxas serialises the wgmmas of {identity.name} ({', '.join(report.codes)}): the kernel is "
                      "correct but loses much of its MMA rate; see mlagen/ptxas.py", RuntimeWarning, stacklevel=3)
    return {"serialized": list(report.codes), "spill_store_bytes": report.spill_store_bytes,
            "spill_load_bytes": report.spill_load_bytes, "max_registers": report.registers}


def build(
    spec: MLASpec,
    plan: KernelPlan | None = None,
    *,
    device: DeviceFacts = H100_SXM,
    cache_dir: Path | str | None = None,
    force: bool = False,
) -> BuildResult:
    """Render and compile ``spec`` into the cache, or find it there. Needs no GPU."""
    from filelock import FileLock

    start = time.perf_counter()
    root = Path(cache_dir) if cache_dir is not None else None
    identity = identity_for(spec, plan, device)
    entry = identity.entry_dir(root)
    meta = None if force else _read_meta(identity, entry)
    cold = meta is None
    if cold:
        lock_path = identity.lock_path(root)
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path), timeout=_LOCK_TIMEOUT_S)
        try:
            lock.acquire(timeout=0)
        except TimeoutError:
            log.info("waiting for another process compiling %s (plan %s)", identity.name, identity.plan.tag)
            lock.acquire()
        try:
            # another process may have finished it while this one waited
            meta = None if force else _read_meta(identity, entry)
            if meta is None:
                log.info("compiling %s (plan %s) for %s into %s", identity.name, identity.plan.tag,
                         identity.arch, entry)
                meta = _compile_entry(identity, entry)
                log.info("compiled %s in %.1f s", identity.name, time.perf_counter() - start)
            else:
                cold = False
        finally:
            lock.release()
    return BuildResult(
        identity=identity,
        entry_dir=entry,
        cold=cold,
        seconds=time.perf_counter() - start,
        compile_seconds=meta.get("compile_seconds"),
        meta=meta,
    )


def load(result: BuildResult):
    """The compiled launcher of a built entry, loaded once per process."""
    key = result.identity.key
    with _memo_lock:
        launcher = _loaded.get(key)
        if launcher is None:
            import cutlass.cute as cute

            module = cute.runtime.load_module(str(result.object_path))
            launcher = getattr(module, result.identity.symbol)
            launcher._mlagen_module = module  # the module owns the execution engine
            _loaded[key] = launcher
    return launcher


def compile(
    spec: MLASpec,
    plan: KernelPlan | None = None,
    *,
    device=None,
    cache_dir: Path | str | None = None,
    tuned: bool = True,
):
    """Build (or find) and load the decode kernel for ``spec``.

    With an explicit ``plan``: an :class:`~mlagen.runtime.MLADecodeKernel` for it.
    Without one: when ``mlagen tune`` has measured this spec on this GPU (with this
    toolchain) and ``tuned`` is true, a :class:`~mlagen.dispatch.TunedKernel` that picks
    the measured-best plan per call by shape bucket; otherwise the planner's heuristic plan,
    or where that depends on the call's s_q (:func:`mlagen.plan.plans_by_s_q`: fp8 m-block
    pairs that only some s_q fill; small s_q on a heads_n kernel compiled for them), a
    ``TunedKernel`` over the heuristic plans that picks one per call by s_q (each compiled on
    first use).

    Cold: renders, compiles for sm_90a and stores the object in the cache.
    Warm: loads it from disk. A repeated call in the same process is a dict lookup.
    """
    from mlagen.device import current_device_facts
    from mlagen.runtime import MLADecodeKernel

    facts = current_device_facts(device)
    # the templates are part of the key: a process that switches MLAGEN_TEMPLATE_DIR (an A/B of two
    # template folders) must get each folder's kernel, not the first one it loaded
    memo_key = (spec, plan, facts, str(cache_dir), tuned, template_hash())
    kernel = _kernels.get(memo_key)
    if kernel is not None:
        return kernel
    if plan is None:
        from mlagen.dispatch import TunedKernel, heuristic_table, load_table

        table = load_table(spec, facts) if tuned else heuristic_table(spec, facts)
        if table.tuned or table.varies_by_s_q:
            kernel = TunedKernel(spec, device=device, cache_dir=cache_dir, device_facts=facts, tuned=tuned)
    if kernel is None:
        result = build(spec, plan, device=facts, cache_dir=cache_dir)
        kernel = MLADecodeKernel(result, load(result), facts)
    _kernels[memo_key] = kernel
    return kernel
