"""Every figure the notebooks show, in one place for one style.

Each function returns the matplotlib Figure and takes an optional ``title`` (and ``ax`` where it draws
a single panel). Titles name the dataset and split the figure was measured on, and start with
"SYNTHETIC PHANTOMS — not MRI" whenever the data is synthetic, even with a custom title.
Functions that take evaluate() results read the split, dataset and predictions from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from brainxpert_utils.errors import DataError
from brainxpert_utils.synthetic import title_tag

DPI = 90
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")
STYLE = {"figure.dpi": DPI, "savefig.dpi": DPI, "axes.spines.top": False, "axes.spines.right": False,
         "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
         "legend.fontsize": 8, "figure.titlesize": 11}
plt.rcParams.update(STYLE)


def make_title(what: str, dataset: str | None = None, split: str | None = None, title: str | None = None) -> str:
    """``"<what> — <dataset>, <split> split"`` (or ``title``), prefixed with the SYNTHETIC tag if needed."""
    text = title or " — ".join(filter(None, [what, ", ".join(filter(None, [dataset, split and f"{split} split"]))]))
    tag = title_tag(dataset)
    return f"{tag}\n{text}" if tag and tag not in text else text


def _figure(ax=None, ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (4.5, 3.6)):
    """(figure, axes): a new figure sized per panel, or the figure that owns ``ax``."""
    if ax is not None:
        return ax.figure, ax
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False,
                             layout="constrained")
    return fig, axes.ravel() if nrows * ncols > 1 else axes[0, 0]


def _show(ax, image, cmap: str = "gray") -> None:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image.astype("uint8") if image.ndim == 3 else image, cmap=cmap, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n: int, ncols: int, size: float = 1.9):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.5), squeeze=False,
                             layout="constrained")
    for extra in axes.ravel()[n:]:
        extra.axis("off")
    return fig, axes.ravel()


def confusion_matrix(result_or_cm, class_names: Sequence[str] | None = None, dataset: str | None = None,
                     split: str | None = None, title: str | None = None, normalize: str = "both"):
    """Confusion matrix from an evaluate() result (or a matrix): counts, row-normalised, or "both" panels.

    Rows are the true class, columns the prediction; row-normalised cells are recall per class.
    """
    import seaborn as sns

    if isinstance(result_or_cm, Mapping):
        cm = np.asarray(result_or_cm["confusion_matrix"])
        class_names = class_names or result_or_cm["class_names"]
        dataset, split = dataset or result_or_cm.get("dataset"), split or result_or_cm.get("split")
    else:
        cm = np.asarray(result_or_cm)
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(cm))]
    kinds = ["counts", "row-normalised"] if normalize == "both" else [normalize]
    fig, axes = _figure(ncols=len(kinds), size=(1.3 * len(names) + 2.2, 1.1 * len(names) + 1.4))
    for ax, kind in zip(np.atleast_1d(axes), kinds):
        if kind == "counts":
            sns.heatmap(cm, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax, xticklabels=names, yticklabels=names)
        else:
            rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
            sns.heatmap(rows, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="Blues", cbar=False, ax=ax,
                        xticklabels=names, yticklabels=names)
        ax.set(xlabel="predicted", ylabel="true", title=kind)
        ax.tick_params(axis="y", rotation=0)
    fig.suptitle(make_title(f"Confusion matrix (n={int(cm.sum())})", dataset, split, title))
    return fig


def _roc_points(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve; multiclass: macro average of the one-vs-rest curves on a common grid."""
    from sklearn.metrics import roc_curve

    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    if y_prob.ndim == 1 or y_prob.shape[1] == 1:
        fpr, tpr, _ = roc_curve(y_true, y_prob.reshape(-1))
        return fpr, tpr
    grid = np.linspace(0, 1, 201)
    curves = [np.interp(grid, *roc_curve(y_true == c, y_prob[:, c])[:2]) for c in range(y_prob.shape[1])
              if (y_true == c).any() and (y_true != c).any()]
    return grid, np.mean(curves, axis=0)


