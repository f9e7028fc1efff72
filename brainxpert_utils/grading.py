"""Instructor autograding: grade a folder of student notebooks into grades.csv and feedback files.

``brainxpert grade SUBMISSIONS_DIR --out RESULTS_DIR`` (or ``grade_batch``) finds every submitted
notebook, tells which course notebook it is, executes it in its own sandboxed kernel with the grading
parameters, runs that notebook's hidden tests (``solutions/hidden_tests/NN_name.py``) against the
executed namespace and writes, as each submission finishes::

    RESULTS_DIR/grades.csv                   student, notebook, file, points per exercise, total, max, status, reason
    RESULTS_DIR/feedback/<student>.md        each exercise's points and reason (the hint), totals
    RESULTS_DIR/executed/<key>.json|.ipynb   the result and the executed notebook (for the instructor)

Nothing a notebook does stops the batch; a re-run skips submissions already graded (same sha256).
See docs/GRADING.md for the statuses, the sandbox and the limits.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from brainxpert_utils import grading_report as report
from brainxpert_utils.errors import BrainXpertError
from brainxpert_utils.grading_run import DEFAULT_TEST_TIMEOUT, RunOptions

DEFAULT_CELL_TIMEOUT = 600  # an honest training cell on 2 CPU cores with the grading subset fits
DEFAULT_NOTEBOOK_TIMEOUT = 1800
DEFAULT_MEMORY_MB = 4096
DEFAULT_WORKERS = 2
WORKER_GRACE_S = 120  # beyond the notebook timeout before the parent kills a stuck worker


def grading_parameters() -> dict:
    """What a graded run gets: ``grading=True`` plus the course's smoke values (small subset, 1 epoch)."""
    from brainxpert_utils.course import SMOKE_PARAMETERS

    return {"grading": True, **SMOKE_PARAMETERS}


class GradingError(BrainXpertError):
    """The grading setup is wrong (no hidden tests, unreadable folders, sandbox demanded but missing)."""


@dataclass(frozen=True)
class CourseNotebook:
    """One graded course notebook: ``key`` like ``02_custom_cnn``, its exercises and hidden tests."""

    key: str
    exercises: dict  # exercise id -> {"points": float, "title": str}
    hidden_tests: Path

    @property
    def max_points(self) -> float:
        return float(sum(ex["points"] for ex in self.exercises.values()))


@dataclass(frozen=True)
class Submission:
    """One submitted file: the student (folder or file-name prefix) and a unique file-safe key."""

    student: str
    path: Path
    key: str


def default_solutions_dir() -> Path:
    """``<repo>/solutions`` in a checkout, else ``./solutions``."""
    from brainxpert_utils.config import repo_root

    root = repo_root()
    return (root / "solutions") if root and (root / "solutions").is_dir() else Path("solutions")


def load_course(solutions_dir: str | Path | None = None) -> dict[str, CourseNotebook]:
    """Every ``hidden_tests/NN_name.py`` of ``solutions_dir``, read without executing it."""
    folder = Path(solutions_dir) if solutions_dir else default_solutions_dir()
    files = sorted((folder / "hidden_tests").glob("[0-9][0-9]_*.py"))
    if not files:
        raise GradingError(f"no hidden tests in {folder / 'hidden_tests'}: pass --solutions with the folder "
                           "that holds hidden_tests/NN_name.py")
    return {path.stem: _read_hidden_tests(path) for path in files}


