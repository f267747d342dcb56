"""mlagen: compile a short Python description of an MLA decode variant into a
Hopper kernel.

Importing the package is cheap: names are loaded on first access, and torch
is imported only by the parts that need it (the reference, the test helpers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "MLASpec": "mlagen.spec",
    "SpecError": "mlagen.spec",
    "SpecFile": "mlagen.spec",
    "SpecFileError": "mlagen.spec",
    "load_spec": "mlagen.spec",
    "load_spec_file": "mlagen.spec",
    "list_spec_files": "mlagen.spec",
    "MLAModel": "mlagen.models",
    "MODELS": "mlagen.models",
    "yarn_mscale": "mlagen.models",
    "GPU": "mlagen.costs",
    "H100": "mlagen.costs",
    "H200": "mlagen.costs",
    "decode_cost": "mlagen.costs",
    "mla_decode_reference": "mlagen.reference",
    "mla_decode_reference_range": "mlagen.reference",
    "merge_partials": "mlagen.reference",
    "compile": "mlagen.jit",
    "build": "mlagen.jit",
    "KernelPlan": "mlagen.plan",
    "plan_for": "mlagen.plan",
    "PlanError": "mlagen.plan",
    "MLADecodeKernel": "mlagen.runtime",
    "MLAInputError": "mlagen.runtime",
    "MultiHeadLatentAttention": "mlagen.nn",
    "PagedLatentCache": "mlagen.nn",
    "export_c_library": "mlagen.export",
    "quantize_cache": "mlagen.fp8_cache",
    "dequantize_cache": "mlagen.fp8_cache",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from mlagen.costs import GPU, H100, H200, decode_cost
    from mlagen.fp8_cache import dequantize_cache, quantize_cache
    from mlagen.jit import build, compile
    from mlagen.plan import KernelPlan, PlanError, plan_for
    from mlagen.runtime import MLADecodeKernel, MLAInputError
    from mlagen.models import MODELS, MLAModel, yarn_mscale
    from mlagen.reference import merge_partials, mla_decode_reference, mla_decode_reference_range
    from mlagen.spec import (
        MLASpec,
        SpecError,
        SpecFile,
        SpecFileError,
        list_spec_files,
        load_spec,
        load_spec_file,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlagen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
