"""Moving bytes safely: resumable HTTP(S) downloads, sha256 of files, selective zip extraction.

Generic mechanics only; it knows nothing about datasets. ``brainxpert_utils.datasets.fetch_dataset``
decides what to download and where, and verifies the result against the manifest.

Partial-file policy: a download goes to a ``.part`` file. If the transfer stops early (connection
lost, timeout, Ctrl-C) the ``.part`` file is kept, and the next call asks the server for the rest
with an HTTP ``Range`` request. When the server ignores Range (answers 200) or the partial file does
not fit (416, or a 206 that starts elsewhere) the download restarts from byte 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from brainxpert_utils.errors import ChecksumError, DataError, DownloadError

CHUNK_BYTES = 1 << 16
USER_AGENT = "brainxpert-utils (course data download)"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_path(url: str) -> Path | None:
    """The local file that a ``file://`` URL or a plain path names; None for http(s) URLs."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # C:\... on Windows
        return Path(url).expanduser()
    raise DownloadError(f"unsupported URL {url!r}: use http://, https://, file:// or a local path to a zip")


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse | None:
    """Open ``url`` asking for the bytes from ``offset`` on; None if that range does not exist (416).

    DownloadError for every other failure: HTTP errors, no network, DNS failure, timeout.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None
        raise DownloadError(f"the server answered HTTP {exc.code} ({exc.reason}) for {url}") from exc
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS failure, unreachable, timeout
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"could not connect to {url} ({reason}): no network, or the server is down") from exc


def _resume_start(response: http.client.HTTPResponse, offset: int) -> int | None:
    """Byte where the body starts: ``offset`` for a matching 206, 0 for a 200, None if inconsistent."""
    if response.status != 206:
        return 0
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
    return offset if match and int(match.group(1)) == offset else None


def _total_size(response: http.client.HTTPResponse, start: int) -> int | None:
    """Full size of the file, from Content-Range (206) or Content-Length (200); None if unknown."""
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def download_file(url: str, part: str | os.PathLike, timeout: float = 30, progress: bool = True,
                  description: str = "download") -> Path:
    """Download ``url`` into ``part``, resuming a partial ``part`` file when the server allows it.

    Returns ``part`` once it holds the whole file. Raises DownloadError (keeping ``part`` so a second
    call resumes) when the transfer stops early, and DownloadError for HTTP errors and no network.
    """
    from tqdm.auto import tqdm

    part = Path(part)
    offset = part.stat().st_size if part.is_file() else 0
    response = _open(url, offset, timeout)
    start = None if response is None else _resume_start(response, offset)
    if start is None:  # 416, or a 206 for another range: the partial file does not fit, start again
        if response is not None:
            response.close()
        if not offset:
            raise DownloadError(f"{url}: the server sent a partial answer that was not asked for")
        part.unlink()
        return download_file(url, part, timeout, progress, description)
    part.parent.mkdir(parents=True, exist_ok=True)
    with response:
        total = _total_size(response, start)
        with open(part, "ab" if start else "wb") as out, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=description, disable=not progress,
        ) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                    out.write(block)
                    bar.update(len(block))
            except (http.client.HTTPException, OSError) as exc:  # IncompleteRead, reset, timeout
                received = out.tell()
                raise DownloadError(_stopped(url, received, total, exc)) from exc
    received = part.stat().st_size
    if total is not None and received != total:
        raise DownloadError(_stopped(url, received, total, "connection closed early"))
    return part


def _stopped(url: str, received: int, total: int | None, why: object) -> str:
    of_total = f" of {total:,}" if total else ""
    return (f"the download of {url} stopped after {received:,}{of_total} bytes ({why}). "
            "The partial file is kept: run the same command again to resume.")


def _target(name: str, members: Sequence[tuple[str, str]]) -> str | None:
    """Where archive entry ``name`` goes (relative POSIX path), or None if it is not wanted."""
    for source, destination in members:
        if name.startswith(source) and not name.endswith("/"):
            relative = PurePosixPath(destination + name[len(source):])
            if relative.is_absolute() or ".." in relative.parts:
                raise DownloadError(f"refusing unsafe path {name!r} in the archive")
            return relative.as_posix()
    return None


def extract_members(archive: str | os.PathLike, members: Sequence[tuple[str, str]],
                    dest: str | os.PathLike) -> dict[str, str]:
    """Extract the zip entries under each ``(archive prefix, folder prefix)`` pair into ``dest``.

    Entries outside the prefixes are skipped. Returns ``{relative path: sha256}`` of what was
    written, hashed from the very bytes written. DownloadError if the file is not a readable zip or
    holds none of the prefixes; ChecksumError naming the entry if its bytes fail the zip's CRC.
    """
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{archive} is not a readable zip archive ({exc}): truncated or not a zip") from exc
    written: dict[str, str] = {}
    with bundle:
        for entry in bundle.infolist():
            relative = _target(entry.filename, members)
            if relative is not None:
                written[relative] = _extract_one(bundle, entry, Path(dest) / relative)
    if not written:
        prefixes = ", ".join(source for source, _ in members)
        raise DownloadError(f"{archive} holds none of the expected folders ({prefixes}): wrong archive?")
    return written


def _extract_one(bundle: zipfile.ZipFile, entry: zipfile.ZipInfo, path: Path) -> str:
    """Write one zip entry to ``path`` and return the sha256 of the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    try:
        with bundle.open(entry) as source, open(path, "wb") as out:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:  # bad CRC, damaged data
        raise ChecksumError(f"damaged archive entry {entry.filename!r}: {exc}") from exc
    return digest.hexdigest()


