"""FlashMLA's sm90 dense decode, timed live beside ours by ``mlagen bench --flashmla LIB``.

The comparison that matters is the hand-written kernel on the same GPU, inputs and timing
protocol as ours. ``tools/flashmla_ref/build.sh`` builds FlashMLA's dense decode (from a FlashMLA
checkout, with its own nvcc flags) into one shared library with a C entry point; this module loads
it through ctypes and gives it the calling convention of :class:`mlagen.runtime.MLADecodeKernel`
(``kernel(q, cache, block_table, seqlens, out=, lse=, workspace=)`` and ``kernel.workspace(...)``),
so the bench captures and replays it exactly as it does ours: one whole call is FlashMLA's
scheduling-metadata kernel, its split-KV kernel and its combine kernel.

FlashMLA's dense decode takes one shape family only; :func:`unsupported` says why a spec is out.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FlashMLARef", "FlashMLARefError", "check_library", "load", "unsupported"]

LIB_ENV = "MLAGEN_FLASHMLA_LIB"


class FlashMLARefError(RuntimeError):
    """The FlashMLA reference library is missing, unloadable, or refused a call."""


def unsupported(spec) -> str | None:
    """Why FlashMLA's dense decode cannot run ``spec`` (None when it can)."""
    if spec.page != 64:
        return f"page {spec.page} (FlashMLA's dense decode takes page 64 only)"
    if spec.d_v != 512 or spec.d_qk not in (512, 576):
        return f"d_qk {spec.d_qk} / d_v {spec.d_v} (FlashMLA takes 576 or 512 / 512)"
    if spec.cache_dtype != spec.dtype:
        return f"{spec.cache_dtype} cache (FlashMLA's dense decode reads 16-bit caches only)"
    if spec.rope and spec.rope_at != "tail":
        return "rope_at='head' (FlashMLA keeps the RoPE part after the latent)"
    return None


@dataclass
class _Workspace:
    meta: object
    num_splits: object
    lse: object
    lse_accum: object
    o_accum: object
    batch: int
    s_q: int


class FlashMLARef:
    """One spec's FlashMLA dense decode behind the calling convention of our kernels."""

    def __init__(self, lib: ctypes.CDLL, spec, path: str):
        reason = unsupported(spec)
        if reason is not None:
            raise FlashMLARefError(f"FlashMLA cannot run this spec: {reason}")
        self.spec, self._lib, self.path = spec, lib, path
        self.plan = _Tag(f"flashmla ({Path(path).name})")

    def _num_sm_parts(self, s_q: int) -> int:
        import torch

        sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
        return self._lib.fmla_num_sm_parts(sms, s_q, self.spec.q_heads, self.spec.kv_heads)

    def workspace(self, batch: int, s_q: int, device) -> _Workspace:
        import torch

        parts = self._num_sm_parts(s_q)
        rows = s_q * self.spec.q_heads  # h_k * (s_q * heads_per_kv)
        total = batch + parts
        i32 = dict(dtype=torch.int32, device=device)
        f32 = dict(dtype=torch.float32, device=device)
        return _Workspace(meta=torch.empty(parts, self._lib.fmla_sched_meta_ints(), **i32),
                          num_splits=torch.empty(batch + 1, **i32), lse=torch.empty(batch, rows, **f32),
                          lse_accum=torch.empty(total * rows, **f32),
                          o_accum=torch.empty(total * rows * self.spec.d_v, **f32), batch=batch, s_q=s_q)

    def __call__(self, q, kv_cache, block_table, cache_seqlens, *, out=None, lse=None, workspace=None,
                 validate: bool = True):
        """Runs one decode; returns ``out`` ([b, s_q, h_q, d_v]). ``lse`` is accepted for the bench's
        calling convention and left alone: FlashMLA's LSE stays in the workspace in its own row order
        (the bench compares outputs only)."""
        import torch

        spec = self.spec
        batch, s_q = q.shape[0], q.shape[1]
        if validate:
            _check(q.is_contiguous() and kv_cache.is_contiguous() and block_table.stride(-1) == 1,
                   "q and the cache must be contiguous, the block table row-major")
            _check(tuple(q.shape[2:]) == (spec.q_heads, spec.d_qk), f"q shape {tuple(q.shape)}")
            _check(kv_cache.dim() == 4 and tuple(kv_cache.shape[1:]) == (64, spec.kv_heads, spec.d_qk),
                   f"cache shape {tuple(kv_cache.shape)}")
            _check(block_table.dtype == torch.int32 and cache_seqlens.dtype == torch.int32,
                   "block table and lengths must be int32")
        if out is None:
            out = torch.empty(batch, s_q, spec.q_heads, spec.d_v, dtype=q.dtype, device=q.device)
        ws = workspace if workspace is not None else self.workspace(batch, s_q, q.device)
        _check(ws.batch >= batch and ws.s_q == s_q, "workspace too small")
        stream = torch.cuda.current_stream(q.device).cuda_stream
        rc = self._lib.fmla_decode(
            int(spec.dtype == "fp16"), batch, s_q, spec.q_heads, spec.kv_heads, spec.d_qk, spec.d_v,
            kv_cache.shape[0], 64, int(spec.causal), float(spec.scale), q.data_ptr(), kv_cache.data_ptr(),
            out.data_ptr(), ws.lse.data_ptr(), block_table.data_ptr(), block_table.stride(0),
            cache_seqlens.data_ptr(), ws.meta.data_ptr(), ws.meta.shape[0], ws.num_splits.data_ptr(),
            ws.lse_accum.data_ptr(), ws.o_accum.data_ptr(), ctypes.c_void_p(stream))
        if rc != 0:
            raise FlashMLARefError(f"fmla_decode returned {rc} (1: shape FlashMLA does not take; "
                                   "else a CUDA error code)")
        return out


