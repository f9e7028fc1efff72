"""Leakage-safe splits: grouped by duplicate group, stratified by class, deterministic for a seed.

How :func:`make_split` works (the same on every machine and library version, no RNG involved):

1. Unusable files and redundant byte-identical copies (all but the first path in C order of each
   sha256) get ``split="excluded"``, so copies cannot inflate a test score.
2. Each duplicate group gets the majority class of its kept files (ties: first name in sort order);
   groups that mix classes stay whole.
3. Within each class, groups are ordered by ``sha256(f"{seed}:{smallest sha256 in the group}")``
   (a seeded shuffle) and each goes to the split furthest below its target share
   (relative deficit; ties: train, val, test). No group can cross splits.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from brainxpert_utils.errors import DataError

SPLITS = ("train", "val", "test")
SPLIT_COLUMNS = ["relative_path", "sha256", "group", "label", "split", "official_split", "note"]
OFFICIAL = {"Training": "train", "Testing": "test"}


def default_split_path(dataset: str = "sartaj", seed: int = 0) -> Path:
    """``data/splits/<dataset>_split_seed<seed>.csv`` in the repository (or next to the package)."""
    from brainxpert_utils.config import repo_root

    name = f"{dataset}_split_seed{seed}.csv"
    root = repo_root()
    candidates = ([root / "data" / "splits" / name] if root else []) + [
        Path(__file__).resolve().parent / "resources" / "splits" / name]
    return next((c for c in candidates if c.exists()), candidates[0])


def _seeded_key(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def _kept_and_excluded(scan_df: pd.DataFrame, groups_df: pd.DataFrame) -> pd.DataFrame:
    """File rows with group, label, official split and the reason a row is excluded (note)."""
    files = scan_df[scan_df["sha256"].fillna("") != ""]
    on = ["dataset", "path"] if "dataset" in files and "dataset" in groups_df else ["path"]
    df = files.merge(groups_df[on + ["group"]], on=on, how="left")
    df = df.assign(relative_path=df["path"], label=df["class_name"],
                   official_split=df["split_folder"].fillna(""), note="", split="")
    ungrouped = df["group"].isna() & df["ok"].astype(bool)
    if ungrouped.any():
        raise DataError(f"{int(ungrouped.sum())} usable files have no duplicate group, e.g. "
                        f"{df.loc[ungrouped, 'path'].iloc[0]!r}: compute groups_df with "
                        "dedup.find_duplicate_groups on the same folder and scan.")
    df["group"] = df["group"].fillna(0).astype(int)  # 0: unusable file, in no group
    df = df.iloc[sorted(range(len(df)), key=lambda i: df["relative_path"].iat[i].encode())]
    df = df.reset_index(drop=True)
    unusable = ~df["ok"].astype(bool)
    df.loc[unusable, "note"] = "unusable: " + df.loc[unusable, "problem"].astype(str)
    first = df[~unusable].groupby("sha256")["relative_path"].transform("first")
    copies = first.index[first != df.loc[first.index, "relative_path"]]
    df.loc[copies, "note"] = "copy of " + first[copies]
    df.loc[df["note"] != "", "split"] = "excluded"
    return df


def _assign_groups(kept: pd.DataFrame, seed: int, fractions: dict[str, float]) -> dict[int, str]:
    """Group id -> split, class by class (greedy on the relative deficit, seeded order)."""
    counts = kept.groupby(["group", "label"]).size().rename("n").reset_index()
    majority = counts.sort_values(["group", "n", "label"], ascending=[True, False, True]).drop_duplicates("group")
    groups = kept.groupby("group").agg(size=("label", "size"), first_sha=("sha256", "min"))
    groups["label"] = majority.set_index("group")["label"]
    groups["order"] = [_seeded_key(seed, sha) for sha in groups["first_sha"]]
    assignment = {}
    for _, members in groups.sort_values("order").groupby("label", sort=True):
        target = {s: fractions[s] * members["size"].sum() for s in SPLITS}
        count = dict.fromkeys(SPLITS, 0)
        for group, size in members["size"].items():
            chosen = max(SPLITS, key=lambda s: ((target[s] - count[s]) / target[s] if target[s] else -1.0,
                                                -SPLITS.index(s)))
            assignment[group] = chosen
            count[chosen] += size
    return assignment


def make_split(scan_df: pd.DataFrame, groups_df: pd.DataFrame, seed: int = 0,
               val_fraction: float = 0.15, test_fraction: float = 0.15) -> pd.DataFrame:
    """Grouped, class-stratified split of every file the scan found (see the module docstring).

    Columns: relative_path, sha256, group, label (class folder name), split (train / val / test /
    excluded), official_split (the dataset's own folder, if any), note (why a row is excluded).
    Rows are in C order of relative_path.
    """
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise DataError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in (0, 1) "
                        "and leave something for training, e.g. 0.15 and 0.15.")
    df = _kept_and_excluded(scan_df, groups_df)
    kept = df[df["split"] == ""]
    if kept.empty:
        raise DataError("no usable images to split: check the folder with `brainxpert check-data`.")
    fractions = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    assignment = _assign_groups(kept, seed, fractions)
    df.loc[kept.index, "split"] = kept["group"].map(assignment)
    return df[SPLIT_COLUMNS].reset_index(drop=True)


def save_split(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a split CSV byte-for-byte reproducibly (UTF-8, '\\n' line ends, fixed columns)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in SPLIT_COLUMNS if c in df.columns]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(df[columns].itertuples(index=False, name=None))
    return path


def load_split(path: str | Path | None = None, dataset: str = "sartaj") -> pd.DataFrame:
    """Read a split CSV; the default is the shipped ``data/splits/<dataset>_split_seed0.csv``."""
    path = Path(path) if path is not None else default_split_path(dataset)
    if not path.is_file():
        raise DataError(f"split file not found: {path}. Regenerate it with `python -m "
                        "brainxpert_utils.splits --data-dir <folder holding the datasets>` or pass the "
                        "path of a split CSV.")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"relative_path", "sha256", "label", "split"} - set(df.columns)
    if missing:
        raise DataError(f"{path} is not a split CSV: columns {sorted(missing)} are missing.")
    if "group" in df:
        df["group"] = df["group"].astype(int)
    return df


@dataclass
class SplitCheck:
    """What :func:`check_split` found: files missing or with other bytes than the split says."""

    checked: int
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed

    def usable(self, split_df: pd.DataFrame) -> pd.DataFrame:
        """The split without the missing or changed files."""
        return split_df[~split_df["relative_path"].isin(set(self.missing) | set(self.changed))]

    def __str__(self) -> str:
        lines = [f"{self.checked} files checked: {len(self.missing)} missing, {len(self.changed)} changed"]
        lines += [f"  missing: {p}" for p in self.missing[:10]] + [f"  changed: {p}" for p in self.changed[:10]]
        return "\n".join(lines)


def check_split(df: pd.DataFrame, dataset_folder: str | Path, allow_missing: bool = False) -> SplitCheck:
    """Check the used files (train/val/test) of a split against their sha256 in ``dataset_folder``.

    Raises DataError when files are missing or changed, unless ``allow_missing`` (then use
    ``report.usable(df)`` to drop them). Reads only; writes nothing.
    """
    folder = Path(dataset_folder)
    if not folder.is_dir():
        raise DataError(f"dataset folder not found: {folder}. Run `brainxpert fetch-data` or pass the folder "
                        "that holds the images.")
    used = df[df["split"].isin(SPLITS)]
    report = SplitCheck(checked=len(used))
    for rel, sha in zip(used["relative_path"], used["sha256"]):
        file = folder / rel
        if not file.is_file():
            report.missing.append(rel)
        elif hashlib.sha256(file.read_bytes()).hexdigest() != sha:
            report.changed.append(rel)
    if not report.ok and not allow_missing:
        raise DataError(f"the dataset in {folder} does not match the split:\n{report}\n"
                        "Re-download it with `brainxpert fetch-data`, or call check_split(..., "
                        "allow_missing=True) and use report.usable(split_df) to go on without these files.")
    return report


def official_split(scan_df: pd.DataFrame) -> pd.DataFrame:
    """The dataset's own Training/Testing split as a split table (split = train / test); leaks included."""
    rows = scan_df[scan_df["ok"] & scan_df["split_folder"].isin(list(OFFICIAL))]
    return pd.DataFrame({"relative_path": rows["path"].to_numpy(), "sha256": rows["sha256"].to_numpy(),
                         "label": rows["class_name"].to_numpy(),
                         "split": rows["split_folder"].map(OFFICIAL).to_numpy()})


def group_crossings(split_df: pd.DataFrame) -> pd.DataFrame:
    """Groups that have files in more than one of train/val/test (should be empty)."""
    used = split_df[split_df["split"].isin(SPLITS)]
    n_splits = used.groupby("group")["split"].nunique()
    return used[used["group"].isin(n_splits.index[n_splits > 1])].sort_values(["group", "relative_path"])


def leak_report(split_df: pd.DataFrame, groups_df: pd.DataFrame) -> dict:
    """How many val/test files have an exact or near copy in train, per class; with a text summary."""
    groups = groups_df.set_index("path")["group"]
    df = split_df.assign(group=split_df["relative_path"].map(groups))
    train = df[df["split"] == "train"]
    held = df[df["split"].isin(["val", "test"])].copy()
    held["exact_copy_in_train"] = held["sha256"].isin(set(train["sha256"]))
    held["any_copy_in_train"] = held["exact_copy_in_train"] | held["group"].isin(set(train["group"]))
    table = held.groupby(["split", "label"]).agg(
        files=("relative_path", "size"), exact_copy_in_train=("exact_copy_in_train", "sum"),
        exact_or_near_copy_in_train=("any_copy_in_train", "sum"))
    total = int(held["any_copy_in_train"].sum())
    text = (f"leaks: {total} of {len(held)} held-out files have an exact or near copy in train "
            f"({int(held['exact_copy_in_train'].sum())} byte-identical)\n{table.to_string()}")
    return {"table": table, "files": held, "leaked": total, "text": text}


def external_check_set(groups_df: pd.DataFrame, dataset: str = "navoneel", reference: str = "sartaj",
                       class_column: str = "class_name", keep_excluded: bool = False) -> pd.DataFrame:
    """Files of ``dataset`` with no exact or near duplicate in ``reference`` (an honest external test).

    ``groups_df`` comes from ``find_duplicate_groups({reference: ..., dataset: ...}, scan_df)`` over both
    datasets together and needs a class column (merge the scan's ``class_name``). Redundant byte copies
    are dropped too. Returns split-table rows (split="test"); with ``keep_excluded`` also the dropped
    rows (split="excluded", note says why).
    """
    in_reference = set(groups_df.loc[groups_df["dataset"] == reference, "group"])
    rows = groups_df[groups_df["dataset"] == dataset]
    rows = rows.iloc[sorted(range(len(rows)), key=lambda i: rows["path"].iat[i].encode())]
    first = rows.groupby("sha256")["path"].transform("first")
    note = ["near or exact duplicate of a " + reference + " image" if g in in_reference
            else (f"copy of {f}" if f != p else "") for g, f, p in zip(rows["group"], first, rows["path"])]
    out = pd.DataFrame({"relative_path": rows["path"].to_numpy(), "sha256": rows["sha256"].to_numpy(),
                        "group": rows["group"].to_numpy(), "label": rows[class_column].to_numpy(),
                        "split": ["excluded" if n else "test" for n in note], "official_split": "",
                        "note": note})
    return out if keep_excluded else out[out["split"] == "test"].reset_index(drop=True)


def build_shipped_splits(data_dir: str | Path | None = None, out_dir: str | Path | None = None,
                         seed: int = 0, scans: dict[str, pd.DataFrame] | None = None) -> dict[str, Path]:
    """Regenerate the shipped CSVs from the real data: the sartaj split and the navoneel check set.

    Scans both datasets once (read-only); sartaj groups come from sartaj alone, the navoneel check
    set from both datasets grouped together. Writes ``sartaj_split_seed<seed>.csv`` and
    ``navoneel_external.csv`` into ``out_dir`` (default ``data/splits`` in the repository).
    ``scans`` may pass fingerprinted scans of both datasets done earlier (they are not modified).
    """
    from brainxpert_utils import config, datasets, dedup
    from brainxpert_utils.scan import scan_folder

    out = Path(out_dir) if out_dir is not None else config.repo_root() / "data" / "splits"
    folders = {name: datasets.dataset_dir(name, data_dir) for name in ("sartaj", "navoneel")}
    scans = scans or {name: scan_folder(folder, dataset=name, fingerprints=True) for name, folder in folders.items()}
    sartaj_groups = dedup.find_duplicate_groups(folders["sartaj"], scans["sartaj"])
    split = make_split(scans["sartaj"], sartaj_groups, seed=seed)
    both = pd.concat(scans.values(), ignore_index=True)
    groups = dedup.find_duplicate_groups(folders, both).merge(both[["dataset", "path", "class_name"]])
    external = external_check_set(groups, keep_excluded=True)
    return {"sartaj": save_split(split, out / f"sartaj_split_seed{seed}.csv"),
            "navoneel": save_split(external, out / "navoneel_external.csv")}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Regenerate data/splits/*.csv from the real datasets.")
    parser.add_argument("--data-dir", default=None, help="folder holding the dataset folders")
    parser.add_argument("--out-dir", default=None, help="default: data/splits in the repository")
    parser.add_argument("--seed", type=int, default=0)
    cli_args = parser.parse_args()
    for name, written in build_shipped_splits(cli_args.data_dir, cli_args.out_dir, cli_args.seed).items():
        print(f"{name}: {written}")
