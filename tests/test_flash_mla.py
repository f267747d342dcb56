"""FlashMLA's interface (``mlagen.flash_mla``) without a GPU: the spec a call resolves to, the errors
raised before anything is compiled or launched, and how the metadata object pins a variant.

Running it on the GPU against the kernel and the float32 reference: tests/gpu/test_embed_gpu.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mlagen.flash_mla as fm
from mlagen.flash_mla import FlashMLASchedMeta, flash_mla_spec, flash_mla_with_kvcache, get_mla_metadata
from mlagen.reference import mla_decode_reference
from mlagen.runtime import MLAInputError
from mlagen.spec import MLASpec, load_spec
from mlagen.testing import make_problem

SPECS = Path(__file__).resolve().parents[1] / "specs"
DS_SCALE = load_spec(SPECS / "deepseek_v3.py").scale


def tensors(batch=2, s_q=1, h_q=128, d_qk=576, page=64, h_kv=1, row=None, dtype=torch.bfloat16,
            cache_dtype=None, device="meta"):
    q = torch.empty(batch, s_q, h_q, d_qk, dtype=dtype, device=device)
    k_cache = torch.empty(10, page, h_kv, row or d_qk, dtype=cache_dtype or dtype, device=device)
    return q, k_cache


# ------------------------------------------------------------------ the spec of a call
@pytest.mark.parametrize("spec_file, call", [
    ("deepseek_v3.py", dict(softmax_scale=DS_SCALE)),
    ("deepseek_v3_mtp.py", dict(s_q=2, causal=True, softmax_scale=DS_SCALE)),
    ("deepseek_v3_fp8.py", dict(row=656, cache_dtype=torch.uint8, is_fp8_kvcache=True, softmax_scale=DS_SCALE)),
    ("deepseek_v3_fp16.py", dict(dtype=torch.float16, softmax_scale=DS_SCALE)),
    ("deepseek_v3_page16.py", dict(page=16, softmax_scale=DS_SCALE)),
    ("deepseek_v3_tp8.py", dict(h_q=16, softmax_scale=DS_SCALE)),
    ("minicpm3.py", dict(h_q=40, d_qk=288, head_dim_v=256)),
])
def test_a_call_resolves_to_the_spec_files_spec(spec_file, call):
    """A FlashMLA call with a model's shapes and scale is that model's spec file, so `mlagen build` on the
    file prebuilds the kernel the call loads."""
    want = load_spec(SPECS / spec_file)
    head_dim_v = call.pop("head_dim_v", 512)
    scale = want.scale if spec_file == "minicpm3.py" else call.pop("softmax_scale")
    flags = {k: call.pop(k) for k in ("causal", "is_fp8_kvcache") if k in call}
    q, k_cache = tensors(**call)
    assert flash_mla_spec(q, k_cache, head_dim_v, softmax_scale=scale, **flags) == want


def test_default_scale_and_fp8_bytes_are_flashmla_s():
    q, k_cache = tensors(h_q=16, row=656, cache_dtype=torch.float8_e4m3fn)
    spec = flash_mla_spec(q, k_cache, 512, is_fp8_kvcache=True)
    assert spec.is_default_scale and spec.scale == 576 ** -0.5  # FlashMLA: q.shape[-1] ** -0.5
    assert spec.cache_dtype == "fp8_e4m3" and spec.cache_bytes_per_token == 656
    assert spec.lse and spec.rope_at == "tail" and spec.kv_heads == 1


def test_variants_flashmla_does_not_run():
    q, k_cache = tensors(s_q=3, h_q=18, d_qk=288, page=8, h_kv=2, dtype=torch.float16)
    spec = flash_mla_spec(q, k_cache, 256, softmax_scale=0.25, causal=True)
    assert spec == MLASpec(q_heads=18, latent=256, rope=32, kv_heads=2, dtype="fp16", page=8, max_q=3,
                           causal=True, scale=0.25)
    q, k_cache = tensors(h_q=8, d_qk=512)  # no RoPE part
    assert flash_mla_spec(q, k_cache, 512).rope == 0


# ------------------------------------------------------------------ errors, before anything is compiled
def _never_compiled(spec, device):
    raise AssertionError(f"compiled {spec.key} although the call was invalid")


@pytest.mark.parametrize("change, message", [
    (dict(q=torch.empty(2, 128, 576, dtype=torch.bfloat16)), "q must be 4-D, got shape (2, 128, 576)"),
    (dict(q=torch.empty(2, 1, 128, 576)), "q is torch.float32; the kernels take torch.bfloat16 or torch.float16"),
    (dict(head_dim_v=640), "head_dim_v = 640 exceeds q's head dimension 576"),
    (dict(head_dim_v=512.0), "head_dim_v = 512.0: must be a positive int"),
    (dict(is_fp8_kvcache=True), "is_fp8_kvcache=True needs k_cache as packed byte rows"),
    (dict(k_cache=torch.empty(10, 64, 1, 656, dtype=torch.uint8)), "k_cache is torch.uint8: pass is_fp8_kvcache=True"),
    (dict(k_cache=torch.empty(10, 48, 1, 576, dtype=torch.bfloat16)),
     "k_cache page 48 and 1 KV heads): MLASpec.page = 48: must be a power of two in 1..256"),
    (dict(k_cache=torch.empty(10, 64, 3, 576, dtype=torch.bfloat16)), "MLASpec.kv_heads = 3: must divide q_heads"),
    (dict(k_cache=torch.empty(10, 64, 1, 512, dtype=torch.bfloat16)),
     "k_cache is (10, 64, 1, 512) torch.bfloat16; with q (2, 1, 128, 576) torch.bfloat16 it must hold rows of 576"),
    (dict(k_cache=torch.empty(10, 64, 1, 576, dtype=torch.float16)), "it must hold rows of 576 values in torch.bfloat16"),
    (dict(k_cache=torch.empty(10, 64, 1, 576, dtype=torch.uint8), is_fp8_kvcache=True),
     "k_cache rows of 576 bytes; FlashMLA's fp8 rows for latent 512 + RoPE 64 are 656 bytes"),
    (dict(softmax_scale="0.1"), "softmax_scale = '0.1': must be a float or None"),
    (dict(causal=1), "causal and is_fp8_kvcache must be bools"),
    (dict(num_splits=torch.zeros(3, dtype=torch.int32)), "num_splits must be None"),
    (dict(tile_scheduler_metadata=torch.zeros(3)), "tile_scheduler_metadata must be the first element"),
    (dict(indices=torch.zeros(2, 1, 8, dtype=torch.int32), attn_sink=torch.zeros(128)),
     "indices, attn_sink: FlashMLA's sparse attention is not generated by mlagen"),
    (dict(block_table=None), "dense decode needs block_table and cache_seqlens"),
    (dict(), "q is on cpu; the kernels run on CUDA (Hopper) devices only"),
])
def test_bad_calls_raise_before_compiling(monkeypatch, change, message):
    monkeypatch.setattr(fm, "_compile", _never_compiled)
    q, k_cache = tensors(device="cpu")
    args = dict(q=q, k_cache=k_cache, block_table=torch.zeros(2, 4, dtype=torch.int32),
                cache_seqlens=torch.zeros(2, dtype=torch.int32), head_dim_v=512,
                tile_scheduler_metadata=get_mla_metadata()[0])
    args.update(change)
    with pytest.raises(MLAInputError) as err:
        flash_mla_with_kvcache(**args)
    assert str(err.value).startswith("flash_mla_with_kvcache: ") and message in str(err.value)
    meta = args["tile_scheduler_metadata"]
    if isinstance(meta, FlashMLASchedMeta):
        assert not meta.have_initialized


def test_get_mla_metadata_takes_the_old_arguments_and_gives_fresh_objects():
    lens = torch.tensor([5, 9], dtype=torch.int32)
    meta, none = get_mla_metadata(lens, 128, 1)
    other, _ = get_mla_metadata()
    assert none is None and isinstance(meta, FlashMLASchedMeta) and meta is not other
    assert not meta.have_initialized and meta.spec is None and meta.kernel is None


# ------------------------------------------------------------------ the metadata pins the first call's variant
class ReferenceKernel:
    """Stands in for the compiled kernel (same call signature); computes the float32 reference on the CPU."""

    def __init__(self, spec):
        self.spec, self.calls = spec, []

    def __call__(self, q, kv_cache, block_table, cache_seqlens, *, validate=True):
        self.calls.append((q.is_contiguous(), validate))
        out, lse = mla_decode_reference(q, kv_cache, block_table, cache_seqlens, self.spec)
        return out.to(q.dtype), lse


def test_the_metadata_keeps_its_kernel_and_rejects_another_variant(monkeypatch):
    compiled = []

    def fake_compile(spec, device):
        compiled.append(spec)
        return ReferenceKernel(spec)

    monkeypatch.setattr(fm, "_compile", fake_compile)
    monkeypatch.setattr(fm, "_require_cuda", lambda q: None)  # the rest of the path is what runs on a GPU
    spec = MLASpec(q_heads=4, latent=64, rope=16, page=16, max_q=2, causal=True)
    p = make_problem(spec, batch=3, seqlens=[0, 17, 40], s_q=2, seed=1)
    meta, _ = get_mla_metadata()
    out, lse = flash_mla_with_kvcache(p.q, p.kv_cache, p.block_table, p.cache_seqlens, 64, meta, None,
                                      causal=True, validate=False)
    assert compiled == [spec] and meta.spec == spec and meta.have_initialized
    ref_out, ref_lse = p.reference()
    assert torch.equal(out, ref_out.to(out.dtype)) and torch.equal(lse, ref_lse)
    # a later call with another batch and other lengths reuses the kernel; a strided q is copied first
    p2 = make_problem(spec, batch=5, seqlens=[3, 0, 64, 9, 33], s_q=2, seed=2)
    strided_q = torch.cat([p2.q, p2.q], dim=-1)[..., :spec.d_qk]
    flash_mla_with_kvcache(strided_q, p2.kv_cache, p2.block_table, p2.cache_seqlens, 64, meta, None, causal=True)
    assert len(compiled) == 1 and meta.kernel.calls == [(True, False), (True, True)]
    # another variant on the same metadata: named, nothing run
    with pytest.raises(MLAInputError, match=r"differs from the one tile_scheduler_metadata was first used with: "
                                            r"s_q 1 \(was 2\); causal False \(was True\); use one get_mla_metadata"):
        flash_mla_with_kvcache(p2.q[:, :1].contiguous(), p2.kv_cache, p2.block_table, p2.cache_seqlens, 64, meta)
    assert len(compiled) == 1 and len(meta.kernel.calls) == 2
