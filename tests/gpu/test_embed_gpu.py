"""Embedding the generated kernels, on an H100: the exported C library, the torch op, the nn layer.

- The C export of DeepSeek-V3, MiniCPM3-4B and the two fp8_e4m3-cache specs (DeepSeek-V3: 128
  heads, split schedule; DeepSeek-V2-Lite: 16 heads, heads_n schedule) is configured and built with CMake and its
  self-checking example must print PASS (several split counts, a CUDA graph replay, status codes).
- ``torch.ops.mlagen.mla_decode`` matches the kernel called directly and the float32 reference,
  also under ``torch.compile`` and inside a captured CUDA graph; ``torch.library.opcheck`` passes.
- ``mlagen.flash_mla.flash_mla_with_kvcache`` (FlashMLA's interface) gives the kernel's bits and matches the
  reference, over 16-bit and fp8 caches and a variant FlashMLA does not run.
- ``mlagen.nn.MultiHeadLatentAttention``: a tiny random-weight model decodes 32 steps with paged
  cache growth (page 16), a sequence leaving and a new one taking its pages; the kernel path
  matches the plain-PyTorch non-absorbed path at every step, over a bf16 and an fp8 cache.

No package registry is needed. With a prebuilt kernel cache and export folders nothing is
compiled here by the CuTe DSL (CMake and the CUDA toolkit still build the C example)::

    # on the build machine (no GPU needed): this file's kernels into the cache, the C exports
    # into <cache>/exports
    python tests/gpu/test_embed_gpu.py --cache .gpu-cache
    # on the GPU host
    MLAGEN_CACHE_DIR=.gpu-cache pytest -m gpu tests/gpu/test_embed_gpu.py     # or tools/gpu-suite.sh

The export folders are looked up in $MLAGEN_EXPORT_DIR, else in <kernel cache>/exports; missing
ones are exported here (needs the CuTe DSL, ~10-25 s each), missing kernels compiled on first use.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
# one per schedule and cache kind: seesaw (bf16), split (minicpm3's latent 256), fp8 split, fp8 and
# 16-bit heads_n (DeepSeek-V3 at TP8: 16 heads)
EXPORTED = ("deepseek_v3", "minicpm3", "deepseek_v3_fp8", "deepseek_v2_lite_fp8", "deepseek_v3_tp8")
# FlashMLA's interface over a 16-bit cache at FlashMLA's shape, an fp8 cache on 16-token pages with a drafted
# token, and latent 256 + RoPE 32 in fp16 (neither of the last two runs on FlashMLA's dense decode)
FLASH_MLA_CASES = ("h16_p64_bf16", "h16_p16_q2_causal_fp8", "h9_l256r32_p16_q3_causal_fp16")
TINY = dict(hidden=256, heads=16, q_lora=128, kv_lora=512, rope=64, nope=64, v_head=64, page=16)

pytestmark = pytest.mark.gpu


def embed_specs():
    """Every spec these tests compile, for prebuilding: the op's, the no-LSE op's, the tiny model's."""
    from mlagen.spec import MLASpec
    from mlagen.variants import kernel_variants

    v = kernel_variants()
    tiny = MLASpec(q_heads=TINY["heads"], latent=TINY["kv_lora"], rope=TINY["rope"], page=TINY["page"],
                   scale=(TINY["nope"] + TINY["rope"]) ** -0.5)
    return {"op": v["h16_p64_bf16"], "op_nolse": v["h1_p64_q8_causal_nolse"], "tiny_model": tiny,
            "tiny_model_fp8": tiny.replace(cache_dtype="fp8_e4m3"),
            **{f"flash_mla_{name}": v[name] for name in FLASH_MLA_CASES}}


# ------------------------------------------------------------------ C export
@pytest.fixture(scope="module")
def export_dirs(tmp_path_factory) -> dict[str, Path]:
    from mlagen.jit import cache_root

    prebuilt = os.environ.get("MLAGEN_EXPORT_DIR") or str(cache_root() / "exports")
    folders = {}
    for name in EXPORTED:
        if (Path(prebuilt) / name / "CMakeLists.txt").is_file():
            folders[name] = Path(prebuilt) / name
        else:
            from mlagen.export import export

            os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")
            folders[name] = export(SPECS / f"{name}.py", tmp_path_factory.mktemp("export") / name).out_dir
    return folders


