"""Execute one submitted notebook in its own kernel and run the hidden tests against its namespace.

Called by the batch grader in a worker process (one kernel per worker). The steps:

1. inject the grading parameters after the ``parameters`` cell (as papermill does);
2. start a kernel (inside the sandbox of ``grading_sandbox`` when available) in a fresh working folder
   holding only a copy of the submission, with ``BRAINXPERT_GRADING=1``;
3. run every cell with ``allow_errors`` (a failing cell does not stop the rest), a per-cell timeout
   that interrupts the cell, a per-notebook deadline and a memory watchdog that kill the kernel;
4. only then send the hidden tests as the source of extra cells; each test reports its score as one
   display output tagged with a per-run random nonce, so text printed by the student cannot forge it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_MIME = "application/vnd.brainxpert.grade+json"
DEFAULT_TEST_TIMEOUT = 120  # seconds per hidden test cell (tests are meant to take seconds)
MAX_OUTPUT_CHARS = 20_000  # per stream output kept in the executed notebook
SCRATCH_PREFIX = "bxgrade-"  # private temp folders (kernel spec + working folder), one per submission
STUB_MARK = "raise NotImplementedError("

# Defines the runner inside the kernel, after every student cell ran. ``{source}`` is the hidden test
# module's source (a Python string literal); the kernel never finds it on disk.
_SETUP_CELL = '''\
def _bx_make_grader(source):
    import types
    from IPython.display import display

    tests = types.ModuleType("brainxpert_hidden_tests")
    exec(compile(source, "<hidden tests>", "exec"), tests.__dict__)

    class Missing(KeyError):
        pass

    class Namespace(dict):
        def __missing__(self, name):
            raise Missing(name)

    def grade(exercise_id, nonce, namespace):
        score, reason, attempted = 0.0, "", True
        try:
            test = getattr(tests, "test_" + exercise_id.replace(".", "_"), None)
            if test is None:
                raise LookupError(f"no hidden test for exercise {{exercise_id}} (instructor: add it)")
            value = test(Namespace(namespace))
            score = 1.0 if value is None else max(0.0, min(1.0, float(value)))
            reason = "" if score == 1.0 else f"partial credit {{score:.0%}}"
        except Missing as exc:
            reason = (f"`{{exc.args[0]}}` is not defined in your notebook: did you rename or delete it? "
                      "Keep the names the exercise cell gives.")
        except NotImplementedError:
            reason, attempted = "not attempted: the exercise still raises NotImplementedError", False
        except AssertionError as exc:
            reason = str(exc) or "a hidden check failed"
        except KeyboardInterrupt:
            reason = "the test of your code ran too long and was stopped: does it loop forever?"
        except BaseException as exc:  # the student's code may raise anything, SystemExit included
            reason = f"your code raised {{type(exc).__name__}}: {{exc}}"
        display({{"{mime}": {{"nonce": nonce, "exercise": exercise_id, "score": score,
                             "reason": reason[:600], "attempted": attempted}}}}, raw=True)

    return grade


_bx_grade = _bx_make_grader({source})
del _bx_make_grader
'''


@dataclass
class RunOptions:
    """How one submission is executed (the batch grader fills this from its flags)."""

    cell_timeout: int = 600
    notebook_timeout: int = 1800
    memory_mb: int = 4096
    test_timeout: int = DEFAULT_TEST_TIMEOUT
    parameters: dict = field(default_factory=dict)
    sandbox: bool = True
    hide: list = field(default_factory=list)  # paths the kernel must not see (sandbox only)
    tmp_mb: int = 1024


@dataclass
class RunOutcome:
    """What happened: status problem (or ""), per-exercise test results, executed notebook."""

    problem_status: str = ""  # "", "timeout" or "error"
    problem: str = ""
    tests: dict = field(default_factory=dict)  # exercise id -> {"score", "reason", "attempted"}
    error_cells: list = field(default_factory=list)  # cell numbers in the submission (from 1)
    last_cell: int = -1  # index of the cell being run (where a kernel death happened)
    injected_at: int = 0  # index of the injected parameters cell
    peak_mb: float = 0.0  # the kernel's largest resident memory seen by the watchdog
    timed_out_cells: list = field(default_factory=list)  # cell numbers in the submission (from 1)
    nb: Any = None

    def cell_number(self, index: int) -> int:
        """The submission's own cell number (from 1) of executed-notebook cell ``index``."""
        return index + (1 if index < self.injected_at else 0)


