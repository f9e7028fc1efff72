"""Evaluation: metric values against scikit-learn, bootstrap CIs, input checks, efficiency, tables."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from sklearn import metrics as skm

from brainxpert_utils import evaluation
from brainxpert_utils.errors import DataError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _binary(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1).round(2)  # rounded: ties in the scores
    return y, p


def _multiclass(n=240, k=4, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, p


def test_binary_values_match_sklearn():
    y, p = _binary()
    r = evaluation.metrics_from_predictions(y, p, "binary", n_boot=200, split="test", dataset="sartaj")
    pred = (p >= 0.5).astype(int)
    assert r["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, pred))
    assert r["balanced_accuracy"]["value"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert r["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(y, p))
    assert r["sensitivity"]["value"] == pytest.approx(skm.recall_score(y, pred, pos_label=1))
    assert r["specificity"]["value"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    assert r["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, pred)
    for c, name in enumerate(["no tumour", "tumour"]):
        entry = r["per_class"][name]
        assert entry["precision"]["value"] == pytest.approx(precision[c])
        assert entry["recall"]["value"] == pytest.approx(recall[c])
        assert entry["f1"]["value"] == pytest.approx(f1[c])
        assert entry["support"] == support[c]
    assert r["macro_f1"]["value"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert (r["split"], r["dataset"], r["task"], r["n"]) == ("test", "sartaj", "binary", 200)
    assert r["class_names"] == ["no tumour", "tumour"] and r["synthetic"] is False


def test_multiclass_values_match_sklearn():
    y, p = _multiclass()
    r = evaluation.metrics_from_predictions(y, p, "multiclass", n_boot=100)
    pred = p.argmax(axis=1)
    assert r["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, pred))
    assert r["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert r["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert r["class_names"] == ["glioma", "meningioma", "no tumour", "pituitary"]
    assert "sensitivity" not in r and len(r["per_class"]) == 4


def test_bootstrap_ci_equals_a_plain_loop_and_is_seeded():
    y, p = _binary(n=120)
    n_boot = 150
    r = evaluation.metrics_from_predictions(y, p, "binary", n_boot=n_boot, seed=3)
    rng = np.random.default_rng(3)
    accs, aucs = [], []
    for _ in range(n_boot):  # the slow, obvious version of the same resamples
        idx = rng.integers(0, len(y), len(y))
        accs.append(skm.accuracy_score(y[idx], p[idx] >= 0.5))
        aucs.append(skm.roc_auc_score(y[idx], p[idx]))
    assert r["accuracy"]["ci"] == pytest.approx(list(np.percentile(accs, [2.5, 97.5])))
    assert r["roc_auc"]["ci"] == pytest.approx(list(np.percentile(aucs, [2.5, 97.5])))
    again = evaluation.metrics_from_predictions(y, p, "binary", n_boot=n_boot, seed=3)
    assert again["accuracy"] == r["accuracy"]
    low, high = r["accuracy"]["ci"]
    assert low < r["accuracy"]["value"] < high


def test_ci_narrows_with_more_test_items():
    width = {}
    for n in (50, 800):
        y, p = _binary(n=n, seed=5)
        ci = evaluation.metrics_from_predictions(y, p, "binary", n_boot=300)["accuracy"]["ci"]
        width[n] = ci[1] - ci[0]
    assert width[800] < width[50] / 2.5  # ~ 1/sqrt(n): 4x narrower in theory


def test_result_is_json_and_undefined_metrics_are_none():
    y = np.zeros(30, dtype=int)  # no tumour at all: sensitivity and AUC are undefined
    p = np.linspace(0, 0.9, 30)
    r = evaluation.metrics_from_predictions(y, p, "binary", n_boot=50, dataset="synthetic", split="val")
    text = json.dumps(r, allow_nan=False)
    assert json.loads(text)["split"] == "val"
    assert r["sensitivity"] == {"value": None, "ci": [None, None]} and r["roc_auc"]["value"] is None
    assert r["specificity"]["value"] == pytest.approx((p < 0.5).mean()) and r["synthetic"] is True


@pytest.mark.parametrize("y, p, task, match", [
    ([0, 1], [0.2], "binary", "must match"),
    ([0, 1], [0.2, 1.7], "binary", r"\[0, 1\]"),
    ([0, 2], [0.2, 0.7], "binary", "integers 0..1"),
    ([0, 1], [0.2, 0.7], "regression", "unknown task"),
    ([0, 1], [0.2, 0.7], "multiclass", "shape"),
])
def test_bad_inputs_raise_clear_errors(y, p, task, match):
    with pytest.raises(DataError, match=match):
        evaluation.metrics_from_predictions(y, p, task, n_boot=10)


def test_two_unit_softmax_is_read_as_binary():
    y, p = _binary(n=60)
    two = np.stack([1 - p, p], axis=1)
    r1 = evaluation.metrics_from_predictions(y, p, "binary", n_boot=20)
    r2 = evaluation.metrics_from_predictions(y, two, "binary", n_boot=20)
    assert r1["roc_auc"] == r2["roc_auc"]


@pytest.fixture(scope="module")
def mean_model():
    """A deterministic 'classifier': P(tumour) = sigmoid of the centred mean pixel."""
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255.0, offset=-0.5)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", kernel_initializer=keras.initializers.Constant(10.0))(x)
    return keras.Model(inputs, outputs)


def test_evaluate_model_on_arrays_and_shuffled_dataset(mean_model):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = (rng.uniform(0, 200, (64, 8, 8, 1)) + 55 * y[:, None, None, None]).astype("float32")
    from_arrays = evaluation.evaluate(mean_model, (x, y), n_boot=50)
    probs = mean_model.predict(x, verbose=0)
    from_probs = evaluation.evaluate((y, probs), n_boot=50)
    assert from_arrays["accuracy"] == from_probs["accuracy"]
    assert from_arrays["accuracy"]["value"] > 0.7  # the model does carry signal
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=1, reshuffle_each_iteration=True).batch(10)
    from_ds = evaluation.evaluate(mean_model, ds, n_boot=50)
    assert from_ds["accuracy"]["value"] == pytest.approx(from_arrays["accuracy"]["value"])
    assert from_ds["roc_auc"]["value"] == pytest.approx(from_arrays["roc_auc"]["value"])
    with pytest.raises(DataError, match="pass the data"):
        evaluation.evaluate(mean_model)


def test_efficiency_reports_params_size_and_speed(mean_model, tmp_path):
    eff = evaluation.efficiency(mean_model, repeats=2, training_time=12.345)
    assert eff["params_total"] == 2 and eff["params_trainable"] == 2
    assert eff["size_bytes"] > 1000 and eff["input_shape"] == [8, 8, 1]
    assert 0 < eff["ms_per_image_batch32"] and 0 < eff["ms_per_image_batch1"]
    assert eff["training_time_s"] == 12.3 and eff["machine"]["cpu_count"] >= 1
    path = tmp_path / "m.keras"
    mean_model.save(path)
    assert evaluation.efficiency(mean_model, saved_path=path, repeats=1)["size_bytes"] == path.stat().st_size
    json.dumps(eff)


def test_format_metric_and_comparison_table():
    assert evaluation.format_metric(0.953, (0.93, 0.97)) == "0.953 [0.93, 0.97]"
    assert evaluation.format_metric({"value": 0.5, "ci": [None, None]}) == "0.500"
    assert evaluation.format_metric(None) == "n/a"
    y, p = _binary(n=100)
    a = evaluation.metrics_from_predictions(y, p, "binary", n_boot=30)
    b = evaluation.metrics_from_predictions(y, np.clip(p + 0.1, 0, 1), "binary", n_boot=30)
    b["efficiency"] = {"params_total": 1234, "size_mb": 0.5, "ms_per_image_batch1": 3.0}
    table = evaluation.comparison_table({"cnn": a, "mobilenet": b})
    assert list(table.index) == ["cnn", "mobilenet"]
    assert table.loc["cnn", "accuracy"] == evaluation.format_metric(a["accuracy"])
    assert table.loc["mobilenet", "params"] == 1234 and "ms/image (batch 1)" in table.columns
    assert table.attrs["split"] == "test" and table.attrs["n"] == 100
    c = evaluation.metrics_from_predictions(y[:50], p[:50], "binary", n_boot=30)
    with pytest.raises(DataError, match="different test sets"):
        evaluation.comparison_table({"cnn": a, "other": c})
    assert len(evaluation.comparison_table({"cnn": a, "other": c}, allow_mixed=True)) == 2


def test_worst_mistakes_sorted_by_confidence():
    y = np.array([1, 0, 1, 0, 1])
    p = np.array([0.9, 0.95, 0.2, 0.6, 0.45])
    table = evaluation.worst_mistakes(y, p, [f"img{i}.jpg" for i in range(5)], k=3)
    assert list(table["path"]) == ["img1.jpg", "img2.jpg", "img3.jpg"]
    assert table.loc[0, "true"] == "no tumour" and table.loc[0, "predicted"] == "tumour"
    assert table.loc[0, "confidence"] == pytest.approx(0.95)
    y4, p4 = _multiclass(n=40)
    multi = evaluation.worst_mistakes(y4, p4, [str(i) for i in range(40)], k=5)
    assert len(multi) == min(5, int((p4.argmax(1) != y4).sum()))
    assert (multi["prob_true"].diff().dropna() >= 0).all()
    with pytest.raises(DataError, match="one path per image"):
        evaluation.worst_mistakes(y, p, ["a"], k=2)
