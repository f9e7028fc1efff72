"""The course's models: a custom CNN built layer by layer, and MobileNet v1 with a new head.

Every model takes raw images (float32 in [0, 255]) and does its own preprocessing inside itself,
so a saved ``.keras`` file predicts on images straight from ``pipeline.load_images``. Only built-in\nKeras layers are used: ``keras.models.load_model`` needs no custom objects.

* ``build_custom_cnn``: (augmentation) -> Rescaling(1/255) -> conv blocks -> GAP -> dropout -> head.
* ``build_mobilenet_classifier``: (grey -> RGB) -> Rescaling(1/127.5, offset=-1), exactly MobileNet's
  ``preprocess_input`` -> MobileNet base (nested layer ``"mobilenet_base"``, BatchNorm always in
  inference mode) -> GAP -> dropout -> head.
* ``build_original_cnn`` / ``build_original_mobilenet``: the original course's models, kept only to
  compare against (benchmarks/).

ImageNet weights are found by ``resolve_mobilenet_weights``: an
explicit path > ``$BRAINXPERT_WEIGHTS_DIR`` > the Keras cache > a Keras download. Offline with none
of these it raises ``WeightsError``; it never falls back to random weights (ask for that with
``weights=None``). TensorFlow/Keras are imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from brainxpert_utils.errors import WeightsError

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
ALPHAS = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}
# sha256 of the weight files we know (../shared/weights/SHA256SUMS). A file with one of these names
# but other bytes is refused: it is corrupt or not what its name says.
KNOWN_WEIGHTS_SHA256 = {
    "mobilenet_1_0_224_tf.h5": "66fc101f079d49d08baec17f6f77791f5ed33507806f0e7ee99e25f8e4da5e39",
    "mobilenet_1_0_224_tf_no_top.h5": "7dee85589794aa9f80808ffa5c319135f5b3107a10c63c0c9e60e3e6560ee937",
    "mobilenet_2_5_224_tf_no_top.h5": "dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf",
}
BASE_NAME = "mobilenet_base"


def _keras():
    import keras

    return keras


def grey_to_rgb_layer(name: str = "grey_to_rgb"):
    """A fixed 1x1 convolution of ones: (H, W, 1) greyscale -> (H, W, 3) with three equal channels.

    A plain Keras layer (not a Lambda or a custom class), so saved models load anywhere.
    """
    return _keras().layers.Conv2D(3, 1, use_bias=False, kernel_initializer="ones", trainable=False, name=name)


def output_layer(num_classes: int, name: str = "predictions"):
    """The head's last layer: 1 sigmoid unit for 2 classes, softmax over ``num_classes`` otherwise."""
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}: use 2 (binary task) or 4 (multiclass task)")
    layers = _keras().layers
    if num_classes == 2:
        return layers.Dense(1, activation="sigmoid", name=name)
    return layers.Dense(num_classes, activation="softmax", name=name)


def augmentation_layers(rotation: float = 0.05, zoom: float = 0.1, contrast: float = 0.1) -> list:
    """Random flip / rotation / zoom / contrast: active only while training (identity at predict time)."""
    layers = _keras().layers
    return [layers.RandomFlip("horizontal", name="random_flip"),
            layers.RandomRotation(rotation, fill_mode="constant", name="random_rotation"),
            layers.RandomZoom(zoom, fill_mode="constant", name="random_zoom"),
            layers.RandomContrast(contrast, value_range=(0, 255), name="random_contrast")]


def conv_block(x, filters: int, batch_norm: bool = True, name: str | None = None):
    """Conv 3x3 (same padding) -> [BatchNorm] -> ReLU -> MaxPool 2x2: halves the image, adds features."""
    layers = _keras().layers
    prefix = name or f"block_{filters}"
    x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{prefix}_conv")(x)
    if batch_norm:
        # momentum 0.9 (Keras default 0.99): the moving statistics keep up in short CPU trainings
        x = layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn")(x)
    x = layers.Activation("relu", name=f"{prefix}_relu")(x)
    return layers.MaxPooling2D(name=f"{prefix}_pool")(x)


