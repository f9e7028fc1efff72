"""SYNTHETIC phantoms: shapes, lesion geometry per class, determinism, dataset layout, labelling."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainxpert_utils import synthetic
from brainxpert_utils.errors import DataError


def _phantoms(kind, n=12, size=96):
    return [synthetic.make_phantom(size, kind, np.random.default_rng([7, i])) for i in range(n)]


def _centre_of_mass(mask):
    ys, xs = np.nonzero(mask)
    size = mask.shape[0]
    return (xs.mean() + 0.5) / size * 2 - 1, (ys.mean() + 0.5) / size * 2 - 1


def test_phantom_shape_dtype_and_seed():
    image, mask = synthetic.make_phantom(96, "glioma_tumor", rng=3)
    assert image.shape == mask.shape == (96, 96)
    assert image.dtype == np.uint8 and mask.dtype == bool
    again, again_mask = synthetic.make_phantom(96, "glioma_tumor", rng=3)
    assert np.array_equal(image, again) and np.array_equal(mask, again_mask)
    other, _ = synthetic.make_phantom(96, "glioma_tumor", rng=4)
    assert not np.array_equal(image, other)
    # head on a dark background: corners dark, a bright skull somewhere
    assert image[:6, :6].mean() < 30 and image.max() > 180


@pytest.mark.parametrize("kind", [None, "no_tumor"])
def test_no_lesion_has_empty_mask(kind):
    _, mask = synthetic.make_phantom(64, kind, rng=0)
    assert not mask.any()


def test_lesion_geometry_matches_its_class():
    for kind, low, high in [("glioma_tumor", 0.004, 0.08), ("meningioma_tumor", 0.004, 0.05),
                            ("pituitary_tumor", 0.0008, 0.012)]:
        fractions = [mask.mean() for _, mask in _phantoms(kind)]
        assert low < min(fractions) and max(fractions) < high, (kind, min(fractions), max(fractions))
    # meningioma sits on the skull edge: far from the centre; pituitary central and low
    radii = [np.hypot(*_centre_of_mass(m)) for _, m in _phantoms("meningioma_tumor")]
    assert min(radii) > 0.45
    for _, mask in _phantoms("pituitary_tumor"):
        x, y = _centre_of_mass(mask)
        assert abs(x) < 0.2 and 0.15 < y < 0.55
    # glioma lies inside the brain: well within the skull
    radii = [np.hypot(*_centre_of_mass(m)) for _, m in _phantoms("glioma_tumor")]
    assert max(radii) < 0.6


def test_bright_lesions_are_brighter_than_brain():
    for kind in ("meningioma_tumor", "pituitary_tumor"):
        for image, mask in _phantoms(kind, n=6):
            ring = np.zeros_like(mask)
            ys, xs = np.nonzero(mask)
            ring[max(ys.min() - 6, 0):ys.max() + 7, max(xs.min() - 6, 0):xs.max() + 7] = True
            ring &= ~mask & (image > 60)  # nearby tissue, not background or CSF
            assert image[mask].mean() > image[ring].mean() + 15, kind


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(DataError, match="unknown lesion kind"):
        synthetic.make_phantom(64, "astrocytoma")
    with pytest.raises(DataError, match="at least 32"):
        synthetic.make_phantom(16)
    with pytest.raises(DataError, match="n_per_class"):
        synthetic.write_synthetic_dataset("unused", n_per_class=0)


def test_write_dataset_layout_split_and_determinism(tmp_path):
    with pytest.warns(synthetic.SyntheticDataWarning, match="NOT brain MRI"):
        folder = synthetic.write_synthetic_dataset(tmp_path / "a", n_per_class=20, size=64, seed=1)
    assert folder == tmp_path / "a" / "synthetic_phantoms"
    assert "SYNTHETIC" in (folder / "README.txt").read_text()
    split = pd.read_csv(synthetic.split_csv_path(tmp_path / "a", seed=1))
    assert list(split.columns) == ["relative_path", "sha256", "group", "label", "split"]
    assert len(split) == 80 and split["group"].is_unique
    counts = split.groupby(["label", "split"]).size().unstack()
    assert (counts["train"] == 14).all() and (counts["val"] == 3).all() and (counts["test"] == 3).all()
    row = split.iloc[5]
    data = (folder / row.relative_path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == row.sha256
    image = Image.open(folder / row.relative_path)
    assert image.mode == "L" and image.size == (64, 64)
    for row in split.itertuples():
        mask = synthetic.load_mask(folder, row.relative_path)
        assert mask.shape == (64, 64) and mask.any() == (row.label != "no_tumor")
    with pytest.warns(synthetic.SyntheticDataWarning):
        other = synthetic.write_synthetic_dataset(tmp_path / "b", n_per_class=20, size=64, seed=1)
    for row in split.itertuples():
        assert (other / row.relative_path).read_bytes() == (folder / row.relative_path).read_bytes()
    # same parameters again: reused (and still announced as synthetic)
    with pytest.warns(synthetic.SyntheticDataWarning, match="loaded"):
        synthetic.write_synthetic_dataset(tmp_path / "a", n_per_class=20, size=64, seed=1)
    # a copy made by another generator version (or other parameters) is regenerated, not reused
    readme = folder / "README.txt"
    readme.write_text(readme.read_text().replace('"version": ', '"version": 1'))
    with pytest.warns(synthetic.SyntheticDataWarning, match="generated"):
        synthetic.write_synthetic_dataset(tmp_path / "a", n_per_class=20, size=64, seed=1)
    assert f'"version": {synthetic.GENERATOR_VERSION}' in readme.read_text()
    # only images and the README in the image folder
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["README.txt"]


def test_is_synthetic_and_title_tag(tmp_path):
    sartaj_path = "datasets/sartaj_brain_tumor_classification_mri"
    assert synthetic.is_synthetic("synthetic")
    assert synthetic.is_synthetic(tmp_path / "synthetic_phantoms" / "no_tumor" / "phantom_0000.png")
    assert not synthetic.is_synthetic("sartaj") and not synthetic.is_synthetic(sartaj_path)
    assert not synthetic.is_synthetic(None)
    renamed = tmp_path / "my_copy"  # found by its README even under another name
    renamed.mkdir()
    (renamed / "README.txt").write_text(synthetic.README_TEXT)
    assert synthetic.is_synthetic(renamed / "no_tumor" / "x.png") and not synthetic.is_synthetic(tmp_path)
    assert synthetic.title_tag("synthetic") == synthetic.SYNTHETIC_TITLE
    assert "not MRI" in synthetic.SYNTHETIC_TITLE and synthetic.title_tag("sartaj") == ""