def _read_hidden_tests(path: Path) -> CourseNotebook:
    """Parse ``EXERCISES`` and check there is one ``test_<id>`` per exercise (ast only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    exercises, tests = None, set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "EXERCISES" for t in node.targets):
            exercises = ast.literal_eval(node.value)
        elif isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            tests.add(node.name)
    if not exercises:
        raise GradingError(f"{path}: no EXERCISES = {{...}} dict at module level (see COURSE_CONVENTIONS.md)")
    missing = [ex for ex in exercises if "test_" + ex.replace(".", "_") not in tests]
    if missing:
        names = ", ".join("test_" + ex.replace(".", "_") + "(ns)" for ex in missing)
        raise GradingError(f"{path}: exercise(s) {missing} have no hidden test: add {names}")
    clean = {ex: {"points": float(v["points"]), "title": str(v.get("title", ""))} for ex, v in exercises.items()}
    return CourseNotebook(path.stem, clean, path)


def find_submissions(submissions_dir: str | Path) -> list[Submission]:
    """``<student>/*.ipynb``, ``<student>__<notebook>.ipynb`` and ``<student>.ipynb`` below the folder."""
    folder = Path(submissions_dir)
    if not folder.is_dir():
        raise GradingError(f"submissions folder {folder} does not exist: pass the folder that holds one "
                           "sub-folder (or file) per student")
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            found += [(path.name, p) for p in sorted(path.rglob("*.ipynb"))
                      if not any(part.startswith(".") for part in p.relative_to(path).parts)]
        elif path.suffix == ".ipynb":
            found.append((path.stem.split("__", 1)[0], path))
    subs, used = [], set()
    for student, path in found:
        key = base = f"{report.safe_name(student)}__{report.safe_name(path.stem)}"
        n = 1
        while key in used:
            n += 1
            key = f"{base}-{n}"
        used.add(key)
        subs.append(Submission(student, path, key))
    return subs


def read_notebook(data: bytes) -> tuple[Any, str]:
    """(notebook, "") for a readable notebook, else (None, what is wrong with the file)."""
    import nbformat

    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"not valid JSON ({str(exc)[:120]}): download the notebook again (File > Download .ipynb)"
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return None, "not a Jupyter notebook (no list of cells)"
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError:  # Colab and old editors: repair what nbformat can
            nb = nbformat.from_dict(nbformat.validator.normalize(nb, strip_invalid_metadata=True)[1])
            nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - any schema problem makes the file invalid, not the batch
        return None, f"not a valid notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:150]})"
    return nb, ""


def match_notebook(nb: Any, filename: str, course: dict[str, CourseNotebook]) -> str | None:
    """The course notebook a submission is: by the exercise ids inside, else by its file name."""
    from brainxpert_utils.notebooks import list_exercises

    by_number = {key[:2]: key for key in course}
    if nb is not None:
        numbers = [ex.exercise_id.split(".")[0] for ex in list_exercises(nb)]
        hits = {by_number[n] for n in numbers if n in by_number}
        if len(hits) == 1:
            return hits.pop()
    name = filename.lower()
    for key in sorted(course, key=len, reverse=True):
        if key.lower() in name:
            return key
    match = re.search(r"(?:^|[^0-9])(\d\d)(?:[ _.-]|$)", name.rsplit("__", 1)[-1])
    return by_number.get(match.group(1)) if match else None


def grade_submission(path: str | Path, notebook: CourseNotebook, options: RunOptions,
                     executed_path: str | Path | None = None, on_kernel_pid=None, scratch: str | None = None) -> dict:
    """Execute one submission and its hidden tests; the result (status, reason, per-exercise points)."""
    from brainxpert_utils.grading_run import execute_submission, is_untouched_stub
    from brainxpert_utils.notebooks import list_exercises

    start, path = time.monotonic(), Path(path)
    data = path.read_bytes()
    nb, problem = read_notebook(data)
    if nb is None:
        return _invalid(notebook, problem)
    cells = {ex.exercise_id: nb.cells[ex.cell_index].source for ex in list_exercises(nb)}
    outcome = execute_submission(nb, data, path.name, notebook.hidden_tests.read_text(encoding="utf-8"),
                                 list(notebook.exercises), options, on_kernel_pid, scratch)
    exercises, attempted = {}, []
    for ex, info in notebook.exercises.items():
        test = outcome.tests.get(ex)
        score = float(test["score"]) if test else 0.0
        reason = test["reason"] if test else f"not graded: {outcome.problem}"
        if ex not in cells:
            reason = "exercise cell not found (deleted, or its first line changed)" + (
                f"; {reason}" if score == 0 and reason else "")
        attempted.append(ex in cells and not is_untouched_stub(cells[ex]) and bool(test and test["attempted"]))
        exercises[ex] = {"points": round(info["points"] * score, 2), "max": info["points"],
                         "title": info["title"], "reason": reason}
    total = round(sum(e["points"] for e in exercises.values()), 2)
    status = outcome.problem_status or ("not attempted" if total == 0 and not any(attempted) else "graded")
    reason = outcome.problem or (f"cells with errors (counting from 1): {', '.join(map(str, outcome.error_cells))}"
                                 if outcome.error_cells else "")
    if executed_path is not None:
        import nbformat

        report.write_atomic(Path(executed_path), nbformat.writes(outcome.nb))
    return {"notebook": notebook.key, "status": status, "reason": reason, "exercises": exercises,
            "total": total, "max": notebook.max_points, "seconds": round(time.monotonic() - start, 1),
            "peak_memory_mb": outcome.peak_mb}


def _invalid(notebook: CourseNotebook | None, problem: str) -> dict:
    """The result of a file that cannot be graded at all."""
    exercises = {ex: {"points": 0, "max": info["points"], "title": info["title"], "reason": "invalid file"}
                 for ex, info in (notebook.exercises.items() if notebook else [])}
    return {"notebook": notebook.key if notebook else "", "status": "invalid file", "reason": problem,
            "exercises": exercises, "total": 0, "max": notebook.max_points if notebook else 0, "seconds": 0.0}


def _worker(job: dict, conn: Any) -> None:
    """Worker process: grade one submission, send ("kernel", pid) then ("result", dict)."""
    notebook = CourseNotebook(job["notebook"]["key"], job["notebook"]["exercises"],
                              Path(job["notebook"]["hidden_tests"]))
    try:
        result = grade_submission(job["path"], notebook, RunOptions(**job["options"]), job["executed"],
                                  on_kernel_pid=lambda pid: conn.send(("kernel", pid)), scratch=job["scratch"])
    except Exception as exc:  # noqa: BLE001 - a grader bug on one file must not stop the batch
        result = {**_invalid(notebook, ""), "status": "error", "reason": f"grader error: {type(exc).__name__}: {exc}"}
    conn.send(("result", result))
    conn.close()



def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _resolve_sandbox(sandbox: str) -> tuple[bool, str]:
    """(use the sandbox?, note for the results) from "auto", "on" or "off"."""
    from brainxpert_utils.grading_sandbox import sandbox_support

    if sandbox == "off":
        return False, "off (asked)"
    why_not = sandbox_support()
    if not why_not:
        return True, "on"
    if sandbox == "on":
        raise GradingError(f"the sandbox is not available: {why_not}. Use --sandbox auto/off to grade anyway.")
    print(f"warning: grading WITHOUT the sandbox ({why_not}); student code can read files the grader can.",
          file=sys.stderr)
    return False, f"off ({why_not})"


def _hidden_paths(*folders: Path) -> list[str]:
    """What a sandboxed kernel must not see: solutions, results, submissions, the repository history."""
    from brainxpert_utils.config import repo_root

    root = repo_root()
    extra = [root / "solutions", root / ".git"] if root else []
    return sorted({str(p.resolve()) for p in list(folders) + extra if p.exists()})


def grade_batch(submissions_dir: str | Path, results_dir: str | Path, solutions_dir: str | Path | None = None,
                workers: int = DEFAULT_WORKERS, cell_timeout: int = DEFAULT_CELL_TIMEOUT,
                notebook_timeout: int = DEFAULT_NOTEBOOK_TIMEOUT, memory_mb: int = DEFAULT_MEMORY_MB,
                parameters: dict | None = None, sandbox: str = "auto", resume: bool = True,
                progress: bool = True, test_timeout: int = DEFAULT_TEST_TIMEOUT) -> list[dict]:
    """Grade every submission (``workers`` kernels at a time); every result, also the resumed ones."""
    from brainxpert_utils.grading_pool import run_pool

    submissions_dir, results_dir = Path(submissions_dir), Path(results_dir)
    solutions = Path(solutions_dir) if solutions_dir else default_solutions_dir()
    course = load_course(solutions)
    subs = find_submissions(submissions_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    use_sandbox, sandbox_note = _resolve_sandbox(sandbox)
    options = RunOptions(cell_timeout=cell_timeout, notebook_timeout=notebook_timeout, memory_mb=memory_mb,
                         test_timeout=test_timeout,
                         parameters={**grading_parameters(), **(parameters or {})}, sandbox=use_sandbox,
                         hide=_hidden_paths(solutions, results_dir, submissions_dir))
    columns = sorted({ex for nb in course.values() for ex in nb.exercises})
    done: dict[str, dict] = {}
    jobs = []
    for sub in subs:
        sha = _sha256(sub.path)
        old = _previous(results_dir, sub.key, sha) if resume else None
        base = {"student": sub.student, "file": str(sub.path.relative_to(submissions_dir)), "key": sub.key,
                "sha256": sha, "sandbox": sandbox_note}
        if old is not None:
            done[sub.key] = old
            continue
        nb, problem = read_notebook(sub.path.read_bytes())
        key = match_notebook(nb, sub.path.name, course)
        if nb is None or key is None:
            problem = problem or ("cannot tell which course notebook this is: no exercise ids inside and "
                                  f"the file name names none of {sorted(course)}")
            done[sub.key] = {**base, **_invalid(course.get(key), problem)}
            _record(results_dir, done, done[sub.key], columns)
            continue
        jobs.append({"base": base, "path": str(sub.path), "executed": str(results_dir / "executed" / f"{sub.key}.ipynb"),
                     "notebook": {"key": key, "exercises": course[key].exercises,
                                  "hidden_tests": str(course[key].hidden_tests)},
                     "options": asdict(options)})
    report.write_grades_csv(results_dir, list(done.values()), columns)
    count = [0]

    def finished(job: dict, result: dict) -> None:
        res = {**job["base"], **result}
        done[res["key"]] = res
        _record(results_dir, done, res, columns)
        count[0] += 1
        if progress:
            print(f"[{count[0]}/{len(jobs)}] {res['student']} {res['notebook']}: {res['status']} "
                  f"{report.fmt_points(res['total'])}/{report.fmt_points(res['max'])} ({res['seconds']} s)"
                  + (f" - {res['reason'][:100]}" if res["reason"] else ""), flush=True)

    run_pool(jobs, _worker, finished, workers, notebook_timeout + WORKER_GRACE_S)
    return sorted(done.values(), key=lambda r: (r["student"], r.get("notebook") or "", r["file"]))


def _previous(results_dir: Path, key: str, sha: str) -> dict | None:
    """The stored result of ``key`` when it graded the same bytes, else None."""
    path = report.result_path(results_dir, key)
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return old if old.get("sha256") == sha else None


def _record(results_dir: Path, done: dict, result: dict, columns: list[str]) -> None:
    """Persist one finished result: its JSON, grades.csv (all so far), the student's feedback."""
    report.save_result(results_dir, result)
    report.write_grades_csv(results_dir, list(done.values()), columns)
    report.write_feedback(results_dir, result["student"],
                          [r for r in done.values() if r["student"] == result["student"]])


def _parse_parameters(items: list[str]) -> dict:
    """``["subset=4", "task='multiclass'"]`` -> dict (Python literals, else plain strings)."""
    params = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise GradingError(f"--parameters takes name=value pairs, got {item!r}")
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value
    return params


def _cli_grade(args: argparse.Namespace) -> int:
    results = grade_batch(args.submissions, args.out, args.solutions, args.workers, args.cell_timeout,
                          args.notebook_timeout, args.memory_mb, _parse_parameters(args.parameters),
                          args.sandbox, resume=not args.regrade, test_timeout=args.test_timeout)
    counts: dict[str, int] = {}
    for res in results:
        counts[res["status"]] = counts.get(res["status"], 0) + 1
    print(f"{len(results)} submission(s): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    print(f"grades: {Path(args.out) / 'grades.csv'}  feedback: {Path(args.out) / 'feedback'}")
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``brainxpert grade`` to the ``brainxpert`` command."""
    p = subparsers.add_parser("grade", help="grade a folder of student notebooks (grades.csv + feedback)",
                              description="Run each submitted notebook in its own sandboxed kernel with the "
                              "grading parameters, then its hidden tests; write grades.csv, feedback/<student>.md "
                              "and executed/ into --out. A re-run resumes. See docs/GRADING.md.")
    p.add_argument("submissions", type=Path, help="folder: <student>/*.ipynb or <student>__<notebook>.ipynb")
    p.add_argument("--out", type=Path, required=True, help="results folder (grades.csv, feedback/, executed/)")
    p.add_argument("--solutions", type=Path, default=None, help="folder holding hidden_tests/ (default: solutions/)")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="kernels run at once (default 2)")
    p.add_argument("--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT, help="seconds per cell (default 600)")
    p.add_argument("--notebook-timeout", type=int, default=DEFAULT_NOTEBOOK_TIMEOUT,
                   help="seconds per notebook (default 1800)")
    p.add_argument("--test-timeout", type=int, default=DEFAULT_TEST_TIMEOUT,
                   help=f"seconds per hidden test (default {DEFAULT_TEST_TIMEOUT})")
    p.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB, help="memory per kernel (default 4096)")
    p.add_argument("--parameters", nargs="*", default=[], metavar="NAME=VALUE",
                   help="override grading parameters (default: grading=True + the course's smoke values)")
    p.add_argument("--sandbox", choices=("auto", "on", "off"), default="auto",
                   help="isolate student kernels (Linux namespaces); auto: when available")
    p.add_argument("--regrade", action="store_true", help="grade everything again (default: resume)")
    p.set_defaults(func=_cli_grade)
