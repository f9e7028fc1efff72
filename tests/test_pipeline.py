"""pipeline: decode by content, labels, seeded shuffling, caching options, errors before TensorFlow."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainxpert_utils import pipeline, splits
from brainxpert_utils.errors import DataError
from brainxpert_utils.scan import scan_folder

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def odd_split(odd_dataset):
    """Every file of the odd folder as a training row (unusable ones too), with the scan's ok flag."""
    scan = scan_folder(odd_dataset)
    scan = scan[scan["problem"] != "empty class folder"]
    return pd.DataFrame({"relative_path": scan["path"], "sha256": scan["sha256"], "label": scan["class_name"],
                         "split": "train", "ok": scan["ok"]}).reset_index(drop=True)


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """40 flat 8x8 PNGs whose grey value (5 * index) tells which file a pipeline element is."""
    folder = tmp_path_factory.mktemp("numbered")
    rows = []
    for i in range(40):
        label = "no_tumor" if i % 2 else "glioma_tumor"
        (folder / label).mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8), 5 * i, np.uint8)).save(folder / label / f"{i:02d}.png")
        rows.append({"relative_path": f"{label}/{i:02d}.png", "sha256": "", "label": label,
                     "split": "train" if i < 30 else "val"})
    return folder, pd.DataFrame(rows)


def _order(ds) -> list[int]:
    return [int(v) // 5 for x, _ in ds for v in x.numpy()[:, 0, 0, 0]]


def _reference(path, size, mode):
    """PIL's decoding of the file, resized exactly as the pipeline resizes."""
    array = np.asarray(Image.open(path).convert(mode), dtype=np.float32)
    array = array[..., None] if mode == "L" else array
    return tf.image.resize(array, [size, size], method="bilinear", antialias=True).numpy()


@pytest.mark.parametrize("channels", [3, 1])
def test_every_odd_format_decodes_like_pil(odd_dataset, odd_split, channels, capsys):
    ds = pipeline.make_dataset(odd_split, odd_dataset, task="multiclass", image_size=24, channels=channels,
                               batch_size=16, shuffle=False)
    out = capsys.readouterr().out
    assert "left out 3 unusable files" in out
    assert "truncated.jpg: marked not ok by the scan" in out and "notes.txt: marked not ok" in out
    images, labels = next(iter(ds))
    assert images.shape == (9, 24, 24, channels) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= 0 and float(tf.reduce_max(images)) <= 255
    used = odd_split[odd_split["ok"]]
    assert labels.numpy().tolist() == [
        ["glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"].index(c) for c in used["label"]]
    for image, rel in zip(images.numpy(), used["relative_path"]):
        expected = _reference(odd_dataset / rel, 24, "RGB" if channels == 3 else "L")
        diff = np.abs(image - expected)  # JPEG decoders (chroma upsampling) differ by a few levels
        assert diff.mean() <= 2 and diff.max() <= 16, (rel, diff.mean(), diff.max())


def test_unreadable_files_are_left_out_without_a_scan(odd_dataset, odd_split, capsys):
    no_ok = odd_split[odd_split["relative_path"] != "Training/pituitary_tumor/truncated.jpg"].drop(columns="ok")
    ds = pipeline.make_dataset(no_ok, odd_dataset, image_size=8, batch_size=64)
    assert sum(len(y) for _, y in ds) == 9
    assert "left out 2 unusable files" in capsys.readouterr().out


def test_split_from_scan_never_sends_unusable_files_to_tensorflow(odd_dataset):
    scan = scan_folder(odd_dataset, fingerprints=True)
    from brainxpert_utils.dedup import find_duplicate_groups

    split = splits.make_split(scan, find_duplicate_groups(odd_dataset, scan), test_fraction=0.2, val_fraction=0.2)
    labels = [int(y) for subset in ("train", "val", "test")
              for _, batch in pipeline.make_dataset(split, odd_dataset, subset, image_size=8, verbose=False)
              for y in batch.numpy()]
    assert len(labels) == 8  # 9 decodable images, one byte copy excluded
    assert sorted(labels) == [0, 0, 0, 1, 1, 1, 1, 1]  # binary: 3 no_tumor images vs 5 tumour


def test_shuffle_is_seeded_full_and_reshuffled_each_epoch(numbered):
    folder, split = numbered
    ds = pipeline.make_dataset(split, folder, image_size=8, batch_size=7, seed=3)
    first, second = _order(ds), _order(ds)
    assert sorted(first) == list(range(30)) and sorted(second) == list(range(30))
    assert first != second  # reshuffled each epoch
    again = pipeline.make_dataset(split, folder, image_size=8, batch_size=7, seed=3)
    assert _order(again) == first and _order(again) == second  # same sequence of epochs for a seed
    assert _order(pipeline.make_dataset(split, folder, image_size=8, batch_size=7, seed=4)) != first
    assert int(ds.cardinality()) == 5


def test_val_is_not_shuffled_and_uncached_works(numbered):
    folder, split = numbered
    ds = pipeline.make_dataset(split, folder, "val", image_size=8, batch_size=4, cache=False)
    assert _order(ds) == list(range(30, 40))


def test_limit_augment_and_labels(numbered):
    folder, split = numbered
    ds = pipeline.make_dataset(split, folder, image_size=8, batch_size=64, limit=10, seed=1,
                               augment=lambda x: 255.0 - x)
    x, y = next(iter(ds))
    assert len(y) == 10
    values = (255 - x.numpy()[:, 0, 0, 0]) // 5
    assert y.numpy().tolist() == [int(v) % 2 == 0 for v in values]  # even index = glioma = tumour (1)
    import keras

    halved = pipeline.make_dataset(split, folder, "val", image_size=8, augment=keras.layers.Rescaling(0.5))
    assert next(iter(halved))[0].numpy()[0, 0, 0, 0] == pytest.approx(75.0)  # 5 * 30 / 2


def test_bad_arguments_raise_before_tensorflow(numbered, tmp_path):
    folder, split = numbered
    for kwargs, match in [({"channels": 2}, "channels"), ({"task": "regression"}, "task"),
                          ({"subset": "training"}, "subset")]:
        with pytest.raises(DataError, match=match):
            pipeline.make_dataset(split, folder, **kwargs)
    with pytest.raises(DataError, match="fetch-data"):
        pipeline.make_dataset(split, tmp_path)
    with pytest.raises(DataError, match="class folders"):
        pipeline.make_dataset(split.assign(label="cats"), folder)


def test_files_are_checked_against_the_split_sha256(tmp_path):
    (tmp_path / "no_tumor").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "no_tumor" / "a.png")
    split = pd.DataFrame({"relative_path": ["no_tumor/a.png"], "sha256": ["0" * 64], "label": ["no_tumor"],
                          "split": ["test"]})
    with pytest.raises(DataError, match="changed: no_tumor/a.png"):
        pipeline.make_dataset(split, tmp_path, "test", image_size=8)
    x, y = next(iter(pipeline.make_dataset(split, tmp_path, "test", image_size=8, verify=False)))
    assert y.numpy().tolist() == [0] and float(x.numpy().max()) == 0.0


