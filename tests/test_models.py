"""Models: shapes and heads, grey input, save/load, predictions on files, weight resolution."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

keras = pytest.importorskip("keras")

from brainxpert_utils import models  # noqa: E402
from brainxpert_utils.errors import WeightsError  # noqa: E402

SMALL_FILE = "mobilenet_2_5_224_tf_no_top.h5"


def _images(n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, channels)).astype("float32")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_classes", [2, 4])
def test_custom_cnn_heads(channels, num_classes):
    model = models.build_custom_cnn((48, 48, channels), num_classes, blocks=(8, 16))
    probs = model.predict(_images(5, 48, channels), verbose=0)
    if num_classes == 2:
        assert probs.shape == (5, 1) and model.layers[-1].activation.__name__ == "sigmoid"
        assert ((probs > 0) & (probs < 1)).all()
    else:
        assert probs.shape == (5, 4)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    names = [layer.name for layer in model.layers]
    assert names.index("rescale_0_1") > names.index("random_contrast")  # augment raw pixels, then rescale
    assert names.count("block1_conv") == 1 and "block3_conv" not in names


def test_custom_cnn_augmentation_only_while_training():
    model = models.build_custom_cnn((32, 32, 3), 2, blocks=(4,), dropout=0.0, batch_norm=False)
    x = _images(4, 32, 3)
    inference = [np.asarray(model(x, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    assert not np.allclose(np.asarray(model(x, training=True)), inference[0])


def test_original_cnn_matches_the_original_course():
    model = models.build_original_cnn()
    convs = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    dropouts = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert convs == [16, 32, 64, 128] and dense == [64, 1] and dropouts == [0.5, 0.25]
    assert model.input_shape == (None, 224, 224, 3)


@pytest.mark.parametrize("num_classes", [2, 4])
def test_mobilenet_classifier_structure(num_classes):
    model = models.build_mobilenet_classifier((96, 96, 3), num_classes, alpha=0.25, weights=None)
    base = model.get_layer("mobilenet_base")
    assert not base.trainable and model.count_params() > base.count_params()
    pre = model.get_layer("mobilenet_preprocess")
    assert pre.scale == pytest.approx(1 / 127.5) and pre.offset == pytest.approx(-1.0)  # = preprocess_input
    assert model.predict(_images(2, 96, 3), verbose=0).shape == (2, 1 if num_classes == 2 else 4)


def test_mobilenet_grey_input_equals_rgb_with_equal_channels():
    rgb = models.build_mobilenet_classifier((64, 64, 3), 4, alpha=0.25, weights=None)
    grey = models.build_mobilenet_classifier((64, 64, 1), 4, alpha=0.25, weights=None)
    grey.get_layer("mobilenet_base").set_weights(rgb.get_layer("mobilenet_base").get_weights())
    grey.get_layer("predictions").set_weights(rgb.get_layer("predictions").get_weights())
    x = _images(3, 64, 1)
    np.testing.assert_allclose(grey.predict(x, verbose=0), rgb.predict(np.repeat(x, 3, axis=-1), verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["cnn", "mobilenet"])
def test_save_load_round_trip_gives_identical_predictions(tmp_path, kind):
    if kind == "cnn":
        model = models.build_custom_cnn((40, 40, 1), 4, blocks=(8, 16))
    else:
        model = models.build_mobilenet_classifier((64, 64, 1), 2, alpha=0.25, weights=None)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects needed
    x = _images(3, model.input_shape[1], model.input_shape[-1])
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_predict_files(tmp_path):
    from PIL import Image

    paths = []
    for i, mode in enumerate(["L", "RGB", "RGB"]):
        path = tmp_path / f"scan {i}.{'png' if i == 0 else 'jpg'}"
        Image.fromarray(_images(1, 50, 1 if mode == "L" else 3, seed=i)[0].squeeze().astype("uint8"), mode).save(path)
        paths.append(path)
    model = models.build_custom_cnn((32, 32, 3), 4, blocks=(8,))
    out = models.predict_files(model, paths)
    assert out["probabilities"].shape == (3, 4) and out["labels"].shape == (3,)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    assert set(out["names"]) <= {"glioma", "meningioma", "no tumour", "pituitary"}
    binary = models.predict_files(models.build_custom_cnn((32, 32, 1), 2, blocks=(8,)), paths[:2], task="binary")
    assert binary["probabilities"].shape == (2, 2) and set(binary["names"]) <= {"no tumour", "tumour"}


# ---- weight resolution -------------------------------------------------------------------------

@pytest.fixture
def no_weights_anywhere(tmp_path, monkeypatch):
    """An empty BRAINXPERT_WEIGHTS_DIR, KERAS_HOME and HOME: nothing to find."""
    for var in ("BRAINXPERT_WEIGHTS_DIR", "KERAS_HOME", "HOME"):
        folder = tmp_path / var.lower()
        folder.mkdir()
        monkeypatch.setenv(var, str(folder))
    return tmp_path


def test_missing_weights_raise_with_how_to(no_weights_anywhere):
    with pytest.raises(WeightsError) as info:
        models.resolve_mobilenet_weights(alpha=1.0, download=False)
    message = str(info.value)
    assert "mobilenet_1_0_224_tf_no_top.h5" in message and "BRAINXPERT_WEIGHTS_DIR" in message
    assert "weights=None" in message
    with pytest.raises(WeightsError):
        models.build_mobilenet_classifier((64, 64, 3), alpha=0.25, download=False)  # never silently random


def test_weights_none_means_random_and_bad_alpha_is_refused():
    assert models.resolve_mobilenet_weights(weights=None) is None
    with pytest.raises(WeightsError, match="alpha"):
        models.resolve_mobilenet_weights(alpha=0.3)
    with pytest.raises(WeightsError, match="not found"):
        models.resolve_mobilenet_weights(weights="/no/such/file.h5")


def test_explicit_path_and_env_var(weights_dir, no_weights_anywhere, monkeypatch):
    source = weights_dir / SMALL_FILE
    if not source.is_file():
        pytest.skip(f"{SMALL_FILE} not in {weights_dir}")
    assert models.resolve_mobilenet_weights(0.25, weights=str(source)) == str(source)
    env_dir = no_weights_anywhere / "brainxpert_weights_dir"
    shutil.copy(source, env_dir / SMALL_FILE)
    # any supported size resolves to the 224 file (conv weights do not depend on input size)
    for size in (224, 160):
        assert models.resolve_mobilenet_weights(0.25, image_size=size, download=False) == str(env_dir / SMALL_FILE)
    keras_cache = no_weights_anywhere / "keras_home" / "models"
    keras_cache.mkdir()
    shutil.copy(source, keras_cache / SMALL_FILE)
    monkeypatch.delenv("BRAINXPERT_WEIGHTS_DIR")
    assert models.resolve_mobilenet_weights(0.25, download=False) == str(keras_cache / SMALL_FILE)


def test_tampered_weights_file_is_refused(weights_dir, no_weights_anywhere):
    source = weights_dir / SMALL_FILE
    if not source.is_file():
        pytest.skip(f"{SMALL_FILE} not in {weights_dir}")
    tampered = no_weights_anywhere / "brainxpert_weights_dir" / SMALL_FILE
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        models.resolve_mobilenet_weights(0.25, download=False)
    with pytest.raises(WeightsError, match="sha256"):
        models.resolve_mobilenet_weights(0.25, weights=str(tampered))


def test_real_imagenet_weights_are_loaded(weights_dir, monkeypatch):
    import h5py

    if not (weights_dir / SMALL_FILE).is_file():
        pytest.skip(f"{SMALL_FILE} not in {weights_dir}")
    monkeypatch.setenv("BRAINXPERT_WEIGHTS_DIR", str(weights_dir))
    model = models.build_mobilenet_classifier((128, 128, 3), 2, alpha=0.25, download=False)
    base = model.get_layer("mobilenet_base")
    with h5py.File(weights_dir / SMALL_FILE) as h5:
        kernel = np.asarray(h5["conv1"]["conv1"]["kernel:0"])
        variance = np.asarray(h5["conv_pw_13_bn"]["conv_pw_13_bn"]["moving_variance:0"])
    np.testing.assert_array_equal(base.get_layer("conv1").get_weights()[0], kernel)
    np.testing.assert_array_equal(base.get_layer("conv_pw_13_bn").get_weights()[3], variance)
    # ImageNet features: a smooth image and its mirror give nearly the same features, unlike noise
    features = keras.Model(model.input, model.get_layer("global_avg_pool").output)
    yy, xx = np.mgrid[0:128, 0:128]
    disc = (((yy - 64) ** 2 + (xx - 50) ** 2) < 40 ** 2) * 200.0
    smooth = np.repeat(disc[None, :, :, None], 3, axis=-1).astype("float32")
    f = features.predict(np.concatenate([smooth, smooth[:, :, ::-1], _images(1, 128, 3)]), verbose=0)
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(f[0], f[1]) > 0.9 and cos(f[0], f[1]) > cos(f[0], f[2])
    assert (f >= 0).all() and (f == 0).mean() > 0.05  # ReLU6 features, sparse as trained nets are


def test_custom_cnn_augmentation_choice():
    names = lambda m: [layer.name for layer in m.layers]  # noqa: E731
    none = models.build_custom_cnn((32, 32, 1), 2, blocks=(4,), augment=False)
    own = models.build_custom_cnn((32, 32, 1), 2, blocks=(4,), augment=[keras.layers.RandomFlip("horizontal", name="flip")])
    assert not any(n.startswith("random_") for n in names(none))
    assert "flip" in names(own) and "random_zoom" not in names(own)