def roc_curves(results: Mapping[str, dict] | dict, title: str | None = None, ax=None):
    """ROC curve of one evaluate() result, or of several models ``{name: result}`` on one axes.

    The legend gives each AUC with its 95% CI. Multiclass results show the macro one-vs-rest curve.
    """
    from brainxpert_utils.evaluation import format_metric

    if "task" in results:  # a single evaluate() result
        results = {"model": results}
    fig, ax = _figure(ax, size=(4.6, 4.2))
    for i, (name, result) in enumerate(results.items()):
        if "predictions" not in result:
            raise DataError(f"result {name!r} has no predictions: make it with evaluation.evaluate(...)")
        fpr, tpr = _roc_points(result["predictions"]["y_true"], result["predictions"]["y_prob"])
        ax.plot(fpr, tpr, color=PALETTE[i % len(PALETTE)], lw=1.8,
                label=f"{name}: AUC {format_metric(result['roc_auc'])}")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)",
           xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right")
    first = next(iter(results.values()))
    ax.set_title(make_title(f"ROC ({first['task']})", first.get("dataset"), first.get("split"), title))
    return fig


def training_curves(history, dataset: str | None = None, title: str | None = None):
    """Loss and accuracy per epoch, train vs validation, from a history dict (or keras History /
    an object with a ``history`` dict); the best validation-loss epoch is marked."""
    history = getattr(history, "history", history)
    metric = next((k for k in ("accuracy", "binary_accuracy", "acc", "sparse_categorical_accuracy")
                   if k in history), None)
    keys = ["loss"] + ([metric] if metric else [])
    fig, axes = _figure(ncols=len(keys), size=(4.2, 3.2))
    best = int(np.argmin(history["val_loss"])) + 1 if "val_loss" in history else None
    for ax, key in zip(np.atleast_1d(axes), keys):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], "o-", ms=3, color=PALETTE[0], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "o-", ms=3, color=PALETTE[1], label="validation")
        if best:
            ax.axvline(best, color="grey", ls=":", lw=1, label=f"best val loss (epoch {best})")
        ax.set(xlabel="epoch", ylabel=key, title=key)
        ax.legend()
    fig.suptitle(make_title("Training curves", dataset, None, title))
    return fig


def image_grid(images, titles: Sequence[str] | None = None, ncols: int = 6, dataset: str | None = None,
               split: str | None = None, title: str | None = None):
    """A grid of images; ``images`` may be ``{class name: [images]}`` (one row per class)."""
    if isinstance(images, Mapping):
        ncols = max(len(v) for v in images.values())
        flat, titles = [], []
        for name, row in images.items():
            flat += list(row) + [None] * (ncols - len(row))
            titles += [name] * len(row) + [""] * (ncols - len(row))
        images = flat
    fig, axes = _grid(len(images), ncols)
    for i, (ax, image) in enumerate(zip(axes, images)):
        if image is None:
            ax.axis("off")
            continue
        _show(ax, image)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.suptitle(make_title("Sample images", dataset, split, title))
    return fig


def mistakes_grid(images, mistakes, ncols: int = 4, dataset: str | None = None, split: str | None = None,
                  title: str | None = None):
    """The worst mistakes (evaluation.worst_mistakes table, one image per row of it): true class,
    predicted class and the model's confidence above each image."""
    fig, axes = _grid(max(len(images), 1), ncols, size=2.3)
    for ax, image, row in zip(axes, images, mistakes.itertuples()):
        _show(ax, image)
        ax.set_title(f"true: {row.true}\npred: {row.predicted} ({row.confidence:.2f})", fontsize=8,
                     color=PALETTE[1])
    if len(images) == 0:
        axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
        axes[0].axis("off")
    fig.suptitle(make_title("Most confident mistakes", dataset, split, title))
    return fig


def image_pairs(pairs: Sequence[tuple], labels: Sequence[tuple[str, str]] | None = None,
                dataset: str | None = None, title: str | None = None):
    """Pairs side by side (e.g. duplicates leaking between train and test): one row per pair."""
    fig, axes = plt.subplots(len(pairs), 2, figsize=(4.4, 2.3 * len(pairs) + 0.5), squeeze=False,
                             layout="constrained")
    for row, (a, b) in enumerate(pairs):
        for col, image in enumerate((a, b)):
            _show(axes[row, col], image)
            if labels is not None:
                axes[row, col].set_title(labels[row][col], fontsize=8)
    fig.suptitle(make_title("Image pairs", dataset, None, title))
    return fig


