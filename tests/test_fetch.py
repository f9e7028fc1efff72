"""fetch_dataset against a real HTTP server on 127.0.0.1 serving a zip built here.

The archive is laid out like the GitHub archive of the Sartaj repository (top folder
``Brain-Tumor-Classification-DataSet-<commit>/`` holding Training/ and Testing/, plus a file that must
not be extracted), and comes with its own small manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import socket
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brainxpert_utils import cli, datasets
from brainxpert_utils.errors import ChecksumError, DataError, DownloadError

SARTAJ = datasets.get_dataset("sartaj")
FILES = ["Training/glioma_tumor/gg (1).jpg", "Training/no_tumor/1.jpg",
         "Testing/meningioma_tumor/image(1).jpg", "Testing/pituitary_tumor/image(2).jpg"]


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _zip(entries: dict[str, bytes]) -> bytes:
    """A zip with directory entries first, as GitHub writes them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as bundle:
        folders = sorted({name.rsplit("/", 1)[0] + "/" for name in entries})
        for folder in folders:
            bundle.writestr(folder, b"")
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    return {path: _jpeg(i) for i, path in enumerate(FILES)}


@pytest.fixture(scope="module")
def manifest(images) -> dict[str, str]:
    return {path: hashlib.sha256(data).hexdigest() for path, data in images.items()}