@dataclass
class VerifyReport:
    """Result of comparing a folder with its manifest."""

    name: str
    folder: Path
    expected: int
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)

    @property
    def verified(self) -> int:
        """Files present with the expected sha256."""
        return self.expected - len(self.missing) - len(self.changed)

    def summary(self, limit: int = 10) -> str:
        head = f"{self.name}: {self.verified:,} of {self.expected:,} files match the manifest in {self.folder}"
        if self.ok:
            return head + " - OK"
        lines = [head + f"; {len(self.missing)} missing, {len(self.changed)} changed, {len(self.extra)} extra"]
        for kind in ("missing", "changed", "extra"):
            paths = getattr(self, kind)
            if paths:
                more = f" ... and {len(paths) - limit} more" if len(paths) > limit else ""
                lines.append(f"  {kind}: " + ", ".join(paths[:limit]) + more)
        return "\n".join(lines)

    __str__ = summary


def compare_to_manifest(name: str, folder: Path, actual: Mapping[str, str],
                        expected: Mapping[str, str]) -> VerifyReport:
    """Report of ``actual`` ``{relative path: sha256}`` against the manifest's."""
    return VerifyReport(
        name=name, folder=Path(folder), expected=len(expected),
        missing=sorted(set(expected) - set(actual)),
        changed=sorted(p for p in expected.keys() & actual.keys() if expected[p] != actual[p]),
        extra=sorted(set(actual) - set(expected)),
    )


def hash_folder(folder: str | os.PathLike, progress: bool = False) -> dict[str, str]:
    """``{relative POSIX path: sha256}`` of every file under ``folder`` (read-only)."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in tqdm(files, desc="sha256", unit="file", disable=not progress)}


def unpack_verified(archive: str | os.PathLike, members: Sequence[tuple[str, str]],
                    expected: Mapping[str, str], dest: str | os.PathLike, name: str = "archive") -> Path:
    """Extract into a temporary folder beside ``dest``, verify every file, then rename into place.

    ChecksumError (naming the files) when anything differs from ``expected``; the temporary folder
    is always removed on failure, so ``dest`` is either complete and verified or absent.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        written = extract_members(archive, members, tmp)
        report = compare_to_manifest(name, dest, written, expected)
        if not report.ok:
            raise ChecksumError(f"the archive does not match the manifest; nothing was installed.\n{report}")
        if dest.exists():
            raise DataError(f"{dest} appeared while unpacking (another download?): nothing was changed")
        os.rename(tmp, dest)  # atomic on one filesystem: the dataset folder is whole or absent
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def install_archive(source: str, members: Sequence[tuple[str, str]], expected: Mapping[str, str],
                    dest: str | os.PathLike, downloads: str | os.PathLike, timeout: float = 30,
                    progress: bool = True, name: str = "archive") -> Path:
    """Get the zip at ``source`` (http(s), ``file://`` or a local path) and ``unpack_verified`` it.

    A download goes to ``downloads/<name>-<url hash>.zip.part``; an interrupted one is kept and
    resumed next time. A complete archive that fails to unpack or verify is deleted (resuming it
    cannot help); if it came from a resumed download it is fetched once more from the start.
    """
    local = local_path(source)
    if local is not None:
        if not local.is_file():
            raise DownloadError(f"no archive at {local}")
        return unpack_verified(local, members, expected, dest, name)
    part = Path(downloads) / f"{name}-{hashlib.sha1(source.encode()).hexdigest()[:10]}.zip.part"
    try:
        for attempt in (1, 2):
            resumed = part.is_file() and part.stat().st_size > 0
            download_file(source, part, timeout, progress, description=name)
            try:
                return unpack_verified(part, members, expected, dest, name)
            except DownloadError:
                if not resumed or attempt == 2:
                    raise
                print("The resumed download is unusable; downloading again from the start.", file=sys.stderr)
            finally:
                part.unlink(missing_ok=True)
        raise AssertionError("unreachable")
    finally:
        with contextlib.suppress(OSError):
            part.parent.rmdir()  # only when empty: an interrupted .part file stays for resuming
