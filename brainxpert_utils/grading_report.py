"""What the grader writes: per-submission result JSON, grades.csv, one feedback file per student.

Every file is written atomically (a temporary file in the same folder, then ``os.replace``), so an
interrupted batch leaves complete files only, and only the grader's parent process writes here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

STATUSES = ("graded", "timeout", "error", "not attempted", "invalid file")
CSV_FIXED = ("student", "notebook", "file")
CSV_TAIL = ("total", "max", "status", "reason")


def safe_name(text: str) -> str:
    """``text`` usable as a file name (letters, digits, ``.-_``; anything else becomes ``_``)."""
    cleaned = "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in text).strip("._")
    return cleaned or "unnamed"


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` in one step (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def result_path(results_dir: Path, key: str) -> Path:
    """Where the result JSON of submission ``key`` lives."""
    return Path(results_dir) / "executed" / f"{key}.json"


def save_result(results_dir: Path, result: dict) -> Path:
    """Write one submission's result JSON; returns its path."""
    path = result_path(results_dir, result["key"])
    write_atomic(path, json.dumps(result, indent=1, sort_keys=True) + "\n")
    return path


def load_results(results_dir: Path) -> list[dict]:
    """Every result JSON under ``results_dir/executed`` (unreadable ones are skipped)."""
    results = []
    for path in sorted((Path(results_dir) / "executed").glob("*.json")):
        try:
            results.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return results


def grades_table(results: list[dict], exercise_ids: list[str]) -> list[dict]:
    """One row per submission: student, notebook, file, points per exercise, total, max, status, reason."""
    rows = []
    for res in sorted(results, key=lambda r: (r["student"], r.get("notebook") or "", r["file"])):
        row = {"student": res["student"], "notebook": res.get("notebook") or "", "file": res["file"]}
        for ex in exercise_ids:
            got = res.get("exercises", {}).get(ex)
            row[ex] = "" if got is None else fmt_points(got["points"])
        row.update(total=fmt_points(res["total"]), max=fmt_points(res["max"]), status=res["status"], reason=res["reason"])
        rows.append(row)
    return rows


def write_grades_csv(results_dir: Path, results: list[dict], exercise_ids: list[str]) -> Path:
    """(Re)write ``results_dir/grades.csv`` from ``results``; always has the header row."""
    columns = list(CSV_FIXED) + list(exercise_ids) + list(CSV_TAIL)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(grades_table(results, exercise_ids))
    path = Path(results_dir) / "grades.csv"
    write_atomic(path, buffer.getvalue())
    return path


def fmt_points(value: float) -> int | float:
    """Points as written in the table: 2 not 2.0, at most two decimals."""
    value = round(float(value), 2)
    return int(value) if value.is_integer() else value


def feedback_markdown(student: str, results: list[dict]) -> str:
    """A student's feedback: per notebook, each exercise's points and reason, then the total."""
    lines = [f"# Feedback for {student}", ""]
    for res in sorted(results, key=lambda r: (r.get("notebook") or "", r["file"])):
        lines += [f"## {res.get('notebook') or 'unknown notebook'} (`{res['file']}`)", "",
                  f"**{fmt_points(res['total'])} / {fmt_points(res['max'])} points** - status: {res['status']}"]
        if res["reason"]:
            lines.append(f"\n> {res['reason']}")
        if res.get("exercises"):
            lines += ["", "| exercise | points | result |", "|---|---|---|"]
            for ex, got in sorted(res["exercises"].items()):
                mark = "✅" if got["points"] >= got["max"] else ("🟡" if got["points"] > 0 else "❌")
                why = (got.get("reason") or "correct").replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {ex} {got.get('title', '')} | {fmt_points(got['points'])} / {fmt_points(got['max'])} "
                             f"| {mark} {why} |")
        lines.append("")
    return "\n".join(lines)


def write_feedback(results_dir: Path, student: str, results: list[dict]) -> Path:
    """(Re)write ``results_dir/feedback/<student>.md`` from that student's results."""
    path = Path(results_dir) / "feedback" / f"{safe_name(student)}.md"
    write_atomic(path, feedback_markdown(student, results))
    return path
