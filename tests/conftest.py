"""Test-wide settings: quiet TensorFlow, deterministic seeds, no GPU search."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fixed-seed NumPy generator, fresh for each test."""
    return np.random.default_rng(0)
