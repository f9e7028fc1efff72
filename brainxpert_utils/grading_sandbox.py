"""Run a student's kernel in a throw-away Linux sandbox (mount + PID namespaces, no capabilities).

The grader starts each kernel as::

    unshare --mount --pid --fork --kill-child --mount-proc [--user --map-root-user] \
        python -m brainxpert_utils.grading_sandbox --work W --hide H ... -- python -m ipykernel_launcher -f F

and this module (PID 1 of the new namespace) then:

1. mounts a fresh, size-limited tmpfs on the temp folders and recreates only the submission's working
   folder ``W`` in it (other students' folders vanish), plus a minimal ``/dev`` (no disks);
2. covers every ``--hide`` path (solutions, hidden tests, results, submissions) with an empty tmpfs
   that nobody may read (mode 000);
3. remounts every other mount read-only (the course package, the datasets, the results folder);
4. forks the kernel with an empty capability bounding set and ``no_new_privs`` (and, when an
   unprivileged user can run the interpreter, as that user), and reaps it.

A sandboxed kernel therefore cannot read the hidden tests or solutions, cannot write anywhere but its
own working folder and ``/tmp``, and cannot see or signal other processes. ``sandbox_support()`` tells
whether this works on the current machine (Linux, ``unshare``, root or unprivileged user namespaces).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
MAX_WORK_BYTES = 256 * 2**20  # what the working folder may hold before the sandbox starts


def _unshare_prefix() -> list[str]:
    """The ``unshare`` command line that opens the namespaces (user namespace only when not root)."""
    cmd = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private"]
    if os.geteuid() != 0:
        cmd += ["--user", "--map-root-user"]
    return cmd


@functools.lru_cache(maxsize=1)
def sandbox_support() -> str:
    """"" when the sandbox works here, else the reason it does not (shown in warnings and results)."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux namespaces (this is {sys.platform})"
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is not installed"
    probe = _unshare_prefix() + [sys.executable, "-m", "brainxpert_utils.grading_sandbox", "--probe"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"starting a namespace failed ({exc})"
    if done.returncode != 0 or "sandbox-ok" not in done.stdout:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"namespaces are not allowed here ({detail[0]}); run as root or enable user namespaces"
    return ""


def sandbox_command(kernel_argv: list[str], work: Path, hide: list[Path], tmp_mb: int) -> list[str]:
    """The full command line that runs ``kernel_argv`` inside the sandbox with ``work`` as its folder."""
    cmd = _unshare_prefix() + [sys.executable, "-m", "brainxpert_utils.grading_sandbox",
                               "--work", str(work), "--tmp-mb", str(int(tmp_mb))]
    for path in hide:
        cmd += ["--hide", str(path)]
    return cmd + ["--"] + list(kernel_argv)


# ---------------------------------------------------------------- inside the namespace (PID 1)

_LIBC = None


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    enc = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    if _LIBC.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _umount(target: str) -> None:
    _LIBC.umount2(target.encode(), MNT_DETACH)


def _temp_roots() -> list[str]:
    """The temp folders covered by a private tmpfs (where all grading work folders live)."""
    roots = {"/tmp", os.path.realpath(tempfile.gettempdir())}
    return sorted(r for r in roots if os.path.isdir(r))


def _kept_paths(roots: list[str]) -> list[str]:
    """Folders under the temp roots that the kernel still needs: the Python environment, this package,
    the data and weights (a CI clone or a virtual environment may live under /tmp)."""
    wanted = {sys.prefix, sys.exec_prefix, os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
              str(Path(__file__).resolve().parent),
              os.environ.get("BRAINXPERT_DATA_DIR", ""), os.environ.get("BRAINXPERT_WEIGHTS_DIR", "")}
    real = {os.path.realpath(p) for p in wanted if p and os.path.isdir(p)}
    inside = [p for p in real if any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)]
    return sorted(p for p in inside if p not in roots)


