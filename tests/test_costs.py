"""The roofline cost model of one decode step."""

from __future__ import annotations

import pytest

from mlagen.costs import GPUS, H100, H200, decode_cost
from mlagen.spec import MLASpec

V3 = MLASpec(q_heads=128)


def test_deepseek_v3_decode_step():
    c = decode_cost(V3, batch=64, seqlen=4096, s_q=1)
    # Q·K over 576 and P·V over 512 per head, key and request.
    assert c.flops == 2 * 64 * 128 * 1 * 4096 * (576 + 512)
    # Read q (bf16), read the 1152-byte cache rows, write out (bf16).
    assert c.bytes == 64 * (128 * 576 * 2 + 4096 * 1152 + 128 * 512 * 2)
    assert c.intensity == pytest.approx(c.flops / c.bytes)
    assert 200 < c.intensity < 250


def test_gpu_constants():
    assert (H100.bandwidth, H100.flops) == (3.35e12, 989e12)
    assert (H200.bandwidth, H200.flops) == (4.8e12, 989e12)
    assert H100.ridge == pytest.approx(989e12 / 3.35e12)
    assert GPUS == (H100, H200)


def test_roofline_regimes():
    c = decode_cost(V3, batch=64, seqlen=4096, s_q=1)
    h100, h200 = c.on(H100), c.on(H200)
    # ~228 FLOP/B lies between H200's ridge (~206) and H100's (~295).
    assert h100.regime == "memory-bound" and h100.time_s == pytest.approx(c.bytes / 3.35e12)
    assert h200.regime == "compute-bound" and h200.time_s == pytest.approx(c.flops / 989e12)
    # Fewer heads per cached byte: memory-bound everywhere.
    small = decode_cost(V3.replace(q_heads=16), batch=64, seqlen=4096)
    assert {small.on(g).regime for g in GPUS} == {"memory-bound"}
    # Two query tokens double the work per byte: compute-bound everywhere.
    mtp = decode_cost(V3.replace(max_q=2, causal=True), batch=64, seqlen=4096, s_q=2)
    assert {mtp.on(g).regime for g in GPUS} == {"compute-bound"}


def test_fp8_cache_reads_fewer_bytes():
    bf16 = decode_cost(V3, batch=1, seqlen=10_000)
    fp8 = decode_cost(V3.replace(cache_dtype="fp8_e4m3"), batch=1, seqlen=10_000)
    assert bf16.bytes - fp8.bytes == 10_000 * (1152 - 656)
    assert fp8.flops == bf16.flops


def test_rejects_nonsense():
    with pytest.raises(ValueError):
        decode_cost(V3, batch=0, seqlen=10)
    with pytest.raises(ValueError):
        decode_cost(V3, batch=1, seqlen=-1)
