"""The torch dtypes of a spec's dtype names, both ways (this module imports torch; :mod:`mlagen.spec` does not)."""

from __future__ import annotations

import torch

__all__ = ["DTYPE_NAMES", "PACKED_ROW_DTYPES", "TORCH_DTYPES"]

TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES = {t: name for name, t in TORCH_DTYPES.items()}
# an fp8_e4m3 cache's packed rows are bytes; FlashMLA hands them over typed float8_e4m3fn
PACKED_ROW_DTYPES = (torch.uint8, torch.float8_e4m3fn)
