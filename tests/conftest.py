"""Shared pytest fixtures for keras_lm."""

import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHAKESPEARE_DIR = REPO_ROOT.parent / "shared" / "data" / "shakespeare"


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts from float32, a fixed seed and a fresh Keras name scope."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
    # free_memory=False skips a gc.collect() per test (~0.3-1 s each on 2 cores).
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def shakespeare_dir():
    """The shared Shakespeare corpus, or a skip that says why it is missing."""
    if not (SHAKESPEARE_DIR / "works.tsv").is_file():
        pytest.skip(
            f"shared Shakespeare corpus not found at {SHAKESPEARE_DIR} "
            "(clone the repository beside ../shared to run this test)"
        )
    return SHAKESPEARE_DIR