def build_custom_cnn(input_shape: Sequence[int] = (128, 128, 3), num_classes: int = 2,
                     blocks: Sequence[int] = (32, 64, 128), dropout: float = 0.3, batch_norm: bool = True,
                     augment: bool | Sequence = True, name: str = "custom_cnn"):
    """A small CNN, one ``conv_block`` per entry of ``blocks`` (its filter count), then GAP and a head.

    ``augment``: True = ``augmentation_layers()``, False = none, or your own list of Keras layers.
    """
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for layer in (augmentation_layers() if augment is True else augment or []):
        x = layer(x)
    x = layers.Rescaling(1.0 / 255, name="rescale_0_1")(x)
    for i, filters in enumerate(blocks, start=1):
        x = conv_block(x, int(filters), batch_norm=batch_norm, name=f"block{i}")
    x = layers.GlobalAveragePooling2D(name="global_avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, output_layer(num_classes)(x), name=name)


def build_original_cnn(input_shape: Sequence[int] = (224, 224, 3), num_classes: int = 2,
                       name: str = "original_cnn"):
    """The original course's CNN (for comparison only): Conv16-Conv32-Pool-Conv64-Pool-Conv128-Pool-
    Dropout0.5-Flatten-Dense64-Dropout0.25-Dense, pixels/255, no batch norm, no augmentation."""
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(128, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.25)(x)
    return keras.Model(inputs, output_layer(num_classes)(x), name=name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights_file(path: str | os.PathLike) -> Path:
    """The path, after checking a known file name against its known sha256 (WeightsError if not)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}. Pass an existing .h5 file, or weights='imagenet'.")
    expected = KNOWN_WEIGHTS_SHA256.get(path.name)
    if expected is not None and _sha256(path) != expected:
        raise WeightsError(f"{path} does not have the sha256 expected for {path.name} ({expected[:12]}...): "
                           "the file is corrupt or not what its name says. Copy it again from the course "
                           "weights folder (see ../shared/weights/README.md) or delete it so Keras downloads it.")
    return path


def mobilenet_weights_name(alpha: float = 1.0, include_top: bool = False, image_size: int = 224) -> str:
    """The file name Keras gives these weights in its cache, e.g. ``mobilenet_1_0_224_tf_no_top.h5``."""
    if alpha not in ALPHAS:
        raise WeightsError(f"MobileNet alpha={alpha} has no ImageNet weights: use one of {sorted(ALPHAS)}")
    rows = image_size if image_size in (128, 160, 192, 224) else 224
    return f"mobilenet_{ALPHAS[alpha]}_{rows}_tf{'' if include_top else '_no_top'}.h5"


def _keras_cache_dirs() -> list[Path]:
    home = os.environ.get("KERAS_HOME")
    dirs = [Path(home) / "models"] if home else []
    return dirs + [Path.home() / ".keras" / "models"]


def resolve_mobilenet_weights(alpha: float = 1.0, include_top: bool = False, weights: str | os.PathLike | None = "imagenet",
                              image_size: int = 224, download: bool = True) -> str | None:
    """Path of the MobileNet v1 weights to load, or None when ``weights=None`` (random init, on purpose).

    Order: an explicit file path > ``$BRAINXPERT_WEIGHTS_DIR/<keras name>`` > the Keras cache
    (``$KERAS_HOME/models`` or ``~/.keras/models``) > a Keras download (when ``download``). The
    224-pixel file serves any input size. Explicit and $BRAINXPERT_WEIGHTS_DIR files with a known name
    are checked against their sha256. Nothing found: WeightsError saying how to get them.
    """
    if weights is None:
        return None
    if str(weights) != "imagenet":
        return str(verify_weights_file(weights))
    name = mobilenet_weights_name(alpha, include_top, image_size)
    # conv weights do not depend on the input size: the 224 file serves every size
    candidates = dict.fromkeys([name, mobilenet_weights_name(alpha, include_top, 224)])
    env_dir = os.environ.get("BRAINXPERT_WEIGHTS_DIR")
    for candidate in candidates if env_dir else ():
        if (Path(env_dir) / candidate).is_file():
            return str(verify_weights_file(Path(env_dir) / candidate))
    # the Keras cache holds Keras's own downloads, whose bytes differ from our converted 1.0 file: not checked
    for folder in _keras_cache_dirs():
        for candidate in candidates:
            if (folder / candidate).is_file():
                return str(folder / candidate)
    problem = "downloads are switched off"
    if download:
        try:
            return str(_keras().utils.get_file(name, KERAS_WEIGHTS_URL + name, cache_subdir="models"))
        except Exception as error:  # no network, proxy, server error: all mean "not available here"
            problem = f"the download failed ({type(error).__name__}: {error})"
    where = f"$BRAINXPERT_WEIGHTS_DIR={env_dir} has no {name}" if env_dir else "$BRAINXPERT_WEIGHTS_DIR is not set"
    raise WeightsError(
        f"MobileNet ImageNet weights {name} not found ({where}; not in the Keras cache; {problem}). "
        f"Either set BRAINXPERT_WEIGHTS_DIR to a folder holding {name} (e.g. ../shared/weights), pass "
        "weights='/path/to/that/file.h5', or run once with internet access so Keras caches it. "
        "weights=None builds the model with random weights (smoke tests only: it will not learn well).")


def build_mobilenet_base(input_shape: Sequence[int] = (224, 224, 3), alpha: float = 1.0,
                         weights: str | os.PathLike | None = "imagenet", download: bool = True):
    """keras.applications.MobileNet (v1) without its top, named ``"mobilenet_base"``, frozen."""
    keras = _keras()
    height, width = int(input_shape[0]), int(input_shape[1])
    path = resolve_mobilenet_weights(alpha, include_top=False, weights=weights, image_size=height, download=download)
    base = keras.applications.MobileNet(input_shape=(height, width, 3), alpha=alpha, include_top=False,
                                        weights=path, name=BASE_NAME)
    base.trainable = False
    return base


def build_mobilenet_classifier(input_shape: Sequence[int] = (224, 224, 3), num_classes: int = 2, alpha: float = 1.0,
                               weights: str | os.PathLike | None = "imagenet", dropout: float = 0.2,
                               name: str = "mobilenet", download: bool = True):
    """MobileNet v1 (frozen, ImageNet weights) + GAP + dropout + a new head, taking raw [0, 255] images.

    Greyscale input (1 channel) is repeated to 3 channels inside the model. The base runs with
    ``training=False`` so its BatchNorm statistics stay fixed even when its top blocks are fine-tuned.
    """
    keras = _keras()
    layers = keras.layers
    channels = int(input_shape[-1])
    if channels not in (1, 3):
        raise ValueError(f"input_shape={tuple(input_shape)}: use 3 channels (RGB) or 1 (greyscale)")
    base = build_mobilenet_base(input_shape, alpha, weights, download)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = grey_to_rgb_layer()(inputs) if channels == 1 else inputs
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="mobilenet_preprocess")(x)  # = preprocess_input
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="global_avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, output_layer(num_classes)(x), name=name)


def build_original_mobilenet(input_shape: Sequence[int] = (224, 224, 3), num_classes: int = 2,
                             weights: str | os.PathLike | None = "imagenet", name: str = "original_mobilenet",
                             download: bool = True):
    """The original course's MobileNet (for comparison only): frozen base fed pixels/255 (not MobileNet's
    own preprocessing), Flatten + Dense head."""
    keras = _keras()
    layers = keras.layers
    base = build_mobilenet_base(input_shape, 1.0, weights, download)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale_0_1")(inputs)
    x = layers.Flatten(name="flatten")(base(x, training=False))
    return keras.Model(inputs, output_layer(num_classes)(x), name=name)


def predict_proba(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Probabilities, shape (N, 2) for a binary model ([P(no tumour), P(tumour)]) or (N, classes)."""
    probs = np.asarray(model.predict(np.asarray(images, dtype="float32"), batch_size=batch_size, verbose=0))
    if probs.shape[-1] == 1:
        probs = np.concatenate([1.0 - probs, probs], axis=-1)
    return probs


def predict_files(model, paths: Sequence[str | os.PathLike], task: str | None = None, batch_size: int = 32) -> dict:
    """Predict image files: {"paths", "probabilities" (N, classes), "labels" (int), "names" (display)}."""
    from brainxpert_utils import pipeline

    height, width, channels = (int(d) for d in model.inputs[0].shape[1:])
    if height != width:
        raise ValueError(f"model input {height}x{width}: the pipeline makes square images only")
    probs = predict_proba(model, pipeline.load_images(paths, height, channels), batch_size)
    task = task or ("binary" if probs.shape[-1] == 2 else "multiclass")
    names = pipeline.task_labels(task)
    if len(names) != probs.shape[-1]:
        raise ValueError(f"task={task!r} has {len(names)} classes but the model predicts {probs.shape[-1]}")
    labels = probs.argmax(axis=-1)
    return {"paths": [str(p) for p in paths], "probabilities": probs, "labels": labels,
            "names": [names[i] for i in labels]}
