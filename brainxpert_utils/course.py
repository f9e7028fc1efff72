"""Run the course: execute the solution notebooks in order with papermill into one run folder.

``brainxpert course`` is the main command. A run folder holds the executed notebooks, an HTML
export of each, everything the notebooks saved (models, histories, metrics) and ``summary.json`` /
``summary.md``. The real data is used when it is found; otherwise the synthetic phantoms, with a
loud warning that says how to get the real data. No TensorFlow is imported here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from brainxpert_utils.errors import BrainXpertError, DataError
from brainxpert_utils.notebooks import SEQUENCE, resolve_dirs

# Shrunk parameters for tests and quick checks; each notebook only gets the names it declares.
SMOKE_PARAMETERS: dict[str, Any] = {
    "subset": 12, "epochs": 1, "cnn_epochs": 1, "head_epochs": 1, "fine_tune_epochs": 1,
    "image_size": 96, "cnn_image_size": 64, "mobilenet_alpha": 0.25, "n_boot": 50, "smoke": True,
}
NO_REAL_DATA_WARNING = (
    "REAL MRI DATA NOT FOUND - this run uses SYNTHETIC PHANTOMS (not MRI; the numbers say nothing "
    "about tumour detection). Get the real data with `brainxpert fetch-data`, or point "
    "BRAINXPERT_DATA_DIR / --data-dir at a folder holding sartaj_brain_tumor_classification_mri."
)
MAX_TEXT_OUTPUT = 4000  # characters kept per text output when solutions are updated from a run
# TensorFlow's C++ (absl) log lines, which TF_CPP_MIN_LOG_LEVEL no longer silences: not kept in solutions
TF_LOG_LINE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWEF]\d{4} \d\d:\d\d:\d\d)")


class CourseError(BrainXpertError):
    """A notebook of the course run failed, or a run folder cannot be used."""


@dataclass
class CourseData:
    """What a notebook trains on: dataset name, image folder, split table, and whether it is synthetic."""

    dataset: str
    folder: Path
    split: Any  # pandas.DataFrame: relative_path, sha256, group, label, split
    synthetic: bool


def find_real_data(data_dir: str | Path | None = None, dataset: str = "sartaj") -> Path | None:
    """Folder holding the dataset's folder (explicit > $BRAINXPERT_DATA_DIR > data/datasets), or None."""
    from brainxpert_utils import datasets

    try:
        datasets.dataset_dir(dataset, data_dir)
    except DataError:
        return None
    return Path(datasets.locate_data_dir(data_dir))


def prepare_data(data_dir: str | Path | None = None, dataset: str = "sartaj", artifacts_dir: str | Path | None = None,
                 seed: int = 0, subset: int | None = None) -> CourseData:
    """The data a notebook uses: the real dataset and its shipped split, else SYNTHETIC phantoms (loudly)."""
    import pandas as pd

    from brainxpert_utils import config, synthetic

    if dataset != "synthetic" and find_real_data(data_dir, dataset) is None:
        print(f"⚠️  {NO_REAL_DATA_WARNING}")
        dataset = "synthetic"
        data_dir = None
    if dataset == "synthetic":
        dest = Path(data_dir) if data_dir else config.artifacts_dir(artifacts_dir) / "data"
        folder = synthetic.write_synthetic_dataset(dest, seed=seed)
        split = pd.read_csv(synthetic.split_csv_path(dest, seed))
    else:
        from brainxpert_utils import datasets, splits

        folder = datasets.dataset_dir(dataset, data_dir)
        split = splits.load_split(dataset=dataset)
    if subset:
        from brainxpert_utils import pipeline

        split = pipeline.subset_split(split, subset, seed)
    return CourseData(dataset, Path(folder), split, dataset == "synthetic")


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables (inherited by the papermill kernels) for the duration of a block."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def select_notebooks(solutions_dir: Path, only: list[str] | None = None) -> list[Path]:
    """Solution notebooks of the sequence in order; ``only`` filters by prefix ("01") or name."""
    paths = [solutions_dir / f"{name}.ipynb" for name in SEQUENCE if (solutions_dir / f"{name}.ipynb").is_file()]
    if only:
        wanted = [str(o).strip() for o in only if str(o).strip()]
        paths = [p for p in paths if any(p.stem == w or p.stem.startswith(w) for w in wanted)]
        if not paths:
            raise CourseError(f"no solution notebook matches {wanted} in {solutions_dir}; use e.g. --only 01,02")
    if not paths:
        raise CourseError(f"no solution notebooks in {solutions_dir}")
    return paths