def grad_cam_grid(images, heatmaps, titles: Sequence[str] | None = None, ncols: int = 4, alpha: float = 0.4,
                  show_original: bool = True, dataset: str | None = None, split: str | None = None,
                  title: str | None = None):
    """Grad-CAM overlays (interpret.overlay); with ``show_original`` each image sits above its overlay."""
    from brainxpert_utils.interpret import overlay

    n = len(images)
    ncols = max(1, min(ncols, n))
    blocks = int(np.ceil(n / ncols))
    rows = blocks * (2 if show_original else 1)
    fig, axes = plt.subplots(rows, ncols, figsize=(2.2 * ncols, 2.2 * rows + 0.5), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for i, (image, heat) in enumerate(zip(images, heatmaps)):
        block, col = divmod(i, ncols)
        top = block * (2 if show_original else 1)
        if show_original:
            _show(axes[top, col], image)
            axes[top, col].axis("on")
        _show(axes[top + show_original, col], overlay(image, heat, alpha))
        axes[top + show_original, col].axis("on")
        if titles is not None:
            axes[top, col].set_title(titles[i], fontsize=8)
    fig.suptitle(make_title("Grad-CAM", dataset, split, title))
    return fig


def metric_comparison(results: Mapping[str, dict], metrics: Sequence[str] = ("accuracy", "balanced_accuracy",
                      "sensitivity", "specificity", "roc_auc"), title: str | None = None, ax=None):
    """Grouped bars of several models' metrics with their 95% CIs as error bars."""
    first = next(iter(results.values()))
    metrics = [m for m in metrics if all(r.get(m, {}).get("value") is not None for r in results.values())]
    fig, ax = _figure(ax, size=(1.2 * len(metrics) * max(1, len(results)) / 2 + 3, 3.6))
    width = 0.8 / len(results)
    lows = []
    for i, (name, result) in enumerate(results.items()):
        values = np.array([result[m]["value"] for m in metrics])
        ci = np.array([[c if c is not None else v for c in result[m]["ci"]] for m, v in zip(metrics, values)])
        lows.append(ci[:, 0].min() if len(ci) else 0)
        x = np.arange(len(metrics)) + (i - (len(results) - 1) / 2) * width
        ax.bar(x, values, width, color=PALETTE[i % len(PALETTE)], label=name,
               yerr=[values - ci[:, 0], ci[:, 1] - values], capsize=3, error_kw={"lw": 1})
    bottom = max(0.0, np.floor(min(lows, default=0) * 10) / 10 - 0.1)
    ax.set_ylim(bottom, 1.02)
    ax.set_xticks(np.arange(len(metrics)), [m.replace("_", " ") for m in metrics])
    ax.set_ylabel("value (95% CI)" + (f"; axis starts at {bottom:.1f}" if bottom > 0 else ""))
    ax.legend(loc="lower right")
    ax.set_title(make_title(f"Model comparison (n={first.get('n')})", first.get("dataset"), first.get("split"), title))
    return fig


def class_balance(split_or_counts, dataset: str | None = None, title: str | None = None, ax=None):
    """Images per class (and per split when given a split table with ``label`` and ``split`` columns)."""
    import pandas as pd

    data = split_or_counts
    if isinstance(data, pd.DataFrame):
        data = data[data["split"] != "excluded"] if "split" in data else data
        counts = data.groupby(["label", "split"]).size().unstack(fill_value=0) if "split" in data \
            else data["label"].value_counts().sort_index().to_frame("images")
        order = [s for s in ("train", "val", "test") if s in counts.columns]
        counts = counts[order + [c for c in counts.columns if c not in order]]
    else:
        counts = pd.Series(dict(data)).to_frame("images")
    fig, ax = _figure(ax, size=(1.1 * len(counts) + 2.5, 3.4))
    counts.plot.bar(ax=ax, color=PALETTE[:counts.shape[1]], rot=0, width=0.8)
    ax.set(xlabel="class", ylabel="images")
    for container in ax.containers:
        ax.bar_label(container, fontsize=7)
    ax.set_title(make_title(f"Class balance ({int(counts.values.sum())} images)", dataset, None, title))
    return fig
