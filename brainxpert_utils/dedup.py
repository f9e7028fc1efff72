"""Exact and near-duplicate groups, by the method of the shared datasets README.

* **exact**: identical sha256.
* **near**: 256-bit difference hash (dHash) of the greyscale image with Hamming distance <= 12,
  **and** Pearson correlation >= 0.90 between 32x32 greyscale thumbnails.
* **flip**: the same test against the horizontally mirrored image.

Groups are the connected components of these links (union-find). The fingerprints come from the
scan (``scan_folder(..., fingerprints=True)``) so each image is decoded once; the Hamming distances
of all pairs are computed with one matrix product per block of rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from PIL import Image

from brainxpert_utils.scan import fingerprint

MAX_HAMMING = 12
MIN_CORRELATION = 0.90


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def dhash256(image: Image.Image) -> int:
    """The 256-bit difference hash of an image as an int (bit i = row-major comparison i)."""
    bits, _, _ = fingerprint(image)
    return int("".join("1" if b else "0" for b in bits), 2)


def _standardise(thumbs: np.ndarray) -> np.ndarray:
    """Rows of zero mean and unit norm, so a dot product is the Pearson correlation (flat rows: 0)."""
    flat = thumbs.reshape(len(thumbs), -1).astype(np.float64)
    flat -= flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.divide(flat, norms, out=np.zeros_like(flat), where=norms > 0)


def _hamming_block(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between bit rows of ``a`` and ``b`` (float32 0/1 matrices)."""
    return a @ (1.0 - b).T + (1.0 - a) @ b.T


def near_pairs(bits: np.ndarray, bits_mirror: np.ndarray, thumbs: np.ndarray,
               max_hamming: int = MAX_HAMMING, min_corr: float = MIN_CORRELATION,
               mirror: bool = True, block: int = 512) -> list[tuple[int, int, str]]:
    """All pairs i < j that are near ("near") or mirrored near ("flip") duplicates."""
    n = len(bits)
    b = bits.astype(np.float32)
    bm = bits_mirror.astype(np.float32)
    z = _standardise(thumbs)
    z_mirror = _standardise(thumbs[:, :, ::-1])
    pairs = []
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        tests = [("near", _hamming_block(b[rows], b), z)]
        if mirror:  # either image mirrored: symmetric even when the hash has ties
            flip = np.minimum(_hamming_block(b[rows], bm), _hamming_block(bm[rows], b))
            tests.append(("flip", flip, z_mirror))
        for kind, hamming, other in tests:
            i, j = np.nonzero(hamming <= max_hamming)
            i = i + start
            keep = i < j
            i, j = i[keep], j[keep]
            corr = np.einsum("ij,ij->i", z[i], other[j])
            pairs += [(int(a), int(c), kind) for a, c in zip(i[corr >= min_corr], j[corr >= min_corr])]
    return pairs


def _fingerprints(folders: Mapping[str, Path], scan_df: pd.DataFrame) -> pd.DataFrame:
    """``scan_df`` with fingerprint columns, decoding only when the scan did not keep them."""
    if "thumb" in scan_df.columns:
        return scan_df
    df = scan_df.copy()
    prints = []
    for _, row in df.iterrows():
        if not row["ok"]:
            prints.append((None, None, None))
            continue
        with Image.open(folders[row.get("dataset", "")] / row["path"]) as image:
            prints.append(fingerprint(image))
    df["dhash"], df["dhash_mirror"], df["thumb"] = zip(*prints) if prints else ((), (), ())
    return df


