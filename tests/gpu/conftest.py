"""GPU tests: run only where a Hopper GPU is present (``pytest -m gpu``); skipped elsewhere."""

from __future__ import annotations

import os

import pytest


def _hopper_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available() and torch.cuda.get_device_capability() == (9, 0)


HOPPER = _hopper_available()


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs an NVIDIA Hopper (sm_90) GPU")
    for item in items:
        if "gpu" in item.keywords and not HOPPER:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gpu_examples() -> int:
    """Hypothesis cases per GPU property test (MLAGEN_GPU_EXAMPLES, default 320)."""
    return int(os.environ.get("MLAGEN_GPU_EXAMPLES", "320"))