def test_load_images_matches_the_pipeline(numbered, odd_dataset):
    folder, split = numbered
    images = pipeline.load_images([folder / "glioma_tumor/30.png", folder / "no_tumor/31.png"], 16)
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.float32
    assert images[:, 0, 0, 0].tolist() == [150.0, 155.0]
    cmyk = pipeline.load_images([odd_dataset / "Training/no_tumor/cmyk.jpg"], 24, channels=1)
    assert np.abs(cmyk[0] - _reference(odd_dataset / "Training/no_tumor/cmyk.jpg", 24, "L")).mean() <= 2
    with pytest.raises(DataError, match="not an image"):
        pipeline.load_images([odd_dataset / "Training/pituitary_tumor/notes.txt"], 16)
    with pytest.raises(DataError, match="not found"):
        pipeline.load_images([folder / "missing.png"], 16)


def test_subset_split_and_task_labels():
    split = splits.load_split()
    small = pipeline.subset_split(split, n_per_class=2, seed=0)
    assert len(small) == 24 and set(small["split"]) == {"train", "val", "test"}
    assert small.groupby(["split", "label"]).size().eq(2).all()
    assert small.equals(pipeline.subset_split(split, 2, seed=0))
    assert not small.equals(pipeline.subset_split(split, 2, seed=1))
    assert pipeline.task_labels("binary") == ["no tumour", "tumour"]
    assert pipeline.class_names_for("multiclass") == ["glioma", "meningioma", "no tumour", "pituitary"]


def test_real_sartaj_batches(sartaj_dir):
    split = splits.load_split()
    ds = pipeline.make_dataset(split, sartaj_dir, "val", task="multiclass", image_size=64, batch_size=64)
    assert int(ds.cardinality()) == 8  # 455 validation images
    labels = []
    for x, y in ds.take(2):
        assert x.shape[1:] == (64, 64, 3) and x.dtype == tf.float32
        assert 0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 255 and float(tf.reduce_max(x)) > 100
        labels += y.numpy().tolist()
    assert set(labels) <= {0, 1, 2, 3} and len(set(labels)) >= 2


def test_real_navoneel_odd_files_all_decode(navoneel_dir):
    check = splits.load_split(splits.default_split_path().parent / "navoneel_external.csv")
    ds = pipeline.make_dataset(check, navoneel_dir, "test", image_size=48, channels=1, batch_size=256)
    x, y = next(iter(ds))
    assert x.shape == (144, 48, 48, 1) and int(y.numpy().sum()) == 113
