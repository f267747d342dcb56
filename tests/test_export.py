"""AOT export (no GPU): ``mlagen export`` writes a C library folder that CMake configures and builds.

DeepSeek-V3, MiniCPM3-4B and DeepSeek-V2-Lite over an fp8_e4m3 cache are exported once per session
(into the session's ``kernel_cache``, shared with test_jit.py / test_cli_build.py) and built with CMake
once each. Running the kernel
needs a GPU (tests/gpu/test_embed_gpu.py); here the host side is checked: the folder's files and
metadata, the header's constants against the spec, the C example's CPU reference against
:func:`mlagen.reference.mla_decode_reference` (and its fp8 quantizer against
:func:`mlagen.quantize_cache`, byte for byte), and a C (not C++) program that links the three exports
into one binary and checks their part counts and workspace sizes against :mod:`mlagen.runtime`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from mlagen.cli import main
from mlagen.device import H100_SXM, DeviceFacts
from mlagen.export import RUNTIME_LIB, STATUS_CODES, ExportError, c_identifier, export
from mlagen.reference import mla_decode_reference
from mlagen.runtime import MLADecodeKernel
from mlagen.spec import load_spec

os.environ.setdefault("CUTE_DSL_ARCH", "sm_90a")  # before anything loads the DSL (see test_jit.py)

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
EXPORTED = ("deepseek_v3", "minicpm3", "deepseek_v2_lite_fp8")

needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")


def _cmake(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(["cmake", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"cmake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="session")
def exports(kernel_cache, tmp_path_factory) -> dict[str, Path]:
    """``mlagen export specs/<name>.py --out DIR`` for each of EXPORTED."""
    root = tmp_path_factory.mktemp("exports")
    folders = {}
    for name in EXPORTED:
        out = root / name
        status = main(["export", str(SPECS / f"{name}.py"), "--out", str(out), "--cache", str(kernel_cache)])
        assert status == 0
        folders[name] = out
    return folders


@pytest.fixture(scope="session")
def built(exports, tmp_path_factory) -> dict[str, Path]:
    """Each export configured and built with CMake (library + example); returns the build folders."""
    builds = {}
    for name, folder in exports.items():
        build = tmp_path_factory.mktemp(f"build-{name}")
        _cmake("-S", str(folder), "-B", str(build))
        _cmake("--build", str(build), "-j", "2")
        builds[name] = build
    return builds


def _defines(header: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+) (.+?)\s*(?:/\*.*)?$", header, flags=re.M))


# ------------------------------------------------------------------ the folder
@pytest.mark.parametrize("name", EXPORTED)
def test_export_folder_contents(exports, name):
    folder = exports[name]
    spec = load_spec(SPECS / f"{name}.py")
    prefix = f"mlagen_{name}_kernel"
    for rel in ("README.md", "CMakeLists.txt", f"include/mlagen_{name}.h", f"src/mlagen_{name}.cpp",
                f"kernel/{prefix}.h", f"kernel/{prefix}.o", f"kernel/{prefix}.py", "kernel/meta.json",
                f"lib/{RUNTIME_LIB}", "example/example.cpp"):
        assert (folder / rel).is_file(), rel
    meta = json.loads((folder / "kernel/meta.json").read_text())
    assert meta["spec_key"] == spec.key and meta["name"] == name and meta["prefix"] == prefix
    assert meta["object_sha256"] == hashlib.sha256((folder / f"kernel/{prefix}.o").read_bytes()).hexdigest()
    assert meta["runtime_lib_sha256"] == hashlib.sha256((folder / f"lib/{RUNTIME_LIB}").read_bytes()).hexdigest()
    # the object carries the host launcher, the module loader and the sm_90a cubin
    obj = (folder / f"kernel/{prefix}.o").read_bytes()
    assert obj[:4] == b"\x7fELF"
    for symbol in (f"_mlir_{prefix}_cuda_init", f"_mlir_{prefix}_cuda_load_to_device", f"_mlir_{prefix}__mlir_ciface_"):
        assert symbol.encode() in obj, symbol
    cubin = obj[obj.find(b"\x7fELF", 1):]  # the embedded device ELF: EM_CUDA, sm_90
    assert len(cubin) > 1000 and int.from_bytes(cubin[18:20], "little") == 190
    assert int.from_bytes(cubin[48:52], "little") & 0xFF == 90
    # the export_to_c header: the launch wrapper the C ABI calls, with a cudaStream_t stream
    kernel_header = (folder / f"kernel/{prefix}.h").read_text()
    assert f"cute_dsl_{prefix}_wrapper({prefix}_Kernel_Module_t *module, void *q_ptr" in kernel_header
    assert "cudaStream_t stream)" in kernel_header
    # the generated CuTe DSL source is the cached kernel's
    assert f'SPEC_KEY = "{spec.key}"' in (folder / f"kernel/{prefix}.py").read_text()


@pytest.mark.parametrize("name", EXPORTED)
def test_header_matches_spec(exports, name):
    spec = load_spec(SPECS / f"{name}.py")
    header = (exports[name] / f"include/mlagen_{name}.h").read_text()
    d = _defines(header)
    N = f"MLAGEN_{name.upper()}_"
    assert int(d[N + "Q_HEADS"]) == spec.q_heads and int(d[N + "KV_HEADS"]) == spec.kv_heads
    assert int(d[N + "LATENT"]) == spec.latent and int(d[N + "ROPE"]) == spec.rope
    assert int(d[N + "D_QK"]) == spec.d_qk and int(d[N + "D_V"]) == spec.d_v
    assert int(d[N + "PAGE"]) == spec.page and int(d[N + "MAX_Q"]) == spec.max_q
    assert int(d[N + "CAUSAL"]) == spec.causal and int(d[N + "HAS_LSE"]) == spec.lse
    assert float(d[N + "SCALE"]) == spec.scale  # the model's scale, exactly
    assert d[N + "SPEC_KEY"] == f'"{spec.key}"'
    assert d[N + "DTYPE_BF16"] == "1"
    fp8 = spec.cache_dtype == "fp8_e4m3"
    assert int(d[N + "CACHE_FP8_E4M3"]) == fp8
    assert int(d[N + "CACHE_ROW"]) == (spec.cache_bytes_per_token // spec.kv_heads if fp8 else spec.d_qk)
    assert int(d[N + "CACHE_UNIT_BYTES"]) * int(d[N + "PAGE_STRIDE_ALIGN"]) == 16
    for code, (value, _) in STATUS_CODES.items():
        assert int(d[code]) == value, code
    for fn in ("init", "destroy", "num_parts", "workspace_size", "workspace_size_for_parts", "run",
               "error_string", "last_cuda_error", "spec_key"):
        assert re.search(rf"\bmlagen_{name}_{fn}\(", header), fn


def test_c_identifier_and_bad_names(tmp_path, capsys):
    assert c_identifier("deepseek_v3-page16") == "deepseek_v3_page16"
    assert c_identifier("MiniCPM3 4B") == "minicpm3_4b"
    with pytest.raises(ExportError, match="name"):
        export(SPECS / "minicpm3.py", tmp_path / "x", name="Bad-Name")
    # a spec the planner rejects: one-line error, exit 2, nothing compiled or written
    bad = tmp_path / "fp8_rope_head.py"
    bad.write_text('from mlagen import MLASpec\nspec = MLASpec(q_heads=16, cache_dtype="fp8_e4m3", rope_at="head")\n')
    status = main(["export", str(bad), "--out", str(tmp_path / "fp8")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("mlagen: error:") and "rope_at" in err and err.count("\n") == 1
    assert not (tmp_path / "fp8").exists()


# ------------------------------------------------------------------ CMake
@needs_cmake
@pytest.mark.parametrize("name", EXPORTED)
def test_cmake_builds_library_and_example(built, name):
    build = built[name]
    assert (build / f"libmlagen_{name}.a").is_file()
    example = build / f"mlagen_{name}_example"
    assert example.is_file() and os.access(example, os.X_OK)


def _read_reference(path: Path, spec):
    raw = path.read_bytes()
    batch, s_q, num_pages, page_stride, bt_stride, nq, nkv, nbt = (int(v) for v in np.frombuffer(raw[:64], np.int64))
    offset = 64

    def take(count, dtype):
        nonlocal offset
        size = np.dtype(dtype).itemsize * count
        array = np.frombuffer(raw[offset : offset + size], dtype=dtype).copy()
        offset += size
        return torch.from_numpy(array)

    dtype = torch.bfloat16 if spec.dtype == "bf16" else torch.float16
    fp8 = spec.cache_dtype == "fp8_e4m3"
    q = take(nq, np.int16).view(dtype).reshape(batch, s_q, spec.q_heads, spec.d_qk)
    kv_flat = take(nkv, np.uint8) if fp8 else take(nkv, np.int16).view(dtype)
    block_table = take(nbt, np.int32).reshape(batch, bt_stride)
    lens = take(batch, np.int32)
    out = take(batch * s_q * spec.q_heads * spec.d_v, np.float32).reshape(batch, s_q, spec.q_heads, spec.d_v)
    lse = take(batch * spec.q_heads * s_q, np.float32).reshape(batch, spec.q_heads, s_q)
    head_row = spec.cache_bytes_per_token // spec.kv_heads if fp8 else spec.d_qk
    row = spec.kv_heads * head_row
    kv = kv_flat.as_strided((num_pages, spec.page, spec.kv_heads, head_row), (page_stride, row, head_row, 1))
    source = None
    if fp8:  # the 16-bit values the packed rows were quantized from
        count = num_pages * spec.page * spec.kv_heads * spec.d_qk
        source = take(count, np.int16).view(dtype).reshape(num_pages, spec.page, spec.kv_heads, spec.d_qk)
    assert offset == len(raw)
    return q, kv, block_table, lens, out, lse, source


@needs_cmake
@pytest.mark.parametrize("name", EXPORTED)
def test_example_reference_matches_mlagen_reference(built, tmp_path, name):
    """The C example's problem is adversarial and its CPU reference agrees with mlagen's."""
    spec = load_spec(SPECS / f"{name}.py")
    path = tmp_path / "problem.bin"
    proc = subprocess.run([str(built[name] / f"mlagen_{name}_example"), "--write-reference", str(path), "--seed", "7"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    q, kv, block_table, lens, out, lse, source = _read_reference(path, spec)
    fp8 = source is not None
    page = spec.page
    lengths = lens.tolist()
    assert 0 in lengths and any(n % page for n in lengths) and max(lengths) > 2 * page
    used = [-(-n // page) for n in lengths]
    assert kv.shape[0] > sum(used) and kv.stride(0) > page * kv.shape[2] * kv.shape[3]  # unused pages, padded stride
    assert block_table.shape[1] > max(used)
    for b, n in enumerate(lengths):  # NaN past every length, garbage past every request's pages
        if n % page:
            tail = kv[block_table[b, used[b] - 1], n % page :]
            # fp8: all-0xFF bytes, whose scales and RoPE values are NaN
            assert (tail == 0xFF).all() if fp8 else torch.isnan(tail.float()).all()
        assert ((block_table[b, used[b]:] < 0) | (block_table[b, used[b]:] >= kv.shape[0])).all()
    if fp8:  # the C++ quantizer writes mlagen.quantize_cache's bytes
        from mlagen.fp8_cache import quantize_cache

        valid = [(int(block_table[b, j]), min(page, n - j * page)) for b, n in enumerate(lengths) for j in range(used[b])]
        written = torch.cat([source[p][:tokens] for p, tokens in valid])
        packed = torch.cat([kv[p][:tokens] for p, tokens in valid])
        assert written.shape[0] == sum(lengths) and not torch.isnan(written.float()).any()
        assert torch.equal(quantize_cache(written, spec.latent).view(torch.uint8), packed)
    ref_out, ref_lse = mla_decode_reference(q, kv, block_table, lens, spec, compute_dtype=torch.float64)
    assert torch.allclose(out.double(), ref_out, rtol=1e-5, atol=1e-6)
    assert torch.equal(torch.isinf(lse), torch.isinf(ref_lse))
    finite = torch.isfinite(ref_lse)
    assert torch.allclose(lse.double()[finite], ref_lse[finite], rtol=1e-6, atol=1e-6)


CONSUMER_C = r"""
#include <stdio.h>
#include <string.h>
#include "mlagen_deepseek_v3.h"
#include "mlagen_minicpm3.h"
#include "mlagen_deepseek_v2_lite_fp8.h"