@pytest.mark.parametrize("name", EXPORTED)
def test_exported_c_example_passes(export_dirs, tmp_path, name):
    assert shutil.which("cmake"), "cmake is needed to build the exported library"
    build = tmp_path / "build"
    for cmd in (["cmake", "-S", str(export_dirs[name]), "-B", str(build)], ["cmake", "--build", str(build), "-j", "8"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    proc = subprocess.run([str(build / f"mlagen_{name}_example")], capture_output=True, text=True, timeout=600)
    print(proc.stdout)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("PASS"), proc.stdout + proc.stderr


# ------------------------------------------------------------------ the torch op
@pytest.fixture(scope="module")
def op_problem():
    import mlagen.ops
    from mlagen.testing import make_problem

    spec = embed_specs()["op"]
    key = mlagen.ops.register(spec)
    problem = make_problem(spec, batch=9, seqlens=[0, 1, 63, 64, 65, 700, 1500, 33, 4000], s_q=1, seed=3,
                           device="cuda")
    return key, problem


def _eager(key, p):
    import torch

    return torch.ops.mlagen.mla_decode(p.q, p.kv_cache, p.block_table, p.cache_seqlens, key)


def test_op_matches_kernel_and_reference(op_problem):
    import torch

    import mlagen.jit
    from mlagen.testing import assert_close_mla

    key, p = op_problem
    out, lse = _eager(key, p)
    direct_out, direct_lse = mlagen.jit.compile(p.spec)(p.q, p.kv_cache, p.block_table, p.cache_seqlens)
    assert torch.equal(out, direct_out) and torch.equal(lse, direct_lse)
    ref_out, ref_lse = p.reference(torch.float32)
    assert_close_mla(out, lse, ref_out, ref_lse, context=p.describe())


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_op_under_torch_compile_matches_eager(op_problem, backend):
    import torch

    key, p = op_problem

    def step(q, kv, bt, lens):
        out, lse = torch.ops.mlagen.mla_decode(q * 2, kv, bt, lens, key)
        return out.float() * 0.5, lse - 1.0

    torch._dynamo.reset()
    compiled = torch.compile(step, backend=backend, fullgraph=True)
    got = compiled(p.q, p.kv_cache, p.block_table, p.cache_seqlens)
    want = step(p.q, p.kv_cache, p.block_table, p.cache_seqlens)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_op_inside_cuda_graph_matches_eager(op_problem):
    import torch

    from mlagen.testing import make_problem

    key, p = op_problem
    q = p.q.clone()
    _eager(key, p)  # compiled and loaded before capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, lse = torch.ops.mlagen.mla_decode(q, p.kv_cache, p.block_table, p.cache_seqlens, key)
    graph.replay()
    torch.cuda.synchronize()
    want_out, want_lse = _eager(key, p)
    assert torch.equal(out, want_out) and torch.equal(lse, want_lse)
    # new query values in the captured buffer: the replay follows them
    other = make_problem(p.spec, batch=p.batch, seqlens=p.seqlens, s_q=1, seed=11, device="cuda")
    q.copy_(other.q)
    graph.replay()
    torch.cuda.synchronize()
    want_out, want_lse = torch.ops.mlagen.mla_decode(other.q, p.kv_cache, p.block_table, p.cache_seqlens, key)
    assert torch.equal(out, want_out) and torch.equal(lse, want_lse)


def test_op_spec_without_lse():
    import torch

    import mlagen.ops
    from mlagen.testing import assert_close_mla, make_problem

    spec = embed_specs()["op_nolse"]
    key = mlagen.ops.register(spec)
    p = make_problem(spec, batch=3, seqlens=[5, 130, 0], s_q=8, seed=5, device="cuda")
    out, lse = torch.ops.mlagen.mla_decode(p.q, p.kv_cache, p.block_table, p.cache_seqlens, key)
    assert lse.shape == (0,) and lse.dtype == torch.float32 and lse.device == out.device
    ref_out, _ = p.reference(torch.float32)
    assert_close_mla(out, None, ref_out, None, context=p.describe())


def test_opcheck(op_problem):
    import torch

    key, p = op_problem
    torch.library.opcheck(torch.ops.mlagen.mla_decode.default,
                          (p.q, p.kv_cache, p.block_table, p.cache_seqlens, key),
                          test_utils=("test_schema", "test_faketensor"))


# ------------------------------------------------------------------ FlashMLA's interface
@pytest.mark.parametrize("name", FLASH_MLA_CASES)
def test_flash_mla_interface_matches_kernel_and_reference(name):
    """``mlagen.flash_mla.flash_mla_with_kvcache`` with FlashMLA's arguments: the same bits as the kernel
    called directly into NaN-poisoned outputs, and within the reference's tolerance; one metadata object
    serves two batches of other lengths."""
    import torch

    import mlagen.jit
    from mlagen.flash_mla import flash_mla_with_kvcache, get_mla_metadata
    from mlagen.testing import assert_close_mla, make_problem

    spec = embed_specs()[f"flash_mla_{name}"]
    meta, num_splits = get_mla_metadata()
    for seed, lens in ((21, [0, 1, 63, 64, 65, 700, 1500, 33, 4000]), (22, [4001, 5, 0, 129, 16, 2, 999])):
        p = make_problem(spec, batch=len(lens), seqlens=lens, s_q=spec.max_q, seed=seed, device="cuda")
        out, lse = flash_mla_with_kvcache(p.q, p.kv_cache, p.block_table, p.cache_seqlens, spec.latent, meta,
                                          num_splits, causal=spec.causal,
                                          is_fp8_kvcache=spec.cache_dtype == "fp8_e4m3")
        assert meta.spec == spec
        direct_out = torch.full_like(out, float("nan"))
        direct_lse = torch.full_like(lse, float("nan"))
        mlagen.jit.compile(spec)(p.q, p.kv_cache, p.block_table, p.cache_seqlens, out=direct_out, lse=direct_lse)
        assert torch.equal(out, direct_out) and torch.equal(lse, direct_lse), p.describe()
        ref_out, ref_lse = p.reference(torch.float32)
        assert_close_mla(out, lse, ref_out, ref_lse, context=p.describe())


# ------------------------------------------------------------------ the nn layer
@pytest.mark.parametrize("cache_dtype", [None, "fp8_e4m3"])
def test_tiny_model_kernel_path_matches_pytorch_path(cache_dtype):
    import torch

    from mlagen.nn import MultiHeadLatentAttention

    torch.manual_seed(0)
    layer = MultiHeadLatentAttention(**TINY, dtype=torch.bfloat16, cache_dtype=cache_dtype, device="cuda")
    assert layer.spec == embed_specs()["tiny_model_fp8" if cache_dtype else "tiny_model"]
    cache = layer.make_cache(64)
    # only the sequences' own tokens may be read: NaN values, or packed rows whose scales are NaN (0xFF bytes)
    cache.kv.fill_(255 if cache_dtype else float("nan"))
    gen = torch.Generator(device="cuda").manual_seed(1)

    def tokens(*shape):
        return torch.randn(*shape, layer.hidden, device="cuda", dtype=torch.bfloat16, generator=gen)

    ids = [cache.add_sequence() for _ in range(4)]
    with torch.no_grad():
        layer.prefill([tokens(n) for n in (3, 16, 33, 0)], ids, cache)
        pages_before = cache.num_free_pages
        for step in range(32):
            if step == 12:  # a sequence leaves; a new one takes its pages
                freed = cache.pages(ids[1])
                cache.free(ids[1])
                ids[1] = cache.add_sequence()
                layer.prefill([tokens(20)], [ids[1]], cache)
                assert set(cache.pages(ids[1])) <= set(freed)
            got = layer.decode_paths(tokens(len(ids), 1), ids, cache, paths=("kernel", "naive", "absorbed"))
            naive = got["naive"].float()
            scale = naive.abs().max().item()
            kernel_err = (got["kernel"].float() - naive).abs().max().item() / scale
            absorbed_err = (got["absorbed"].float() - naive).abs().max().item() / scale
            assert torch.isfinite(got["kernel"]).all(), step
            assert kernel_err <= 3e-2 and absorbed_err <= 1e-2, (step, kernel_err, absorbed_err, cache.lengths(ids))
    assert cache.num_free_pages < pages_before  # pages were allocated while decoding
    assert cache.lengths(ids) == [3 + 32, 20 + 20, 33 + 32, 0 + 32]


# ------------------------------------------------------------------ prebuild (no GPU needed)
def prebuild(cache: str, export_dir: str | None) -> None:
    """Compile every kernel these tests load into ``cache``; export the C folders to ``export_dir``
    (default ``cache/exports``, where the tests look when MLAGEN_EXPORT_DIR is not set)."""
    os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")
    sys.path.insert(0, str(REPO))
    from mlagen.jit import build

    for name, spec in embed_specs().items():
        result = build(spec, cache_dir=cache)
        print(f"{'built' if result.cold else 'cached'} {name}: {result.identity.name} ({result.seconds:.1f} s)")
    export_dir = export_dir or str(Path(cache) / "exports")
    from mlagen.export import export

    for name in EXPORTED:
        res = export(SPECS / f"{name}.py", Path(export_dir) / name, cache_dir=cache)
        print(f"exported {name} -> {res.out_dir} ({res.seconds:.1f} s)")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="prebuild the kernels and C exports of this test file")
    parser.add_argument("--cache", required=True, help="kernel cache folder (MLAGEN_CACHE_DIR on the GPU host)")
    parser.add_argument("--export-dir", default=None,
                        help="folder for the C exports (default: CACHE/exports; else set MLAGEN_EXPORT_DIR)")
    args = parser.parse_args()
    prebuild(args.cache, args.export_dir)
