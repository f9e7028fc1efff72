"""Figures: the right panels, titles naming dataset and split, SYNTHETIC when the data is synthetic."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from brainxpert_utils import evaluation, plots
from brainxpert_utils.errors import DataError
from brainxpert_utils.synthetic import SYNTHETIC_TITLE, make_phantom


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _result(seed=0, n=120, task="binary", dataset="sartaj", shift=0.3):
    rng = np.random.default_rng(seed)
    if task == "binary":
        y = rng.integers(0, 2, n)
        p = np.clip(shift * y + rng.uniform(0, 1 - shift, n), 0, 1)
    else:
        y = rng.integers(0, 4, n)
        logits = rng.normal(size=(n, 4)) + 2 * np.eye(4)[y]
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return evaluation.metrics_from_predictions(y, p, task, n_boot=50, dataset=dataset, split="test")


def _titles(fig):
    return [fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in fig.axes]


def test_titles_name_dataset_split_and_synthetic():
    assert plots.make_title("ROC", "sartaj", "test") == "ROC — sartaj, test split"
    tagged = plots.make_title("ROC", "synthetic", "val")
    assert tagged.startswith(SYNTHETIC_TITLE) and "val split" in tagged
    assert plots.make_title("x", "synthetic", title="My own title").startswith(SYNTHETIC_TITLE)


def test_confusion_matrix_counts_and_normalised():
    result = _result(task="multiclass")
    fig = plots.confusion_matrix(result)
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["counts", "row-normalised"]
    assert "sartaj, test split" in fig._suptitle.get_text() and "n=120" in fig._suptitle.get_text()
    counts = [int(t.get_text()) for t in fig.axes[0].texts]
    assert counts == np.asarray(result["confusion_matrix"]).ravel().tolist()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == result["class_names"]
    single = plots.confusion_matrix([[5, 1], [2, 7]], ["no", "yes"], dataset="synthetic", normalize="counts")
    assert len(single.axes) == 1 and SYNTHETIC_TITLE in single._suptitle.get_text()


def test_roc_curves_one_line_per_model_with_auc():
    a, b = _result(0), _result(1, shift=0.5)
    fig = plots.roc_curves({"cnn": a, "mobilenet": b})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(ax.lines) == 3 and labels[-1] == "chance"
    assert labels[0] == f"cnn: AUC {evaluation.format_metric(a['roc_auc'])}"
    assert "test split" in ax.get_title()
    multi = plots.roc_curves(_result(task="multiclass", dataset="synthetic"))
    assert len(multi.axes[0].lines) == 2 and multi.axes[0].get_title().startswith(SYNTHETIC_TITLE)
    fig2, given = plt.subplots()
    assert plots.roc_curves(a, ax=given) is fig2
    with pytest.raises(DataError, match="no predictions"):
        plots.roc_curves({"old": {k: v for k, v in a.items() if k != "predictions"}})


def test_training_curves_from_history_dict():
    history = {"loss": [0.9, 0.5, 0.4], "val_loss": [1.0, 0.6, 0.7],
               "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.5, 0.6, 0.65]}
    fig = plots.training_curves(history, dataset="sartaj")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert len(fig.axes[0].lines) == 3  # train, validation, best epoch marker
    assert any("epoch 2" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    only_loss = plots.training_curves({"loss": [1.0, 0.5]})
    assert len(only_loss.axes) == 1


def test_image_grids_mistakes_and_pairs():
    images = {name: [make_phantom(48, name, rng=i)[0] for i in range(3)]
              for name in ("glioma_tumor", "no_tumor")}
    fig = plots.image_grid(images, dataset="synthetic", split="train")
    assert len(fig.axes) == 6 and fig.axes[3].get_title() == "no_tumor"
    assert fig._suptitle.get_text().startswith(SYNTHETIC_TITLE)
    flat = plots.image_grid(images["no_tumor"] * 3, ncols=4)
    assert len(flat.axes) == 12  # 9 images in a 3x4 grid, 3 blank
    table = evaluation.worst_mistakes([1, 0, 1], [0.1, 0.8, 0.9], ["a", "b", "c"], k=4)
    mistakes = plots.mistakes_grid([images["no_tumor"][0]] * len(table), table, dataset="sartaj", split="test")
    assert "true: tumour" in mistakes.axes[0].get_title() and "(0.90)" in mistakes.axes[0].get_title()
    assert "Most confident mistakes — sartaj, test split" in mistakes._suptitle.get_text()
    pairs = plots.image_pairs([(images["no_tumor"][0], images["no_tumor"][1])] * 2,
                              labels=[("train/a.jpg", "test/b.jpg")] * 2)
    assert len(pairs.axes) == 4 and pairs.axes[1].get_title() == "test/b.jpg"


def test_grad_cam_grid_shows_original_and_overlay():
    images = [np.repeat(make_phantom(48, "pituitary_tumor", rng=i)[0][..., None], 3, -1) for i in range(3)]
    heat = [np.random.default_rng(i).uniform(size=(6, 6)) for i in range(3)]
    fig = plots.grad_cam_grid(images, heat, titles=["p=0.9"] * 3, ncols=3, dataset="sartaj", split="test")
    assert len(fig.axes) == 6 and fig.axes[0].get_title() == "p=0.9"
    shown = fig.axes[3].images[0].get_array()
    assert shown.shape == (48, 48, 3)  # the overlay, resized heat map in colour
    only = plots.grad_cam_grid(images, heat, show_original=False, ncols=2)
    assert len(only.axes) == 4


def test_metric_comparison_bars_with_ci():
    a, b = _result(0), _result(1, shift=0.5)
    fig = plots.metric_comparison({"cnn": a, "mobilenet": b})
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 5 and len(ax.get_legend().get_texts()) == 2
    assert ax.patches[0].get_height() == pytest.approx(a["accuracy"]["value"])
    assert "Model comparison (n=120) — sartaj, test split" in ax.get_title()


def test_class_balance_per_split():
    split = pd.DataFrame({"label": ["a"] * 5 + ["b"] * 3 + ["b"],
                          "split": ["train"] * 3 + ["test", "val"] + ["train", "train", "test", "excluded"]})
    fig = plots.class_balance(split, dataset="sartaj")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val", "test"]
    assert sorted(p.get_height() for p in ax.patches) == [0, 1, 1, 1, 2, 3]
    assert "8 images" in ax.get_title()
    assert len(plots.class_balance({"no": 98, "yes": 155}).axes[0].patches) == 2