@dataclass(frozen=True)
class _Tag:
    tag: str


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise FlashMLARefError(f"FlashMLA reference: bad input: {what}")


_LIBS: dict[str, ctypes.CDLL] = {}


def _library(path: str) -> ctypes.CDLL:
    lib = _LIBS.get(path)
    if lib is not None:
        return lib
    if not Path(path).is_file():
        raise FlashMLARefError(f"no FlashMLA reference library at {path}: build one with "
                               "tools/flashmla_ref/build.sh FLASHMLA_CHECKOUT")
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise FlashMLARefError(f"cannot load {path}: {e}") from None
    missing = [n for n in ("fmla_decode", "fmla_num_sm_parts", "fmla_sched_meta_ints") if not hasattr(lib, n)]
    if missing:
        raise FlashMLARefError(f"{path} has no {missing[0]}: not built by tools/flashmla_ref/build.sh")
    i32, ptr, i64 = ctypes.c_int, ctypes.c_void_p, ctypes.c_int64
    lib.fmla_num_sm_parts.argtypes = [i32, i32, i32, i32]
    lib.fmla_num_sm_parts.restype = i32
    lib.fmla_sched_meta_ints.argtypes = []
    lib.fmla_sched_meta_ints.restype = i32
    lib.fmla_decode.argtypes = [i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, ctypes.c_float,
                                ptr, ptr, ptr, ptr, ptr, i64, ptr, ptr, i32, ptr, ptr, ptr, ptr]
    lib.fmla_decode.restype = i32
    _LIBS[path] = lib
    return lib


def check_library(path: str | os.PathLike) -> None:
    """Raise :class:`FlashMLARefError` unless ``path`` loads and has the entry points of shim.cu."""
    _library(str(path))


def load(spec, path: str | os.PathLike | None = None) -> FlashMLARef:
    """FlashMLA's decode for ``spec`` from the library at ``path`` (default: ``$MLAGEN_FLASHMLA_LIB``)."""
    path = str(path or os.environ.get(LIB_ENV, ""))
    if not path:
        raise FlashMLARefError(f"no FlashMLA library given (pass a path or set {LIB_ENV})")
    return FlashMLARef(_library(path), spec, path)
