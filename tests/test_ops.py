"""The mlagen::mla_decode custom op without a GPU: registry, fake implementation, tracing.

The fake (meta) implementation is what torch.compile runs while tracing; here it is checked
on meta tensors, under FakeTensorMode with fake CUDA tensors, and through torch.compile with
the aot_eager backend and a graph-capturing backend. Running the kernel is tested in
tests/gpu/test_embed_gpu.py.
"""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import mlagen
import mlagen.ops
from mlagen.ops import UnknownSpecKeyError, register, registered, spec_for
from mlagen.plan import UnsupportedSpecError
from mlagen.runtime import MLAInputError
from mlagen.spec import MLASpec

DS = MLASpec(q_heads=128, max_q=2, causal=True)
NOLSE = MLASpec(q_heads=16, latent=256, rope=32, lse=False, page=16)


def inputs(spec: MLASpec, batch=3, s_q=1, pages=10, width=4, device="meta", dtype=torch.bfloat16):
    return (
        torch.empty(batch, s_q, spec.q_heads, spec.d_qk, dtype=dtype, device=device),
        torch.empty(pages, spec.page, spec.kv_heads, spec.d_qk, dtype=dtype, device=device),
        torch.empty(batch, width, dtype=torch.int32, device=device),
        torch.empty(batch, dtype=torch.int32, device=device),
    )


def test_register_returns_the_key_and_is_idempotent():
    key = register(DS)
    assert key == DS.key and register(DS) == key
    assert spec_for(key) is registered()[key] and spec_for(key) == DS
    assert mlagen.ops.mla_decode is not None and hasattr(torch.ops.mlagen, "mla_decode")


def test_register_rejects_what_the_generator_cannot_build():
    with pytest.raises(UnsupportedSpecError, match="fp8"):
        register(MLASpec(q_heads=16, latent=256, rope=32, cache_dtype="fp8_e4m3"))
    with pytest.raises(TypeError, match="MLASpec"):
        register(DS.key)


def test_unknown_key_is_a_clear_error():
    args = inputs(DS)
    with pytest.raises(UnknownSpecKeyError, match=r"spec key 'h3\.nope' is not registered; call mlagen.ops.register"):
        torch.ops.mlagen.mla_decode(*args, "h3.nope")
    with pytest.raises(UnknownSpecKeyError):
        spec_for("h3.nope")


@pytest.mark.parametrize("s_q", [1, 2])
def test_fake_impl_shapes_on_meta(s_q):
    key = register(DS)
    out, lse = torch.ops.mlagen.mla_decode(*inputs(DS, batch=5, s_q=s_q), key)
    assert out.shape == (5, s_q, 128, 512) and out.dtype == torch.bfloat16 and out.device.type == "meta"
    assert lse.shape == (5, 128, s_q) and lse.dtype == torch.float32


def test_spec_without_lse_returns_an_empty_lse():
    key = register(NOLSE)
    out, lse = torch.ops.mlagen.mla_decode(*inputs(NOLSE, batch=2, dtype=torch.bfloat16), key)
    assert out.shape == (2, 1, 16, 256)
    assert lse.shape == (0,) and lse.dtype == torch.float32


def test_fake_impl_checks_q_against_the_spec():
    key = register(DS)
    q, kv, bt, lens = inputs(DS)
    with pytest.raises(RuntimeError, match="expected"):
        torch.ops.mlagen.mla_decode(q[..., :64], kv, bt, lens, key)


def test_fake_tensor_mode_with_fake_cuda_tensors():
    key = register(DS)
    with FakeTensorMode():
        args = inputs(DS, batch=4, s_q=2, device="cuda")
        out, lse = torch.ops.mlagen.mla_decode(*args, key)
        assert out.device.type == "cuda" and out.shape == (4, 2, 128, 512)
        assert lse.device.type == "cuda" and lse.shape == (4, 128, 2)


def test_real_impl_refuses_cpu_tensors_before_compiling(monkeypatch):
    key = register(DS)

    def no_compile(*a, **k):
        raise AssertionError("must not compile for CPU tensors")

    monkeypatch.setattr(mlagen.ops, "_kernel", no_compile)
    with pytest.raises(MLAInputError, match="CUDA devices only"):
        torch.ops.mlagen.mla_decode(*inputs(DS, device="cpu"), key)


def _step(q, kv, bt, lens, key):
    out, lse = torch.ops.mlagen.mla_decode(q, kv, bt, lens, key)
    return out.float().sum(-1) * 2, lse.exp()


def test_torch_compile_traces_the_op_without_running_it():
    key = register(DS)
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    compiled = torch.compile(lambda *a: _step(*a, key), backend=capture, fullgraph=True)
    a, b = compiled(*inputs(DS, batch=3, s_q=2))
    assert a.shape == (3, 2, 128) and b.shape == (3, 128, 2)
    assert len(graphs) == 1
    calls = [n for n in graphs[0].graph.nodes
             if n.target in (torch.ops.mlagen.mla_decode, torch.ops.mlagen.mla_decode.default)]
    assert len(calls) == 1 and calls[0].args[-1] == key


def test_torch_compile_aot_eager_dynamic_batch():
    key = register(DS)
    compiled = torch.compile(lambda *a: _step(*a, key), backend="aot_eager", fullgraph=True, dynamic=True)
    for batch in (2, 7):
        a, b = compiled(*inputs(DS, batch=batch, s_q=1))
        assert a.shape == (batch, 1, 128) and b.shape == (batch, 128, 1)