def find_duplicate_groups(folder: str | Path | Mapping[str, str | Path], scan_df: pd.DataFrame | None = None,
                          max_hamming: int = MAX_HAMMING, min_corr: float = MIN_CORRELATION,
                          mirror: bool = True) -> pd.DataFrame:
    """Group exact and near-duplicate images; one row per decodable image.

    ``folder`` is a dataset folder, or a mapping ``{dataset name: folder}`` to group several datasets
    together (then ``scan_df`` needs a ``dataset`` column). Without ``scan_df`` the folder is scanned.
    Columns: dataset, path, sha256, group (1.., singletons get their own), group_size, links
    (kinds present in the group: exact / near / flip, joined by "+"; "" for a singleton).
    Groups are numbered in C order of their first (dataset, path).
    """
    from brainxpert_utils.scan import scan_folder

    if isinstance(folder, Mapping):
        folders = {name: Path(path) for name, path in folder.items()}
    else:
        folders = {"": Path(folder)}
    if scan_df is None:
        scan_df = pd.concat([scan_folder(path, dataset=name or None, fingerprints=True)
                             for name, path in folders.items()], ignore_index=True)
    if "dataset" not in scan_df.columns:
        scan_df = scan_df.assign(dataset="")
    elif len(folders) == 1:
        folders = {name: next(iter(folders.values())) for name in scan_df["dataset"].unique()}
    df = _fingerprints(folders, scan_df[scan_df["ok"]])
    df = df.assign(_key=list(zip(df["dataset"], df["path"].map(str.encode))))
    df = df.sort_values("_key").reset_index(drop=True)

    links: list[tuple[int, int, str]] = []
    first_of_sha: dict[str, int] = {}
    for i, sha in enumerate(df["sha256"]):
        if sha in first_of_sha:
            links.append((first_of_sha[sha], i, "exact"))
        else:
            first_of_sha[sha] = i
    unique = np.array(sorted(first_of_sha.values()), dtype=int)  # one representative per content
    if len(unique) > 1:
        pairs = near_pairs(np.stack(df["dhash"].to_numpy()[unique]),
                           np.stack(df["dhash_mirror"].to_numpy()[unique]),
                           np.stack(df["thumb"].to_numpy()[unique]), max_hamming, min_corr, mirror)
        links += [(int(unique[i]), int(unique[j]), kind) for i, j, kind in pairs]

    sets = UnionFind(len(df))
    for i, j, _ in links:
        sets.union(i, j)
    roots = [sets.find(i) for i in range(len(df))]  # root = smallest index = first in C order
    number = {root: k + 1 for k, root in enumerate(sorted(set(roots)))}
    kinds: dict[int, set] = {}
    for i, _, kind in links:
        kinds.setdefault(roots[i], set()).add(kind)
    order = ("exact", "near", "flip")
    out = pd.DataFrame({
        "dataset": df["dataset"], "path": df["path"], "sha256": df["sha256"],
        "group": [number[r] for r in roots],
        "links": ["+".join(k for k in order if k in kinds.get(r, ())) for r in roots],
    })
    out.insert(4, "group_size", out.groupby("group")["path"].transform("size"))
    return out


def describe_groups(groups_df: pd.DataFrame) -> str:
    """Plain-words summary: distinct contents, exact and near-duplicate groups."""
    n = len(groups_df)
    distinct = groups_df["sha256"].nunique()
    exact = groups_df[groups_df.duplicated("sha256", keep=False)]
    multi = groups_df[groups_df["group_size"] > 1]
    return (
        f"{n} images, {distinct} distinct contents: {exact['sha256'].nunique()} groups of "
        f"byte-identical files ({n - distinct} redundant copies).\n"
        f"Counting near duplicates and mirrored copies too: {groups_df['group'].nunique()} distinct "
        f"images; {multi['group'].nunique()} duplicate groups hold {len(multi)} files."
    )


def label_conflicts(groups_df: pd.DataFrame, scan_df: pd.DataFrame) -> pd.DataFrame:
    """Files of the groups whose members carry different class labels (path, group, class_name)."""
    on = ["dataset", "path"] if "dataset" in scan_df and "dataset" in groups_df else ["path"]
    df = groups_df.merge(scan_df[on + ["class_name"]], on=on)
    n_classes = df.groupby("group")["class_name"].transform("nunique")
    return df.loc[n_classes > 1, on + ["group", "class_name"]].sort_values(["group"] + on).reset_index(drop=True)


def load_reference_groups(tsv_path: str | Path) -> pd.DataFrame:
    """The groups published beside the data (``duplicate_groups.tsv``), with dataset names as keys.

    Columns as in the file (group, links_in_group, flags, dataset, relative_path, sha256); ``dataset``
    holds the dataset *folder* name, as in the file.
    """
    return pd.read_csv(tsv_path, sep="\t", dtype=str, keep_default_na=False).assign(
        group=lambda d: d["group"].astype(int))


def link_agreement(ours: pd.Series, reference: pd.Series) -> dict:
    """Pairwise agreement of two groupings of the same files (index = file key, value = group).

    Files missing from one side count as singletons there. Returns the number of "same group" pairs
    on each side, the pairs both share, and precision / recall of ours against the reference.
    """
    keys = ours.index.union(reference.index)

    def labels(groups: pd.Series) -> pd.Series:
        values = groups.reindex(keys).astype(object)
        return pd.Series([f"g{v}" if pd.notna(v) else f"only-{k}" for k, v in zip(keys, values)], index=keys)

    a, b = labels(ours), labels(reference)

    def pair_count(sizes: pd.Series) -> int:
        return int((sizes * (sizes - 1) // 2).sum())

    ours_pairs = pair_count(a.value_counts())
    ref_pairs = pair_count(b.value_counts())
    both = pair_count(pd.DataFrame({"a": a, "b": b}).value_counts())
    return {
        "files": len(keys), "pairs_ours": ours_pairs, "pairs_reference": ref_pairs, "pairs_both": both,
        "precision": both / ours_pairs if ours_pairs else 1.0,
        "recall": both / ref_pairs if ref_pairs else 1.0,
    }
