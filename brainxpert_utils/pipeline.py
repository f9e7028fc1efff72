"""``tf.data`` input pipelines from a split table: decode by content, resize, batch, shuffle, cache.

Choices (kept simple on purpose, for teaching):

* Every file is decoded by its *content* with ``tf.io.decode_image(channels=3)``: JPEG (CMYK
  included), PNG named ``.jpg``, greyscale, RGBA (alpha dropped), palette, GIF, BMP and WebP all come
  out as RGB. ``channels=1`` converts that RGB to grey (TF cannot decode every format straight to 1
  channel).
* Resizing squashes each image to a square (``tf.image.resize``, bilinear with antialiasing): no
  crop, no padding. MRI slices are roughly centred, and most are square already.
* Decoded, resized images are cached as uint8 (4x less memory than float32) and cast to float32 in
  [0, 255] per batch; every model does its own preprocessing inside itself.

Unusable rows (split ``excluded``, ``ok == False`` when the table has that column, files that are
not images or in a format TF cannot read) are left out with a printed report before TensorFlow
sees them. TensorFlow is imported inside the functions only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from brainxpert_utils import datasets
from brainxpert_utils.errors import DataError

TF_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP"}  # what tf.io.decode_image reads
SPLITS = ("train", "val", "test")


def task_labels(task: str) -> list[str]:
    """Display names of the labels (binary: no tumour, tumour; multiclass: the 4 classes)."""
    return datasets.task_labels(task)


class_names_for = task_labels  # the name some notebooks use for the same thing


def dataset_of_labels(labels: Iterable[str]) -> str:
    """The registry dataset whose class folders include every label (sartaj first)."""
    wanted = set(labels)
    for name, info in datasets.REGISTRY.items():
        if wanted <= set(info.class_names):
            return name
    raise DataError(f"labels {sorted(wanted)} are not the class folders of any known dataset "
                    f"({', '.join(datasets.REGISTRY)}): is this a split table of the course?")


def label_ids(labels: Sequence[str], task: str, dataset: str | None = None) -> np.ndarray:
    """Integer labels for class folder names: binary 1 = tumour, multiclass 0..3 in contract order."""
    if task not in ("binary", "multiclass"):
        raise DataError(f"unknown task {task!r}: use 'binary' or 'multiclass'")
    dataset = dataset or dataset_of_labels(labels)
    to_id = datasets.binary_label if task == "binary" else datasets.multiclass_label
    mapping = {name: to_id(dataset, name) for name in set(labels)}
    return np.array([mapping[name] for name in labels], dtype=np.int32)


def _seeded_order(keys: Iterable[str], seed: int) -> list[str]:
    return [hashlib.sha256(f"{seed}:{key}".encode()).hexdigest() for key in keys]


def subset_split(split_df: pd.DataFrame, n_per_class: int, seed: int = 0) -> pd.DataFrame:
    """At most ``n_per_class`` rows per class in each of train/val/test (seeded pick; excluded dropped).

    The split itself stays grouped, so a subset of it is still leakage-free.
    """
    used = split_df[split_df["split"].isin(SPLITS)]
    used = used.assign(_order=_seeded_order(used["relative_path"], seed))
    picked = used.sort_values("_order").groupby(["split", "label"], sort=False).head(n_per_class)
    return picked.drop(columns="_order").sort_values("relative_path").reset_index(drop=True)


def _probe(path: Path) -> str:
    """'' when TF can decode the file, else the reason it is left out."""
    try:
        with Image.open(path) as image:
            fmt = image.format or ""
    except Exception:  # PIL raises several kinds for non-images
        return "not an image"
    return "" if fmt in TF_FORMATS else f"format {fmt} is not readable by TensorFlow"


def select_rows(split_df: pd.DataFrame, subset: str | Sequence[str] | None, limit: int | None = None,
                seed: int = 0) -> pd.DataFrame:
    """Rows of ``subset`` ("train"/"val"/"test", a list, or None for all three), at most ``limit`` (seeded)."""
    subsets = list(SPLITS) if subset is None else [subset] if isinstance(subset, str) else list(subset)
    unknown = set(subsets) - set(SPLITS)
    if unknown:
        raise DataError(f"unknown subset {sorted(unknown)}: use 'train', 'val', 'test' or None for all three")
    rows = split_df[split_df["split"].isin(subsets)]
    if limit is not None:
        rows = rows.assign(_o=_seeded_order(rows["relative_path"], seed)).sort_values("_o").head(int(limit))
        rows = rows.drop(columns="_o").sort_values("relative_path")
    return rows


def usable_rows(rows: pd.DataFrame, dataset_folder: str | Path, verbose: bool = True,
                verify: bool = True) -> pd.DataFrame:
    """The rows that the pipeline can read; prints what it leaves out and why.

    DataError when files are missing or, with ``verify``, when a file's sha256 differs from the
    split's (rows with an empty sha256 are not checked).
    """
    folder = Path(dataset_folder)
    if verify and "sha256" in rows:
        from brainxpert_utils.splits import check_split

        check_split(rows[rows["sha256"].fillna("") != ""], folder)
    skipped = {}
    if "ok" in rows:
        skipped.update({p: "marked not ok by the scan" for p in rows.loc[~rows["ok"].astype(bool), "relative_path"]})
    missing = [p for p in rows["relative_path"] if not (folder / p).is_file()]
    if missing:
        raise DataError(f"{len(missing)} files of the split are missing from {folder}, e.g. {missing[:3]}. "
                        "Fetch the dataset (`brainxpert fetch-data`) or pass the right folder; to go on "
                        "without them use splits.check_split(df, folder, allow_missing=True).usable(df).")
    for path in rows["relative_path"]:
        reason = skipped.get(path) or _probe(folder / path)
        if reason:
            skipped[path] = reason
    if skipped and verbose:
        print(f"make_dataset: left out {len(skipped)} unusable files:")
        for path, reason in sorted(skipped.items())[:20]:
            print(f"  {path}: {reason}")
    return rows[~rows["relative_path"].isin(skipped)]


def decode_and_resize(path, image_size: int, channels: int = 3):
    """One file (a path tensor or string) -> uint8 tensor (image_size, image_size, channels)."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def _check_args(image_size: int, channels: int, batch_size: int) -> None:
    if channels not in (1, 3):
        raise DataError(f"channels={channels}: use 3 (RGB, what MobileNet expects) or 1 (greyscale)")
    if int(image_size) < 8 or int(batch_size) < 1:
        raise DataError(f"image_size={image_size}, batch_size={batch_size}: use e.g. 224 and 32")


