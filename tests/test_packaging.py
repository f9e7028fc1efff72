"""The project's own files describe one package set; README's commands match .ci/run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _names(specs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", s.strip(), maxsplit=1)[0].lower().replace("_", "-") for s in specs if s.strip()}


def _pyproject_names() -> set[str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = data["project"]
    return _names(project["dependencies"]) | _names(project["optional-dependencies"]["dev"])


def _environment_names() -> set[str]:
    names = []
    text = (REPO / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        m = re.match(r"^  - ([A-Za-z0-9_.\-]+)", line)
        if m and m.group(1) not in {"python", "pip"}:
            names.append(m.group(1))
    return _names(names)


def test_environment_yml_and_pyproject_list_the_same_packages():
    assert _environment_names() == _pyproject_names()


def test_tensorflow_is_not_pinned_to_one_version():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    tf = [d for d in data["project"]["dependencies"] if d.startswith("tensorflow")]
    assert tf and "==" not in tf[0] and ">=" in tf[0]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Quick start(.*?)\n## ", readme, re.S).group(1)
    commands = re.findall(r"```(?:bash|sh)?\n(.*?)\n```", block, re.S)
    assert len(commands) == 2, "Quick start gives exactly two commands"
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1].strip() in ci


def test_console_script_is_declared():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert data["project"]["scripts"]["brainxpert"] == "brainxpert_utils.cli:main"
