"""splits: grouped, stratified, seeded; copies excluded; CSV round trip; checks; shipped CSVs."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from brainxpert_utils import splits
from brainxpert_utils.dedup import load_reference_groups
from brainxpert_utils.errors import DataError

CLASSES = ("glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor")
REPO_SPLITS = splits.default_split_path().parent


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture()
def fake():
    """A scan and groups table without files: 60 images per class in groups of 1-3, plus
    byte copies, an unusable file and one group that mixes classes."""
    scan, groups = [], []
    for c, name in enumerate(CLASSES):
        for i in range(60):
            path = f"{'Testing' if i % 5 == 0 else 'Training'}/{name}/img ({i}).jpg"
            scan.append({"path": path, "class_name": name, "split_folder": path.split("/")[0],
                         "sha256": _sha(f"{name}{i}"), "ok": True, "problem": ""})
            groups.append({"path": path, "group": 1000 * c + i // 3 if i < 30 else 1000 * c + i})
    scan[1]["sha256"] = scan[0]["sha256"]  # a byte copy (same group)
    scan[10]["sha256"] = scan[9]["sha256"]
    scan.append({"path": "Training/no_tumor/broken.jpg", "class_name": "no_tumor", "split_folder": "Training",
                 "sha256": _sha("broken"), "ok": False, "problem": "truncated or corrupt image"})
    groups[61]["group"] = groups[60]["group"] = 7777  # meningioma 0,1 ...
    groups[0]["group"] = 7777  # ... with glioma 0 (and glioma 1, its byte copy, by sha below)
    groups[1]["group"] = 7777
    return pd.DataFrame(scan), pd.DataFrame(groups)


def test_no_group_crosses_and_fractions(fake):
    split = splits.make_split(*fake, seed=0)
    assert splits.group_crossings(split).empty
    used = split[split["split"] != "excluded"]
    shares = pd.crosstab(used["label"], used["split"], normalize="index")
    for name in CLASSES:
        assert shares.loc[name, "train"] == pytest.approx(0.70, abs=0.06)
        assert shares.loc[name, "val"] == pytest.approx(0.15, abs=0.06)
        assert shares.loc[name, "test"] == pytest.approx(0.15, abs=0.06)
    assert list(split.columns) == splits.SPLIT_COLUMNS


def test_copies_and_unusable_files_are_excluded(fake):
    split = splits.make_split(*fake).set_index("relative_path")
    assert split.loc["Training/glioma_tumor/img (1).jpg", "split"] == "excluded"
    assert split.loc["Training/glioma_tumor/img (1).jpg", "note"] == "copy of Testing/glioma_tumor/img (0).jpg"
    assert split.loc["Testing/glioma_tumor/img (0).jpg", "split"] != "excluded"
    assert split.loc["Training/no_tumor/broken.jpg", "note"] == "unusable: truncated or corrupt image"
    assert (split["split"] == "excluded").sum() == 3
    used = split[split["split"] != "excluded"]
    assert used["sha256"].is_unique


def test_mixed_class_group_stays_together(fake):
    split = splits.make_split(*fake)
    mixed = split[split["group"] == 7777]
    assert set(mixed["label"]) == {"glioma_tumor", "meningioma_tumor"}
    assert mixed.loc[mixed["split"] != "excluded", "split"].nunique() == 1


def test_deterministic_for_a_seed_and_different_for_another(fake):
    first = splits.make_split(*fake, seed=0)
    assert first.equals(splits.make_split(*fake, seed=0))
    other = splits.make_split(*fake, seed=1)
    assert (first["split"] != other["split"]).sum() > 20
    assert splits.group_crossings(other).empty


def test_groups_must_cover_the_scan(fake):
    scan, groups = fake
    with pytest.raises(DataError, match="find_duplicate_groups"):
        splits.make_split(scan, groups.iloc[5:])


def test_bad_fractions_raise(fake):
    with pytest.raises(DataError, match="fraction"):
        splits.make_split(*fake, val_fraction=0.5, test_fraction=0.5)


def test_csv_round_trip_is_byte_stable(fake, tmp_path):
    split = splits.make_split(*fake)
    split.loc[0, "relative_path"] = 'Testing/glioma_tumor/odd, "name".jpg'  # commas and quotes survive
    first = splits.save_split(split, tmp_path / "a.csv")
    back = splits.load_split(first)
    assert back.equals(split)
    second = splits.save_split(back, tmp_path / "b.csv")
    assert first.read_bytes() == second.read_bytes()
    assert b"\r" not in first.read_bytes()


def test_load_split_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        splits.load_split(tmp_path / "none.csv")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a split CSV"):
        splits.load_split(tmp_path / "x.csv")


def test_check_split_missing_and_changed(tmp_path):
    folder = tmp_path / "data"
    (folder / "c").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c/d e.jpg"):
        (folder / name).write_bytes(name.encode())
    df = pd.DataFrame({"relative_path": ["a.jpg", "b.jpg", "c/d e.jpg", "gone.jpg", "x.jpg"],
                       "sha256": [_sha("a.jpg"), _sha("other"), _sha("c/d e.jpg"), _sha("g"), _sha("x")],
                       "label": "no_tumor", "split": ["train", "val", "test", "test", "excluded"]})
    with pytest.raises(DataError, match="gone.jpg"):
        splits.check_split(df, folder)
    report = splits.check_split(df, folder, allow_missing=True)
    assert (report.checked, report.missing, report.changed) == (4, ["gone.jpg"], ["b.jpg"])
    assert report.usable(df)["relative_path"].tolist() == ["a.jpg", "c/d e.jpg", "x.jpg"]
    assert splits.check_split(report.usable(df), folder).ok
    with pytest.raises(DataError, match="fetch-data"):
        splits.check_split(df, tmp_path / "nowhere")


def test_official_split_and_leak_report(fake):
    scan, groups = fake
    official = splits.official_split(scan)
    assert len(official) == 240 and set(official["split"]) == {"train", "test"}
    leaks = splits.leak_report(official, groups)
    assert leaks["leaked"] > 0
    ours = splits.make_split(scan, groups)
    assert splits.leak_report(ours, groups)["leaked"] == 0


def test_external_check_set_drops_cross_dataset_groups_and_copies():
    groups = pd.DataFrame({
        "dataset": ["navoneel"] * 4 + ["sartaj"],
        "path": ["n/yes/a.jpg", "n/yes/b.jpg", "n/no/c.jpg", "n/no/d.jpg", "Training/no_tumor/x.jpg"],
        "sha256": ["1", "1", "2", "3", "4"],
        "group": [1, 1, 2, 3, 3],
        "class_name": ["yes", "yes", "no", "no", "no_tumor"],
    })
    kept = splits.external_check_set(groups)
    assert kept["relative_path"].tolist() == ["n/no/c.jpg", "n/yes/a.jpg"]
    every = splits.external_check_set(groups, keep_excluded=True).set_index("relative_path")
    assert every.loc["n/no/d.jpg", "note"] == "near or exact duplicate of a sartaj image"
    assert every.loc["n/yes/b.jpg", "note"] == "copy of n/yes/a.jpg"


# ----------------------------------------------------------------------------- real data
def test_shipped_csvs_are_reproduced_byte_for_byte(real_data_dir, sartaj_scan, navoneel_scan, tmp_path):
    written = splits.build_shipped_splits(real_data_dir, tmp_path,
                                          scans={"sartaj": sartaj_scan, "navoneel": navoneel_scan})
    for path in written.values():
        assert path.read_bytes() == (REPO_SPLITS / path.name).read_bytes(), path.name


def test_shipped_split_properties(real_data_dir, sartaj_dir):
    split = splits.load_split()
    assert len(split) == 3264 and (split["split"] == "excluded").sum() == 237
    assert splits.group_crossings(split).empty
    used = split[split["split"] != "excluded"]
    assert len(used) == 3027 and used["sha256"].is_unique
    shares = pd.crosstab(used["label"], used["split"], normalize="index")
    assert ((shares["train"] - 0.70).abs() < 0.01).all()
    assert ((shares[["val", "test"]] - 0.15).abs() < 0.01).all().all()
    # the published groups (computed independently) never cross splits either
    ref = load_reference_groups(real_data_dir / "duplicate_groups.tsv")
    ref = ref[ref["dataset"] == sartaj_dir.name].set_index("relative_path")["group"]
    crossing = used.assign(ref=used["relative_path"].map(ref)).dropna(subset=["ref"]).groupby("ref")["split"].nunique()
    assert (crossing == 1).all()
    assert splits.check_split(split, sartaj_dir).checked == 3027


def test_official_split_leaks_match_the_readme(sartaj_scan, sartaj_groups):
    leaks = splits.leak_report(splits.official_split(sartaj_scan), sartaj_groups)
    table = leaks["table"].loc["test"]
    assert leaks["leaked"] == 259 and table["exact_copy_in_train"].sum() == 88
    assert table["exact_or_near_copy_in_train"].to_dict() == {
        "glioma_tumor": 20, "meningioma_tumor": 109, "no_tumor": 105, "pituitary_tumor": 25}
    assert splits.leak_report(splits.load_split(), sartaj_groups)["leaked"] == 0


def test_other_seed_gives_another_leak_free_split(sartaj_scan, sartaj_groups):
    other = splits.make_split(sartaj_scan, sartaj_groups, seed=1)
    shipped = splits.load_split()
    assert (other["split"] != shipped["split"]).mean() > 0.3
    assert splits.group_crossings(other).empty


def test_navoneel_external_check_set(combined_groups):
    shipped = splits.load_split(REPO_SPLITS / "navoneel_external.csv")
    kept = splits.external_check_set(combined_groups)
    assert kept["relative_path"].tolist() == shipped.loc[shipped["split"] == "test", "relative_path"].tolist()
    assert kept["label"].value_counts().to_dict() == {"yes": 113, "no": 31}
    sartaj_groups = set(combined_groups.loc[combined_groups["dataset"] == "sartaj", "group"])
    assert not kept["group"].isin(sartaj_groups).any()
    assert (shipped["note"] == "near or exact duplicate of a sartaj image").sum() == 99
