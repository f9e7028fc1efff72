"""Course defaults in one place: the notebooks, the CLI and the benchmark all read these."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS: dict = {
    "seed": 0,
    "dataset": "sartaj",
    "task": "binary",
    "val_fraction": 0.15,
    "test_fraction": 0.15,
    "batch_size": 32,
    # custom CNN (notebook 02)
    "cnn_image_size": 128,
    "cnn_blocks": (16, 32, 64, 128),
    "cnn_dropout": 0.3,
    "cnn_learning_rate": 2e-3,  # Adam, cosine decay to 0 over cnn_epochs
    "cnn_epochs": 12,
    "cnn_patience": 6,
    # with class weights the weighted val loss favours a near-constant model: stop on val AUC (binary)
    "cnn_monitor_binary": "val_auc",
    # MobileNet (notebook 03): stage 1 head on cached features, stage 2 fine-tunes blocks 12-13
    "image_size": 224,
    "mobilenet_alpha": 1.0,
    "head_dropout": 0.2,
    "head_epochs": 20,
    "fine_tune_from": 12,
    "fine_tune_epochs": 5,
    "fine_tune_learning_rate": 1e-4,  # Adam, cosine decay to 0 over fine_tune_epochs
}


def repo_root() -> Path | None:
    """The repository checkout this package lives in, or None for an installed wheel."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else None


def artifacts_dir(path: str | os.PathLike | None = None) -> Path:
    """Where a run writes its outputs: explicit path > $BRAINXPERT_ARTIFACTS_DIR > ./artifacts."""
    chosen = Path(path) if path else Path(os.environ.get("BRAINXPERT_ARTIFACTS_DIR", "artifacts"))
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen
