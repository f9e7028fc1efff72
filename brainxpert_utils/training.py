"""Training: one seed, early stopping, checkpoints, class weights, and transfer learning that is fast on a CPU.

``transfer_learn`` never pushes an image through the frozen part of MobileNet more than once:

1. it runs each training image (and its mirror image, a free augmentation) through the frozen base
   once, up to the first block it will fine-tune, and caches those activations;
2. stage 1 trains the new head on pooled features of the cache (seconds per epoch);
3. stage 2 (optional) fine-tunes the top blocks of the base, still on the cache, at a low learning
   rate with cosine decay. BatchNorm layers stay frozen (inference mode), as the Keras guide advises.

The layers trained on the cache are the model's own layers (shared, not copies), so the result is
the same ordinary Keras model, ready to save, load and predict on images.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from brainxpert_utils.models import BASE_NAME


@dataclass
class TrainResult:
    """What a training run did: Keras history (lists per metric), seconds per epoch, total seconds."""

    history: dict = field(default_factory=dict)
    epoch_times: list = field(default_factory=list)
    wall_time: float = 0.0
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serialisable copy."""
        return asdict(self)


def set_seed(seed: int = 0, deterministic: bool = False) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; ``deterministic`` also makes TF ops deterministic (slower)."""
    import keras

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def compute_class_weight(split_df_or_labels, task: str = "binary", subset: str = "train") -> dict[int, float]:
    """"Balanced" class weights n / (k * count) from a split table (its ``subset`` rows) or int labels."""
    if isinstance(split_df_or_labels, pd.DataFrame):
        from brainxpert_utils import pipeline

        rows = split_df_or_labels[split_df_or_labels["split"] == subset]
        labels = pipeline.label_ids(list(rows["label"]), task)
    else:
        labels = np.asarray(split_df_or_labels).reshape(-1).astype(int)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"class weights need at least 2 classes in the {subset} labels, got {classes.tolist()}")
    return {int(c): float(len(labels) / (len(classes) * n)) for c, n in zip(classes, counts)}


def compile_for_task(model, learning_rate=1e-3, label_smoothing: float = 0.0) -> None:
    """Adam + the loss the head needs: binary cross-entropy (1 sigmoid unit, plus an ``auc`` metric so
    early stopping can watch ``val_auc``) or sparse categorical cross-entropy."""
    import keras

    metrics: list = ["accuracy"]
    if model.outputs[0].shape[-1] == 1:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        metrics.append(keras.metrics.AUC(name="auc"))
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Records the wall time of every epoch in ``self.times`` (seconds)."""

        def __init__(self):
            super().__init__()
            self.times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(round(time.perf_counter() - self._start, 3))

    return EpochTimer()


def train(model, train_ds, val_ds=None, epochs: int = 10, class_weight: dict | None = None, patience: int = 3,
          checkpoint_path: str | None = None, verbose: int = 1, monitor: str = "val_loss",
          callbacks: Sequence = (), batch_size: int = 32) -> TrainResult:
    """``model.fit`` with early stopping (best weights restored), an optional checkpoint and epoch timing.

    ``train_ds``/``val_ds``: tf.data datasets of (images, labels) or ``(x, y)`` array pairs. An
    uncompiled model is compiled with ``compile_for_task``.
    """
    import keras

    if not getattr(model, "compiled", False):
        compile_for_task(model)
    timer = _epoch_timer()
    cbs = [timer, *callbacks]
    if val_ds is not None and patience:
        cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True))
    if checkpoint_path:
        cbs.append(keras.callbacks.ModelCheckpoint(str(checkpoint_path), monitor=monitor if val_ds is not None else "loss",
                                                   save_best_only=True))
    fit_kwargs = dict(epochs=epochs, class_weight=class_weight, callbacks=cbs, verbose=verbose)
    if isinstance(val_ds, (tuple, list)):
        val_ds = tuple(np.asarray(a) for a in val_ds)
    start = time.perf_counter()
    if isinstance(train_ds, (tuple, list)):
        x, y = train_ds
        fit = model.fit(np.asarray(x), np.asarray(y), batch_size=batch_size, shuffle=True,
                        validation_data=val_ds, **fit_kwargs)
    else:
        fit = model.fit(train_ds, validation_data=val_ds, **fit_kwargs)
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    return TrainResult(history, timer.times, round(time.perf_counter() - start, 3))


# ---- cached-feature transfer learning ------------------------------------------------------------

def split_classifier(model) -> tuple[list, object, list]:
    """(layers before the base, the nested base, layers after it) of a chain-shaped classifier."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = [layer.name for layer in layers]
    if BASE_NAME not in names:
        raise ValueError(f"model {model.name!r} has no nested layer named {BASE_NAME!r}: "
                         "build it with models.build_mobilenet_classifier")
    i = names.index(BASE_NAME)
    return layers[:i], layers[i], layers[i + 1:]


def _chain(layers: Sequence, x):
    for layer in layers:
        x = layer(x)
    return x


def fine_tune_cut(base, fine_tune_from: int | None) -> int:
    """Index of the last base layer that stays frozen: the one before MobileNet block ``fine_tune_from``
    (1..13; ``None`` = the whole base is frozen)."""
    names = [layer.name for layer in base.layers]
    if fine_tune_from is None:
        return len(names) - 1
    starts = [i for i, n in enumerate(names) if n in (f"conv_pad_{fine_tune_from}", f"conv_dw_{fine_tune_from}")]
    if not starts:
        raise ValueError(f"fine_tune_from={fine_tune_from}: MobileNet v1 has blocks 1..13 (13 = the top block)")
    return min(starts) - 1


def cache_activations(front: Sequence, lower, data, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Run every batch of ``data`` (images, labels) through ``front`` layers and the frozen ``lower``
    model once: float16 activations and int labels; ``flip`` adds the mirrored images after them."""
    import keras
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(images):
        return lower(_chain(front, images), training=False)

    feats, labels = [], []
    for variant in ([False, True] if flip else [False]):
        for images, y in data:
            images = tf.reverse(images, axis=[2]) if variant else images
            feats.append(keras.ops.convert_to_numpy(run(images)).astype(np.float16))
            labels.append(np.asarray(y).reshape(-1))
    return np.concatenate(feats), np.concatenate(labels)


def _array_batches(x: np.ndarray, y: np.ndarray | None, batch_size: int, seed: int, class_weight: dict | None,
                   shuffle: bool = True):
    """A Keras PyDataset over cached float16 arrays: float32 batches, seeded shuffle every epoch."""
    import keras

    class ArrayBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x)) if shuffle else np.arange(len(x))

        def __len__(self):
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, i):
            idx = np.sort(self.order[i * batch_size:(i + 1) * batch_size])
            if y is None:
                return x[idx].astype(np.float32)
            batch = (x[idx].astype(np.float32), y[idx])
            if class_weight:
                batch += (np.array([class_weight[int(c)] for c in y[idx]], np.float32),)
            return batch

        def on_epoch_end(self):
            if shuffle:
                self.order = self.rng.permutation(len(x))

    return ArrayBatches()


def _set_fine_tunable(base, cut: int) -> int:
    """Unfreeze the conv layers above ``cut``; BatchNorm and everything below stay frozen. Returns the count."""
    import keras

    base.trainable = True
    count = 0
    for i, layer in enumerate(base.layers):
        layer.trainable = i > cut and bool(layer.weights) and not isinstance(layer, keras.layers.BatchNormalization)
        count += int(layer.trainable)
    return count


def _merge(result: TrainResult, stage: TrainResult, name: str) -> None:
    for key, values in stage.history.items():
        result.history.setdefault(key, []).extend(values)
    result.history.setdefault("stage", []).extend([name] * len(stage.epoch_times))
    result.epoch_times.extend(stage.epoch_times)


@dataclass
class ActivationCache:
    """Frozen-base activations of the training (+ mirrored) and validation images, computed once.

    ``cut`` is the index of the last frozen base layer. The arrays depend only on the frozen part of
    the base, so one cache serves every head (binary and 4-class: see ``relabel``).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    cut: int
    seconds: float = 0.0

    def relabel(self, mapping: Sequence[int]) -> "ActivationCache":
        """The same activations with labels mapped through ``mapping`` (e.g. 4-class -> binary)."""
        mapping = np.asarray(mapping)
        return ActivationCache(self.x_train, mapping[self.y_train], self.x_val, mapping[self.y_val], self.cut,
                               self.seconds)


def build_activation_cache(model, train_ds, val_ds, fine_tune_from: int | None = 12, flip: bool = True) -> ActivationCache:
    """Run the images once through the frozen base of ``model`` up to block ``fine_tune_from``
    (None: the whole base); ``flip`` adds the mirrored training images."""
    import keras

    start = time.perf_counter()
    front, base, _ = split_classifier(model)
    cut = fine_tune_cut(base, fine_tune_from)
    lower = keras.Model(base.inputs, base.layers[cut].output, name="frozen_lower_base")
    x_train, y_train = cache_activations(front, lower, train_ds, flip=flip)
    x_val, y_val = cache_activations(front, lower, val_ds)
    return ActivationCache(x_train, y_train, x_val, y_val, cut, round(time.perf_counter() - start, 1))


def transfer_learn(model, train_ds=None, val_ds=None, head_epochs: int = 30, fine_tune_epochs: int = 0,
                   fine_tune_from: int | None = 12, head_learning_rate: float = 1e-3,
                   fine_tune_learning_rate: float = 1e-4, class_weight: dict | None = None, flip: bool = True,
                   patience: int = 5, batch_size: int = 32, seed: int = 0, verbose: int = 1,
                   cache: ActivationCache | None = None) -> TrainResult:
    """Two-stage transfer learning on cached activations (see the module docstring); trains ``model`` in place.

    ``train_ds``/``val_ds`` yield (images, labels) batches, e.g. ``pipeline.make_dataset``; ``flip``
    adds mirrored training images to the cache. A ``cache`` from ``build_activation_cache`` (same
    ``fine_tune_from``) replaces the datasets. Returns one ``TrainResult`` for both stages
    (``history["stage"]`` says which epoch belongs to which; ``info`` has the cache time and sizes).
    """
    import keras

    start = time.perf_counter()
    _, base, head = split_classifier(model)
    if cache is None:
        if train_ds is None or val_ds is None:
            raise ValueError("pass train_ds and val_ds (tf.data datasets of images, labels) or a cache")
        cache = build_activation_cache(model, train_ds, val_ds, fine_tune_from if fine_tune_epochs > 0 else None, flip)
    cut = cache.cut
    if fine_tune_epochs > 0 and cut == len(base.layers) - 1:
        raise ValueError("this cache holds the base's output: nothing left to fine-tune. Build it with fine_tune_from.")
    x_train, y_train, x_val, y_val = cache.x_train, cache.y_train, cache.x_val, cache.y_val
    upper = base.layers[cut + 1:]
    n_pool = 1 if head and not head[0].weights else 0  # GAP / Flatten: part of the cached features
    result = TrainResult(info={"cache_seconds": cache.seconds, "cached_train": int(len(x_train)),
                               "cached_val": int(len(x_val)), "cached_shape": list(x_train.shape[1:]),
                               "frozen_up_to": base.layers[cut].name})

    # stage 1: the head on pooled features of the (frozen) cache
    def pooled(a: np.ndarray) -> np.ndarray:
        if not upper and not n_pool:
            return a.astype(np.float32)
        feature_model = keras.Sequential([keras.Input(a.shape[1:]), *upper, *head[:n_pool]])
        return feature_model.predict(_array_batches(a, None, 64, seed, None, shuffle=False), verbose=0)

    p_train, p_val = pooled(x_train), pooled(x_val)
    head_model = keras.Sequential([keras.Input(p_train.shape[1:]), *head[n_pool:]], name="head_on_features")
    compile_for_task(head_model, head_learning_rate)
    stage1 = train(head_model, (p_train, y_train), (p_val, y_val), epochs=head_epochs, class_weight=class_weight,
                   patience=patience, verbose=verbose, batch_size=batch_size)
    _merge(result, stage1, "head")

    # stage 2: fine-tune the top blocks on the cached activations, low learning rate, cosine decay
    if fine_tune_epochs > 0:
        result.info["fine_tuned_layers"] = _set_fine_tunable(base, cut)
        inputs = keras.Input(x_train.shape[1:])
        top_model = keras.Model(inputs, _chain(head, _chain(upper, inputs)), name="top_on_cache")  # frozen BN = inference
        steps = fine_tune_epochs * math.ceil(len(x_train) / batch_size)
        compile_for_task(top_model, keras.optimizers.schedules.CosineDecay(fine_tune_learning_rate, steps))
        stage2 = train(top_model, _array_batches(x_train, y_train, batch_size, seed, class_weight),
                       _array_batches(x_val, y_val, batch_size * 2, seed, None, shuffle=False),
                       epochs=fine_tune_epochs, patience=patience, verbose=verbose)
        _merge(result, stage2, "fine_tune")
        base.trainable = False
    result.wall_time = round(time.perf_counter() - start, 3)  # includes the cache when it was built here
    return result
