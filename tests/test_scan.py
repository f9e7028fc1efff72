"""scan: one read-only pass that reports (never crashes on) every odd file; real-data counts."""

from __future__ import annotations

import numpy as np
import pytest

from brainxpert_utils import cli
from brainxpert_utils.errors import DataError
from brainxpert_utils.scan import scan_folder, summarize


@pytest.fixture(scope="module")
def odd_scan(odd_dataset):
    return scan_folder(odd_dataset, dataset="sartaj", fingerprints=True).set_index("path")


def test_odd_files_are_reported_not_raised(odd_scan):
    expected = {  # path -> (ok, problem, format, mode)
        "Training/glioma_tumor/rgb.jpg": (True, "", "JPEG", "RGB"),
        "Training/glioma_tumor/grey.jpg": (True, "", "JPEG", "L"),
        "Training/meningioma_tumor/png_named.jpg": (True, "", "PNG", "RGB"),
        "Training/meningioma_tumor/rgba.png": (True, "", "PNG", "RGBA"),
        "Training/no_tumor/palette.png": (True, "", "PNG", "P"),
        "Training/no_tumor/cmyk.jpg": (True, "", "JPEG", "CMYK"),
        "Training/pituitary_tumor/truncated.jpg": (False, "truncated or corrupt image", "JPEG", "RGB"),
        "Training/pituitary_tumor/notes.txt": (False, "not an image", "", ""),
        "Training/pituitary_tumor/.DS_Store": (False, "not an image", "", ""),
        "Testing/glioma_tumor/": (False, "empty class folder", "", ""),
    }
    for path, (ok, problem, fmt, mode) in expected.items():
        row = odd_scan.loc[path]
        assert (row["ok"], row["problem"], row["format"], row["mode"]) == (ok, problem, fmt, mode), path
    assert len(odd_scan) == 13  # 12 files + 1 empty class folder


def test_labels_split_folders_sizes_and_extension_mismatch(odd_scan):
    row = odd_scan.loc["Training/meningioma_tumor/png_named.jpg"]
    assert row["class_name"] == "meningioma_tumor" and row["split_folder"] == "Training"
    assert (row["width"], row["height"], row["extension"]) == (48, 40, ".jpg")
    assert odd_scan.index[odd_scan["extension_mismatch"]].tolist() == ["Training/meningioma_tumor/png_named.jpg"]
    assert odd_scan.loc["Testing/glioma_tumor/", "split_folder"] == "Testing"
    assert (odd_scan["dataset"] == "sartaj").all()
    copies = odd_scan.loc[["Training/glioma_tumor/rgb.jpg", "Testing/pituitary_tumor/copy_of_rgb.jpg"], "sha256"]
    assert copies.nunique() == 1 and len(copies.iloc[0]) == 64


def test_fingerprints_only_for_decodable_images(odd_scan):
    ok = odd_scan[odd_scan["ok"]]
    assert all(t.shape == (32, 32) and t.dtype == np.float32 for t in ok["thumb"])
    assert all(b.shape == (256,) and b.dtype == bool for b in ok["dhash"])
    assert odd_scan.loc[~odd_scan["ok"], "thumb"].isna().all()


def test_rows_in_c_order_and_no_fingerprints_by_default(odd_dataset):
    df = scan_folder(odd_dataset)
    files = df[df["problem"] != "empty class folder"]["path"].tolist()
    assert files == sorted(files, key=str.encode)
    assert "thumb" not in df.columns and "dataset" not in df.columns


def test_missing_folder_raises_data_error_saying_what_to_do(tmp_path):
    with pytest.raises(DataError, match="fetch-data"):
        scan_folder(tmp_path / "nope")


def test_summarize_tables(odd_scan):
    summary = summarize(odd_scan.reset_index())
    counts = summary["counts"]
    assert counts.loc["total", "total"] == 9  # decodable images only
    assert counts.loc["no_tumor", "Training"] == 2
    problems = dict(zip(summary["problems"]["path"], summary["problems"]["problem"]))
    assert problems["Training/pituitary_tumor/truncated.jpg"] == "truncated or corrupt image"
    assert problems["Testing/glioma_tumor/"] == "empty class folder"
    modes = {(f, m): n for f, m, n in summary["modes"].itertuples(index=False)}
    assert modes[("JPEG", "CMYK")] == 1 and modes[("PNG", "P")] == 1
    assert "truncated or corrupt image" in summary["text"] and "png_named.jpg" in summary["text"]


def test_cli_check_data_on_odd_folder(odd_dataset, capsys):
    code = cli.main(["check-data", "--data-dir", str(odd_dataset.parent), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "9 images decode (8 distinct contents)" in out
    assert "empty class folder" in out
    assert "leaks: 3 of 3 held-out files have an exact or near copy in train (1 byte-identical)" in out


def test_cli_check_data_missing_dataset(tmp_path, capsys):
    assert cli.main(["check-data", "--data-dir", str(tmp_path), "--quiet"]) == 1
    assert "fetch-data" in capsys.readouterr().err


def test_real_sartaj_scan(sartaj_scan):
    """The README's figures: 3,264 JPEG RGB files, 440 sizes, 2,341 of 512x512, counts per folder."""
    assert len(sartaj_scan) == 3264 and sartaj_scan["ok"].all()
    assert set(sartaj_scan["format"]) == {"JPEG"} and set(sartaj_scan["mode"]) == {"RGB"}
    assert sartaj_scan["sha256"].nunique() == 3027
    sizes = sartaj_scan.groupby(["width", "height"]).size()
    assert len(sizes) == 440 and sizes[(512, 512)] == 2341
    counts = summarize(sartaj_scan)["counts"]
    assert counts.loc["no_tumor", "Training"] == 395 and counts.loc["pituitary_tumor", "Testing"] == 74
    assert counts.loc["total", "Training"] == 2870 and counts.loc["total", "Testing"] == 394


def test_real_navoneel_scan(navoneel_scan):
    """253 files: 245 JPEG + 8 PNG, six PNGs named .jpg, modes RGB 217 / L 30 / RGBA 5 / P 1."""
    assert len(navoneel_scan) == 253 and navoneel_scan["ok"].all()
    assert navoneel_scan["format"].value_counts().to_dict() == {"JPEG": 245, "PNG": 8}
    assert navoneel_scan["mode"].value_counts().to_dict() == {"RGB": 217, "L": 30, "RGBA": 5, "P": 1}
    mismatched = sorted(p.rsplit("/", 1)[1] for p in navoneel_scan.loc[navoneel_scan["extension_mismatch"], "path"])
    assert mismatched == ["No15.jpg", "No17.jpg", "No18.jpg", "no 96.jpg", "no 98.jpg", "no.jpg"]
    assert navoneel_scan["class_name"].value_counts().to_dict() == {"yes": 155, "no": 98}
