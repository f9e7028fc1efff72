"""Honest evaluation: metrics with 95% bootstrap confidence intervals, efficiency, comparison tables.

Every result records what it was measured on (split, dataset, task, n, class names) because a
number without its test set means nothing. Test sets here are small (a few hundred images), so every
scalar comes with a percentile bootstrap interval over resampled test items.

Result layout (plain JSON types; ``json.dumps(result)`` works):
``{"split", "dataset", "task", "n", "class_names", "synthetic", "n_boot", "seed", "threshold",
"accuracy": {"value": v, "ci": [low, high]}, "balanced_accuracy", "macro_f1", "roc_auc",
"sensitivity", "specificity" (binary only), "per_class": {name: {"precision", "recall", "f1": {...},
"support": int}}, "confusion_matrix": [[...]] (rows = true, columns = predicted),
"predictions": {"y_true": [...], "y_prob": [...]}}``. Undefined values (e.g. no positives) are None.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from brainxpert_utils.errors import DataError

SCALAR_METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc", "macro_f1")


def _check_inputs(y_true, y_prob, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int (n,), probabilities as (n,) for binary (P(tumour)) or (n, K) for multiclass."""
    if task not in ("binary", "multiclass"):
        raise DataError(f"unknown task {task!r}: use 'binary' or 'multiclass'")
    y_true = np.asarray(y_true).reshape(-1)
    y_prob = np.asarray(y_prob, dtype="float64")
    if task == "binary":
        if y_prob.ndim == 2 and y_prob.shape[1] == 2:
            y_prob = y_prob[:, 1]  # two-unit softmax: probability of class 1 (tumour)
        y_prob = y_prob.reshape(-1)
    elif y_prob.ndim != 2:
        raise DataError(f"multiclass probabilities must have shape (n, classes), got {y_prob.shape}")
    if len(y_true) == 0 or len(y_true) != len(y_prob):
        raise DataError(f"got {len(y_true)} labels and {len(y_prob)} predictions: they must match and not be empty")
    if not np.all(np.isfinite(y_prob)) or y_prob.min() < 0 or y_prob.max() > 1:
        raise DataError("predictions must be probabilities in [0, 1] (apply the sigmoid/softmax first)")
    n_classes = 2 if task == "binary" else y_prob.shape[1]
    if not np.array_equal(y_true, y_true.astype(int)) or y_true.min() < 0 or y_true.max() >= n_classes:
        raise DataError(f"labels must be integers 0..{n_classes - 1} for the {task} task")
    return y_true.astype(int), y_prob


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int, counts: np.ndarray) -> np.ndarray:
    """Confusion matrices (B, k, k) of B resamples given as item counts (B, n)."""
    onehot = np.zeros((len(y_true), k * k))
    onehot[np.arange(len(y_true)), y_true * k + y_pred] = 1.0
    return (counts @ onehot).reshape(-1, k, k)


