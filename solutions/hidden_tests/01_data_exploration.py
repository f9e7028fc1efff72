"""Hidden tests of notebook 01 (never copied to notebooks/). ns: the executed notebook's globals."""

import pandas as pd

EXERCISES = {
    "01.1": {"points": 2, "title": "distinct images per class"},
    "01.2": {"points": 2, "title": "test images that leak from the training set"},
    "01.3": {"points": 2, "title": "class weights for an imbalanced task"},
}


def _as_dict(value):
    assert value is not None, "the function returned None: end it with `return ...`"
    assert hasattr(value, "keys"), f"return a dict or a pandas Series, not {type(value).__name__}"
    return {key: value[key] for key in value.keys()}


def test_01_1(ns):
    count_distinct = ns["count_distinct"]
    scan_df = pd.DataFrame({
        "path": ["a/1.jpg", "a/2.jpg", "a/3.jpg", "b/1.jpg", "b/2.jpg", "b/3.jpg", "c/1.jpg", "c/2.jpg"],
        "class_name": ["a", "a", "a", "b", "b", "b", "c", "c"],
        "sha256": ["x", "x", "y", "x", "z", "w", "v", "u"],
        "ok": [True, True, True, True, True, False, True, False],
    })
    got = _as_dict(count_distinct(scan_df))
    assert {k: int(v) for k, v in got.items()} == {"a": 2, "b": 2, "c": 1}, (
        f"expected {{'a': 2, 'b': 2, 'c': 1}} (unique sha256 among decodable rows), got {got}")


def test_01_2(ns):
    find_leaks = ns["find_leaks"]
    split = pd.DataFrame({
        "relative_path": ["t1", "t2", "v1", "s1", "s2", "s3", "s4"],
        "group": [10, 11, 12, 10, 12, 13, 11],
        "split": ["train", "train", "val", "test", "test", "test", "test"],
    })
    got = find_leaks(split)
    assert got is not None, "the function returned None: end it with `return ...`"
    got = sorted(got.tolist() if hasattr(got, "tolist") else got)
    assert got == ["s1", "s4"], f"expected the test files ['s1', 's4'] (their group has a train file), got {got}"


def test_01_3(ns):
    class_weights = ns["class_weights"]
    labels = [2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    got = _as_dict(class_weights(labels))
    want = {0: 12 / 6, 1: 12 / 27, 2: 12 / 3}
    assert set(got) == set(want), f"expected one weight per label {sorted(want)}, got keys {sorted(got)}"
    for key, value in want.items():
        assert abs(float(got[key]) - value) < 1e-6, f"weight of label {key}: expected {value:.4f}, got {got[key]}"
