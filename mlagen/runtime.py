"""The runtime call: validate torch tensors, allocate outputs and workspace, launch.

``MLADecodeKernel.__call__`` launches the split-KV decode and combine kernels
on the current CUDA stream without a host synchronisation, so it can be
captured in a CUDA graph. The only synchronising step is the optional check
of tensor *contents* (lengths within the block table, used block-table
entries in range), done when ``validate=True`` and the stream is not capturing.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import torch

from mlagen.device import DeviceFacts
from mlagen.dtypes import PACKED_ROW_DTYPES, TORCH_DTYPES
from mlagen.plan import m_blocks as plan_m_blocks
from mlagen.spec import FP8_CACHE

__all__ = ["MLADecodeKernel", "MLAInputError", "Workspace"]

_ALIGN = 16
_INT32_MAX = 2**31 - 1


class MLAInputError(ValueError):
    """Tensors that do not match the kernel's spec; raised before any launch."""


@dataclass
class Workspace:
    """Scratch memory of a call: split-KV partials and where each request's pieces are.

    Flat buffers with a capacity: any call whose needs fit may use it (CUDA
    graphs keep one), one call at a time. ``MLADecodeKernel.workspace`` sizes one.
    """

    partial_out: torch.Tensor    # >= parts * 2 * kv_heads * m_blocks*64 * d_v float32
    partial_lse: torch.Tensor    # >= parts * 2 * kv_heads * m_blocks*64 float32
    pieces: torch.Tensor         # >= batch * 4 int32: first part, number of pieces, first slot

    def fits(self, batch: int, rows: int, parts: int, kv_heads: int, d_v: int) -> bool:
        lse_need = parts * 2 * kv_heads * rows
        return (
            self.partial_lse.numel() >= lse_need
            and self.partial_out.numel() >= lse_need * d_v
            and self.pieces.numel() >= batch * 4
        )


class _LaunchArgs:
    """Persistent ctypes storage for the launcher's arguments.

    The DSL's generic call path converts every argument object on every call
    (tens of microseconds); here a call writes plain values into storage laid
    out exactly as the DSL would pass it and invokes the compiled function.
    ``tests/test_runtime.py`` checks the layout against the DSL's own packing.
    """

    NUM_PTRS = 9

    def __init__(self):
        self.ptrs = [ctypes.c_void_p(0) for _ in range(self.NUM_PTRS)]
        self.batch, self.s_q, self.num_pages = ctypes.c_int32(0), ctypes.c_int32(0), ctypes.c_int32(0)
        self.page_stride = ctypes.c_int64(0)
        self.bt_stride, self.parts = ctypes.c_int32(0), ctypes.c_int32(0)
        self.stream = ctypes.c_void_p(0)
        scalars = (self.batch, self.s_q, self.num_pages, self.page_stride, self.bt_stride, self.parts)
        self.exe_args = (
            [ctypes.addressof(p) for p in self.ptrs]
            + [ctypes.c_void_p(ctypes.addressof(v)) for v in scalars]
            + [ctypes.addressof(self.stream)]
        )

    def set(self, ptrs, batch, s_q, num_pages, page_stride, bt_stride, parts, stream) -> list:
        for slot, value in zip(self.ptrs, ptrs):
            slot.value = value
        self.batch.value, self.s_q.value, self.num_pages.value = batch, s_q, num_pages
        self.page_stride.value, self.bt_stride.value, self.parts.value = page_stride, bt_stride, parts
        self.stream.value = stream
        return self.exe_args