def _auc(scores: np.ndarray, positive: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC (Mann-Whitney, ties count 1/2, as sklearn) of B resamples given as counts (B, n)."""
    order = np.argsort(scores, kind="stable")
    starts = np.r_[0, np.nonzero(np.diff(scores[order]))[0] + 1]  # one bin per distinct score (ties)
    sorted_counts = counts[:, order]
    pos = np.add.reduceat(sorted_counts * positive[order], starts, axis=1)
    neg = np.add.reduceat(sorted_counts * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def _metrics(cms: np.ndarray, auc: np.ndarray, task: str) -> dict[str, np.ndarray]:
    """Every metric from confusion matrices (B, k, k); nan where undefined."""
    diag = np.diagonal(cms, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = diag / cms.sum(axis=2)
        precision = diag / cms.sum(axis=1)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        f1 = np.where(np.isnan(recall), np.nan, f1)
        out = {"accuracy": diag.sum(axis=1) / cms.sum(axis=(1, 2)),
               "balanced_accuracy": np.nanmean(np.where(np.isnan(recall), np.nan, recall), axis=1),
               "macro_f1": np.nanmean(f1, axis=1), "roc_auc": auc,
               "precision": precision, "recall": recall, "f1": f1}
    if task == "binary":
        out["sensitivity"], out["specificity"] = recall[:, 1], recall[:, 0]
    return out


def _summary(point: float, boot: np.ndarray) -> dict:
    """{"value", "ci"} with a 95% percentile interval; None where undefined."""
    boot = boot[np.isfinite(boot)]
    ci = [float(v) for v in np.percentile(boot, [2.5, 97.5])] if len(boot) else [None, None]
    return {"value": float(point) if np.isfinite(point) else None, "ci": ci}


def metrics_from_predictions(y_true, y_prob, task: str = "binary", n_boot: int = 1000, seed: int = 0,
                             class_names: Sequence[str] | None = None, threshold: float = 0.5,
                             split: str = "test", dataset: str = "sartaj") -> dict:
    """All metrics with 95% bootstrap CIs from labels and predicted probabilities (NumPy only).

    Binary: ``y_prob`` is P(tumour) (label 1 = tumour = positive), predicted 1 when >= ``threshold``.
    Multiclass: ``y_prob`` is (n, K) and the prediction is the arg-max; ROC-AUC is macro one-vs-rest.
    """
    from brainxpert_utils.datasets import task_labels
    from brainxpert_utils.synthetic import is_synthetic

    y_true, y_prob = _check_inputs(y_true, y_prob, task)
    k = 2 if task == "binary" else y_prob.shape[1]
    names = list(class_names) if class_names is not None else task_labels(task)
    if len(names) != k:
        raise DataError(f"{len(names)} class names given for {k} classes")
    y_pred = (y_prob >= threshold).astype(int) if task == "binary" else y_prob.argmax(axis=1)
    n = len(y_true)
    rng = np.random.default_rng(seed)
    counts = np.vstack([np.ones(n)] + [np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)])
    cms = _confusion(y_true, y_pred, k, counts)
    if task == "binary":
        auc = _auc(y_prob, y_true == 1, counts)
    else:
        auc = np.nanmean([_auc(y_prob[:, c], y_true == c, counts) for c in range(k)], axis=0) \
            if all((y_true == c).any() for c in range(k)) else np.full(len(counts), np.nan)
    values = _metrics(cms, auc, task)
    result = {"split": split, "dataset": dataset, "task": task, "n": int(n), "class_names": names,
              "synthetic": is_synthetic(dataset), "n_boot": int(n_boot), "seed": int(seed),
              "threshold": float(threshold) if task == "binary" else None}
    for name in SCALAR_METRICS:
        if name in values:
            result[name] = _summary(values[name][0], values[name][1:])
    result["per_class"] = {
        cls: {**{m: _summary(values[m][0, c], values[m][1:, c]) for m in ("precision", "recall", "f1")},
              "support": int((y_true == c).sum())} for c, cls in enumerate(names)}
    result["confusion_matrix"] = cms[0].astype(int).tolist()
    result["predictions"] = {"y_true": y_true.tolist(), "y_prob": y_prob.tolist()}
    return result


def predict_dataset(model, data) -> tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_prob)`` of a model on a tf.data dataset of (images, labels) or an (x, y) pair.

    Labels and predictions come from the same pass over the data, so a shuffling dataset stays aligned.
    """
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        return np.asarray(y).reshape(-1), np.asarray(model.predict(np.asarray(x), verbose=0))
    labels, probs = [], []
    for batch in data:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError("the dataset must yield (images, labels) pairs, e.g. pipeline.make_dataset(...)")
        labels.append(np.asarray(batch[1]).reshape(-1))
        probs.append(np.asarray(model.predict_on_batch(batch[0])))
    if not labels:
        raise DataError("the dataset is empty: check the split name and the split CSV")
    return np.concatenate(labels), np.concatenate(probs)


def evaluate(model_or_probs, data=None, split: str = "test", dataset: str = "sartaj", task: str = "binary",
             n_boot: int = 1000, seed: int = 0, class_names: Sequence[str] | None = None,
             threshold: float = 0.5) -> dict:
    """Metrics with 95% bootstrap CIs on a named split.

    ``model_or_probs`` is a Keras model (then ``data`` is a tf.data dataset of (images, labels) or an
    (x, y) pair) or a precomputed ``(y_true, y_prob)`` pair (then ``data`` is None).
    """
    if isinstance(model_or_probs, (tuple, list)) and len(model_or_probs) == 2:
        y_true, y_prob = model_or_probs
    elif data is None:
        raise DataError("pass the data to evaluate the model on (a tf.data dataset or (x, y)), "
                        "or pass (y_true, y_prob) instead of a model")
    else:
        y_true, y_prob = predict_dataset(model_or_probs, data)
    return metrics_from_predictions(y_true, y_prob, task=task, n_boot=n_boot, seed=seed,
                                    class_names=class_names, threshold=threshold, split=split, dataset=dataset)


def _median_ms_per_image(model, batch: np.ndarray, repeats: int) -> float:
    model.predict_on_batch(batch)  # warm-up: tracing and first allocations are not inference time
    model.predict_on_batch(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times) / len(batch) * 1000.0)