int main(int argc, char **argv) {
    (void)argc; (void)argv;
    static const int batches[] = {0, 1, 7, 64, 1000};
    static const int sms[] = {1, 78, 132};
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 3; ++j) {
            int b = batches[i], n = sms[j];
            printf("ds %d 1 %d %d %zu %zu\n", b, n, mlagen_deepseek_v3_num_parts(1, n),
                   mlagen_deepseek_v3_workspace_size(b, 1, n), mlagen_deepseek_v3_workspace_size_for_parts(b, 1, 5));
            printf("cpm %d 1 %d %d %zu %zu\n", b, n, mlagen_minicpm3_num_parts(1, n),
                   mlagen_minicpm3_workspace_size(b, 1, n), mlagen_minicpm3_workspace_size_for_parts(b, 1, 5));
            printf("fp8 %d 1 %d %d %zu %zu\n", b, n, mlagen_deepseek_v2_lite_fp8_num_parts(1, n),
                   mlagen_deepseek_v2_lite_fp8_workspace_size(b, 1, n),
                   mlagen_deepseek_v2_lite_fp8_workspace_size_for_parts(b, 1, 5));
        }
    /* invalid arguments */
    printf("bad %d %d %zu %zu\n", mlagen_deepseek_v3_num_parts(2, 132), mlagen_deepseek_v3_num_parts(1, 0),
           mlagen_deepseek_v3_workspace_size(-1, 1, 132), mlagen_minicpm3_workspace_size_for_parts(4, 1, 0));
    printf("init %d\n", mlagen_deepseek_v3_init(NULL, 0));
    printf("run %d\n", mlagen_minicpm3_run(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 1, 1, 1, 0, 1, 1, 0));
    printf("destroy %d\n", mlagen_minicpm3_destroy(NULL));
    for (int code = 0; code <= 9; ++code) printf("err %d %s\n", code, mlagen_deepseek_v3_error_string(code));
    printf("key %s %s\n", mlagen_deepseek_v3_spec_key(), mlagen_minicpm3_spec_key());
    return strcmp(mlagen_minicpm3_spec_key(), MLAGEN_MINICPM3_SPEC_KEY) != 0;
}
"""

CONSUMER_CMAKE = """
cmake_minimum_required(VERSION 3.18)
project(consumer LANGUAGES C CXX)
add_subdirectory({ds} ds)
add_subdirectory({cpm} cpm)
add_subdirectory({fp8} fp8)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE mlagen::deepseek_v3 mlagen::minicpm3 mlagen::deepseek_v2_lite_fp8)
"""


def _runtime_workspace_bytes(kernel: MLADecodeKernel, batch: int, s_q: int, parts: int) -> int:
    ws = kernel.workspace(batch, s_q, "cpu", parts)
    tensors = (ws.partial_out, ws.partial_lse, ws.pieces)
    return sum(-(-t.numel() * t.element_size() // 256) * 256 for t in tensors)


@needs_cmake
def test_two_exports_link_into_one_c_program(exports, tmp_path):
    """The three libraries in one binary, called from C; host-side sizes agree with mlagen.runtime."""
    project = tmp_path / "consumer"
    project.mkdir()
    (project / "main.c").write_text(CONSUMER_C)
    (project / "CMakeLists.txt").write_text(
        CONSUMER_CMAKE.format(ds=exports["deepseek_v3"].as_posix(), cpm=exports["minicpm3"].as_posix(),
                              fp8=exports["deepseek_v2_lite_fp8"].as_posix()))
    _cmake("-S", str(project), "-B", str(project / "build"), "-DCMAKE_BUILD_TYPE=Release")
    _cmake("--build", str(project / "build"), "-j", "2")
    assert not (project / "build" / "ds" / "mlagen_deepseek_v3_example").exists()  # examples only at top level
    proc = subprocess.run([str(project / "build" / "consumer")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()

    checked = 0
    for line in lines:
        tag, *fields = line.split()
        names = {"ds": "deepseek_v3", "cpm": "minicpm3", "fp8": "deepseek_v2_lite_fp8"}
        if tag not in names:
            continue
        batch, s_q, sms, parts, ws_default, ws_5 = (int(f) for f in fields)
        name = names[tag]
        kernel = _python_kernel(exports[name], DeviceFacts(name="test", sm_count=sms))
        assert parts == kernel.num_parts(s_q), line
        assert ws_default == _runtime_workspace_bytes(kernel, batch, s_q, parts), line
        assert ws_5 == _runtime_workspace_bytes(kernel, batch, s_q, 5), line
        checked += 1
    assert checked == 45
    assert "bad 0 0 0 0" in lines
    assert "init 1" in lines and "run 1" in lines and "destroy 0" in lines
    for code, (value, _) in STATUS_CODES.items():
        assert any(line.startswith(f"err {value} ") and "unknown" not in line for line in lines), code
    assert "err 9 unknown mlagen status code" in lines
    ds, cpm = load_spec(SPECS / "deepseek_v3.py"), load_spec(SPECS / "minicpm3.py")
    assert f"key {ds.key} {cpm.key}" in lines


def _python_kernel(folder: Path, facts: DeviceFacts) -> MLADecodeKernel:
    """An MLADecodeKernel of the exported spec and plan (never launched: sizing only)."""
    from mlagen.jit import BuildResult, identity_for
    from mlagen.plan import KernelPlan

    meta = json.loads((folder / "kernel/meta.json").read_text())
    spec = load_spec(SPECS / f"{meta['name']}.py")
    identity = identity_for(spec, KernelPlan.from_dict(meta["plan"]), H100_SXM)
    result = BuildResult(identity=identity, entry_dir=folder, cold=False, seconds=0.0, compile_seconds=None)
    return MLADecodeKernel(result, None, facts)
