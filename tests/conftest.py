"""Shared fixtures: where the real data and weights are, and skips with a clear reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def _shared_datasets() -> Path | None:
    env = os.environ.get("BRAINXPERT_DATA_DIR")
    for cand in ([Path(env)] if env else []) + [SHARED / "datasets"]:
        if (cand / "sartaj_brain_tumor_classification_mri").is_dir():
            return cand
    return None


def _shared_weights() -> Path | None:
    env = os.environ.get("BRAINXPERT_WEIGHTS_DIR")
    for cand in ([Path(env)] if env else []) + [SHARED / "weights"]:
        if (cand / "mobilenet_2_5_224_tf_no_top.h5").is_file() or (cand / "mobilenet_1_0_224_tf_no_top.h5").is_file():
            return cand
    return None


REAL_DATA_DIR = _shared_datasets()
WEIGHTS_DIR = _shared_weights()

# Child processes (papermill kernels, the grader, the CLI) find the same data and weights, and Keras
# gets a writable cache of its own: ../shared is read-only in CI.
if REAL_DATA_DIR is not None:
    os.environ.setdefault("BRAINXPERT_DATA_DIR", str(REAL_DATA_DIR))
if WEIGHTS_DIR is not None:
    os.environ.setdefault("BRAINXPERT_WEIGHTS_DIR", str(WEIGHTS_DIR))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "KERAS_HOME" not in os.environ:
    import tempfile

    os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="brainxpert-keras-home-")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Folder that holds the real dataset folders; skips when absent (a user's fresh clone)."""
    if REAL_DATA_DIR is None:
        pytest.skip("real MRI datasets not found: put ../shared/datasets beside the clone or set BRAINXPERT_DATA_DIR")
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def sartaj_dir(real_data_dir: Path) -> Path:
    return real_data_dir / "sartaj_brain_tumor_classification_mri"


@pytest.fixture(scope="session")
def navoneel_dir(real_data_dir: Path) -> Path:
    path = real_data_dir / "navoneel_brain_mri_images"
    if not path.is_dir():
        pytest.skip("Navoneel yes/no dataset not found beside the Sartaj dataset")
    return path


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    """Folder with real MobileNet ImageNet weights; skips when absent."""
    if WEIGHTS_DIR is None:
        pytest.skip("MobileNet ImageNet weights not found: put ../shared/weights beside the clone or set BRAINXPERT_WEIGHTS_DIR")
    return WEIGHTS_DIR