def efficiency(model, input_shape: Sequence[int] | None = None, saved_path: str | os.PathLike | None = None,
               repeats: int = 5, batch_sizes: Sequence[int] = (1, 32), training_time: float | None = None) -> dict:
    """Parameters, size on disk of the ``.keras`` file, and inference ms per image on this machine.

    Without ``saved_path`` the model is saved to a temporary file to measure its size. Timings are the
    median of ``repeats`` calls after a warm-up, on random [0, 255] images of ``input_shape``.
    """
    import keras

    shape = tuple(input_shape) if input_shape is not None else tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise DataError(f"input shape {shape} has unknown sizes: pass input_shape=(height, width, channels)")
    if saved_path is not None and os.path.isfile(saved_path):
        size = os.path.getsize(saved_path)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
            size = os.path.getsize(path)
    rng = np.random.default_rng(0)
    result = {"params_total": int(model.count_params()),
              "params_trainable": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
              "size_bytes": int(size), "size_mb": round(size / 2**20, 3), "repeats": int(repeats),
              "input_shape": list(shape)}
    for b in batch_sizes:
        batch = rng.uniform(0, 255, size=(b, *shape)).astype("float32")
        result[f"ms_per_image_batch{b}"] = round(_median_ms_per_image(model, batch, repeats), 3)
    if training_time is not None:
        result["training_time_s"] = round(float(training_time), 1)
    result["machine"] = {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                         "python": platform.python_version(), "keras": keras.__version__}
    return result


def format_metric(value, ci: Sequence[float | None] | None = None, digits: int = 3) -> str:
    """``"0.953 [0.93, 0.97]"``; accepts a value and its CI, or a ``{"value", "ci"}`` result entry."""
    if isinstance(value, dict):
        value, ci = value.get("value"), value.get("ci")
    if value is None or not np.isfinite(value):
        return "n/a"
    text = f"{value:.{digits}f}"
    if ci is not None and all(c is not None and np.isfinite(c) for c in ci):
        text += f" [{ci[0]:.{digits - 1}f}, {ci[1]:.{digits - 1}f}]"
    return text


_EFFICIENCY_COLUMNS = {"params_total": "params", "params_trainable": "trainable params", "size_mb": "size (MB)",
                       "ms_per_image_batch1": "ms/image (batch 1)", "ms_per_image_batch32": "ms/image (batch 32)",
                       "training_time_s": "training time (s)"}


def comparison_table(results: dict[str, dict], allow_mixed: bool = False):
    """A pandas DataFrame: one row per model, metrics as ``"value [low, high]"``, then efficiency.

    ``results[name]`` is an evaluate() result, optionally with an ``"efficiency"`` entry (efficiency()'s
    dict). Results measured on different splits/datasets/tasks raise DataError unless ``allow_mixed``.
    """
    import pandas as pd

    if not results:
        raise DataError("no results to compare: pass {model name: evaluate(...) result}")
    where = {(r.get("dataset"), r.get("split"), r.get("task"), r.get("n")) for r in results.values()}
    if len(where) > 1 and not allow_mixed:
        raise DataError(f"these results were measured on different test sets {sorted(map(str, where))}; "
                        "compare models on the same split (or pass allow_mixed=True and say so)")
    rows = {}
    for name, result in results.items():
        row = {metric: format_metric(result[metric]) for metric in SCALAR_METRICS if metric in result}
        for key, column in _EFFICIENCY_COLUMNS.items():
            if key in result.get("efficiency", {}):
                row[column] = result["efficiency"][key]
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    first = next(iter(results.values()))
    table.attrs.update({"dataset": first.get("dataset"), "split": first.get("split"), "n": first.get("n"),
                        "task": first.get("task")})
    return table


def worst_mistakes(y_true, y_prob, paths: Sequence[str], k: int = 8, task: str | None = None,
                   class_names: Sequence[str] | None = None, threshold: float = 0.5):
    """The ``k`` wrong predictions made with the most confidence, as a DataFrame sorted worst first.

    Columns: path, true, predicted (class names), confidence (probability of the predicted class),
    prob_true (probability given to the true class).
    """
    import pandas as pd

    from brainxpert_utils.datasets import task_labels

    task = task or ("binary" if np.ndim(y_prob) == 1 or np.shape(y_prob)[-1] == 1 else "multiclass")
    y_true, y_prob = _check_inputs(y_true, y_prob, task)
    if len(paths) != len(y_true):
        raise DataError(f"{len(paths)} paths for {len(y_true)} predictions: pass one path per image")
    probs = np.stack([1 - y_prob, y_prob], axis=1) if task == "binary" else y_prob
    y_pred = (y_prob >= threshold).astype(int) if task == "binary" else probs.argmax(axis=1)
    names = list(class_names) if class_names is not None else task_labels(task)
    rows = [{"path": str(paths[i]), "true": names[y_true[i]], "predicted": names[y_pred[i]],
             "confidence": float(probs[i, y_pred[i]]), "prob_true": float(probs[i, y_true[i]])}
            for i in np.nonzero(y_pred != y_true)[0]]
    table = pd.DataFrame(rows, columns=["path", "true", "predicted", "confidence", "prob_true"])
    return table.sort_values("prob_true", kind="stable").head(k).reset_index(drop=True)
