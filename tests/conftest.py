"""Shared test set-up: Hypothesis profiles.

`ci` (the default) keeps the CPU suite fast and its failures reproducible;
choose another profile with HYPOTHESIS_PROFILE=name.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    print_blob=True,
    max_examples=50,
    # Building a problem (cache tensors, block tables) is slow for Hypothesis'
    # taste but is the point of these tests.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def kernel_cache(tmp_path_factory):
    """One kernel cache folder for the session: test_jit and test_cli_build share what they compile."""
    return tmp_path_factory.mktemp("kernel-cache")
