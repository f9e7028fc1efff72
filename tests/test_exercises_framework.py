"""The exercise-check framework and the checks of notebooks 01 and 05: one plain line, never raises."""

from __future__ import annotations

import numpy as np
import pytest

from brainxpert_utils import exercises
from brainxpert_utils.exercises import exercise_check, expect


@pytest.fixture(autouse=True)
def _fresh():
    exercises.reset()
    yield
    exercises.reset()


@exercise_check("09.1")
def check_double(double) -> str:
    expect(double(2) == 4, f"double(2) should be 4, got {double(2)!r}. Hint: multiply by 2.")
    return "doubles correctly."


def _stub(*_):
    raise NotImplementedError("Exercise 09.1: double it - replace this line with your code")


@pytest.mark.parametrize("func, ok, line", [
    (lambda x: 2 * x, True, "✅ Exercise 09.1: doubles correctly.\n"),
    (lambda x: x + 1, False, "❌ Exercise 09.1: double(2) should be 4, got 3. Hint: multiply by 2.\n"),
    (_stub, False, "❌ Exercise 09.1: not attempted yet (Exercise 09.1: double it - replace this line with your "
                   "code). Write your code in the exercise cell, run it, then run this cell again.\n"),
    (lambda x: x / 0, False, "❌ Exercise 09.1: your code raised ZeroDivisionError: division by zero. Hint: run the "
                             "exercise cell on a small input and read the error message.\n"),
])
def test_check_prints_one_line_returns_bool_and_records(func, ok, line, capsys) -> None:
    assert check_double(func) is ok
    assert capsys.readouterr().out == line
    assert exercises.solved("09.1") is ok


def test_solved_is_false_before_any_check_and_follows_the_last_one() -> None:
    assert exercises.solved("09.1") is False
    check_double(lambda x: 2 * x)
    check_double(_stub)
    assert exercises.solved("09.1") is False


def _count_distinct(df):
    return df[df["ok"]].groupby("class_name")["sha256"].nunique().to_dict()


def _find_leaks(df):
    train = set(df.loc[df["split"] == "train", "group"])
    return df[(df["split"] == "test") & df["group"].isin(train)]["relative_path"].tolist()


def _class_weights(labels):
    labels = list(labels)
    return {c: len(labels) / (len(set(labels)) * labels.count(c)) for c in set(labels)}


def _remove_overlap(paths, groups):
    n = groups.groupby("group")["dataset"].nunique()
    bad = set(groups.loc[groups["group"].isin(n.index[n > 1]), "relative_path"])
    return [p for p in paths if p not in bad]


def _recall(cm):
    cm = np.asarray(cm, float)
    rows = cm.sum(1)
    return np.divide(np.diag(cm), rows, out=np.zeros(len(cm)), where=rows > 0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the wrong answers divide by zero on purpose
@pytest.mark.parametrize("check, right, wrong, says", [
    (exercises.check_count_distinct, _count_distinct,
     lambda df: df.groupby("class_name")["sha256"].nunique(), "keep only rows with ok == True"),
    (exercises.check_find_leaks, _find_leaks,
     lambda df: df[df["split"] == "test"]["relative_path"].tolist(), "duplicates of each other"),
    (exercises.check_class_weights, _class_weights,
     lambda labels: {c: list(labels).count(c) / len(labels) for c in set(labels)}, "class proportions"),
    (exercises.check_per_class_recall, _recall,
     lambda cm: np.diag(cm) / np.asarray(cm).sum(0), "precision"),
    (exercises.check_tumour_probability, lambda p: 1 - np.asarray(p)[:, 2],
     lambda p: np.asarray(p)[:, 2], "P(no tumour)"),
    (exercises.check_remove_overlap, _remove_overlap, lambda paths, groups: list(paths), "drop it"),
])
def test_course_checks_accept_right_and_explain_wrong(check, right, wrong, says, capsys) -> None:
    assert check(right) is True
    assert check(wrong) is False
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✅ Exercise") and out[1].startswith("❌ Exercise") and says in out[1]
    assert check(lambda *a: None) is False and "returned None" in capsys.readouterr().out
