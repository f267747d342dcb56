"""torch integration: the ``mlagen::mla_decode`` custom op.

::

    key = mlagen.ops.register(spec)                  # once; cheap (no compile)
    out, lse = torch.ops.mlagen.mla_decode(q, kv_cache, block_table, cache_seqlens, key)

``torch.ops.mlagen.mla_decode(Tensor q, Tensor kv_cache, Tensor block_table,
Tensor cache_seqlens, str spec_key) -> (Tensor out, Tensor lse)`` runs the
generated kernel of the registered spec (tensor conventions of
:class:`mlagen.runtime.MLADecodeKernel`). The kernel is compiled (or loaded from
the cache) by :func:`mlagen.compile` on the op's first real call for a spec and
device, so make one eager call before capturing a CUDA graph.

- The real implementation calls the kernel with ``validate=False``: shapes,
  dtypes, strides and alignment are still checked on the host (raising
  :class:`mlagen.runtime.MLAInputError`), but the contents of ``cache_seqlens``
  and ``block_table`` are not, so the op never synchronises and can be captured
  in a CUDA graph.
- The fake (meta) implementation returns empty tensors of the right shapes and
  dtypes, so ``torch.compile`` traces the op without running it.
- **LSE**: the op always returns two tensors. For a spec with ``lse=True``,
  ``lse`` is ``(batch, q_heads, s_q)`` float32 (natural log, ``-inf`` for rows
  without keys). For a spec with ``lse=False`` the kernel computes no LSE and
  ``lse`` is an empty ``(0,)`` float32 tensor on q's device.
- Outputs are new tensors (never aliases of the inputs); the op has no autograd
  formula (decode is inference only).

The spec key is :attr:`MLASpec.key`; a key that was not registered raises
:class:`UnknownSpecKeyError`, in eager calls and while tracing.
"""

import threading

import torch

from mlagen.spec import MLASpec

__all__ = ["UnknownSpecKeyError", "mla_decode", "register", "registered", "spec_for"]

_registry: dict[str, MLASpec] = {}
_kernels: dict[tuple[str, int], object] = {}
_lock = threading.Lock()
_compile_lock = threading.Lock()


class UnknownSpecKeyError(LookupError):
    """A spec key that :func:`register` has not seen."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


def register(spec: MLASpec) -> str:
    """Make ``spec`` callable through ``torch.ops.mlagen.mla_decode``; returns its key.

    Checks that the generator supports the spec (raising
    :class:`mlagen.plan.UnsupportedSpecError` otherwise) but compiles nothing.
    Registering the same spec again returns the same key.
    """
    if not isinstance(spec, MLASpec):
        raise TypeError(f"register: expected an MLASpec, got {type(spec).__name__}")
    from mlagen.plan import plan_for

    plan_for(spec)  # raises for specs the generator does not produce
    with _lock:
        _registry[spec.key] = spec
    return spec.key


def registered() -> dict[str, MLASpec]:
    """A copy of the registry: spec key -> spec."""
    with _lock:
        return dict(_registry)


def spec_for(key: str) -> MLASpec:
    """The registered spec of ``key``; :class:`UnknownSpecKeyError` if there is none."""
    with _lock:
        spec = _registry.get(key)
        known = sorted(_registry)
    if spec is None:
        shown = ", ".join(known[:5]) + (", ..." if len(known) > 5 else "") if known else "none"
        raise UnknownSpecKeyError(
            f"mlagen::mla_decode: spec key {key!r} is not registered; call mlagen.ops.register(spec) "
            f"first (registered: {shown})"
        )
    return spec


def _kernel(spec: MLASpec, device: torch.device):
    index = device.index if device.index is not None else torch.cuda.current_device()
    memo = (spec.key, index)
    kernel = _kernels.get(memo)
    if kernel is None:
        import mlagen.jit

        with _compile_lock:
            kernel = _kernels.get(memo)
            if kernel is None:
                kernel = mlagen.jit.compile(spec, device=torch.device("cuda", index))
                prepare = getattr(kernel, "prepare", None)
                if prepare is not None:
                    # a kernel that picks one of several per call (by s_q, or tuned shape buckets): load them
                    # all now, so that a first call of another s_q inside CUDA-graph capture loads nothing
                    prepare()
                _kernels[memo] = kernel
    return kernel


@torch.library.custom_op("mlagen::mla_decode", mutates_args=())
def mla_decode(
    q: torch.Tensor,
    kv_cache: torch.Tensor,
    block_table: torch.Tensor,
    cache_seqlens: torch.Tensor,
    spec_key: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paged MLA decode with the generated kernel of the registered spec ``spec_key``."""
    spec = spec_for(spec_key)
    if q.device.type != "cuda":
        from mlagen.runtime import MLAInputError

        raise MLAInputError(f"mlagen::mla_decode: q is on {q.device}; the kernel runs on CUDA devices only")
    kernel = _kernel(spec, q.device)
    result = kernel(q, kv_cache, block_table, cache_seqlens, validate=False)
    if spec.lse:
        return result
    return result, torch.empty((0,), dtype=torch.float32, device=q.device)


@mla_decode.register_fake
def _mla_decode_fake(q, kv_cache, block_table, cache_seqlens, spec_key):
    spec = spec_for(spec_key)
    torch._check(q.dim() == 4, lambda: f"mlagen::mla_decode: q must be 4-D, got {q.dim()}-D")
    torch._check(q.shape[2] == spec.q_heads and q.shape[3] == spec.d_qk,
                 lambda: f"mlagen::mla_decode: q {tuple(q.shape)}, expected (batch, s_q, {spec.q_heads}, {spec.d_qk})")
    batch, s_q = q.shape[0], q.shape[1]
    out = q.new_empty((batch, s_q, spec.q_heads, spec.d_v))
    if spec.lse:
        lse = q.new_empty((batch, spec.q_heads, s_q), dtype=torch.float32)
    else:
        lse = q.new_empty((0,), dtype=torch.float32)
    return out, lse
