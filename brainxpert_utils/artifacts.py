"""Where a run keeps what later notebooks and the benchmark read back: models, histories, metrics.

Layout under the artifacts folder (``config.artifacts_dir``: explicit > $BRAINXPERT_ARTIFACTS_DIR >
./artifacts), one fixed file name per item::

    models/<name>.keras        e.g. models/mobilenet_binary.keras
    histories/<name>.json      TrainResult.to_dict() or a Keras history dict
    metrics/<name>.json        evaluation.evaluate(...) results

``run_name(model, task)`` gives the names the notebooks share ("custom_cnn_binary", ...).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from brainxpert_utils import config
from brainxpert_utils.errors import BrainXpertError

KINDS = {"model": ("models", ".keras"), "history": ("histories", ".json"), "metrics": ("metrics", ".json")}
MODEL_NAMES = ("custom_cnn", "mobilenet", "original_cnn", "original_mobilenet")


class ArtifactNotFound(BrainXpertError, FileNotFoundError):
    """A model, history or metrics file that an earlier notebook should have written is missing."""


def run_name(model: str, task: str) -> str:
    """The fixed item name of a model trained for a task, e.g. ``run_name("mobilenet", "binary")``."""
    if task not in ("binary", "multiclass"):
        raise ValueError(f"task={task!r}: use 'binary' or 'multiclass'")
    return f"{model}_{task}"


def run_item_path(kind: str, name: str, artifacts_dir: str | os.PathLike | None = None) -> Path:
    """Path of an item (the folder is created; the file may not exist yet)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: use one of {sorted(KINDS)}")
    folder, suffix = KINDS[kind]
    path = config.artifacts_dir(artifacts_dir) / folder
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{name}{suffix}"


def _plain(obj):
    """JSON fallback for NumPy scalars/arrays and objects with ``to_dict``."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def save_run_item(kind: str, name: str, obj, artifacts_dir: str | os.PathLike | None = None) -> Path:
    """Save a Keras model (kind "model") or a JSON-able dict / TrainResult ("history", "metrics")."""
    path = run_item_path(kind, name, artifacts_dir)
    if kind == "model":
        obj.save(path)
    else:
        text = json.dumps(obj, default=_plain, indent=1, allow_nan=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def has_run_item(kind: str, name: str, artifacts_dir: str | os.PathLike | None = None) -> bool:
    """True when the item was saved before."""
    return run_item_path(kind, name, artifacts_dir).is_file()


def load_run_item(kind: str, name: str, artifacts_dir: str | os.PathLike | None = None):
    """Load what ``save_run_item`` wrote; ArtifactNotFound (says which notebook makes it) when missing."""
    path = run_item_path(kind, name, artifacts_dir)
    if not path.is_file():
        raise ArtifactNotFound(f"{path} not found: run the notebook that trains {name!r} first "
                               "(02 for the custom CNN, 03 for MobileNet) with the same artifacts folder, "
                               "or set BRAINXPERT_ARTIFACTS_DIR to the folder of an earlier run.")
    if kind == "model":
        import keras

        return keras.models.load_model(path)
    return json.loads(path.read_text())
