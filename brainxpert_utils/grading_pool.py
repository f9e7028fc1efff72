"""A small pool of worker processes for the batch grader (one submission, one kernel per worker).

The parent process is the only one that writes results: workers send ("kernel", pid) when their
kernel is up and ("result", dict) at the end through a pipe. A worker that dies or gets stuck is
killed together with its kernel and reported, and Ctrl-C kills every worker and kernel before it
propagates, so an interrupted batch leaves no kernel behind.
"""

from __future__ import annotations

import shutil
import tempfile
import time

from brainxpert_utils.grading_run import SCRATCH_PREFIX, kill_tree


def run_pool(jobs: list[dict], target, on_result, workers: int, hard_limit_s: float) -> None:
    """Run ``target(job, conn)`` in up to ``workers`` processes; ``on_result(job, result)`` in this one.

    A worker that dies without a result, or outlives ``hard_limit_s``, is killed with its kernel and
    reported as an error / timeout. On KeyboardInterrupt every worker and kernel is killed first.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")
    pending, running = list(reversed(jobs)), {}
    try:
        while pending or running:
            while pending and len(running) < max(1, workers):
                job = {**pending.pop(), "scratch": tempfile.mkdtemp(prefix=SCRATCH_PREFIX)}  # removed here too
                parent, child = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=target, args=(job, child), daemon=True)
                proc.start()
                child.close()
                running[parent] = {"job": job, "proc": proc, "start": time.monotonic(), "kernel": None}
            for conn in wait(list(running), timeout=0.5):
                _receive(conn, running, on_result)
            for conn, run in list(running.items()):
                if time.monotonic() - run["start"] > hard_limit_s:
                    _end(conn, running, on_result, "timeout", f"stopped after {hard_limit_s:.0f} s (worker stuck)")
    finally:
        for run in running.values():
            _kill(run)


def _receive(conn, running: dict, on_result) -> None:
    """Handle one message (or the end) of a worker's pipe."""
    run = running[conn]
    try:
        kind, payload = conn.recv()
    except (EOFError, OSError):
        _end(conn, running, on_result, "error", "the grading worker died without a result")
        return
    if kind == "kernel":
        run["kernel"] = payload
        return
    running.pop(conn)
    run["proc"].join(timeout=10)
    shutil.rmtree(run["job"]["scratch"], ignore_errors=True)
    on_result(run["job"], payload)


def _end(conn, running: dict, on_result, status: str, reason: str) -> None:
    """Kill a worker (and its kernel) and report ``status`` for its submission."""
    run = running.pop(conn)
    _kill(run)
    nb = run["job"]["notebook"]
    exercises = {ex: {"points": 0, "max": info["points"], "title": info["title"], "reason": f"not graded: {reason}"}
                 for ex, info in nb["exercises"].items()}
    on_result(run["job"], {"notebook": nb["key"], "status": status, "reason": reason, "exercises": exercises,
                           "total": 0, "max": sum(i["points"] for i in nb["exercises"].values()),
                           "seconds": round(time.monotonic() - run["start"], 1)})


def _kill(run: dict) -> None:
    """Kill a worker and its kernel, then remove the scratch folder it could not clean up."""
    kill_tree(run["kernel"])
    kill_tree(run["proc"].pid)
    run["proc"].join(timeout=10)
    shutil.rmtree(run["job"]["scratch"], ignore_errors=True)