def dsl_arguments(ptrs, batch, s_q, num_pages, page_stride, bt_stride, parts, stream, dtype: str,
                  fp8_cache: bool = False) -> tuple:
    """The launcher's arguments as DSL objects (the generic, slower call path)."""
    import cuda.bindings.driver as cuda_driver
    import cutlass
    import cutlass.cute as cute
    from cutlass.cute.runtime import make_ptr

    elem = cutlass.BFloat16 if dtype == "bf16" else cutlass.Float16
    kv_elem = cutlass.Uint8 if fp8_cache else elem
    types = (elem, kv_elem, cutlass.Int32, cutlass.Int32, elem, cutlass.Float32, cutlass.Float32, cutlass.Float32,
             cutlass.Int32)
    gmem = cute.AddressSpace.gmem
    return (
        *(make_ptr(t, p, gmem, assumed_align=_ALIGN) for t, p in zip(types, ptrs)),
        cutlass.Int32(batch), cutlass.Int32(s_q), cutlass.Int32(num_pages), cutlass.Int64(page_stride),
        cutlass.Int32(bt_stride), cutlass.Int32(parts), cuda_driver.CUstream(stream),
    )


def _current_raw_stream(device: int) -> int:
    """The current CUDA stream's handle (without building a torch.cuda.Stream object)."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is not None:
        return raw(device)
    return torch.cuda.current_stream(device).cuda_stream


class MLADecodeKernel:
    """A compiled MLA decode kernel for one spec; call it with torch CUDA tensors.

    ``out, lse = kernel(q, kv_cache, block_table, cache_seqlens)`` with

    - ``q``: (batch, s_q, q_heads, d_qk), the spec's dtype, contiguous, 1 <= s_q <= max_q
    - ``kv_cache``: (num_pages, page, kv_heads, d_qk); each page contiguous, the
      page stride may be larger (a view into a bigger pool). For an fp8_e4m3 spec:
      (num_pages, page, kv_heads, row_bytes) packed rows, uint8 or float8_e4m3fn
      (see :func:`mlagen.quantize_cache`; 656 bytes for 512 + 64)
    - ``block_table``: (batch, max_pages) int32, unit stride along pages
    - ``cache_seqlens``: (batch,) int32

    Returns ``out`` (batch, s_q, q_heads, d_v) and, when the spec has ``lse=True``,
    ``lse`` (batch, q_heads, s_q) float32: natural log, -inf for a row with no
    visible key (whose output is 0). Only ``out`` is returned otherwise.
    """

    def __init__(self, build_result, launcher, device_facts: DeviceFacts):
        self.build = build_result
        self.identity = build_result.identity
        self.spec = self.identity.spec
        self.plan = self.identity.plan
        self.device_facts = device_facts
        self._launcher = launcher
        self._dtype = TORCH_DTYPES[self.spec.dtype]
        self._fp8 = self.spec.cache_dtype == FP8_CACHE
        # the cache's element types and last dimension: packed byte rows, or d_qk values
        self._kv_dtypes = PACKED_ROW_DTYPES if self._fp8 else (self._dtype,)
        self._kv_row = self.spec.cache_bytes_per_token // self.spec.kv_heads if self._fp8 else self.spec.d_qk
        # TMA needs 16-byte page strides: 8 16-bit values or 16 bytes
        self._kv_stride_align = 16 if self._fp8 else 8
        self._args = _LaunchArgs()
        self._args_lock = threading.Lock()
        self._executors: dict[int, object] = {}
        self._workspaces: dict[tuple[int, int], Workspace] = {}

    def __repr__(self) -> str:
        return f"MLADecodeKernel({self.spec.key}, plan={self.plan.tag}, entry={self.identity.name})"

    # ------------------------------------------------------------------ sizing
    def m_blocks(self, s_q: int) -> int:
        return plan_m_blocks(self.spec, self.plan, s_q)

    def num_parts(self, s_q: int) -> int:
        """Decode CTAs per (m-block, kv head): one wave of the device."""
        if not self.plan.split_kv:
            return 1
        per_part = self.m_blocks(s_q) * self.spec.kv_heads
        return max(1, self.device_facts.sm_count * self.plan.parts_per_sm // per_part)

    def workspace(self, batch: int, s_q: int, device, num_parts: int | None = None) -> Workspace:
        """Allocate scratch memory for calls of up to ``batch`` requests of ``s_q`` tokens."""
        parts = num_parts or self.num_parts(s_q)
        rows = self.m_blocks(s_q) * self.plan.block_m
        lse_need = parts * 2 * self.spec.kv_heads * rows
        return Workspace(
            partial_out=torch.empty(lse_need * self.spec.d_v, dtype=torch.float32, device=device),
            partial_lse=torch.empty(lse_need, dtype=torch.float32, device=device),
            pieces=torch.empty(batch * 4, dtype=torch.int32, device=device),
        )

    def _cached_workspace(self, key, batch: int, s_q: int, device, parts: int) -> Workspace:
        # Calls on one stream run one after the other, so they can share scratch memory;
        # it grows to the largest call seen (batch rounded up to a power of two).
        ws = self._workspaces.get(key)
        rows = self.m_blocks(s_q) * self.plan.block_m
        if ws is None or not ws.fits(batch, rows, parts, self.spec.kv_heads, self.spec.d_v):
            cap = 1 << max(0, batch - 1).bit_length()
            if ws is not None:
                cap = max(cap, ws.pieces.numel() // 4)
            ws = self.workspace(cap, max(s_q, self.spec.max_q), device, max(parts, self.num_parts(1)))
            self._workspaces[key] = ws
        return ws

    # ------------------------------------------------------------------ checks
    def _inputs_ok(self, q, kv_cache, block_table, cache_seqlens, out, lse) -> bool:
        """The common case of :meth:`check_inputs` in few attribute reads (a few microseconds).

        False means "not sure": the detailed checks then run and raise with a message.
        """
        spec = self.spec
        try:
            qs, ks, bs = q.shape, kv_cache.shape, block_table.shape
            batch, s_q = qs[0], qs[1]
            ok = (
                q.is_cuda and q.dtype is self._dtype and kv_cache.dtype in self._kv_dtypes
                and block_table.dtype is torch.int32 and cache_seqlens.dtype is torch.int32
                and len(qs) == 4 and qs[2] == spec.q_heads and qs[3] == spec.d_qk and 1 <= s_q <= spec.max_q
                and len(ks) == 4 and ks[1] == spec.page and ks[2] == spec.kv_heads and ks[3] == self._kv_row
                and len(bs) == 2 and bs[0] == batch and bs[1] >= 1 and cache_seqlens.shape == (batch,)
                and q.is_contiguous() and cache_seqlens.is_contiguous() and block_table.stride(1) == 1
                and q.get_device() == kv_cache.get_device() == block_table.get_device() == cache_seqlens.get_device()
                and out is None and lse is None
            )
            if not ok:
                return False
            kst = kv_cache.stride()
            kv_row = self._kv_row
            row = spec.kv_heads * kv_row
            return (
                kst[3] == 1 and kst[2] == kv_row and kst[1] == row
                and (ks[0] == 1 or (kst[0] >= spec.page * row and kst[0] % self._kv_stride_align == 0))
                and 1 <= ks[0] <= _INT32_MAX
                and block_table.stride(0) * batch <= _INT32_MAX
                and batch * s_q * spec.q_heads * max(spec.d_qk, spec.d_v) <= _INT32_MAX
                and (q.data_ptr() | kv_cache.data_ptr() | block_table.data_ptr() | cache_seqlens.data_ptr()) % _ALIGN == 0
            )
        except (AttributeError, TypeError, IndexError):
            return False

    def check_inputs(self, q, kv_cache, block_table, cache_seqlens, out=None, lse=None) -> None:
        """Device, dtype, shape, stride and alignment checks; never synchronises."""
        spec = self.spec
        tensors = {"q": q, "kv_cache": kv_cache, "block_table": block_table, "cache_seqlens": cache_seqlens}
        for name, t in tensors.items():
            if not isinstance(t, torch.Tensor):
                raise MLAInputError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
            if t.device.type != "cuda":
                raise MLAInputError(f"{name}: must be on a CUDA device, got {t.device}")
        dev = q.device
        for name, t in tensors.items():
            if t.device != dev:
                raise MLAInputError(f"{name} is on {t.device} but q is on {dev}")
        if q.dtype != self._dtype:
            raise MLAInputError(f"q: dtype {q.dtype}; this kernel ({spec.key}) takes {self._dtype}")
        if kv_cache.dtype not in self._kv_dtypes:
            if self._fp8:
                raise MLAInputError(
                    f"kv_cache: dtype {kv_cache.dtype}; this kernel ({spec.key}) reads packed fp8_e4m3 rows "
                    "(uint8 or float8_e4m3fn, from mlagen.quantize_cache)"
                )
            raise MLAInputError(f"kv_cache: dtype {kv_cache.dtype}; this kernel takes {self._dtype}")
        if q.dim() != 4 or q.shape[2] != spec.q_heads or q.shape[3] != spec.d_qk:
            raise MLAInputError(f"q: shape {tuple(q.shape)}, expected (batch, s_q, {spec.q_heads}, {spec.d_qk})")
        batch, s_q = q.shape[0], q.shape[1]
        if not 1 <= s_q <= spec.max_q:
            raise MLAInputError(f"q: s_q = {s_q}; this kernel takes 1..{spec.max_q} query tokens per request")
        if not q.is_contiguous():
            raise MLAInputError("q: must be contiguous")
        kv_row = self._kv_row
        if kv_cache.dim() != 4 or tuple(kv_cache.shape[1:]) != (spec.page, spec.kv_heads, kv_row):
            what = " (packed fp8 rows)" if self._fp8 else ""
            raise MLAInputError(
                f"kv_cache: shape {tuple(kv_cache.shape)}, expected (num_pages, {spec.page}, {spec.kv_heads}, {kv_row}){what}"
            )
        row = spec.kv_heads * kv_row
        if kv_cache.stride()[1:] != (row, kv_row, 1):
            raise MLAInputError(
                f"kv_cache: strides {kv_cache.stride()}; each page must be contiguous (strides (*, {row}, {kv_row}, 1))"
            )
        num_pages, page_stride = kv_cache.shape[0], kv_cache.stride(0)
        if not 1 <= num_pages <= _INT32_MAX:
            raise MLAInputError(f"kv_cache: {num_pages} pages; need 1..{_INT32_MAX}")
        align = self._kv_stride_align
        if num_pages > 1 and (page_stride < spec.page * row or page_stride % align):
            raise MLAInputError(
                f"kv_cache: page stride {page_stride} must be >= {spec.page * row} and a multiple of {align} (16 bytes)"
            )
        if block_table.dtype != torch.int32 or block_table.dim() != 2 or block_table.shape[0] != batch:
            raise MLAInputError(
                f"block_table: {block_table.dtype} {tuple(block_table.shape)}, expected int32 ({batch}, max_pages)"
            )
        if block_table.shape[1] < 1 or block_table.stride(1) != 1:
            raise MLAInputError("block_table: needs at least one column and unit stride along pages")
        if block_table.stride(0) * batch > _INT32_MAX:
            raise MLAInputError("block_table: too large for 32-bit indexing")
        if cache_seqlens.dtype != torch.int32 or tuple(cache_seqlens.shape) != (batch,):
            raise MLAInputError(
                f"cache_seqlens: {cache_seqlens.dtype} {tuple(cache_seqlens.shape)}, expected int32 ({batch},)"
            )
        if not cache_seqlens.is_contiguous():
            raise MLAInputError("cache_seqlens: must be contiguous")
        if q.numel() > _INT32_MAX or batch * s_q * spec.q_heads * spec.d_v > _INT32_MAX:
            raise MLAInputError("q/out: too many elements for 32-bit indexing; split the batch")
        for name, t in tensors.items():
            if t.data_ptr() % _ALIGN:
                raise MLAInputError(f"{name}: data must be {_ALIGN}-byte aligned")
        if out is not None:
            want = (batch, s_q, spec.q_heads, spec.d_v)
            if out.dtype != self._dtype or tuple(out.shape) != want or not out.is_contiguous() or out.device != dev:
                raise MLAInputError(f"out: expected a contiguous {self._dtype} tensor of shape {want} on {dev}")
            if out.data_ptr() % _ALIGN:
                raise MLAInputError(f"out: data must be {_ALIGN}-byte aligned")
        if lse is not None:
            if not spec.lse:
                raise MLAInputError(f"lse: this kernel ({spec.key}) returns no LSE")
            want = (batch, spec.q_heads, s_q)
            if lse.dtype != torch.float32 or tuple(lse.shape) != want or not lse.is_contiguous() or lse.device != dev:
                raise MLAInputError(f"lse: expected a contiguous float32 tensor of shape {want} on {dev}")

    def check_contents(self, kv_cache, block_table, cache_seqlens) -> None:
        """Lengths within the block table and used block-table entries in range (one synchronisation)."""
        page, num_pages, width = self.spec.page, kv_cache.shape[0], block_table.shape[1]
        lens = cache_seqlens.to(torch.int64)
        used_pages = (lens + page - 1) // page
        cols = torch.arange(width, device=block_table.device)
        used = cols[None, :] < used_pages[:, None]
        bad_entry = used & ((block_table < 0) | (block_table >= num_pages))
        negative, too_long = lens < 0, used_pages > width
        flags = torch.stack([negative.any(), too_long.any(), bad_entry.any()]).tolist()
        if flags[0]:
            i = int(negative.nonzero()[0, 0])
            raise MLAInputError(f"cache_seqlens[{i}] = {int(lens[i])} is negative")
        if flags[1]:
            i = int(too_long.nonzero()[0, 0])
            raise MLAInputError(
                f"cache_seqlens[{i}] = {int(lens[i])} needs {int(used_pages[i])} pages but block_table has {width} columns"
            )
        if flags[2]:
            i, j = (int(x) for x in bad_entry.nonzero()[0])
            raise MLAInputError(
                f"block_table[{i}, {j}] = {int(block_table[i, j])} is out of range: the cache has {num_pages} pages"
            )

    # ------------------------------------------------------------------ call
    def __call__(self, q, kv_cache, block_table, cache_seqlens, *, out=None, lse=None,
                 workspace: Workspace | None = None, num_parts: int | None = None, validate: bool = True):
        if not self._inputs_ok(q, kv_cache, block_table, cache_seqlens, out, lse):
            self.check_inputs(q, kv_cache, block_table, cache_seqlens, out, lse)
        if validate and not torch.cuda.is_current_stream_capturing():
            self.check_contents(kv_cache, block_table, cache_seqlens)
        spec = self.spec
        batch, s_q = q.shape[0], q.shape[1]
        if out is None:
            out = torch.empty((batch, s_q, spec.q_heads, spec.d_v), dtype=self._dtype, device=q.device)
        if spec.lse and lse is None:
            lse = torch.empty((batch, spec.q_heads, s_q), dtype=torch.float32, device=q.device)
        if batch == 0:
            return (out, lse) if spec.lse else out
        parts = num_parts or self.num_parts(s_q)
        device = q.device.index if q.device.index is not None else torch.cuda.current_device()
        stream = _current_raw_stream(device)
        if workspace is None:
            ws = self._cached_workspace((device, stream), batch, s_q, q.device, parts)
        else:
            ws = workspace
            if not ws.fits(batch, self.m_blocks(s_q) * self.plan.block_m, parts, spec.kv_heads, spec.d_v):
                raise MLAInputError("workspace: too small for this batch, s_q and part count")
        # kernels of specs without LSE never write it; any float32 buffer fills the slot
        lse_arg = lse if lse is not None else ws.partial_lse
        ptrs = (q.data_ptr(), kv_cache.data_ptr(), block_table.data_ptr(), cache_seqlens.data_ptr(),
                out.data_ptr(), lse_arg.data_ptr(), ws.partial_out.data_ptr(), ws.partial_lse.data_ptr(),
                ws.pieces.data_ptr())
        executor = self._executors.get(device)
        if executor is None:
            with torch.cuda.device(device):
                executor = self._executors[device] = self._launcher.to(device)
        with self._args_lock:
            exe_args = self._args.set(ptrs, batch, s_q, kv_cache.shape[0], kv_cache.stride(0),
                                      block_table.stride(0), parts, stream)
            executor.run_compiled_program(exe_args)
        return (out, lse) if spec.lse else out