def _read_tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path -> bytes); the copy survives covering its parent."""
    files, total = {}, 0
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            total += len(data)
            if total > MAX_WORK_BYTES:
                raise OSError(f"working folder {folder} holds more than {MAX_WORK_BYTES} bytes")
            files[path.relative_to(folder).as_posix()] = data
    return files


def _private_dev() -> None:
    """Replace /dev by a tmpfs holding only harmless character devices (no disks to read raw)."""
    keep = "/tmp/.bx-olddev"
    os.makedirs(keep, exist_ok=True)
    _mount("/dev", keep, None, MS_BIND | MS_REC)
    _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "size=1m,mode=755")
    for name in DEV_NODES:
        if os.path.exists(f"{keep}/{name}"):
            open(f"/dev/{name}", "w").close()
            _mount(f"{keep}/{name}", f"/dev/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    os.makedirs("/dev/shm")
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777")
    _umount(keep)
    os.rmdir(keep)


def _remount_read_only(writable: set[str]) -> None:
    """Every mount except ``writable`` ones, /proc and /dev becomes read-only (best effort per mount)."""
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4].replace("\\040", " ") for line in handle]
    for point in points:
        if point in writable or point.startswith(("/proc", "/dev")):
            continue
        stat = os.statvfs(point)
        kept = stat.f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)  # ST_* and MS_* agree for these three
        try:
            _mount("none", point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
        except OSError:
            pass  # a mount we may not touch (locked in a user namespace) stays as it is


def _unprivileged_user(python: str) -> pwd.struct_passwd | None:
    """``nobody`` when, without privileges, it may run ``python`` (then the kernel drops root too)."""
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        return None
    child = os.fork()
    if child == 0:  # try exactly what the kernel will do
        try:
            _drop_privileges(user)
            os.execv(python, [python, "-c", "pass"])
        finally:
            os._exit(127)
    _, status = os.waitpid(child, 0)
    return user if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else None


def _drop_privileges(user: pwd.struct_passwd | None) -> None:
    """Empty the capability bounding set, forbid regaining privileges, optionally become ``user``."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    if user is not None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def _prepare(work: Path, hide: list[str], tmp_mb: int) -> None:
    """Build the sandbox's file system view (see the module docstring, steps 1-3)."""
    files = _read_tree(work)
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    roots = _temp_roots()
    kept = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in _kept_paths(roots)}
    for root in roots:
        _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=1777")
    for path, fd in kept.items():  # bring back what the kernel needs, from before the tmpfs covered it
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
        parent = os.path.dirname(path)
        while parent not in roots and parent != "/":  # the folders made to hold it stay read-only
            os.chmod(parent, 0o555)
            parent = os.path.dirname(parent)
    work.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
    _private_dev()
    for path in hide:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000")
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND)
            _mount("none", path, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
    _remount_read_only(set(roots) | {"/dev/shm"})


def _run_kernel(work: Path, argv: list[str]) -> int:
    """Fork the kernel with no privileges, forward termination, reap orphans; its exit status."""
    user = _unprivileged_user(argv[0])
    if user is not None:
        os.chown(work, user.pw_uid, user.pw_gid)
        for path in work.rglob("*"):
            os.chown(path, user.pw_uid, user.pw_gid)
    child = os.fork()
    if child == 0:
        try:
            os.chdir(work)
            os.environ.pop("JPY_PARENT_PID", None)  # ipykernel would see PID 1 as its parent and quit
            _drop_privileges(user)
            os.execvp(argv[0], argv)
        except BaseException as exc:  # noqa: BLE001 - report, then leave the forked child at once
            print(f"grading sandbox: cannot start the kernel: {exc!r}", file=sys.stderr, flush=True)
        os._exit(127)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel gets SIGINT through its process group
    signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGKILL))
    while True:
        pid, status = os.wait()
        if pid == child:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m brainxpert_utils.grading_sandbox`` (run by ``unshare``)."""
    parser = argparse.ArgumentParser(prog="grading_sandbox", description=__doc__.split("\n")[0])
    parser.add_argument("--probe", action="store_true", help="only check that namespaces work")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--hide", action="append", default=[])
    parser.add_argument("--tmp-mb", type=int, default=1024)
    parser.add_argument("kernel", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.probe:
        _mount("none", "/", None, MS_REC | MS_PRIVATE)
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
        print("sandbox-ok")
        return 0
    kernel = args.kernel[1:] if args.kernel[:1] == ["--"] else args.kernel
    if args.work is None or not kernel:
        parser.error("--work and a kernel command after -- are required")
    _prepare(args.work, [os.path.realpath(p) for p in args.hide], args.tmp_mb)
    return _run_kernel(args.work, kernel)


if __name__ == "__main__":
    sys.exit(main())
