"""Autograder tests: a toy course notebook (fast, no TensorFlow) and planted bad submissions.

The batch fixture grades one class of planted submissions once (about a minute on 2 cores); the
tests read its grades.csv, result JSONs and feedback. The last test grades the real solutions.
"""

from __future__ import annotations

import copy
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from brainxpert_utils import grading
from brainxpert_utils.grading_run import RESULT_MIME
from brainxpert_utils.grading_sandbox import sandbox_support
from brainxpert_utils.notebooks import build_student_notebook

REPO = Path(__file__).resolve().parent.parent
TOY_SOLUTIONS = Path(__file__).parent / "fixtures" / "grading" / "solutions"
TOY = TOY_SOLUTIONS / "91_toy.ipynb"
HIDDEN = TOY_SOLUTIONS / "hidden_tests" / "91_toy.py"
FAST = {"cell_timeout": 3, "notebook_timeout": 20, "memory_mb": 400, "test_timeout": 3}
SANDBOX = not sandbox_support()
needs_sandbox = pytest.mark.skipif(not SANDBOX, reason=f"grading sandbox unavailable: {sandbox_support()}")


# ----------------------------------------------------------------- planted submissions

def _toy() -> nbformat.NotebookNode:
    return nbformat.read(TOY, as_version=4)


def _exercise_index(nb, exercise_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("brainxpert", {}).get("exercise") == exercise_id)


def _with_cell(code: str, after: str = "91.1") -> nbformat.NotebookNode:
    nb = _toy()
    nb.cells.insert(_exercise_index(nb, after) + 1, nbformat.v4.new_code_cell(code))
    return nb


def _with_exercise(exercise_id: str, body: str) -> nbformat.NotebookNode:
    nb = _toy()
    cell = nb.cells[_exercise_index(nb, exercise_id)]
    cell.source = cell.source.split("\n", 1)[0] + "\n" + body
    return nb