def inject_parameters(nb: Any, parameters: dict) -> int:
    """Insert a cell assigning ``parameters`` after the ``parameters`` cell; its index.

    As the course runner does, only names the parameters cell declares are injected (``grading``
    always). Without a tagged cell (a retyped cell loses its tag): after the first code cell that
    assigns one of the names, else at the top.
    """
    import nbformat

    assigns = re.compile(r"^(%s)\s*=" % "|".join(map(re.escape, parameters)), re.M) if parameters else None
    where = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if where is None:
        where = next((i for i, c in enumerate(nb.cells)
                      if assigns and c.cell_type == "code" and assigns.search(c.source)), None)
    declared = set(assigns.findall(nb.cells[where].source)) if where is not None and assigns else set(parameters)
    chosen = {k: v for k, v in parameters.items() if k in declared or k == "grading"}
    source = "# Parameters injected by the BrainXpert grader\n" + "".join(
        f"{name} = {value!r}\n" for name, value in chosen.items())
    where = 0 if where is None else where + 1
    nb.cells.insert(where, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return where


def is_untouched_stub(source: str) -> bool:
    """True when an exercise cell still holds the generated ``raise NotImplementedError`` stub."""
    from brainxpert_utils.notebooks import CODE_STUB

    return CODE_STUB in source and STUB_MARK in source


def process_tree(pid: int | None) -> list:
    """``pid`` and all its descendants (psutil processes; empty when it is gone)."""
    import psutil

    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def kill_tree(pid: int | None) -> None:
    """SIGKILL a process and all its descendants (a worker and its kernel, a kernel and its children)."""
    import psutil

    for proc in reversed(process_tree(pid)):
        try:
            proc.kill()
        except psutil.Error:
            pass


class KernelWatch(threading.Thread):
    """Kills the kernel's process tree above ``memory_mb`` of RSS or after ``deadline`` (monotonic)."""

    def __init__(self, pid: int, memory_mb: int, deadline: float, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.memory_mb, self.deadline, self.interval = pid, memory_mb, deadline, interval
        self.status, self.reason, self.peak_mb = "", "", 0.0
        self._stop = threading.Event()

    def kill(self) -> None:
        """SIGKILL the whole tree (the sandbox's PID 1 takes the kernel with it)."""
        kill_tree(self.pid)

    def run(self) -> None:
        import psutil

        while not self._stop.wait(self.interval):
            rss = 0
            for proc in process_tree(self.pid):
                try:
                    rss += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mb = max(self.peak_mb, rss / 2**20)
            if rss > self.memory_mb * 2**20:
                self.status = "error"
                self.reason = (f"memory limit: the notebook used more than {self.memory_mb} MB and was "
                               "stopped (large arrays or a dataset loaded whole?)")
            elif time.monotonic() > self.deadline:
                self.status = "timeout"
                self.reason = "notebook timeout: stopped after running too long"
            else:
                continue
            self.kill()
            return

    def stop(self) -> None:
        self._stop.set()


def _kernel_spec_dir(private: Path, work: Path, options: RunOptions) -> Path:
    """Write a kernel spec whose command runs ipykernel (sandboxed when asked); its folder."""
    from brainxpert_utils.grading_sandbox import sandbox_command

    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    if options.sandbox:
        argv = sandbox_command(argv, work, [Path(p) for p in options.hide], options.tmp_mb)
    if shutil.which("setpriv"):  # the kernel dies with its worker, even when the worker is killed
        argv = ["setpriv", "--pdeathsig", "KILL", "--"] + argv
    spec = private / "kernels" / "brainxpert-grading"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "BrainXpert grading",
                                                  "language": "python"}))
    return spec.parent


