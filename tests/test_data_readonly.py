"""The data layer never writes to a dataset folder: listing (paths, sizes, mtimes, sha256) unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from brainxpert_utils import cli, dedup, pipeline, splits
from brainxpert_utils.scan import scan_folder

SARTAJ_LISTING_SHA256 = "c5c92df9510003a53455d2c487070e7c76764c2772a4811ff5da4e42c145636b"  # shared README
NAVONEEL_LISTING_SHA256 = "a38431fefe7f67191da205282d9017a60cfe52658c3fd3f3a57683722464693c"


def listing(folder: Path) -> dict[str, tuple]:
    """Every file and folder under ``folder``: (size, mtime_ns, sha256) for files, mtime_ns for folders."""
    result = {}
    for path in sorted(folder.rglob("*")):
        stat = path.stat()
        key = path.relative_to(folder).as_posix()
        if path.is_file():
            result[key] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            result[key + "/"] = (stat.st_mtime_ns,)
    return result


def manifest_sha256(scan) -> str:
    """sha256 of the sha256sum-format listing (C-ordered): the shared README's "listing sha256"."""
    lines = "".join(f"{sha}  {path}\n" for path, sha in sorted(zip(scan["path"], scan["sha256"]),
                                                              key=lambda item: item[0].encode()))
    return hashlib.sha256(lines.encode()).hexdigest()


def run_data_layer(folder: Path, dataset: str) -> None:
    """scan, dedup, split, check_split and two batches of the pipeline on ``folder``."""
    scan = scan_folder(folder, dataset=dataset, fingerprints=True)
    groups = dedup.find_duplicate_groups(folder, scan)
    split = splits.make_split(scan, groups, seed=0)
    splits.check_split(split, folder)
    for _ in pipeline.make_dataset(split, folder, "train", image_size=32, batch_size=4, shuffle=False,
                                     verbose=False).take(2):
        pass
    dedup.label_conflicts(groups, scan)


def test_odd_folder_is_left_untouched(odd_dataset, capsys):
    before = listing(odd_dataset)
    run_data_layer(odd_dataset, "sartaj")
    assert cli.main(["check-data", "--data-dir", str(odd_dataset.parent), "--quiet"]) == 0
    assert listing(odd_dataset) == before
    assert sorted(p.name for p in odd_dataset.parent.iterdir()) == [odd_dataset.name]  # nothing beside it


def test_real_sartaj_is_left_untouched(sartaj_dir, real_data_dir):
    before = listing(sartaj_dir)
    parent_before = sorted(p.name for p in real_data_dir.iterdir())
    assert len([k for k in before if not k.endswith("/")]) == 3264
    run_data_layer(sartaj_dir, "sartaj")
    assert listing(sartaj_dir) == before
    assert sorted(p.name for p in real_data_dir.iterdir()) == parent_before


def test_scans_reproduce_the_published_listing_hashes(sartaj_scan, navoneel_scan, real_data_dir):
    """Counts 3,264 and 253, and every (path, sha256) exactly as the shared MANIFEST files."""
    assert len(sartaj_scan) == 3264 and len(navoneel_scan) == 253
    assert manifest_sha256(sartaj_scan) == SARTAJ_LISTING_SHA256
    assert manifest_sha256(navoneel_scan) == NAVONEEL_LISTING_SHA256
    manifest = real_data_dir / "MANIFEST-sartaj_brain_tumor_classification_mri.sha256"
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() == SARTAJ_LISTING_SHA256


@pytest.mark.parametrize("path", ["data/splits/sartaj_split_seed0.csv", "data/splits/navoneel_external.csv"])
def test_shipped_split_files_are_small_metadata(path):
    file = Path(__file__).resolve().parent.parent / path
    assert file.is_file() and file.stat().st_size < 1_000_000
