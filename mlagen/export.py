"""Ahead-of-time export: one spec's kernel as a self-contained C library folder.

``mlagen export SPEC --out DIR`` (or :func:`export`) needs no GPU. It builds the
kernel into the cache (:func:`mlagen.jit.build`), compiles the cached module's
entry point once more for export and writes it with the CuTe DSL's
``export_to_c`` (a header with the host launch wrapper and the module
load/unload functions, and an object file with the host code and the cubin),
then renders the scaffolding of ``templates/export/``::

    DIR/
      README.md                     how to build, call and link it
      CMakeLists.txt                target mlagen::<name> (static, PIC) + the example
      include/mlagen_<name>.h       the C ABI: init / run / destroy, workspace sizes, status codes
      src/mlagen_<name>.cpp         its implementation around the export_to_c header
      kernel/mlagen_<name>_kernel.{h,o,py}   export_to_c output and the CuTe DSL source
      kernel/meta.json              spec, plan, versions, checksums
      lib/libcuda_dialect_runtime_static.a   CuTe DSL runtime shims (from the wheel)
      example/example.cpp           self-checking example: random paged problem vs a CPU reference

The object calls the CUDA runtime through ``_cuda*`` shims that the DSL ships
twice: in ``libcute_dsl_runtime.so`` (37 MB, the whole DSL runtime) and in
``libcuda_dialect_runtime_static.a`` (15 kB, only the shims). The export copies
the small archive, so the folder links against nothing but the CUDA runtime.

The C ABI (documented in the generated header):

- ``int mlagen_<name>_init(mlagen_<name>_t **handle, int device)``
- ``int mlagen_<name>_destroy(mlagen_<name>_t *handle)``
- ``int32_t mlagen_<name>_num_parts(int32_t s_q, int32_t num_sms)``
- ``size_t mlagen_<name>_workspace_size(int32_t batch, int32_t s_q, int32_t num_sms)``
- ``size_t mlagen_<name>_workspace_size_for_parts(int32_t batch, int32_t s_q, int32_t num_parts)``
- ``int mlagen_<name>_run(handle, q, kv_cache, block_table, cache_seqlens, out, lse,
  workspace, workspace_bytes, batch, s_q, num_pages, page_stride,
  block_table_stride, num_parts, cudaStream_t stream)``
- ``const char *mlagen_<name>_error_string(int code)``,
  ``cudaError_t mlagen_<name>_last_cuda_error(void)``,
  ``const char *mlagen_<name>_spec_key(void)``

with the status codes :data:`STATUS_CODES`.

For an ``fp8_e4m3`` spec the cache is FlashMLA's packed rows (see
:mod:`mlagen.fp8_cache`): ``kv_cache`` points at bytes, ``page_stride`` counts
bytes, and the example packs its cache with a C++ quantizer that writes the
same bytes as :func:`mlagen.quantize_cache` (checked by tests/test_export.py).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import inspect
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlagen.spec import FP8_BLOCK, FP8_CACHE, MLASpec, load_spec_file

__all__ = [
    "ExportError",
    "ExportResult",
    "RUNTIME_LIB",
    "STATUS_CODES",
    "c_identifier",
    "configure",
    "export",
    "export_c_library",
    "run",
    "runtime_library",
]

RUNTIME_LIB = "libcuda_dialect_runtime_static.a"
CUDA_REQUIREMENT = "CUDA 12.5 or newer and a matching driver; the build was checked with CUDA 13.0"

# name -> (value, meaning); the generated header defines the same values
STATUS_CODES: dict[str, tuple[int, str]] = {
    "MLAGEN_SUCCESS": (0, "launched (or nothing to do: batch 0)"),
    "MLAGEN_ERROR_INVALID_ARGUMENT": (1, "NULL handle or pointer, negative or inconsistent size"),
    "MLAGEN_ERROR_UNSUPPORTED_S_Q": (2, "s_q outside 1..max_q"),
    "MLAGEN_ERROR_MISALIGNED": (3, "a pointer not 16-byte aligned, or page_stride not a multiple of 16 bytes"),
    "MLAGEN_ERROR_WORKSPACE_TOO_SMALL": (4, "workspace smaller than mlagen_<name>_workspace_size_for_parts"),
    "MLAGEN_ERROR_TOO_LARGE": (5, "sizes beyond the kernel's 32-bit indexing"),
    "MLAGEN_ERROR_UNSUPPORTED_DEVICE": (6, "not an sm_90 GPU"),
    "MLAGEN_ERROR_MODULE_LOAD": (7, "the embedded cubin could not be loaded"),
    "MLAGEN_ERROR_CUDA": (8, "a CUDA call failed"),
}

# The compiled entry point's C parameters, in order (templates/sm90/_launcher.py.j2). The
# export checks that export_to_c wrote exactly these, so a changed launcher fails loudly
# here instead of miscompiling callers.
LAUNCHER_PARAMS = (
    "void *q_ptr, void *kv_ptr, void *bt_ptr, void *lens_ptr, void *out_ptr, void *lse_ptr, "
    "void *ws_o_ptr, void *ws_lse_ptr, void *meta_ptr, int32_t batch, "
    "int32_t s_q, int32_t num_pages, int64_t page_stride, int32_t bt_stride, int32_t num_parts, "
    "cudaStream_t stream"
)

_TEMPLATES = {
    "abi.h.j2": "include/mlagen_{name}.h",
    "abi.cpp.j2": "src/mlagen_{name}.cpp",
    "example.cpp.j2": "example/example.cpp",
    "CMakeLists.txt.j2": "CMakeLists.txt",
    "README.md.j2": "README.md",
}


class ExportError(RuntimeError):
    """The export could not be written (missing runtime library, unexpected DSL output, ...)."""


@dataclass
class ExportResult:
    out_dir: Path
    name: str                 # C name: functions are mlagen_<name>_*
    prefix: str               # export_to_c function prefix: mlagen_<name>_kernel
    spec: MLASpec
    build: object             # mlagen.jit.BuildResult of the cached kernel
    files: list[str] = field(default_factory=list)   # written, relative to out_dir
    compile_seconds: float = 0.0                      # the export compile (cute.compile)
    seconds: float = 0.0                              # the whole export

    @property
    def header(self) -> Path:
        return self.out_dir / "include" / f"mlagen_{self.name}.h"


def c_identifier(text: str) -> str:
    """A lower-case C identifier fragment from ``text`` (a spec file stem, a model name)."""
    ident = re.sub(r"[^0-9a-zA-Z_]+", "_", text).strip("_").lower()
    ident = re.sub(r"_+", "_", ident)
    if not ident:
        raise ExportError(f"cannot make a C name from {text!r}; pass a name")
    return ident


def _check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", name) or len(name) > 64:
        raise ExportError(
            f"name {name!r}: must be lower-case letters, digits and '_' (at most 64, not starting with '_'); "
            "functions are called mlagen_<name>_*"
        )
    return name


def runtime_library() -> Path:
    """The CuTe DSL runtime shim archive of the installed wheel."""
    try:
        from cutlass.cute.export.aot_config import get_libdir
    except ImportError as e:  # pragma: no cover - the DSL is a dependency
        raise ExportError(f"the CuTe DSL is not importable: {e}") from e
    libdir = get_libdir()
    path = Path(libdir) / RUNTIME_LIB if libdir else None
    if path is None or not path.is_file():
        raise ExportError(
            f"{RUNTIME_LIB} not found (CuTe DSL library folder: {libdir or 'unknown'}); "
            "is nvidia-cutlass-dsl-libs-base installed?"
        )
    return path


def _import_module(path: Path, module_name: str):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # the DSL reads jitted functions' source through their module
    spec.loader.exec_module(module)
    return module


def _compile_for_export(build_result):
    """``cute.compile`` the cached module's entry point with a ``cudaStream_t`` stream parameter.

    ``export_to_c`` writes C parameters from the entry point's annotations and has no
    type for an unannotated stream; the launcher takes any stream object, so the export
    annotates it as ``cuda.bindings.driver.CUstream`` (a C ``cudaStream_t``) first.
    """
    import cuda.bindings.driver as cuda_driver

    identity = build_result.identity
    # The DSL reads CUTE_DSL_ARCH when it starts; a DSL loaded earlier in this process (the
    # kernel was in the cache, so mlagen.jit did not set it) gets the target set directly.
    os.environ.setdefault("CUTE_DSL_ARCH", identity.arch)
    os.environ.setdefault("CUTE_DSL_DISABLE_FILE_CACHING", "1")
    if "cutlass" in sys.modules:
        from cutlass.cutlass_dsl import CuTeDSL

        CuTeDSL._get_dsl().envar.arch = identity.arch
    module = _import_module(build_result.source_path, f"mlagen_export_{identity.key}")
    call = inspect.unwrap(module.MLADecodeLauncher.__call__)
    call.__annotations__.setdefault("stream", cuda_driver.CUstream)
    start = time.perf_counter()
    compiled = module.compile_launcher()
    return compiled, time.perf_counter() - start


def _check_export(header: str, obj: bytes, prefix: str) -> None:
    wrapper = f"cute_dsl_{prefix}_wrapper({prefix}_Kernel_Module_t *module, {LAUNCHER_PARAMS})"
    if wrapper not in header:
        found = re.search(rf"cute_dsl_{re.escape(prefix)}_wrapper\([^)]*\)", header)
        raise ExportError(
            "export_to_c wrote an unexpected launch wrapper; the C ABI expects\n  "
            f"{wrapper}\nbut the header has\n  {found.group(0) if found else '(no wrapper)'}"
        )
    for needed in (f"{prefix}_Kernel_Module_Load", f"{prefix}_Kernel_Module_Unload", "CUTE_DSL_CUDA_ERROR_CHECK"):
        if needed not in header:
            raise ExportError(f"export_to_c header lacks {needed}")
    if f"_mlir_{prefix}_cuda_init".encode() not in obj:
        raise ExportError(f"export_to_c object lacks _mlir_{prefix}_cuda_init")


def _render(files: dict[str, str], context: dict) -> dict[str, str]:
    import jinja2

    from mlagen.codegen import template_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir() / "export")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    return {dest.format(name=context["name"]): env.get_template(src).render(**context) for src, dest in files.items()}


def _cache_context(spec: MLASpec) -> dict:
    """How the C side sees the KV cache: its unit (element or byte), row length and stride rule."""
    from mlagen.fp8_cache import row_bytes  # imports torch: not when the CLI loads this module

    fp8 = spec.cache_dtype == FP8_CACHE
    head_row = spec.cache_bytes_per_token // spec.kv_heads if fp8 else spec.d_qk
    unit_bytes = 1 if fp8 else 2
    return {
        "fp8": fp8,
        "fp8_block": FP8_BLOCK,
        "head_row": head_row,                    # cache units per token and KV head
        "cache_unit": "byte" if fp8 else "element",
        "cache_unit_bytes": unit_bytes,
        "stride_align": 16 // unit_bytes,        # TMA needs 16-byte page strides
        "scale_offset": spec.latent,             # fp8 rows: bytes of the scales, then of the RoPE part
        "rope_offset": row_bytes(spec.latent, 0),   # the packed row without its RoPE part
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export(
    spec: MLASpec | str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    plan=None,
    cache_dir: str | Path | None = None,
) -> ExportResult:
    """Export ``spec`` (an :class:`MLASpec` or a spec file) as a C library folder ``out``.

    ``name`` (a lower-case C identifier) names the functions ``mlagen_<name>_*``; by
    default the spec file's stem, or ``spec.name``. Files mlagen writes are replaced,
    other files in ``out`` are left alone. Needs no GPU.
    """
    from mlagen import __version__
    from mlagen.codegen import atomic_write
    from mlagen.jit import build

    start = time.perf_counter()
    if not isinstance(spec, MLASpec):
        path = Path(spec)
        spec = load_spec_file(path).spec
        name = name or c_identifier(path.stem)
    name = _check_name(name or c_identifier(spec.name))
    prefix = f"mlagen_{name}_kernel"
    out_dir = Path(out)

    result = build(spec, plan, cache_dir=cache_dir)
    identity = result.identity
    # the kernel's own spec: a plan compiled for fewer query tokens (q_tokens) exports that narrower ABI
    spec = identity.spec
    compiled, compile_s = _compile_for_export(result)
    with tempfile.TemporaryDirectory(prefix="mlagen-export-") as tmp:
        compiled.export_to_c(tmp, prefix, prefix)
        header = (Path(tmp) / f"{prefix}.h").read_text()
        obj = (Path(tmp) / f"{prefix}.o").read_bytes()
    _check_export(header, obj, prefix)
    runtime = runtime_library()
    runtime_bytes = runtime.read_bytes()
    source = result.source_path.read_text()

    from mlagen.jit import cutedsl_version

    context = {
        "name": name,
        "NAME": name.upper(),
        "prefix": prefix,
        "spec": spec,
        "plan": identity.plan,
        "identity_name": identity.name,
        "version": __version__,
        "cutedsl_version": cutedsl_version(),
        "scale": repr(float(spec.scale)),
        "runtime_lib": RUNTIME_LIB,
        "runtime_source": f"nvidia_cutlass_dsl/lib/{RUNTIME_LIB}",
        "cuda_requirement": CUDA_REQUIREMENT,
        "folder": out_dir.resolve().name,
        **_cache_context(spec),
    }
    rendered = _render(_TEMPLATES, context)
    meta = {
        "name": name,
        "prefix": prefix,
        "spec": spec.to_dict(),
        "spec_key": spec.key,
        "plan": identity.plan.to_dict(),
        "cache": {"dtype": spec.cache_dtype, "unit": context["cache_unit"], "head_row": context["head_row"],
                  "page_stride_align": context["stride_align"]},
        "kernel": identity.name,
        "kernel_key": identity.key,
        "mlagen_version": __version__,
        "cutedsl_version": context["cutedsl_version"],
        "arch": identity.arch,
        "object_sha256": _sha256(obj),
        "header_sha256": _sha256(header.encode()),
        "source_sha256": _sha256(source.encode()),
        "runtime_lib": RUNTIME_LIB,
        "runtime_lib_sha256": _sha256(runtime_bytes),
        "status_codes": {k: v[0] for k, v in STATUS_CODES.items()},
    }
    files: dict[str, str | bytes] = {
        **rendered,
        f"kernel/{prefix}.h": header,
        f"kernel/{prefix}.o": obj,
        f"kernel/{prefix}.py": source,
        "kernel/meta.json": json.dumps(meta, indent=1, sort_keys=True) + "\n",
        f"lib/{RUNTIME_LIB}": runtime_bytes,
    }
    for rel, data in files.items():
        atomic_write(out_dir / rel, data)
    return ExportResult(
        out_dir=out_dir,
        name=name,
        prefix=prefix,
        spec=spec,
        build=result,
        files=sorted(files),
        compile_seconds=compile_s,
        seconds=time.perf_counter() - start,
    )


export_c_library = export  # the name under which ``mlagen`` exports it (``mlagen.export`` is this module)


# ------------------------------------------------------------------ command line
HELP = "export a spec's kernel as a self-contained C library (header, object, CMake project, example)"


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of ``mlagen export``."""
    p.add_argument("spec", type=Path, help="spec file (e.g. specs/deepseek_v3.py)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write (created if missing)")
    p.add_argument("--name", default=None,
                   help="C name: functions are mlagen_<name>_* (default: the spec file's stem)")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="kernel cache folder (default: $MLAGEN_CACHE_DIR, else ~/.cache/mlagen)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of the summary")


def run(args: argparse.Namespace) -> int:
    """``mlagen export``: write the folder and print what was written."""
    from mlagen.cli import CLIError
    from mlagen.plan import PlanError

    try:
        res = export(args.spec, args.out, name=args.name, cache_dir=args.cache)
    except (PlanError, ExportError) as e:
        raise CLIError(str(e)) from None
    if args.json:
        print(json.dumps({
            "out": str(res.out_dir), "name": res.name, "prefix": res.prefix, "spec_key": res.spec.key,
            "kernel": res.build.identity.name, "files": res.files,
            "compile_seconds": round(res.compile_seconds, 3), "seconds": round(res.seconds, 3),
        }, indent=1))
        return 0
    print(f"exported {res.spec.key} as mlagen_{res.name} to {res.out_dir} "
          f"({res.seconds:.1f} s, export compile {res.compile_seconds:.1f} s)")
    for rel in res.files:
        print(f"  {rel}")
    print(f"build: cmake -S {res.out_dir} -B {res.out_dir}/build && cmake --build {res.out_dir}/build")
    print(f"run:   {res.out_dir}/build/mlagen_{res.name}_example   (needs a Hopper GPU; prints PASS)")
    return 0
