"""Hidden tests of notebook 05 (never copied to notebooks/). ns: the executed notebook's globals."""

import numpy as np
import pandas as pd

EXERCISES = {
    "05.1": {"points": 2, "title": "recall per class from a confusion matrix"},
    "05.2": {"points": 1, "title": "tumour probability from 4-class probabilities"},
    "05.3": {"points": 2, "title": "remove the cross-dataset duplicates"},
}


def test_05_1(ns):
    per_class_recall = ns["per_class_recall"]
    cm = np.array([[5, 0, 0, 5], [2, 6, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    got = per_class_recall(cm)
    assert got is not None, "the function returned None: end it with `return ...`"
    got = np.asarray(got, dtype=float)
    want = np.array([0.5, 0.75, 0.0, 0.25])
    assert got.shape == want.shape, f"expected one recall per class, shape {want.shape}, got {got.shape}"
    assert np.all(np.isfinite(got)), "a class without images must give 0.0, not NaN or inf"
    assert np.allclose(got, want), f"expected {want.tolist()} (diagonal / row sums), got {np.round(got, 3).tolist()}"


def test_05_2(ns):
    tumour_probability = ns["tumour_probability"]
    probs = np.array([[0.1, 0.1, 0.7, 0.1], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 1.0], [0.3, 0.3, 0.4, 0.0]])
    got = tumour_probability(probs)
    assert got is not None, "the function returned None: end it with `return ...`"
    got = np.asarray(got, dtype=float).reshape(-1)
    want = np.array([0.3, 0.75, 1.0, 0.6])
    assert np.allclose(got, want), f"expected {want.tolist()} (1 - P(no_tumor), column 2), got {np.round(got, 3).tolist()}"


def test_05_3(ns):
    remove_overlap = ns["remove_overlap"]
    groups = pd.DataFrame({
        "group": [7, 7, 7, 8, 9, 9, 3],
        "dataset": ["navoneel", "navoneel", "sartaj", "navoneel", "sartaj", "sartaj", "navoneel"],
        "relative_path": ["n/a", "n/b", "s/x", "n/c", "s/y", "s/z", "n/d"],
    })
    got = remove_overlap(["n/d", "n/a", "n/c", "n/e", "n/b"], groups)
    assert got is not None, "the function returned None: end it with `return ...`"
    got = list(got.tolist() if hasattr(got, "tolist") else got)
    assert got == ["n/d", "n/c", "n/e"], (
        f"expected ['n/d', 'n/c', 'n/e'] (drop the files of group 7, which holds a sartaj image; keep the order), got {got}")
