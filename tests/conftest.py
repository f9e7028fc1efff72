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
    import atexit
    import shutil
    import tempfile

    os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="brainxpert-keras-home-")
    atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], ignore_errors=True)


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


# ----------------------------------------------------------------------------- data layer (issue 2)
# Scans of the real datasets, done once per test session and shared by test_scan, test_dedup,
# test_splits, test_pipeline and test_data_readonly (a scan of sartaj takes ~6 s on 2 cores).
# Treat them as read-only: copy before changing.


@pytest.fixture(scope="session")
def sartaj_scan(sartaj_dir: Path):
    """scan_folder(sartaj, fingerprints=True) of the real Sartaj folder."""
    from brainxpert_utils.scan import scan_folder

    return scan_folder(sartaj_dir, dataset="sartaj", fingerprints=True)


@pytest.fixture(scope="session")
def navoneel_scan(navoneel_dir: Path):
    """scan_folder(navoneel, fingerprints=True) of the real Navoneel folder."""
    from brainxpert_utils.scan import scan_folder

    return scan_folder(navoneel_dir, dataset="navoneel", fingerprints=True)


@pytest.fixture(scope="session")
def sartaj_groups(sartaj_dir: Path, sartaj_scan):
    """Duplicate groups of Sartaj alone (what the shipped split uses)."""
    from brainxpert_utils.dedup import find_duplicate_groups

    return find_duplicate_groups(sartaj_dir, sartaj_scan)


@pytest.fixture(scope="session")
def combined_groups(sartaj_dir: Path, navoneel_dir: Path, sartaj_scan, navoneel_scan):
    """Duplicate groups over both datasets together (as duplicate_groups.tsv), with class_name."""
    import pandas as pd

    from brainxpert_utils.dedup import find_duplicate_groups

    both = pd.concat([sartaj_scan, navoneel_scan], ignore_index=True)
    groups = find_duplicate_groups({"sartaj": sartaj_dir, "navoneel": navoneel_dir}, both)
    return groups.merge(both[["dataset", "path", "class_name"]], on=["dataset", "path"])


def _odd_images() -> dict[str, bytes]:
    """Every kind of odd file the data layer must handle, as bytes (relative path -> content)."""
    import io

    import numpy as np
    from PIL import Image

    def picture(seed: int, size=(40, 48)) -> Image.Image:  # smooth, distinct, asymmetric pictures
        rng = np.random.default_rng(seed)
        small = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
        return Image.fromarray(small).resize(size[::-1], Image.Resampling.BICUBIC)

    def encode(image: Image.Image, fmt: str, **kw) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **kw)
        return buffer.getvalue()

    rgb = encode(picture(1), "JPEG", quality=95)
    return {
        "Training/glioma_tumor/rgb.jpg": rgb,
        "Training/glioma_tumor/grey.jpg": encode(picture(2).convert("L"), "JPEG", quality=95),
        "Training/meningioma_tumor/png_named.jpg": encode(picture(3), "PNG"),
        "Training/meningioma_tumor/rgba.png": encode(picture(4).convert("RGBA"), "PNG"),
        "Training/no_tumor/palette.png": encode(picture(5).convert("P"), "PNG"),
        "Training/no_tumor/cmyk.jpg": encode(picture(6).convert("CMYK"), "JPEG", quality=95),
        "Training/pituitary_tumor/truncated.jpg": encode(picture(7, (120, 140)), "JPEG")[:1500],
        "Training/pituitary_tumor/notes.txt": b"not an image\n",
        "Training/pituitary_tumor/.DS_Store": b"\x00\x00\x00\x01Bud1\x00",
        "Testing/pituitary_tumor/copy_of_rgb.jpg": rgb,
        "Testing/meningioma_tumor/mirrored.jpg": encode(picture(1).transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG"),
        "Testing/no_tumor/reencoded.png": encode(picture(1).resize((60, 50)), "PNG"),
    }


@pytest.fixture(scope="session")
def odd_dataset(tmp_path_factory) -> Path:
    """A small sartaj-like folder (named like the real one) with every odd file the issue lists.

    Also an empty class folder (Testing/glioma_tumor), a byte copy, a mirrored and a re-encoded
    copy of Training/glioma_tumor/rgb.jpg. Returns the dataset folder.
    """
    folder = tmp_path_factory.mktemp("odd") / "sartaj_brain_tumor_classification_mri"
    for relative, data in _odd_images().items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    (folder / "Testing" / "glioma_tumor").mkdir(parents=True)
    return folder