def notebook_parameters(path: Path, wanted: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``wanted`` that the notebook's parameters cell declares."""
    import papermill

    declared = papermill.inspect_notebook(str(path))
    return {key: value for key, value in wanted.items() if key in declared}


def export_html(notebook_path: Path) -> Path:
    """Write an HTML export beside an executed notebook."""
    import nbconvert
    import nbformat

    body, _ = nbconvert.HTMLExporter().from_notebook_node(nbformat.read(notebook_path, as_version=4))
    out = notebook_path.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc")


def _evaluation_lines(name: str, obj: Any) -> list[str]:
    """One summary line per evaluate() result found in a metrics JSON (searched recursively)."""
    if not isinstance(obj, dict):
        return []
    if "balanced_accuracy" in obj:
        values = [f"{m} {obj[m]['value']:.3f}" for m in HEADLINE_METRICS
                  if isinstance(obj.get(m), dict) and obj[m].get("value") is not None]
        return [f"- {name}: {', '.join(values)} (n={obj.get('n')}, {obj.get('dataset')}, {obj.get('split')})"]
    return [line for key, value in obj.items() for line in _evaluation_lines(f"{name}.{key}", value)]


def _headline(name: str, metrics: dict) -> list[str]:
    """Summary lines of one metrics file: its evaluation results, else its top-level scalars."""
    lines = _evaluation_lines(name, metrics)
    if not lines:
        lines = [f"- {name}.{key}: {value}" for key, value in metrics.items()
                 if isinstance(value, (int, float, str)) and not isinstance(value, bool)]
    return lines


def collect_metrics(run_dir: Path) -> dict[str, dict]:
    """Every metrics JSON the notebooks wrote under ``run_dir/metrics`` (name -> content)."""
    found = {}
    for path in sorted((run_dir / "metrics").rglob("*.json")):
        try:
            found[str(path.relative_to(run_dir / "metrics").with_suffix(""))] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            found[path.stem] = {"error": f"unreadable metrics file: {exc}"}
    return found


def write_summary(run_dir: Path, info: dict) -> None:
    """summary.json (everything) and summary.md (a short table per notebook and per metrics file)."""
    info["metrics"] = collect_metrics(run_dir)
    (run_dir / "summary.json").write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    lines = [f"# BrainXpert course run {run_dir.name}", "", f"- data: {info['data']}", f"- smoke: {info['smoke']}",
             "", "| notebook | status | wall time (s) |", "| --- | --- | ---: |"]
    lines += [f"| {n['name']} | {n['status']} | {n['seconds']:.1f} |" for n in info["notebooks"]]
    lines += ["", "## Metrics", ""]
    for name, metrics in info["metrics"].items():
        lines += _headline(name, metrics)
    (run_dir / "summary.md").write_text("\n".join(lines) + "\n")


def course_parameters(run_dir: Path, data_dir: str | Path | None = None, smoke: bool = False,
                      parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Parameters for every notebook of a run: data (real, else synthetic, loudly), run folder, smoke, overrides."""
    real = find_real_data(data_dir)
    if real is None:
        print(f"⚠️  {NO_REAL_DATA_WARNING}", file=sys.stderr)
        base = {"dataset": "synthetic", "data_dir": str(run_dir / "data")}
    else:
        base = {"dataset": "sartaj", "data_dir": str(real)}
    return {**(SMOKE_PARAMETERS if smoke else {}), **base, "artifacts_dir": str(run_dir), **(parameters or {})}


def execute_notebook(path: Path, out: Path, wanted: dict[str, Any], kernel_name: str = "python3") -> dict:
    """Run one notebook with papermill (working directory and artifacts = ``wanted["artifacts_dir"]``).

    Returns {name, status ("ok"/"failed"), seconds, error}; never raises for a failing cell. An HTML
    export is written beside ``out``.
    """
    import papermill

    run_dir = Path(wanted["artifacts_dir"])
    smoke_env = {"BRAINXPERT_SMOKE": "1"} if wanted.get("smoke") else {}
    start = time.perf_counter()
    status, error = "ok", ""
    with _environment(BRAINXPERT_ARTIFACTS_DIR=str(run_dir), PYTHONUNBUFFERED="1", **smoke_env):
        try:
            papermill.execute_notebook(str(path), str(out), parameters=notebook_parameters(path, wanted),
                                       kernel_name=kernel_name, progress_bar=False, cwd=str(run_dir))
        except Exception as exc:  # papermill's execution error: reported, the caller goes on
            status, error = "failed", f"{type(exc).__name__}: {str(exc)[-1500:]}"
    seconds = time.perf_counter() - start
    if out.exists():
        export_html(out)
    return {"name": path.stem, "status": status, "seconds": seconds, "error": error}


def default_run_dir() -> Path:
    """``<artifacts>/runs/<UTC timestamp>`` (artifacts: $BRAINXPERT_ARTIFACTS_DIR, else ./artifacts)."""
    from brainxpert_utils import config

    return config.artifacts_dir() / "runs" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def run_course(run_dir: str | Path | None = None, data_dir: str | Path | None = None,
               parameters: dict[str, Any] | None = None, notebooks: list[str] | None = None, smoke: bool = False,
               kernel_name: str = "python3", progress: bool = True, solutions_dir: str | Path | None = None) -> Path:
    """Execute the solution notebooks in order into a run folder; returns the run folder.

    Raises CourseError after the summary is written if any notebook failed.
    """
    solutions_dir = Path(solutions_dir) if solutions_dir else resolve_dirs()[0]
    paths = select_notebooks(solutions_dir, notebooks)
    run_dir = (Path(run_dir) if run_dir else default_run_dir()).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    wanted = course_parameters(run_dir, data_dir, smoke, parameters)
    info = {"run_dir": str(run_dir), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "smoke": smoke, "data": wanted["dataset"],
            "data_dir": wanted["data_dir"], "parameters": wanted, "notebooks": []}
    for index, path in enumerate(paths, 1):
        result = execute_notebook(path, run_dir / path.name, wanted, kernel_name)
        info["notebooks"].append(result)
        if progress:
            print(f"[{index}/{len(paths)}] {path.stem}: {result['status']} in {result['seconds']:.0f} s", flush=True)
    write_summary(run_dir, info)
    failed = [n for n in info["notebooks"] if n["status"] != "ok"]
    if failed:
        details = "; ".join(f"{n['name']}: {n['error'][-300:]}" for n in failed)
        raise CourseError(f"{len(failed)} notebook(s) failed (executed copies in {run_dir}): {details}")
    return run_dir


def _small_outputs(cell: Any) -> None:
    """Drop TensorFlow's C++ log lines and trim long text outputs of one executed cell, in place."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            output["text"] = "".join(line for line in output.get("text", "").splitlines(keepends=True)
                                     if not TF_LOG_LINE.match(line))
        if output.get("output_type") == "stream" and len(output.get("text", "")) > MAX_TEXT_OUTPUT:
            text = output["text"]
            output["text"] = text[: MAX_TEXT_OUTPUT // 2] + "\n... [output trimmed] ...\n" + text[-MAX_TEXT_OUTPUT // 2:]
        data = output.get("data", {})
        if len(data.get("text/plain", "")) > MAX_TEXT_OUTPUT:
            data["text/plain"] = data["text/plain"][:MAX_TEXT_OUTPUT] + "\n... [output trimmed]"
        data.pop("application/vnd.jupyter.widget-view+json", None)
    cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("output_type") != "stream" or o.get("text")]


def update_solutions(run_dir: str | Path, solutions_dir: str | Path | None = None, allow_smoke: bool = False) -> list[Path]:
    """Copy a full run's executed outputs into ``solutions/`` (code cells must be unchanged since the run).

    Markdown may have been edited meanwhile: the current notebook is kept and only receives the outputs.
    Notebooks that failed or whose code changed are listed in a CourseError after the others are written.
    """
    import nbformat

    from brainxpert_utils.notebooks import _dumps

    run_dir = Path(run_dir)
    solutions_dir = Path(solutions_dir) if solutions_dir else resolve_dirs()[0]
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    if summary.get("smoke") and not allow_smoke:
        raise CourseError(f"{run_dir} is a smoke run; solutions are committed with the outputs of a FULL run.")
    status = {n["name"]: n["status"] for n in summary.get("notebooks", [])}
    written, refused = [], []
    for executed_path in sorted(run_dir.glob("[0-9][0-9]_*.ipynb")):
        target = solutions_dir / executed_path.name
        executed = nbformat.read(executed_path, as_version=4)
        ran = [c for c in executed.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
        current = nbformat.read(target, as_version=4)
        code = [c for c in current.cells if c.cell_type == "code"]
        if status.get(executed_path.stem, "ok") != "ok":
            refused.append(f"{executed_path.name} failed in run {run_dir.name}")
        elif [c.source for c in ran] != [c.source for c in code]:
            refused.append(f"{target} has other code than in run {run_dir.name}: run it again "
                           f"(`brainxpert course --only {executed_path.stem[:2]} --update-solutions`)")
        else:
            for cell, done in zip(code, ran):
                cell.outputs, cell.execution_count = done.outputs, done.execution_count
                cell.metadata.pop("papermill", None)
                cell.metadata.pop("execution", None)
                _small_outputs(cell)
            current.metadata.pop("papermill", None)
            target.write_text(_dumps(current), encoding="utf-8")
            written.append(target)
    if refused:
        raise CourseError(f"updated {len(written)} solution notebook(s); not updated: " + "; ".join(refused))
    return written


def ensure_data(data_dir: str | Path | None = None) -> bool:
    """Download the main dataset when it is missing; False (with the reason printed) when that fails."""
    from brainxpert_utils import datasets
    from brainxpert_utils.errors import DownloadError

    if find_real_data(data_dir) is not None:
        return True
    print("The MRI dataset is not here yet: downloading it (brainxpert fetch-data) ...", flush=True)
    try:
        datasets.fetch_dataset("sartaj", data_dir)
    except (DownloadError, DataError) as exc:
        print(f"⚠️  download failed: {exc}", file=sys.stderr)
        return False
    return True


def _cli_course(args: argparse.Namespace) -> int:
    if not args.no_fetch:
        ensure_data(args.data_dir)
    params = {}
    for item in args.parameter or []:
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    only = args.only.split(",") if args.only else None
    run_dir = (Path(args.run_dir) if args.run_dir else default_run_dir()).resolve()
    failure = None
    try:
        run_course(run_dir, args.data_dir, params, only, smoke=args.smoke)
    except CourseError as exc:  # the summary is written: show it, and update what succeeded
        failure = exc
    if (run_dir / "summary.md").exists():
        print(f"run folder: {run_dir}\n" + (run_dir / "summary.md").read_text())
    if args.update_solutions:
        for path in update_solutions(run_dir):
            print(f"updated {path}")
    if failure is not None:
        raise failure
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``brainxpert course``."""
    parser = subparsers.add_parser("course", help="run the whole course (notebooks 01-05) into a run folder")
    parser.add_argument("--smoke", action="store_true", help="tiny parameters (subset, 1 epoch) for a quick check")
    parser.add_argument("--run-dir", type=Path, default=None, help="run folder (default artifacts/runs/<UTC time>)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding the dataset folders")
    parser.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 01,02")
    parser.add_argument("-p", "--parameter", action="append", metavar="NAME=VALUE", help="override a parameter")
    parser.add_argument("--no-fetch", action="store_true",
                        help="do not download the dataset when it is missing (use the synthetic stand-in)")
    parser.add_argument("--update-solutions", action="store_true",
                        help="after a full run, copy the executed outputs into solutions/")
    parser.set_defaults(func=_cli_course)
