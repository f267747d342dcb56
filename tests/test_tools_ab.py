"""tools/ab_templates.py refuses an A/B in which two template folders load one kernel (it would time a
kernel against itself, as every VARIANTS-mode A/B did before the jit memo held the template hash)."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import ab_templates  # noqa: E402


def _kernel(key: str):
    return SimpleNamespace(identity=SimpleNamespace(key=key, name=f"mla_x__{key}"))


def test_distinct_kernels_pass():
    ab_templates._assert_distinct({"base": _kernel("a"), "stream": _kernel("b"), "nocopy": _kernel("c")})


@pytest.mark.parametrize("same", ["object", "identity"])
def test_one_kernel_under_two_names_is_refused(same):
    base = _kernel("a")
    other = base if same == "object" else _kernel("a")
    with pytest.raises(SystemExit, match="stream and base load the same kernel"):
        ab_templates._assert_distinct({"base": base, "stream": other})