@pytest.fixture(scope="module")
def archive(images) -> bytes:
    top = datasets.SARTAJ_TOP
    return _zip({top + "README.md": b"# not extracted\n", **{top + p: d for p, d in images.items()}})


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    status: int | None = None  # answer every request with this error
    ranges: bool = True  # honour Range requests
    truncate_at: int | None = None  # next response: close after this many body bytes
    requests: list[dict] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        state: ServerState = self.server.state
        asked = self.headers.get("Range")
        state.requests.append({"path": self.path, "range": asked, "sent": 0})
        body = state.files.get(self.path)
        if state.status or body is None:
            self.send_error(state.status or 404)
            return
        start = int(re.match(r"bytes=(\d+)-", asked).group(1)) if asked and state.ranges else 0
        if start >= len(body) > 0 and asked:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        chunk = body[start:]
        if state.truncate_at is not None:
            chunk, state.truncate_at = chunk[:state.truncate_at], None
        self.wfile.write(chunk)
        state.requests[-1]["sent"] = len(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(archive):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState(files={"/archive.zip": archive})
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/archive.zip"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/archive.zip"


def _fetch(tmp_path: Path, url: str, manifest, name=SARTAJ) -> Path:
    return datasets.fetch_dataset(name, tmp_path, url=url, timeout=5, progress=False, manifest=manifest)


def _assert_nothing_installed(data_dir: Path, keep_part: bool = False) -> None:
    leftovers = sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []
    assert leftovers == ([datasets.DOWNLOADS] if keep_part else []), leftovers
    if keep_part:
        assert [p.suffix for p in (data_dir / datasets.DOWNLOADS).iterdir()] == [".part"]


def test_success_installs_verified_files_in_dataset_layout(tmp_path, server, images, manifest):
    folder = _fetch(tmp_path, server.url, manifest)
    assert folder == tmp_path / "sartaj_brain_tumor_classification_mri"
    installed = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert installed == sorted(FILES)  # README.md outside Training/Testing is not extracted
    assert all((folder / p).read_bytes() == data for p, data in images.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no .part, no temp folder
    assert datasets.verify_dataset(SARTAJ, tmp_path, manifest=manifest).ok


def test_present_and_verified_dataset_is_not_downloaded_again(tmp_path, server, manifest):
    first = _fetch(tmp_path, server.url, manifest)
    mtimes = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    assert _fetch(tmp_path, _closed_port_url(), manifest) == first  # no network needed
    assert _fetch(first, _closed_port_url(), manifest) == first  # data_dir = the dataset folder itself
    assert len(server.state.requests) == 1
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*")} == mtimes


def test_existing_folder_that_differs_is_reported_not_overwritten(tmp_path, server, manifest):
    folder = _fetch(tmp_path, server.url, manifest)
    (folder / FILES[0]).write_bytes(b"edited")
    with pytest.raises(DataError, match=r"(?s)does not match.*changed: Training/glioma_tumor/gg \(1\)\.jpg"):
        _fetch(tmp_path, server.url, manifest)
    assert (folder / FILES[0]).read_bytes() == b"edited"
    assert len(server.state.requests) == 1


def test_truncated_download_leaves_nothing_installed_and_resumes(tmp_path, server, manifest, archive):
    half = len(archive) // 2
    server.state.truncate_at = half
    with pytest.raises(DownloadError, match=f"stopped after {half:,} of {len(archive):,} bytes") as err:
        _fetch(tmp_path, server.url, manifest)
    assert "by hand" in str(err.value) and SARTAJ.url in str(err.value)
    _assert_nothing_installed(tmp_path, keep_part=True)
    part = next((tmp_path / datasets.DOWNLOADS).iterdir())
    assert part.read_bytes() == archive[:half]

    folder = _fetch(tmp_path, server.url, manifest)
    retry = server.state.requests[-1]
    assert retry["range"] == f"bytes={half}-" and retry["sent"] == len(archive) - half
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def test_server_ignoring_range_restarts_from_zero(tmp_path, server, manifest, archive):
    part_dir = tmp_path / datasets.DOWNLOADS
    server.state.truncate_at = 100
    with pytest.raises(DownloadError):
        _fetch(tmp_path, server.url, manifest)
    server.state.ranges = False
    _fetch(tmp_path, server.url, manifest)
    assert server.state.requests[-1]["range"] == "bytes=100-"
    assert server.state.requests[-1]["sent"] == len(archive)
    assert not part_dir.exists()


@pytest.mark.parametrize("garbage", ["too_long", "wrong_bytes"])
def test_inconsistent_partial_file_restarts_cleanly(tmp_path, server, manifest, archive, garbage):
    server.state.truncate_at = len(archive) // 2
    with pytest.raises(DownloadError):
        _fetch(tmp_path, server.url, manifest)
    part = next((tmp_path / datasets.DOWNLOADS).iterdir())
    size = len(archive) + 10 if garbage == "too_long" else len(archive) // 2
    part.write_bytes(b"\0" * size)  # 416 from the server, or a resumed file that is not the zip

    folder = _fetch(tmp_path, server.url, manifest)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg")) == sorted(FILES)
    assert server.state.requests[-1]["range"] is None  # the last request started from byte 0


def test_tampered_file_raises_checksum_error_and_installs_nothing(tmp_path, server, manifest, images):
    top = datasets.SARTAJ_TOP
    tampered = dict(images, **{FILES[2]: _jpeg(99)})
    server.state.files["/archive.zip"] = _zip({top + p: d for p, d in tampered.items()})
    with pytest.raises(ChecksumError, match=re.escape(f"changed: {FILES[2]}")):
        _fetch(tmp_path, server.url, manifest)
    _assert_nothing_installed(tmp_path)  # the complete but bad archive is deleted too


def test_damaged_zip_entry_raises_checksum_error_naming_it(tmp_path, server, manifest, archive, images):
    data = bytearray(archive)
    spot = data.find(images[FILES[1]]) + 500  # inside the stored bytes of one image
    data[spot] ^= 0xFF
    server.state.files["/archive.zip"] = bytes(data)
    with pytest.raises(ChecksumError, match=re.escape(FILES[1])):
        _fetch(tmp_path, server.url, manifest)
    _assert_nothing_installed(tmp_path)


def test_not_a_zip_is_a_download_error(tmp_path, server, manifest):
    server.state.files["/archive.zip"] = b"<html>rate limited</html>"
    with pytest.raises(DownloadError, match="not a readable zip"):
        _fetch(tmp_path, server.url, manifest)
    _assert_nothing_installed(tmp_path)


@pytest.mark.parametrize("status", [500, 404])
def test_server_error_reports_status(tmp_path, server, manifest, status):
    server.state.status = status
    with pytest.raises(DownloadError, match=f"HTTP {status}") as err:
        _fetch(tmp_path, server.url, manifest)
    assert not isinstance(err.value, ChecksumError)
    _assert_nothing_installed(tmp_path)


def test_no_network_fails_fast_with_how_to(tmp_path, manifest):
    data = tmp_path / "data"
    started = time.perf_counter()
    with pytest.raises(DownloadError) as err:
        _fetch(data, _closed_port_url(), manifest)
    assert time.perf_counter() - started < 5
    message = str(err.value)
    for needed in ("could not connect", "by hand", SARTAJ.url, "brainxpert fetch-data --url",
                   f"{datasets.SARTAJ_TOP}Training/", str(data / SARTAJ.folder / "Training"),
                   "BRAINXPERT_DATA_DIR", "data_dir="):
        assert needed in message, needed
    assert not data.exists()  # not even an empty data folder is left behind


@pytest.mark.parametrize("form", ["file_url", "plain_path"])
def test_local_archive_by_file_url_or_path(tmp_path, archive, manifest, form):
    source = tmp_path / "downloaded by hand.zip"
    source.write_bytes(archive)
    url = source.as_uri() if form == "file_url" else str(source)
    folder = _fetch(tmp_path / "data", url, manifest)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg")) == sorted(FILES)
    assert source.read_bytes() == archive  # the user's file is left alone
    with pytest.raises(DownloadError, match="no archive at"):
        _fetch(tmp_path / "other", url + ".missing", manifest)


def test_navoneel_needs_its_name_maps_yes_no_and_warns(tmp_path, capsys):
    top = datasets.NAVONEEL_TOP
    entries = {top + "yes/Y1.jpg": _jpeg(1), top + "no/no 1.jpeg": _jpeg(2),
               top + "augmented data/yes/aug_Y1.jpg": _jpeg(3)}
    source = tmp_path / "navoneel.zip"
    source.write_bytes(_zip(entries))
    manifest = {"brain_tumor_dataset/yes/Y1.jpg": hashlib.sha256(entries[top + "yes/Y1.jpg"]).hexdigest(),
                "brain_tumor_dataset/no/no 1.jpeg": hashlib.sha256(entries[top + "no/no 1.jpeg"]).hexdigest()}
    folder = _fetch(tmp_path / "data", str(source), manifest, name="navoneel")
    assert folder.name == "navoneel_brain_mri_images"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jp*g")) == sorted(manifest)
    assert "UNVERIFIED" in capsys.readouterr().err


def test_default_fetch_is_sartaj_from_its_pinned_url(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(datasets.download, "install_archive", lambda source, *a, **k: calls.append(source))
    datasets.fetch_dataset(data_dir=tmp_path, progress=False)
    assert calls == [SARTAJ.url] and datasets.SARTAJ_COMMIT in calls[0]
    with pytest.raises(DataError, match="generated, not downloaded"):
        datasets.fetch_dataset("synthetic", tmp_path)


def test_cli_fetch_data_success_and_failure(tmp_path, server, manifest, monkeypatch, capsys):
    manifest_file = tmp_path / "MANIFEST-test.sha256"
    manifest_file.write_text("".join(f"{sha}  {path}\n" for path, sha in sorted(manifest.items())))
    monkeypatch.setitem(datasets.REGISTRY, "sartaj", dataclasses.replace(SARTAJ, manifest=str(manifest_file)))
    data = tmp_path / "data"
    assert cli.main(["fetch-data", "--data-dir", str(data), "--url", server.url, "--quiet"]) == 0
    assert "ready in" in capsys.readouterr().out
    assert (data / SARTAJ.folder / FILES[0]).is_file()

    assert cli.main(["fetch-data", "--data-dir", str(tmp_path / "other"), "--url", _closed_port_url()]) == 1
    err = capsys.readouterr().err
    assert "error: could not connect" in err and "brainxpert fetch-data --url" in err
