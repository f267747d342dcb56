"""The runtime call: validate torch tensors, allocate outputs and workspace, launch.

``MLADecodeKernel.__call__`` issues the scheduler, decode and combine kernels
on the current CUDA stream without a host synchronisation, so it can be
captured in a CUDA graph. The only synchronising step is the optional check
of tensor *contents* (lengths within the block table, used block-table
entries in range), done when ``validate=True`` and the stream is not capturing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlagen.device import DeviceFacts

__all__ = ["MLADecodeKernel", "MLAInputError", "Workspace"]

_TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_ALIGN = 16
_INT32_MAX = 2**31 - 1


class MLAInputError(ValueError):
    """Tensors that do not match the kernel's spec; raised before any launch."""


@dataclass
class Workspace:
    """Scratch memory of one call: split-KV partials and the schedule."""

    partial_out: torch.Tensor    # (parts, 2, kv_heads, m_blocks*64, d_v) float32
    partial_lse: torch.Tensor    # (parts, 2, kv_heads, m_blocks*64) float32
    cum_tiles: torch.Tensor      # (batch + 1,) int32
    schedule: torch.Tensor       # (parts, 4) int32


def _dsl():
    import cuda.bindings.driver as cuda_driver
    import cutlass
    import cutlass.cute as cute
    from cutlass.cute.runtime import make_ptr

    return cuda_driver, cutlass, cute.AddressSpace.gmem, make_ptr


class MLADecodeKernel:
    """A compiled MLA decode kernel for one spec; call it with torch CUDA tensors.

    ``out, lse = kernel(q, kv_cache, block_table, cache_seqlens)`` with

    - ``q``: (batch, s_q, q_heads, d_qk), the spec's dtype, contiguous, 1 <= s_q <= max_q
    - ``kv_cache``: (num_pages, page, kv_heads, d_qk); each page contiguous, the
      page stride may be larger (a view into a bigger pool)
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
        self._dtype = _TORCH_DTYPES[self.spec.dtype]

    def __repr__(self) -> str:
        return f"MLADecodeKernel({self.spec.key}, plan={self.plan.tag}, entry={self.identity.name})"

    # ------------------------------------------------------------------ sizing
    def m_blocks(self, s_q: int) -> int:
        return -(-s_q * self.spec.heads_per_kv // self.plan.block_m)

    def num_parts(self, s_q: int) -> int:
        """Decode CTAs per (m-block, kv head): one wave of the device."""
        if not self.plan.split_kv:
            return 1
        per_part = self.m_blocks(s_q) * self.spec.kv_heads
        return max(1, self.device_facts.sm_count * self.plan.parts_per_sm // per_part)

    def workspace(self, batch: int, s_q: int, device, num_parts: int | None = None) -> Workspace:
        """Allocate the scratch memory of a call (reusable for calls of the same sizes)."""
        parts = num_parts or self.num_parts(s_q)
        rows = self.m_blocks(s_q) * self.plan.block_m
        kvh = self.spec.kv_heads
        return Workspace(
            partial_out=torch.empty((parts, 2, kvh, rows, self.spec.d_v), dtype=torch.float32, device=device),
            partial_lse=torch.empty((parts, 2, kvh, rows), dtype=torch.float32, device=device),
            cum_tiles=torch.empty((batch + 1,), dtype=torch.int32, device=device),
            schedule=torch.empty((parts, 4), dtype=torch.int32, device=device),
        )

    # ------------------------------------------------------------------ checks
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
        if kv_cache.dtype != self._dtype:
            raise MLAInputError(f"kv_cache: dtype {kv_cache.dtype}; this kernel takes {self._dtype}")
        if q.dim() != 4 or q.shape[2] != spec.q_heads or q.shape[3] != spec.d_qk:
            raise MLAInputError(f"q: shape {tuple(q.shape)}, expected (batch, s_q, {spec.q_heads}, {spec.d_qk})")
        batch, s_q = q.shape[0], q.shape[1]
        if not 1 <= s_q <= spec.max_q:
            raise MLAInputError(f"q: s_q = {s_q}; this kernel takes 1..{spec.max_q} query tokens per request")
        if not q.is_contiguous():
            raise MLAInputError("q: must be contiguous")
        if kv_cache.dim() != 4 or tuple(kv_cache.shape[1:]) != (spec.page, spec.kv_heads, spec.d_qk):
            raise MLAInputError(
                f"kv_cache: shape {tuple(kv_cache.shape)}, expected (num_pages, {spec.page}, {spec.kv_heads}, {spec.d_qk})"
            )
        row = spec.kv_heads * spec.d_qk
        if kv_cache.stride()[1:] != (row, spec.d_qk, 1):
            raise MLAInputError(
                f"kv_cache: strides {kv_cache.stride()}; each page must be contiguous (strides (*, {row}, {spec.d_qk}, 1))"
            )
        num_pages, page_stride = kv_cache.shape[0], kv_cache.stride(0)
        if not 1 <= num_pages <= _INT32_MAX:
            raise MLAInputError(f"kv_cache: {num_pages} pages; need 1..{_INT32_MAX}")
        if num_pages > 1 and (page_stride < spec.page * row or page_stride % 8):
            raise MLAInputError(f"kv_cache: page stride {page_stride} must be >= {spec.page * row} and a multiple of 8")
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
        ws = workspace or self.workspace(batch, s_q, q.device, parts)
        rows = self.m_blocks(s_q) * self.plan.block_m
        if ws.schedule.shape[0] != parts or ws.cum_tiles.shape[0] < batch + 1 or ws.partial_lse.shape[-1] != rows:
            raise MLAInputError("workspace: allocated for another batch, s_q or part count")
        cuda_driver, cutlass, gmem, make_ptr = _dsl()
        elem = cutlass.BFloat16 if spec.dtype == "bf16" else cutlass.Float16

        def ptr(t, dtype):
            return make_ptr(dtype, t.data_ptr(), gmem, assumed_align=_ALIGN)

        # kernels of specs without LSE never write it; any float32 buffer fills the slot
        lse_arg = lse if lse is not None else ws.partial_lse
        with torch.cuda.device(q.device):
            stream = torch.cuda.current_stream(q.device)
            self._launcher(
                ptr(q, elem), ptr(kv_cache, elem), ptr(block_table, cutlass.Int32),
                ptr(cache_seqlens, cutlass.Int32), ptr(out, elem), ptr(lse_arg, cutlass.Float32),
                ptr(ws.partial_out, cutlass.Float32), ptr(ws.partial_lse, cutlass.Float32),
                ptr(ws.cum_tiles, cutlass.Int32), ptr(ws.schedule, cutlass.Int32),
                cutlass.Int32(batch), cutlass.Int32(s_q), cutlass.Int32(kv_cache.shape[0]),
                cutlass.Int64(kv_cache.stride(0)), cutlass.Int32(block_table.stride(0)),
                cutlass.Int32(parts), cuda_driver.CUstream(stream.cuda_stream),
            )
        return (out, lse) if spec.lse else out