def make_dataset(split_df: pd.DataFrame, dataset_folder: str | Path | None, subset: str | None = "train",
                 task: str = "binary", image_size: int = 224, channels: int = 3, batch_size: int = 32,
                 shuffle: bool | None = None, seed: int = 0, cache: bool | str = True,
                 augment: Callable | None = None, limit: int | None = None, verbose: bool = True,
                 verify: bool = True):
    """A batched ``tf.data.Dataset`` of (float32 images in [0, 255], int32 labels) from a split.

    ``subset``: "train", "val", "test" (or a list, or None for all three). ``shuffle`` defaults to
    True for train: a full shuffle, reshuffled each epoch, the same sequence of epochs for a seed.
    ``cache``: True (memory), a file path, or False. ``augment``: a Keras layer or function applied
    to each training batch. ``limit``: keep at most this many images (a seeded pick, for quick runs).
    ``dataset_folder=None`` finds the folder with the registry (``datasets.dataset_dir``).
    ``verify``: check each file against the split's sha256 first (DataError saying what changed).
    """
    import tensorflow as tf

    _check_args(image_size, channels, batch_size)
    dataset = dataset_of_labels(split_df.loc[split_df["split"].isin(SPLITS), "label"])
    folder = Path(dataset_folder) if dataset_folder is not None else datasets.dataset_dir(dataset)
    rows = usable_rows(select_rows(split_df, subset, limit, seed), folder, verbose, verify)
    if rows.empty:
        raise DataError(f"no images for subset={subset!r} in this split (limit={limit}).")
    labels = label_ids(list(rows["label"]), task, dataset)
    paths = [str(folder / p) for p in rows["relative_path"]]

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(lambda p, y: (decode_and_resize(p, image_size, channels), y),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
    if shuffle if shuffle is not None else subset == "train":
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y))
    if augment is not None:
        ds = ds.map(lambda x, y: (_apply(augment, x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _apply(augment: Callable, images):
    import keras

    return augment(images, training=True) if isinstance(augment, keras.layers.Layer) else augment(images)


def load_images(paths: Sequence[str | Path], image_size: int, channels: int = 3) -> np.ndarray:
    """Decode files exactly as the pipeline does: float32 array (N, size, size, channels) in [0, 255]."""
    import tensorflow as tf

    _check_args(image_size, channels, 1)
    images = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"image not found: {path}")
        reason = _probe(path)
        if reason:
            raise DataError(f"cannot load {path}: {reason}. Pass image files (JPEG, PNG, ...).")
        images.append(decode_and_resize(tf.constant(str(path)), image_size, channels).numpy())
    if not images:
        return np.zeros((0, image_size, image_size, channels), np.float32)
    return np.stack(images).astype(np.float32)