def _kernel_env(work: Path) -> dict:
    """The kernel's environment: the grader's, minus import paths, plus the grading flags."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JUPYTER_PATH", "PYTHONSTARTUP")}
    env.update(BRAINXPERT_GRADING="1", HOME=str(work), IPYTHONDIR=str(work / ".ipython"),
               MPLCONFIGDIR=str(work / ".matplotlib"), MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2",
               BRAINXPERT_ARTIFACTS_DIR=str(work / "artifacts"), PYTHONDONTWRITEBYTECODE="1", BRAINXPERT_SMOKE="1")
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    if keras_home.is_dir():  # cached ImageNet weights stay findable (read-only) although HOME moved
        env["KERAS_HOME"] = str(keras_home)
    return env


def _test_cells(source: str, exercise_ids: list[str], nonce: str) -> list:
    """The setup cell and one cell per exercise that report the hidden tests' results."""
    import nbformat

    meta = {"tags": ["brainxpert-hidden-test"]}
    cells = [nbformat.v4.new_code_cell(_SETUP_CELL.format(source=repr(source), mime=RESULT_MIME), metadata=meta)]
    for ex in exercise_ids:
        cells.append(nbformat.v4.new_code_cell(f"_bx_grade({ex!r}, {nonce!r}, globals())",
                                               metadata={**meta, "brainxpert_test": ex}))
    return cells


def _read_results(cells: list, nonce: str) -> dict:
    """Per exercise, the one result display carrying ``nonce`` (none or several: not trusted)."""
    results = {}
    for cell in cells:
        ex = cell.metadata.get("brainxpert_test")
        if ex is None:
            continue
        found = [o["data"][RESULT_MIME] for o in cell.get("outputs", [])
                 if o.get("output_type") == "display_data" and RESULT_MIME in o.get("data", {})
                 and o["data"][RESULT_MIME].get("nonce") == nonce and o["data"][RESULT_MIME].get("exercise") == ex]
        if len(found) == 1:
            results[ex] = {k: found[0].get(k) for k in ("score", "reason", "attempted")}
        elif found:
            results[ex] = {"score": 0.0, "reason": "several results were reported: grading tampered with",
                           "attempted": True}
        else:
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            why = f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else "no result"
            results[ex] = {"score": 0.0, "reason": f"the hidden test could not run ({why})", "attempted": True}
    return results


def _trim_outputs(nb: Any) -> None:
    """Cap huge text outputs and hide the hidden tests' source in the executed notebook."""
    for cell in nb.cells:
        if "brainxpert-hidden-test" in cell.get("metadata", {}).get("tags", []):
            ex = cell.metadata.get("brainxpert_test")
            cell.source = f"# hidden test {ex} (source not stored)" if ex else "# hidden tests (source not stored)"
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and len(out.get("text", "")) > MAX_OUTPUT_CHARS:
                out["text"] = out["text"][:MAX_OUTPUT_CHARS] + "\n... [output truncated by the grader]\n"


