"""The course runner: a run folder with executed notebooks, HTML, summary; failures reported; CLI."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from brainxpert_utils import course
from brainxpert_utils.cli import build_parser
from brainxpert_utils.notebooks import SEQUENCE

REPO = Path(__file__).resolve().parent.parent


def _write_solution(folder: Path, name: str, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("data_dir = None\ndataset = 'sartaj'\nartifacts_dir = None\nepochs = 10\n"
                                  "smoke = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(body),
    ]
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i}"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture()
def fake_solutions(tmp_path: Path) -> Path:
    """Two tiny notebooks named like the sequence: one writes metrics, one fails."""
    folder = tmp_path / "solutions"
    _write_solution(folder, SEQUENCE[0], (
        "import json, os, pathlib\n"
        "out = pathlib.Path(artifacts_dir) / 'metrics'\nout.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'first.json').write_text(json.dumps({'accuracy': 0.75, 'epochs': epochs, 'smoke': smoke,\n"
        "    'dataset': dataset, 'cwd': os.getcwd(), 'env': os.environ.get('BRAINXPERT_ARTIFACTS_DIR')}))\n"
        "print('hello from the first notebook')"))
    _write_solution(folder, SEQUENCE[1], "raise ValueError('planted failure')")
    return folder


def test_run_course_on_fake_notebooks_writes_run_folder_and_reports_failure(fake_solutions: Path,
                                                                            tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(course.CourseError, match=r"(?s)1 notebook\(s\) failed.*planted failure"):
        course.run_course(run_dir, data_dir=tmp_path / "no_data_here", smoke=True, solutions_dir=fake_solutions)
    for name in SEQUENCE[:2]:
        assert (run_dir / f"{name}.ipynb").is_file() and (run_dir / f"{name}.html").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [n["status"] for n in summary["notebooks"]] == ["ok", "failed"]
    metrics = summary["metrics"]["first"]
    # smoke overrides only declared names; synthetic data because the data folder holds nothing
    assert metrics["epochs"] == 1 and metrics["smoke"] is True and metrics["dataset"] == "synthetic"
    assert metrics["cwd"] == str(run_dir.resolve()) == metrics["env"]
    assert summary["data"] == "synthetic" and "subset" in summary["parameters"]
    assert "| 02_custom_cnn | failed |" in (run_dir / "summary.md").read_text()
    assert "- first.accuracy: 0.75" in (run_dir / "summary.md").read_text()


def test_only_selects_notebooks_and_rejects_unknown(fake_solutions: Path) -> None:
    assert [p.stem for p in course.select_notebooks(fake_solutions, ["01"])] == [SEQUENCE[0]]
    with pytest.raises(course.CourseError, match="no solution notebook matches"):
        course.select_notebooks(fake_solutions, ["07"])


def test_update_solutions_copies_outputs_drops_injected_cell_and_trims(fake_solutions: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    course.run_course(run_dir, data_dir=tmp_path / "none", notebooks=["01"], solutions_dir=fake_solutions,
                      parameters={"epochs": 2})
    with pytest.raises(course.CourseError, match="smoke"):
        json_path = run_dir / "summary.json"
        summary = json.loads(json_path.read_text())
        json_path.write_text(json.dumps({**summary, "smoke": True}))
        course.update_solutions(run_dir, fake_solutions)
    json_path.write_text(json.dumps(summary))
    executed = nbformat.read(run_dir / f"{SEQUENCE[0]}.ipynb", as_version=4)
    executed.cells[-1].outputs[0]["text"] = "x" * 50_000
    nbformat.write(executed, run_dir / f"{SEQUENCE[0]}.ipynb")
    (written,) = course.update_solutions(run_dir, fake_solutions)
    nb = nbformat.read(written, as_version=4)
    assert len(nb.cells) == 2 and "epochs = 10" in nb.cells[0].source  # original defaults kept
    assert "trimmed" in nb.cells[1].outputs[0]["text"] and len(nb.cells[1].outputs[0]["text"]) < 5000
    assert "papermill" not in nb.metadata and all("papermill" not in c.metadata for c in nb.cells)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("prose edited after the run"))  # fine: outputs still copied
    nbformat.write(nb, written)
    course.update_solutions(run_dir, fake_solutions)
    nb = nbformat.read(written, as_version=4)
    assert nb.cells[0].source == "prose edited after the run" and "trimmed" in nb.cells[2].outputs[0]["text"]
    nb.cells[2].source += "\n# edited after the run"
    nbformat.write(nb, written)
    with pytest.raises(course.CourseError, match="has other code than in run"):
        course.update_solutions(run_dir, fake_solutions)


def test_cli_parses_course_flags() -> None:
    args = build_parser().parse_args(["course", "--smoke", "--only", "01,02", "--run-dir", "r", "-p", "seed=3",
                                      "--update-solutions"])
    assert args.smoke and args.only == "01,02" and args.parameter == ["seed=3"] and args.update_solutions


def test_real_course_01_on_synthetic_data(tmp_path: Path) -> None:
    """The real notebook 01 runs on the synthetic stand-in when no real data is found (a fresh clone)."""
    if not (REPO / "solutions" / f"{SEQUENCE[0]}.ipynb").is_file():
        pytest.skip("solutions/01_data_exploration.ipynb not written yet")
    run_dir = course.run_course(tmp_path / "run", data_dir=tmp_path / "empty", notebooks=["01"], smoke=True)
    assert (run_dir / f"{SEQUENCE[0]}.ipynb").is_file() and (run_dir / f"{SEQUENCE[0]}.html").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["data"] == "synthetic" and summary["notebooks"][0]["status"] == "ok"
    assert summary["metrics"][SEQUENCE[0]]["dataset"] == "synthetic"
    html = (run_dir / f"{SEQUENCE[0]}.html").read_text()
    assert "SYNTHETIC" in html


def test_ensure_data_downloads_only_when_missing_and_reports_a_failed_download(tmp_path: Path, monkeypatch,
                                                                               capsys) -> None:
    from brainxpert_utils import datasets
    from brainxpert_utils.errors import DownloadError

    calls = []

    def failing_fetch(name, data_dir=None, **kwargs):
        calls.append((name, data_dir))
        raise DownloadError("no network: download it by hand from ...")

    monkeypatch.setattr(datasets, "fetch_dataset", failing_fetch)
    assert course.ensure_data(tmp_path / "empty") is False
    assert calls == [("sartaj", tmp_path / "empty")]
    assert "download failed: no network" in capsys.readouterr().err

    present = tmp_path / "present"
    (present / datasets.get_dataset("sartaj").folder).mkdir(parents=True)
    calls.clear()
    assert course.ensure_data(present) is True and calls == []


def test_cli_no_fetch_flag() -> None:
    assert build_parser().parse_args(["course", "--no-fetch"]).no_fetch
    assert not build_parser().parse_args(["course"]).no_fetch
