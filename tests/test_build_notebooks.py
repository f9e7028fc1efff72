"""Student notebooks are built from the solutions: stubs, cleared outputs, determinism, sync."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from brainxpert_utils import notebooks
from brainxpert_utils.cli import main as cli_main
from brainxpert_utils.notebooks import NotebookError

REPO = Path(__file__).resolve().parent.parent
EXERCISE_SRC = '''# EXERCISE 09.1 (2 points): double it
def double(x):
    """Twice x."""
    ### BEGIN SOLUTION
    y = 2 * x
    return y
    ### END SOLUTION


class Helper:
    def method(self):
        if True:
            ### BEGIN SOLUTION
            return 1
            ### END SOLUTION'''


def _solution_nb() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["papermill"] = {"duration": 1.0}
    badge = notebooks.colab_badge("solutions/09_demo.ipynb")
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# Demo\n{badge}"),
        nbformat.v4.new_code_cell("import sys", metadata={"tags": ["setup"]}),
        nbformat.v4.new_code_cell("n = 3", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(EXERCISE_SRC, metadata={"tags": ["exercise"],
                                                           "brainxpert": {"exercise": "09.1", "points": 2}}),
        nbformat.v4.new_code_cell("check(double)", metadata={"tags": ["check"]}),
        nbformat.v4.new_markdown_cell("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION\nDone."),
        nbformat.v4.new_code_cell("print('secret')", metadata={"tags": ["solution-only"]}),
    ]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
        if cell.cell_type == "code":
            cell.execution_count = i
            cell.outputs = [nbformat.v4.new_output("stream", text="out\n")]
            cell.metadata["papermill"] = {"duration": 0.1}
    return nb


@pytest.fixture()
def solution(tmp_path: Path) -> Path:
    path = tmp_path / "solutions" / "09_demo.ipynb"
    path.parent.mkdir()
    nbformat.write(_solution_nb(), path)
    (path.parent / "hidden_tests").mkdir()
    (path.parent / "hidden_tests" / "09_demo.py").write_text(
        'EXERCISES = {"09.1": {"points": 2, "title": "double it"}}\n\ndef test_09_1(ns):\n    pass\n')
    return path


def test_code_stub_keeps_indentation_and_names_the_exercise(solution: Path, tmp_path: Path) -> None:
    out = notebooks.build_student_notebook(solution, tmp_path / "notebooks" / solution.name)
    cell = nbformat.read(out, as_version=4).cells[3]
    message = "Exercise 09.1: double it - replace this line with your code"
    assert cell.source.splitlines()[2:5] == [
        '    """Twice x."""', "    # YOUR CODE HERE", f'    raise NotImplementedError("{message}")']
    assert "            # YOUR CODE HERE" in cell.source.splitlines()
    assert "2 * x" not in cell.source and "return 1" not in cell.source and "SOLUTION" not in cell.source
    assert cell.metadata == {"tags": ["exercise"], "brainxpert": {"exercise": "09.1", "points": 2}}
    namespace: dict = {}
    exec(compile(cell.source, "stub", "exec"), namespace)  # the stub is valid Python
    with pytest.raises(NotImplementedError, match="Exercise 09.1: double it"):
        namespace["double"](2)


def test_markdown_answer_outputs_and_solution_only_cells(solution: Path, tmp_path: Path) -> None:
    nb = nbformat.read(notebooks.build_student_notebook(solution, tmp_path / "nb.ipynb"), as_version=4)
    assert [c.source for c in nb.cells if c.cell_type == "markdown"][1] == "Why?\n_Your answer here._\nDone."
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert all("papermill" not in c.metadata for c in nb.cells) and "papermill" not in nb.metadata
    assert "secret" not in "".join(c.source for c in nb.cells)
    assert notebooks.colab_url("notebooks/09_demo.ipynb") in nb.cells[0].source
    assert nb.cells[2].metadata["tags"] == ["parameters"]


def test_rebuild_is_byte_identical(solution: Path, tmp_path: Path) -> None:
    first = notebooks.build_student_notebook(solution, tmp_path / "a.ipynb").read_bytes()
    second = notebooks.build_student_notebook(solution, tmp_path / "b.ipynb").read_bytes()
    again = notebooks.build_student_notebook(tmp_path / "a.ipynb", tmp_path / "c.ipynb").read_bytes()
    assert first == second == again


def test_check_in_sync_finds_stale_missing_and_extra(solution: Path, tmp_path: Path) -> None:
    sol, out = solution.parent, tmp_path / "notebooks"
    assert any("missing" in p for p in notebooks.check_in_sync(sol, out))
    notebooks.build_all(sol, out)
    assert notebooks.check_in_sync(sol, out) == []
    nb = nbformat.read(solution, as_version=4)
    nb.cells[2].source = "n = 4"
    nbformat.write(nb, solution)
    assert any("out of sync" in p for p in notebooks.check_in_sync(sol, out))
    assert cli_main(["build-notebooks", "--check", "--solutions", str(sol), "--notebooks", str(out)]) == 1
    assert cli_main(["build-notebooks", "--solutions", str(sol), "--notebooks", str(out)]) == 0
    (out / "99_orphan.ipynb").write_text("{}")
    assert [p for p in notebooks.check_in_sync(sol, out) if "no solution notebook" in p]


def test_lint_reports_markup_mistakes(solution: Path) -> None:
    nb = nbformat.read(solution, as_version=4)
    nb.cells[3].metadata["brainxpert"]["points"] = 3
    nb.cells[4].metadata["tags"] = []
    nb.cells[1].source = "%pip install git+https://github.com/someone/else"
    hidden = solution.parent / "hidden_tests" / "09_demo.py"
    hidden.write_text(hidden.read_text().replace('"points": 2', '"points": 5'))
    problems = notebooks.lint_solution(nb, solution.name, solution.parent / "hidden_tests")
    assert any("metadata" in p for p in problems) and any("'check'" in p for p in problems)
    assert any("EXERCISES lacks '09.1' with 2 points" in p for p in problems)
    assert any("the setup cell should install" in p for p in problems)


def test_unclosed_or_misplaced_blocks_raise(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="never closed"):
        notebooks.strip_solution("### BEGIN SOLUTION\nx = 1", "code", "01.1", "t")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx=1\n### END SOLUTION")])
    with pytest.raises(NotebookError, match="outside an exercise cell"):
        notebooks.student_notebook(nb)


def test_committed_student_notebooks_are_in_sync() -> None:
    """notebooks/ must equal a fresh build of solutions/ (run `brainxpert build-notebooks`)."""
    if not any((REPO / "solutions").glob("[0-9][0-9]_*.ipynb")):
        pytest.skip("no solution notebooks yet")
    assert notebooks.check_in_sync(REPO / "solutions", REPO / "notebooks") == []
