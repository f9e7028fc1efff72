"""Execute the course notebooks: the solution sequence (papermill smoke run), nbval, the student copies.

Data: the real datasets from ../shared when present (else the SYNTHETIC stand-in). Smoke parameters
(`course.SMOKE_PARAMETERS`: a subset of 12 images per class and split, one epoch, small images,
MobileNet alpha 0.25 from the real 0.25 weights file) keep the whole file to a few minutes on 2 CPUs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REAL_DATA_DIR, WEIGHTS_DIR

from brainxpert_utils import course
from brainxpert_utils.notebooks import SEQUENCE, build_student_notebook, list_exercises

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]
REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
NEEDS_WEIGHTS = {"03_mobilenet_transfer_learning", "04_model_comparison", "05_going_further"}
# repo folders a run must not write to (solutions/ and notebooks/ are left out: authors edit them meanwhile)
WATCHED = ("artifacts", "data")


def _skip_reason(name: str) -> str | None:
    if not (SOLUTIONS / f"{name}.ipynb").is_file():
        return f"solutions/{name}.ipynb does not exist yet"
    if name in NEEDS_WEIGHTS and WEIGHTS_DIR is None:
        return "MobileNet weights not found offline (../shared/weights or BRAINXPERT_WEIGHTS_DIR)"
    return None


RUNNABLE = [name for name in SEQUENCE if _skip_reason(name) is None]


def _manifest(folder: Path) -> dict[str, tuple[str, int, int]]:
    """relative path -> (sha256, size, mtime_ns) of every file under ``folder``."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        out[path.relative_to(folder).as_posix()] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                    stat.st_size, stat.st_mtime_ns)
    return out


def _listing() -> dict[str, int]:
    """path -> mtime_ns of the repository folders a course run must leave alone."""
    return {str(p): p.stat().st_mtime_ns for top in WATCHED for p in (REPO / top).rglob("*") if p.is_file()}


