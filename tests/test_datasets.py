"""The dataset registry: entries, labels, locating the data, manifests and verification."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from brainxpert_utils import config, datasets, synthetic
from brainxpert_utils.errors import DataError

REPO = Path(__file__).resolve().parent.parent
# "listing sha256" of each dataset = sha256 of its MANIFEST file (../shared/datasets/README.md)
LISTING_SHA256 = {
    "sartaj": "c5c92df9510003a53455d2c487070e7c76764c2772a4811ff5da4e42c145636b",
    "navoneel": "a38431fefe7f67191da205282d9017a60cfe52658c3fd3f3a57683722464693c",
}
COUNTS = {"sartaj": 3264, "navoneel": 253}


def test_registry_entries():
    assert set(datasets.REGISTRY) == {"sartaj", "navoneel", "synthetic"}
    sartaj, navoneel, synth = (datasets.get_dataset(n) for n in ("sartaj", "navoneel", "synthetic"))
    assert sartaj.folder == "sartaj_brain_tumor_classification_mri" and sartaj.default_download
    assert sartaj.licence.startswith("MIT") and "10.34740/KAGGLE/DSV/1183165" in sartaj.citation
    assert sartaj.url.endswith(f"/archive/{datasets.SARTAJ_COMMIT}.zip") and sartaj.multiclass
    assert [dst for _, dst in sartaj.archive_members] == ["Training/", "Testing/"]
    assert sartaj.class_names == ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor")
    assert sartaj.binary_positive == set(sartaj.class_names) - {"no_tumor"}
    assert navoneel.folder == "navoneel_brain_mri_images" and not navoneel.default_download
    assert "UNVERIFIED" in navoneel.licence and not navoneel.multiclass
    assert navoneel.class_names == ("no", "yes") and navoneel.binary_positive == {"yes"}
    assert datasets.NAVONEEL_COMMIT in navoneel.url
    assert [dst for _, dst in navoneel.archive_members] == ["brain_tumor_dataset/yes/", "brain_tumor_dataset/no/"]
    assert synth.url is None and synth.manifest is None and not synth.default_download
    assert synth.folder == synthetic.FOLDER_NAME and synth.class_names == synthetic.CLASS_NAMES
    assert [n for n, info in datasets.REGISTRY.items() if info.default_download] == ["sartaj"]
    with pytest.raises(DataError, match="choose one of sartaj, navoneel, synthetic"):
        datasets.get_dataset("kaggle")


def test_labels_and_class_of():
    assert [datasets.binary_label("sartaj", c) for c in datasets.SARTAJ_CLASSES] == [1, 1, 0, 1]
    assert [datasets.multiclass_label("sartaj", c) for c in datasets.SARTAJ_CLASSES] == [0, 1, 2, 3]
    assert (datasets.binary_label("navoneel", "yes"), datasets.binary_label("navoneel", "no")) == (1, 0)
    assert datasets.binary_label("synthetic", "no_tumor") == 0
    with pytest.raises(DataError, match="binary only"):
        datasets.multiclass_label("navoneel", "yes")
    with pytest.raises(DataError, match="not a class of sartaj"):
        datasets.binary_label("sartaj", "yes")
    assert datasets.class_of("sartaj", "Training/glioma_tumor/gg (1).jpg") == "glioma_tumor"
    assert datasets.class_of("navoneel", "brain_tumor_dataset/no/1 no.jpeg") == "no"
    assert datasets.class_of("synthetic", "pituitary_tumor/phantom_0001.png") == "pituitary_tumor"
    with pytest.raises(DataError, match="not inside a class folder"):
        datasets.class_of("sartaj", "Training/no_tumor")  # a folder, not a file in it
    assert datasets.task_labels("binary") == ["no tumour", "tumour"]
    assert datasets.task_labels("multiclass") == ["glioma", "meningioma", "no tumour", "pituitary"]


def test_locate_order_explicit_env_default(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINXPERT_DATA_DIR", str(tmp_path / "env"))
    assert datasets.locate_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert datasets.locate_data_dir() == tmp_path / "env"
    monkeypatch.delenv("BRAINXPERT_DATA_DIR")
    assert datasets.locate_data_dir() == REPO / "data" / "datasets"
    monkeypatch.setattr(config, "repo_root", lambda: None)  # pip-installed package, e.g. on Colab
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.locate_data_dir() == tmp_path / "home" / ".brainxpert" / "datasets"


def test_dataset_dir_missing_says_how_to_fetch_or_point(tmp_path, monkeypatch):
    monkeypatch.delenv("BRAINXPERT_DATA_DIR", raising=False)
    with pytest.raises(DataError) as err:
        datasets.dataset_dir("sartaj", tmp_path)
    message = str(err.value)
    for needed in (str(tmp_path / "sartaj_brain_tumor_classification_mri"), "`brainxpert fetch-data`",
                   "BRAINXPERT_DATA_DIR", "data_dir=", "--data-dir"):
        assert needed in message, needed
    with pytest.raises(DataError, match="brainxpert fetch-data --dataset navoneel"):
        datasets.dataset_dir("navoneel", tmp_path)
    with pytest.raises(DataError, match="write_synthetic_dataset"):
        datasets.dataset_dir("synthetic", tmp_path)
    folder = tmp_path / "sartaj_brain_tumor_classification_mri"
    folder.mkdir()
    assert datasets.dataset_dir("sartaj", tmp_path) == folder
    assert datasets.dataset_dir("sartaj", folder) == folder  # pointing at the dataset folder works too
    monkeypatch.setenv("BRAINXPERT_DATA_DIR", str(tmp_path))
    assert datasets.dataset_dir("sartaj") == folder


@pytest.mark.parametrize("name", ["sartaj", "navoneel"])
def test_shipped_manifest_is_the_published_listing(name, monkeypatch):
    path = REPO / "data" / "manifests" / datasets.get_dataset(name).manifest
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LISTING_SHA256[name]
    entries = datasets.load_manifest(name)
    assert len(entries) == COUNTS[name]
    monkeypatch.setattr(config, "repo_root", lambda: None)  # installed package: its resources copy
    assert datasets.load_manifest(name) == entries


def test_read_manifest_rejects_malformed_lines(tmp_path):
    bad = tmp_path / "MANIFEST-bad.sha256"
    bad.write_text("0" * 64 + "  ok.jpg\nnot a sha line\n")
    with pytest.raises(DataError, match="line 2"):
        datasets.read_manifest(bad)


def test_verify_reports_missing_changed_and_extra(tmp_path):
    folder = tmp_path / "sartaj_brain_tumor_classification_mri"
    files = {"Training/no_tumor/a.jpg": b"a", "Training/no_tumor/b (1).jpg": b"b", "Testing/no_tumor/c.jpg": b"c"}
    for relative, data in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    manifest = {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    assert datasets.verify_dataset("sartaj", tmp_path, manifest=manifest).ok

    (folder / "Training/no_tumor/b (1).jpg").write_bytes(b"edited")
    (folder / "Testing/no_tumor/c.jpg").unlink()
    (folder / "Testing/no_tumor/new.jpg").write_bytes(b"new")
    report = datasets.verify_dataset("sartaj", tmp_path, manifest=manifest)
    assert not report.ok and report.verified == 1 and report.expected == 3
    assert report.missing == ["Testing/no_tumor/c.jpg"]
    assert report.changed == ["Training/no_tumor/b (1).jpg"]
    assert report.extra == ["Testing/no_tumor/new.jpg"]
    assert "1 missing, 1 changed, 1 extra" in report.summary() and "c.jpg" in str(report)


def test_verify_real_datasets_all_ok(real_data_dir):
    for name, count in COUNTS.items():
        if not (real_data_dir / datasets.get_dataset(name).folder).is_dir():
            continue
        report = datasets.verify_dataset(name, real_data_dir)
        assert report.ok and report.verified == count == report.expected, report.summary()


def test_verify_copied_real_files_finds_changes(sartaj_dir, tmp_path):
    manifest = datasets.load_manifest("sartaj")
    chosen = sorted(manifest)[:: len(manifest) // 4][:4]  # 4 real files from several class folders
    copy = tmp_path / sartaj_dir.name
    for relative in chosen:
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sartaj_dir / relative, copy / relative)
    subset = {p: manifest[p] for p in chosen}
    assert datasets.verify_dataset("sartaj", tmp_path, manifest=subset).ok
    (copy / chosen[0]).write_bytes((copy / chosen[0]).read_bytes()[:-1])  # truncated by one byte
    (copy / chosen[1]).unlink()
    report = datasets.verify_dataset("sartaj", tmp_path, manifest=subset)
    assert (report.changed, report.missing, report.extra) == ([chosen[0]], [chosen[1]], [])
    assert report.verified == 2
