"""tools/probes/rs_dequant_probe.py without a GPU: the column permutation gives each quad lane one
16-byte run per row and 64-column chunk, the bit conversion reads the e4m3 values exactly (up to the
2^-120 it documents), S^T through the permutation equals K.Q^T, and the probe compiles for sm_90a with
its RS wgmmas unserialised (both products: 64 wgmmas, 32 128-bit shared loads)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools" / "probes"))
import rs_dequant_probe as probe  # noqa: E402


def test_permutation_gives_each_quad_one_run_per_chunk():
    perm = probe.permute_q_columns()
    assert sorted(perm.tolist()) == list(range(probe.LATENT))
    for chunk in range(probe.LATENT // 64):
        for q in range(4):
            logical = [chunk * 64 + s * 16 + p for s in range(4) for p in (2 * q, 2 * q + 1, 2 * q + 8, 2 * q + 9)]
            # in fragment order (k-step, then the four positions): 16 consecutive bytes at 16q
            assert perm[logical].tolist() == list(range(chunk * 64 + 16 * q, chunk * 64 + 16 * q + 16))


def test_value_columns_give_each_thread_one_run_in_one_scale_group():
    # every (m-block, row) holds a distinct value column
    cols = [probe.value_column(b, m) for b in range(8) for m in range(64)]
    assert sorted(cols) == list(range(probe.LATENT))
    for warp in range(4):
        for r in range(8):
            rows = [16 * warp + r + 8 * h for h in (0, 1)]
            mine = sorted(probe.value_column(b, m) for b in range(8) for m in rows)
            start = 16 * (8 * warp + r)
            assert mine == list(range(start, start + 16))   # one 128-bit load per token
            assert {c // probe.GROUP for c in mine} == {warp}   # one scale per token for all 8 blocks


def test_bit_conversion_reads_e4m3_exactly():
    codes = np.array([b for b in range(256) if b & 0x7F != 0x7F], dtype=np.uint8)   # NaN codes aside
    want = torch.from_numpy(codes).view(torch.float8_e4m3fn).to(torch.float64).numpy()
    # the same shifts and masks the probe's PTX is built from
    bits = probe.e4m3_to_bf16_bits(codes)
    got = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16).to(torch.float64).numpy() * 2.0 ** 120
    np.testing.assert_array_equal(got, want)


def test_permuted_product_equals_reference():
    rng = np.random.default_rng(1)
    k_bytes = torch.from_numpy(rng.standard_normal((2, 64, probe.LATENT)).astype(np.float32)).to(
        torch.float8_e4m3fn).view(torch.uint8).numpy()
    scales = np.exp2(rng.integers(-8, 8, size=(2, 64, probe.LATENT // probe.GROUP))).astype(np.float32)
    q = rng.standard_normal((probe.Q_ROWS, probe.LATENT))
    perm = probe.permute_q_columns()
    vals = torch.from_numpy(k_bytes).view(torch.float8_e4m3fn).to(torch.float64).numpy()
    # the kernel's order: A's logical column L holds cache column perm[L], Q staged as q[:, perm];
    # per 128-column group an accumulator, scaled per token afterwards
    acc = np.stack([np.einsum("wtc,nc->wtn", vals[..., perm][..., g * 128:(g + 1) * 128],
                              q[:, perm][:, g * 128:(g + 1) * 128]) for g in range(4)], axis=-1)
    got = (acc * scales[:, :, None, :]).sum(-1)
    np.testing.assert_allclose(got, probe.reference(k_bytes, scales, q), rtol=1e-12, atol=1e-12)


def test_probe_compiles_with_unserialised_rs_wgmmas():
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "probes" / "rs_dequant_probe.py"), "--compile-only"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "serialized=()" in proc.stdout and "spill_store_bytes=0" in proc.stdout
    assert "PTX: 64 wgmma, 32 ld.shared.v4," in proc.stdout