@pytest.fixture(scope="module", autouse=True)
def _weights_env():
    old = os.environ.get("BRAINXPERT_WEIGHTS_DIR")
    if WEIGHTS_DIR is not None:
        os.environ["BRAINXPERT_WEIGHTS_DIR"] = str(WEIGHTS_DIR)
    yield
    if old is None:
        os.environ.pop("BRAINXPERT_WEIGHTS_DIR", None)
    else:
        os.environ["BRAINXPERT_WEIGHTS_DIR"] = old


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One smoke run of every runnable solution notebook, in order; manifests before and after."""
    if not RUNNABLE:
        pytest.skip("no runnable solution notebooks yet")
    tmp = tmp_path_factory.mktemp("smoke")
    data_dir = REAL_DATA_DIR or tmp / "no_real_data"
    before, listing = (_manifest(REAL_DATA_DIR) if REAL_DATA_DIR else None), _listing()
    error = None
    try:
        run_dir = course.run_course(tmp / "run", data_dir=data_dir, notebooks=RUNNABLE, smoke=True)
    except course.CourseError as exc:
        run_dir, error = tmp / "run", exc
    summary = json.loads((run_dir / "summary.json").read_text())
    after = _manifest(REAL_DATA_DIR) if REAL_DATA_DIR else None
    return {"run_dir": run_dir, "summary": summary, "error": error, "before": before, "after": after,
            "listing_before": listing, "listing_after": _listing()}


def _metrics(run: dict, name: str) -> dict:
    path = run["run_dir"] / "metrics" / f"{name}.json"
    assert path.is_file(), f"{name} wrote no metrics JSON at {path}"
    return json.loads(path.read_text())


def _evaluations(obj) -> list[dict]:
    """Every nested dict that looks like an evaluation result (has a balanced_accuracy)."""
    if isinstance(obj, dict):
        found = [obj] if "balanced_accuracy" in obj else []
        return found + [e for v in obj.values() for e in _evaluations(v)]
    if isinstance(obj, list):
        return [e for v in obj for e in _evaluations(v)]
    return []


def _value(entry):
    return entry.get("value", entry.get("estimate")) if isinstance(entry, dict) else entry


@pytest.mark.parametrize("name", SEQUENCE)
def test_solution_notebook_smoke_run(name: str, smoke_run: dict) -> None:
    reason = _skip_reason(name)
    if reason:
        pytest.skip(reason)
    result = next(n for n in smoke_run["summary"]["notebooks"] if n["name"] == name)
    assert result["status"] == "ok", result["error"]
    assert (smoke_run["run_dir"] / f"{name}.ipynb").is_file() and (smoke_run["run_dir"] / f"{name}.html").is_file()
    metrics = _metrics(smoke_run, name)
    real = REAL_DATA_DIR is not None
    if name == "01_data_exploration":
        assert metrics["dataset"] == ("sartaj" if real else "synthetic")
        assert metrics["course_split_group_crossings"] == 0
        if real:
            assert (metrics["files"], metrics["distinct_contents"], metrics["official_test_leaked"]) == (3264, 3027, 259)
        return
    evaluations = _evaluations(metrics)
    assert evaluations, f"{name}: no evaluation result (with balanced_accuracy) in its metrics JSON"
    margins = []
    for entry in evaluations:
        balanced = float(_value(entry["balanced_accuracy"]))
        assert 0.0 <= balanced <= 1.0 and entry.get("n", 1) > 0
        chance = 1.0 / len(entry.get("class_names") or [0, 1])
        auc = _value(entry.get("roc_auc"))
        # above chance: balanced accuracy over 1/classes, or (a one-epoch CNN that still predicts one class
        # at the 0.5 threshold) a ranking better than chance, ROC-AUC over 0.5
        margins.append(max(balanced - chance, (float(auc) - 0.5) if auc is not None else -1.0))
    assert max(margins) > 0, f"{name}: no model above chance in the smoke run (margins over chance: {margins})"


def test_smoke_run_leaves_dataset_folder_byte_identical(smoke_run: dict) -> None:
    if REAL_DATA_DIR is None:
        pytest.skip("real datasets not present: the synthetic stand-in is generated inside the run folder")
    assert smoke_run["before"] == smoke_run["after"]


def test_smoke_run_writes_only_into_run_folder(smoke_run: dict) -> None:
    assert smoke_run["listing_after"] == smoke_run["listing_before"], "a notebook wrote outside its run folder"
    run_dir = smoke_run["run_dir"]
    assert {p.name for p in run_dir.glob("*.ipynb")} == {f"{n}.ipynb" for n in RUNNABLE}
    assert (run_dir / "summary.json").is_file() and (run_dir / "summary.md").is_file()


@pytest.mark.parametrize("name", SEQUENCE)
def test_student_notebook_runs_to_first_exercise_and_stubs_say_so(name: str, tmp_path_factory) -> None:
    reason = _skip_reason(name)
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.getbasetemp() / "students"  # shared by the sequence: later ones reuse artifacts
    tmp.mkdir(exist_ok=True)
    student = build_student_notebook(SOLUTIONS / f"{name}.ipynb", tmp / f"{name}.ipynb")
    wanted = course.course_parameters(tmp, REAL_DATA_DIR or tmp / "no_real_data", smoke=True)
    result = course.execute_notebook(student, tmp / f"executed_{name}.ipynb", wanted)
    nb = nbformat.read(tmp / f"executed_{name}.ipynb", as_version=4)
    exercises = list_exercises(nb)
    assert exercises, f"{name} has no exercise cell"
    errors = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if result["status"] != "ok":  # allowed only as the stub's own error, at or after the first exercise
        index, output = errors[0]
        assert index >= exercises[0].cell_index, f"{name} failed before its first exercise: {result['error']}"
        assert output["ename"] == "NotImplementedError", f"{name}: unrelated error {output['ename']}: {output['evalue']}"
        assert "replace this line with your code" in output["evalue"]
    executed_checks = [c for c in nb.cells if "check" in c.metadata.get("tags", []) and c.get("outputs")]
    assert executed_checks, f"{name}: no check cell ran"
    for cell in executed_checks:
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "❌ Exercise" in text and "not attempted yet" in text and "replace this line with your code" in text, text


def test_nbval_solution_notebooks(tmp_path: Path) -> None:
    """nbval (lax): only cells marked `# NBVAL_CHECK_OUTPUT` are compared with the committed outputs."""
    if REAL_DATA_DIR is None:
        pytest.skip("the committed outputs come from the real data; nbval needs it")
    checked = []  # nbval-lax only compares marked cells: notebooks without any need no second run here
    for name in RUNNABLE:
        cells = nbformat.read(SOLUTIONS / f"{name}.ipynb", as_version=4).cells
        marked = [c for c in cells if c.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in c.source]
        if marked and all(c.get("outputs") for c in marked):
            checked.append(SOLUTIONS / f"{name}.ipynb")
    if not checked:
        pytest.skip("no solution notebook is committed executed with `# NBVAL_CHECK_OUTPUT` cells yet "
                    "(`brainxpert course --update-solutions` after a full run)")
    executed = checked
    env = {**os.environ, "BRAINXPERT_SMOKE": "1", "BRAINXPERT_DATA_DIR": str(REAL_DATA_DIR),
           "BRAINXPERT_ARTIFACTS_DIR": str(tmp_path / "artifacts"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *map(str, executed)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
