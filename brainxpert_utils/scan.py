"""One read-only pass over a dataset folder: what each file is, whether it decodes, and its label.

``scan_folder`` opens every file once: it hashes the bytes (sha256), identifies the format by
*content* (so a PNG named ``.jpg`` is caught), decodes the whole image (so truncated files are
caught) and, if asked, keeps the small fingerprints that :mod:`brainxpert_utils.dedup` needs, so no
image is decoded twice. Problems are reported as rows, never raised; only a missing folder raises.
Nothing is ever written to the folder.

TensorFlow is not imported here (the CLI imports this module).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from brainxpert_utils.errors import DataError

SPLIT_FOLDERS = ("Training", "Testing")  # the official split folders of the Sartaj dataset
EXTENSION_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".png": "PNG", ".gif": "GIF",
    ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
}
COLUMNS = [
    "path", "class_name", "split_folder", "sha256", "bytes", "format", "extension",
    "extension_mismatch", "mode", "width", "height", "ok", "problem",
]
HASH_GRID = (17, 16)  # (width, height) of the greyscale image a 256-bit dHash compares
THUMB_SIZE = 32  # side of the greyscale thumbnail used for the correlation test


def fingerprint(image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dHash bits (256 bool) of an image and of its mirror, and its 32x32 float32 grey thumbnail.

    Bilinear resizing of the 8-bit greyscale image: with it the groups reproduce the published
    ``duplicate_groups.tsv`` exactly (Lanczos or bicubic agree on ~96-98 % of the links only).
    """
    grey = image.convert("L")
    grid = np.asarray(grey.resize(HASH_GRID, Image.Resampling.BILINEAR), dtype=np.int16)
    mirror = grid[:, ::-1]
    bits = (grid[:, 1:] > grid[:, :-1]).ravel()
    bits_mirror = (mirror[:, 1:] > mirror[:, :-1]).ravel()
    thumb = np.asarray(grey.resize((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR), dtype=np.float32)
    return bits, bits_mirror, thumb


def _inspect_image(data: bytes) -> tuple[dict, Image.Image | None]:
    """Format, mode and size of an encoded image, decoded fully; a plain-words problem if it fails."""
    info = {"format": "", "mode": "", "width": 0, "height": 0, "ok": False, "problem": ""}
    try:
        image = Image.open(io.BytesIO(data))
    except Exception:  # PIL raises several kinds for non-images
        info["problem"] = "not an image"
        return info, None
    info.update(format=image.format or "", mode=image.mode, width=image.width, height=image.height)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()  # decodes every byte: truncated or corrupt data fails here
    except Exception:
        info["problem"] = "truncated or corrupt image"
        return info, None
    info["ok"] = True
    return info, image


def _split_folder(parts: tuple[str, ...]) -> str:
    return parts[0] if len(parts) > 2 and parts[0] in SPLIT_FOLDERS else ""


def _scan_file(folder: Path, file: Path, fingerprints: bool) -> dict:
    relative = file.relative_to(folder)
    data = file.read_bytes()
    extension = file.suffix.lower()
    row = {
        "path": relative.as_posix(),
        "class_name": relative.parent.name,
        "split_folder": _split_folder(relative.parts),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "extension": extension,
    }
    info, image = _inspect_image(data)
    row.update(info)
    expected = EXTENSION_FORMATS.get(extension)
    row["extension_mismatch"] = bool(info["format"]) and expected is not None and expected != info["format"]
    if info["format"] and expected is None and not row["problem"]:
        row["problem"] = f"image with an unusual extension '{extension}'"
    if fingerprints:
        bits, bits_mirror, thumb = fingerprint(image) if image is not None else (None, None, None)
        row.update(dhash=bits, dhash_mirror=bits_mirror, thumb=thumb)
    return row


def _empty_folder_rows(folder: Path) -> list[dict]:
    """One report row per leaf folder with no files in it (an empty class folder)."""
    rows = []
    for directory in sorted(p for p in folder.rglob("*") if p.is_dir()):
        if not any(directory.iterdir()):
            relative = directory.relative_to(folder)
            rows.append({
                "path": relative.as_posix() + "/", "class_name": relative.name,
                "split_folder": _split_folder(relative.parts + ("",)), "sha256": "", "bytes": 0,
                "format": "", "extension": "", "extension_mismatch": False, "mode": "",
                "width": 0, "height": 0, "ok": False, "problem": "empty class folder",
            })
    return rows


def scan_folder(folder: str | Path, dataset: str | None = None, progress: bool = False,
                fingerprints: bool = False) -> pd.DataFrame:
    """Scan every file under ``folder`` once; one row per file plus rows for empty class folders.

    ``dataset`` (a registry name) is recorded in a ``dataset`` column. With ``fingerprints=True``
    the columns ``dhash``, ``dhash_mirror`` (256 bools) and ``thumb`` (32x32 float32) are added for
    :func:`brainxpert_utils.dedup.find_duplicate_groups`. Rows are in C (byte) order of path.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(
            f"dataset folder not found: {folder}. Run `brainxpert fetch-data`, or pass the folder "
            "that holds the class folders (or set BRAINXPERT_DATA_DIR)."
        )
    files = sorted((p for p in folder.rglob("*") if p.is_file()),
                   key=lambda p: p.relative_to(folder).as_posix().encode())
    iterator = files
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(files, desc=f"scanning {folder.name}", unit="file")
    rows = [_scan_file(folder, file, fingerprints) for file in iterator]
    rows += _empty_folder_rows(folder)
    df = pd.DataFrame(rows)
    extra = [c for c in ("dhash", "dhash_mirror", "thumb") if fingerprints]
    df = df.reindex(columns=COLUMNS + extra) if len(df) else pd.DataFrame(columns=COLUMNS + extra)
    df["ok"] = df["ok"].astype(bool)
    df["extension_mismatch"] = df["extension_mismatch"].astype(bool)
    df["problem"] = df["problem"].fillna("")
    if dataset is not None:
        df.insert(0, "dataset", dataset)
    return df.reset_index(drop=True)


def summarize(scan_df: pd.DataFrame) -> dict:
    """Tidy tables for notebook 01 plus a printable text: counts, sizes, modes, problems."""
    images = scan_df[scan_df["ok"]]
    split = images["split_folder"].replace("", "(none)")
    counts = pd.crosstab(images["class_name"], split, margins=True, margins_name="total")
    distinct = images.groupby("class_name")["sha256"].nunique().rename("distinct contents")
    sizes = images.groupby(["width", "height"]).size().rename("images").sort_values(ascending=False)
    modes = images.groupby(["format", "mode"]).size().rename("images").reset_index()
    mismatch = scan_df[scan_df["extension_mismatch"]][["path", "format", "extension"]]
    problems = scan_df[scan_df["problem"] != ""][["path", "problem"]]
    lines = [f"{len(images)} images decode ({images['sha256'].nunique()} distinct contents), "
             f"{len(scan_df) - len(images)} problem rows"]
    if len(images):
        lines += ["", "images per class and split folder:", counts.to_string(),
                  "", "formats and colour modes:", modes.to_string(index=False),
                  "", f"{len(sizes)} different sizes; most common: "
                  + ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.head(3).items())]
    if len(mismatch):
        lines += ["", f"{len(mismatch)} files whose content does not match the extension:",
                  mismatch.to_string(index=False)]
    lines += ["", "problems: none" if problems.empty else "problems:\n" + problems.to_string(index=False)]
    return {"counts": counts, "distinct": distinct, "sizes": sizes, "modes": modes,
            "extension_mismatch": mismatch, "problems": problems, "text": "\n".join(lines)}


def _resolve_dataset_folder(dataset: str, data_dir: str | None) -> Path:
    from brainxpert_utils.datasets import dataset_dir
    return Path(dataset_dir(dataset, data_dir))


def check_data(dataset: str = "sartaj", data_dir: str | None = None, progress: bool = True) -> str:
    """The full data check as text: summary, duplicate groups, leaks across the official split."""
    from brainxpert_utils import dedup, splits

    folder = _resolve_dataset_folder(dataset, data_dir)
    scan_df = scan_folder(folder, dataset=dataset, progress=progress, fingerprints=True)
    groups = dedup.find_duplicate_groups(folder, scan_df)
    parts = [f"dataset {dataset}: {folder}", summarize(scan_df)["text"], "", dedup.describe_groups(groups)]
    conflicts = dedup.label_conflicts(groups, scan_df)
    if len(conflicts):
        parts += [f"{conflicts['group'].nunique()} duplicate groups mix classes (label conflicts):",
                  conflicts.drop(columns="dataset", errors="ignore").to_string(index=False)]
    if scan_df["split_folder"].ne("").any():
        parts += ["", splits.leak_report(splits.official_split(scan_df), groups)["text"]]
    return "\n".join(parts)


def _cli_check_data(args: argparse.Namespace) -> int:
    print(check_data(args.dataset, args.data_dir, progress=not args.quiet))
    return 0


def register_cli(subparsers) -> None:
    """Add ``brainxpert check-data``."""
    parser = subparsers.add_parser(
        "check-data", help="scan a dataset: counts, formats, problems, duplicates, train/test leaks",
        description="Scan a dataset folder (read-only) and print its summary.")
    parser.add_argument("--dataset", default="sartaj", help="registry name (default: sartaj)")
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the dataset folders (default: $BRAINXPERT_DATA_DIR, then data/datasets)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_cli_check_data)
