"""Roofline figures for one decode step.

For ``batch`` requests of mean cached length ``L`` with ``s_q`` query tokens
each (every query token counted against all ``L`` keys):

- FLOPs = ``2 * batch * q_heads * s_q * L * (d_qk + d_v)`` (Q·K and P·V);
- bytes = ``batch * (s_q * q_heads * d_qk * 2 + L * cache_bytes_per_token +
  s_q * q_heads * d_v * 2)`` (read q, read the cache once, write out);
- the time floor on a GPU is the larger of bytes / bandwidth and FLOPs / peak,
  and the regime says which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlagen.spec import MLASpec

__all__ = ["GPU", "GPUS", "H100", "H200", "DecodeCost", "Roofline", "decode_cost"]

_IO_BYTES = {"bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class GPU:
    """A GPU for the roofline: memory bandwidth (bytes/s) and dense bf16 peak (FLOP/s)."""

    name: str
    bandwidth: float
    flops: float

    @property
    def ridge(self) -> float:
        """Arithmetic intensity (FLOP/byte) above which a kernel is compute-bound."""
        return self.flops / self.bandwidth


H100 = GPU("H100 SXM", bandwidth=3.35e12, flops=989e12)
H200 = GPU("H200 SXM", bandwidth=4.8e12, flops=989e12)
GPUS = (H100, H200)


@dataclass(frozen=True)
class Roofline:
    """Where one decode step sits on one GPU's roofline."""

    gpu: GPU
    memory_s: float
    compute_s: float

    @property
    def time_s(self) -> float:
        """The time floor: no kernel can be faster."""
        return max(self.memory_s, self.compute_s)

    @property
    def regime(self) -> str:
        return "memory-bound" if self.memory_s >= self.compute_s else "compute-bound"


@dataclass(frozen=True)
class DecodeCost:
    """FLOPs and bytes of one decode step."""

    spec: MLASpec
    batch: int
    seqlen: float
    s_q: int
    flops: float
    bytes: float

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved."""
        return self.flops / self.bytes

    def on(self, gpu: GPU) -> Roofline:
        return Roofline(gpu=gpu, memory_s=self.bytes / gpu.bandwidth, compute_s=self.flops / gpu.flops)


def decode_cost(spec: MLASpec, batch: int, seqlen: float, s_q: int = 1) -> DecodeCost:
    """The cost of one decode step of ``batch`` requests with mean cached length
    ``seqlen`` and ``s_q`` query tokens each."""
    if batch < 1 or seqlen < 0 or s_q < 1:
        raise ValueError(f"decode_cost: need batch >= 1, seqlen >= 0, s_q >= 1 (got {batch}, {seqlen}, {s_q})")
    h = spec.q_heads
    io = _IO_BYTES[spec.dtype]
    flops = 2.0 * batch * h * s_q * seqlen * (spec.d_qk + spec.d_v)
    nbytes = batch * (s_q * h * spec.d_qk * io + seqlen * spec.cache_bytes_per_token + s_q * h * spec.d_v * io)
    return DecodeCost(spec=spec, batch=batch, seqlen=seqlen, s_q=s_q, flops=flops, bytes=float(nbytes))