def _kernel_manager(private: Path, work: Path, options: RunOptions) -> Any:
    """A kernel manager for our own kernel spec, its connection file inside the working folder."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    specs = KernelSpecManager(kernel_dirs=[str(_kernel_spec_dir(private, work, options))])
    km = AsyncKernelManager(kernel_name="brainxpert-grading", kernel_spec_manager=specs)
    km.connection_file = str(work / ".connection.json")  # only this kernel's sandbox can see it
    return km


def _notebook_client(nb: Any, km: Any, options: RunOptions, outcome: RunOutcome, n_student: int, work: Path) -> Any:
    """An nbclient that keeps going after errors and interrupts a cell at its timeout."""
    from nbclient import NotebookClient

    def on_error(cell, cell_index, execute_reply):
        if cell_index >= n_student:  # a hidden test: its own result says what happened
            return
        if execute_reply["content"].get("ename") == "CellTimeoutError":
            outcome.timed_out_cells.append(outcome.cell_number(cell_index))
        else:
            outcome.error_cells.append(outcome.cell_number(cell_index))

    return NotebookClient(
        nb, km=km, timeout=options.cell_timeout, allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "the cell ran over its time limit", "traceback": []},
        timeout_func=lambda cell: options.test_timeout if "brainxpert_test" in cell.metadata else options.cell_timeout,
        startup_timeout=120, record_timing=False, on_cell_error=on_error,
        on_cell_execute=lambda cell, cell_index: setattr(outcome, "last_cell", cell_index),
        resources={"metadata": {"path": str(work)}})


def execute_submission(nb: Any, submission_bytes: bytes, filename: str, hidden_source: str,
                       exercise_ids: list[str], options: RunOptions, on_kernel_pid=None,
                       scratch: str | Path | None = None) -> RunOutcome:
    """Run ``nb`` then its hidden tests in a fresh kernel; never raises for what the notebook does.

    ``scratch``: an empty private folder for the kernel spec and working folder (default: a new temp
    folder); it is emptied at the end.
    """
    from jupyter_core.utils import run_sync
    from nbclient.exceptions import DeadKernelError

    outcome = RunOutcome(nb=nb)
    outcome.injected_at = inject_parameters(nb, options.parameters)
    n_student, nonce = len(nb.cells), secrets.token_hex(16)
    nb.cells.extend(_test_cells(hidden_source, exercise_ids, nonce))
    private = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    work = private / "work"
    work.mkdir()
    (work / Path(filename).name).write_bytes(submission_bytes)
    km = _kernel_manager(private, work, options)
    client = _notebook_client(nb, km, options, outcome, n_student, work)
    watch, log = None, open(private / "kernel.log", "wb")
    try:
        client.reset_execution_trackers()
        with client.setup_kernel(env=_kernel_env(work), stdout=log, stderr=log):
            watch = KernelWatch(km.provisioner.pid, options.memory_mb, time.monotonic() + options.notebook_timeout)
            watch.start()
            if on_kernel_pid is not None:  # lets the batch parent kill it if this worker is killed
                on_kernel_pid(km.provisioner.pid)
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            outcome.tests = _read_results(nb.cells[n_student:], nonce)
    except DeadKernelError:
        process = getattr(km.provisioner, "process", None)
        _kernel_died(outcome, watch, private, n_student, process.poll() if process else None)
    except Exception as exc:  # kernel did not start, protocol failure: an error, never a crash of the batch
        if watch is not None and watch.status:
            outcome.problem_status, outcome.problem = watch.status, watch.reason
        else:
            outcome.problem_status, outcome.problem = "error", f"grading failed: {type(exc).__name__}: {exc}"[:500]
    finally:
        if watch is not None:
            watch.stop()
            watch.kill()
            outcome.peak_mb = round(watch.peak_mb, 1)
        try:
            run_sync(km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - already dead or never started
            pass
        log.close()
        shutil.rmtree(private, ignore_errors=True)
    if outcome.timed_out_cells and not outcome.problem_status:
        outcome.problem_status = "timeout"
        outcome.problem = (f"cell(s) {', '.join(map(str, outcome.timed_out_cells))} (counting from 1) ran over the "
                           f"{options.cell_timeout} s cell limit and were interrupted; the rest was graded")
    _trim_outputs(nb)
    return outcome


def _kernel_died(outcome: RunOutcome, watch: KernelWatch | None, private: Path, n_student: int,
                 exit_code: int | None) -> None:
    """Fill the outcome when the kernel is gone: memory / deadline kill, or the notebook crashed it."""
    if watch is not None and watch.status:
        outcome.problem_status, outcome.problem = watch.status, watch.reason
        return
    log = (private / "kernel.log").read_text(errors="replace").splitlines()
    fatal = [line for line in log if re.search(r"Error|Fatal|Segmentation|Abort|Killed", line)][-1:]
    where = (f"while running cell {outcome.cell_number(outcome.last_cell)} (counting from 1)" if outcome.last_cell < n_student
             else "during the hidden tests")
    how = ("" if exit_code is None else f"killed by signal {exit_code - 128}" if exit_code > 128
           else f"exit code {exit_code}")
    outcome.problem_status = "error"
    outcome.problem = (f"the kernel died {where} ({how or 'os._exit, a crash or a kill?'})"
                       + (f"; last kernel message: {fatal[0][:200]}" if fatal else ""))