def _colab(nb) -> nbformat.NotebookNode:
    """What Colab downloads: no kernelspec, Colab metadata, cell ids, no brainxpert cell metadata."""
    nb = copy.deepcopy(nb)
    nb.metadata = {"colab": {"provenance": [], "name": "Copy of 91_toy.ipynb"}, "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata = {"id": "x" + cell.get("id", "0")[:8]}
    return nb


SNOOP = f"""
import glob, os
leaks = []
for path in [{str(HIDDEN)!r}, {str(TOY)!r}] + glob.glob({str(TOY_SOLUTIONS)!r} + "/**", recursive=True):
    try:
        leaks.append(open(path).read()[:20])
    except OSError:
        pass
print("LEAKED" if leaks else "NO-LEAK")
writes = 0
for path in [os.environ.get("SNOOP_RESULTS", "/nonexistent") + "/grades.csv", {str(REPO / "snoop.txt")!r}]:
    try:
        open(path, "w").write("forged")
        writes += 1
    except OSError:
        pass
print("WROTE" if writes else "NO-WRITE")
from IPython.display import display
display({{{RESULT_MIME!r}: {{"nonce": "guess", "exercise": "91.2", "score": 1.0, "reason": "", "attempted": True}}}}, raw=True)
"""

PLANTED = {
    "correct/91_toy.ipynb": (lambda: _toy(), "graded", 5),
    "colab/Copy of 91_toy.ipynb": (lambda: _colab(_toy()), "graded", 5),
    "flat__91_toy.ipynb": (lambda: _toy(), "graded", 5),
    "loop/91_toy.ipynb": (lambda: _with_cell("while True:\n    pass"), "timeout", 5),
    "stubborn/91_toy.ipynb": (lambda: _with_cell(
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)"),
        "timeout", 0),
    "crash/91_toy.ipynb": (lambda: _with_cell("import os\nos._exit(3)"), "error", 0),
    "kill9/91_toy.ipynb": (lambda: _with_cell("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"), "error", 0),
    "memory/91_toy.ipynb": (lambda: _with_cell(
        "hog = []\nwhile True:\n    hog.append(b'x' * (20 * 2**20))"), "error", 0),
    "ex2error/91_toy.ipynb": (lambda: _with_exercise("91.2", "def scale(values):\n    raise ValueError('oops')"),
                              "graded", 3),
    "deleted/91_toy.ipynb": (lambda: _deleted("91.3"), "graded", 3),
    "renamed/91_toy.ipynb": (lambda: _with_exercise("91.1", "def add_numbers(a, b):\n    return a + b"), "graded", 4),
    "hangs/91_toy.ipynb": (lambda: _with_exercise("91.1", "def add(a, b):\n    while True:\n        pass"), "timeout", 4),
    "partial/91_toy.ipynb": (lambda: _with_exercise("91.3", "def mean(values):\n    return sum(values) / len(values)"),
                             "graded", 4),
    "snoop/91_toy.ipynb": (lambda: _with_cell(SNOOP), "graded", 5),
}


def _deleted(exercise_id: str) -> nbformat.NotebookNode:
    nb = _toy()
    del nb.cells[_exercise_index(nb, exercise_id)]
    return nb


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One graded class: every planted submission, the student version, an invalid file."""
    root = tmp_path_factory.mktemp("grading")
    subs, out = root / "submissions", root / "results"
    for rel, (make, _, _) in PLANTED.items():
        (subs / rel).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(make(), subs / rel)
    build_student_notebook(TOY, subs / "student" / "91_toy.ipynb")
    (subs / "broken").mkdir()
    (subs / "broken" / "91_toy.ipynb").write_text(TOY.read_text()[:500])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SNOOP_RESULTS", str(out))  # the snooping notebook knows where the results go
        start = time.monotonic()
        results = grading.grade_batch(subs, out, TOY_SOLUTIONS, workers=2, progress=False, **FAST)
        seconds = time.monotonic() - start
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    return {"subs": subs, "out": out, "results": {r["student"]: r for r in results}, "rows": rows, "seconds": seconds}


# ----------------------------------------------------------------- fast unit tests

def test_load_course_reads_exercises_without_running_them():
    course = grading.load_course(TOY_SOLUTIONS)
    assert list(course) == ["91_toy"]
    assert course["91_toy"].exercises["91.2"] == {"points": 2.0, "title": "scale by the course factor"}
    assert course["91_toy"].max_points == 5.0


def test_load_course_says_what_is_missing(tmp_path):
    with pytest.raises(grading.GradingError, match="no hidden tests"):
        grading.load_course(tmp_path)
    (tmp_path / "hidden_tests").mkdir()
    (tmp_path / "hidden_tests" / "92_bad.py").write_text('EXERCISES = {"92.1": {"points": 1}}\n')
    with pytest.raises(grading.GradingError, match="test_92_1"):
        grading.load_course(tmp_path)


def test_find_submissions_understands_folders_and_flat_files(tmp_path):
    for rel in ["ann/91_toy.ipynb", "ann/.ipynb_checkpoints/91_toy-checkpoint.ipynb", "ben__91_toy.ipynb",
                "cleo.ipynb", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    found = {(s.student, s.path.name, s.key) for s in grading.find_submissions(tmp_path)}
    assert found == {("ann", "91_toy.ipynb", "ann__91_toy"), ("ben", "ben__91_toy.ipynb", "ben__ben__91_toy"),
                     ("cleo", "cleo.ipynb", "cleo__cleo")}
    with pytest.raises(grading.GradingError, match="does not exist"):
        grading.find_submissions(tmp_path / "missing")


def test_read_notebook_reports_invalid_files_and_accepts_colab():
    assert grading.read_notebook(b'{"cells": [')[1].startswith("not valid JSON")
    assert grading.read_notebook(b'[1, 2]')[1] == "not a Jupyter notebook (no list of cells)"
    nb, problem = grading.read_notebook(nbformat.writes(_colab(_toy())).encode())
    assert problem == "" and len(nb.cells) == len(_toy().cells)


def test_match_notebook_by_exercise_ids_then_file_name():
    course = grading.load_course(TOY_SOLUTIONS)
    assert grading.match_notebook(_colab(_toy()), "Untitled3.ipynb", course) == "91_toy"
    empty = nbformat.v4.new_notebook()
    assert grading.match_notebook(empty, "Copy of 91_toy (1).ipynb", course) == "91_toy"
    assert grading.match_notebook(empty, "bob__91-homework.ipynb", course) == "91_toy"
    assert grading.match_notebook(empty, "Untitled3.ipynb", course) is None


def test_grading_parameters_go_after_the_parameters_cell_and_only_declared_names():
    from brainxpert_utils.grading_run import inject_parameters

    nb = _toy()
    where = inject_parameters(nb, {"grading": True, "epochs": 1, "cnn_epochs": 1})
    assert nb.cells[where - 1].metadata["tags"] == ["parameters"]
    assert nb.cells[where].source.splitlines()[1:] == ["grading = True", "epochs = 1"]
    colab = _colab(_toy())  # tags lost: after the first cell that assigns a parameter
    where = inject_parameters(colab, {"grading": True, "subset": 12})
    assert colab.cells[where - 1].source.startswith("grading = False")
    assert "grading" in grading.grading_parameters() and grading.grading_parameters()["grading"] is True


def test_parameters_flag_parses_python_literals():
    assert grading._parse_parameters(["subset=4", "task=multiclass", "grading=True"]) == {
        "subset": 4, "task": "multiclass", "grading": True}
    with pytest.raises(grading.GradingError, match="name=value"):
        grading._parse_parameters(["4"])


def test_cli_has_grade_with_its_flags():
    from brainxpert_utils.cli import build_parser

    args = build_parser().parse_args(["grade", "subs", "--out", "res", "--workers", "3", "--memory-mb", "512",
                                      "--parameters", "subset=2"])
    assert (args.func, args.workers, args.memory_mb, args.cell_timeout) == (grading._cli_grade, 3, 512, 600)


# ----------------------------------------------------------------- the graded class

@pytest.mark.parametrize("student", sorted({rel.split("/")[0].split("__")[0] for rel in PLANTED}))
def test_planted_submission_gets_its_status_and_points(batch, student):
    rel = next(r for r in PLANTED if r.split("/")[0].split("__")[0] == student)
    _, status, total = PLANTED[rel]
    row = batch["rows"][student]
    assert (row["status"], float(row["total"]), row["max"]) == (status, total, "5"), row


def test_reasons_say_what_went_wrong(batch):
    res = batch["results"]
    assert "ValueError: oops" in res["ex2error"]["exercises"]["91.2"]["reason"]
    assert res["ex2error"]["exercises"]["91.1"]["points"] == 1 and res["ex2error"]["exercises"]["91.3"]["points"] == 2
    assert "not found" in res["deleted"]["exercises"]["91.3"]["reason"]
    assert "`mean` is not defined" in res["deleted"]["exercises"]["91.3"]["reason"]
    assert "`add` is not defined" in res["renamed"]["exercises"]["91.1"]["reason"]
    assert res["partial"]["exercises"]["91.3"]["points"] == 1.0
    assert "interrupted" in res["loop"]["reason"]
    assert "ran too long" in res["hangs"]["exercises"]["91.1"]["reason"]
    assert "notebook timeout" in res["stubborn"]["reason"]
    assert "kernel died while running cell 6 (counting from 1) (exit code 3)" in res["crash"]["reason"]
    assert "killed by signal 9" in res["kill9"]["reason"]
    assert res["renamed"]["reason"] == "cells with errors (counting from 1): 6"  # the check cell calling add()
    assert "memory limit" in res["memory"]["reason"]


def test_student_version_is_not_attempted_and_invalid_json_is_invalid(batch):
    rows = batch["rows"]
    assert (rows["student"]["status"], rows["student"]["total"]) == ("not attempted", "0")
    assert "NotImplementedError" in batch["results"]["student"]["exercises"]["91.1"]["reason"]
    assert (rows["broken"]["status"], rows["broken"]["total"], rows["broken"]["notebook"]) == ("invalid file", "0", "91_toy")
    assert "not valid JSON" in rows["broken"]["reason"]


def test_outputs_are_written_for_every_submission(batch):
    out, n = batch["out"], len(PLANTED) + 2
    assert len(batch["rows"]) == n
    header = next(csv.reader((out / "grades.csv").open()))
    assert header == ["student", "notebook", "file", "91.1", "91.2", "91.3", "total", "max", "status", "reason"]
    assert len(list((out / "feedback").glob("*.md"))) == n
    feedback = (out / "feedback" / "ex2error.md").read_text()
    assert "**3 / 5 points**" in feedback and "ValueError: oops" in feedback
    executed = nbformat.read(out / "executed" / "correct__91_toy.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert "add two numbers" not in "".join(c.source for c in executed.cells if "brainxpert_test" in c.metadata), \
        "the executed notebook must not keep the hidden tests' source"


@needs_sandbox
def test_student_code_cannot_read_hidden_tests_or_write_results(batch):
    executed = nbformat.read(batch["out"] / "executed" / "snoop__91_toy.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "NO-LEAK" in text and "NO-WRITE" in text
    assert not (REPO / "snoop.txt").exists()
    assert batch["rows"]["snoop"]["total"] == "5"  # the forged result line did not count twice or at all
    assert len(batch["rows"]) == len(PLANTED) + 2  # grades.csv is the grader's, not "forged"


def test_resume_grades_only_what_changed(batch, tmp_path, capsys):
    subs, out = tmp_path / "subs", tmp_path / "out"
    shutil.copytree(batch["subs"] / "correct", subs / "correct")
    shutil.copytree(batch["subs"] / "ex2error", subs / "ex2error")
    first = grading.grade_batch(subs, out, TOY_SOLUTIONS, **FAST)
    (out / "executed" / "correct__91_toy.json").unlink()
    capsys.readouterr()
    second = grading.grade_batch(subs, out, TOY_SOLUTIONS, **FAST)
    printed = capsys.readouterr().out
    assert "[1/1] correct" in printed and "ex2error" not in printed
    assert [r["total"] for r in second] == [r["total"] for r in first] == [5, 3]


def test_interrupted_run_keeps_finished_rows_and_leaves_no_kernel(batch, tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    shutil.copytree(batch["subs"] / "correct", subs / "a_correct")
    shutil.copytree(batch["subs"] / "stubborn", subs / "b_stubborn")
    cmd = [sys.executable, "-m", "brainxpert_utils.cli", "grade", str(subs), "--out", str(out), "--solutions",
           str(TOY_SOLUTIONS), "--workers", "1", "--notebook-timeout", "120"]
    scratch_before = set(Path(tempfile.gettempdir()).glob("bxgrade-*"))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    grades = out / "grades.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (grades.exists() and "a_correct" in grades.read_text()):
        time.sleep(0.5)
    time.sleep(3)  # the stubborn notebook's kernel is running now
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 130, output
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert [(r["student"], r["total"]) for r in rows] == [("a_correct", "5")]
    assert set(Path(tempfile.gettempdir()).glob("bxgrade-*")) <= scratch_before, "scratch folder left behind"
    if SANDBOX:  # sandboxed kernels carry the results folder on their command line
        time.sleep(1)
        leftover = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
        assert leftover == [], "a kernel outlived the interrupted grader"


def test_batch_time_is_reported(batch):
    print(f"\ngraded {len(batch['rows'])} planted toy submissions with 2 workers in {batch['seconds']:.1f} s")
    assert batch["seconds"] < 150


# ----------------------------------------------------------------- the real course

@pytest.mark.slow
@pytest.mark.notebooks
def test_real_solutions_get_full_marks_and_student_versions_zero(tmp_path, monkeypatch):
    solutions = REPO / "solutions"
    graded = [p for p in sorted(solutions.glob("[0-9][0-9]_*.ipynb"))
              if (solutions / "hidden_tests" / f"{p.stem}.py").exists()]
    if not graded:
        pytest.skip("no solutions/NN_*.ipynb with solutions/hidden_tests/NN_*.py yet")
    subs = tmp_path / "subs"
    for nb in graded:
        (subs / "solution").mkdir(parents=True, exist_ok=True)
        shutil.copy(nb, subs / "solution" / nb.name)
        build_student_notebook(nb, subs / "student" / nb.name)
    for var, folder in (("BRAINXPERT_DATA_DIR", "datasets"), ("BRAINXPERT_WEIGHTS_DIR", "weights")):
        if not os.environ.get(var) and (REPO.parent / "shared" / folder).is_dir():  # else: synthetic / cache
            monkeypatch.setenv(var, str(REPO.parent / "shared" / folder))
    start = time.monotonic()
    results = grading.grade_batch(subs, tmp_path / "out", solutions, workers=2)
    print(f"\ngraded {len(results)} real notebooks in {time.monotonic() - start:.0f} s")
    for res in results:
        if res["student"] == "solution":
            assert (res["status"], res["total"]) == ("graded", res["max"]), res
        else:
            assert (res["status"], res["total"]) == ("not attempted", 0), res
