"""Training: seeds, class weights, train(), cached-feature transfer learning, artifacts, real data."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

keras = pytest.importorskip("keras")

from brainxpert_utils import artifacts, models, pipeline, splits, training  # noqa: E402
from brainxpert_utils.evaluation import evaluate  # noqa: E402

SMALL_FILE = "mobilenet_2_5_224_tf_no_top.h5"


def _toy_data(n: int = 48, size: int = 24, seed: int = 0):
    """Bright-square images (label 1) vs dark ones (label 0): learnable in a few steps."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype("int32")
    x = rng.uniform(0, 60, (n, size, size, 1)).astype("float32")
    x[y == 1, 6:18, 6:18] += 150
    return x, y


def _first_epoch_loss(seed: int) -> float:
    training.set_seed(seed)
    model = models.build_custom_cnn((24, 24, 1), 2, blocks=(4, 8))
    x, y = _toy_data()
    return training.train(model, (x, y), epochs=1, patience=0, verbose=0, batch_size=16).history["loss"][0]


def test_same_seed_same_first_epoch_loss():
    first, again = _first_epoch_loss(3), _first_epoch_loss(3)
    assert abs(first - again) <= 1e-6
    assert abs(_first_epoch_loss(4) - first) > 1e-6  # the seed matters


def test_same_seed_same_split_subset_and_batch_order(sartaj_dir):
    split = splits.load_split()
    a, b = pipeline.subset_split(split, 3, seed=1), pipeline.subset_split(split, 3, seed=1)
    assert a.equals(b) and not a.equals(pipeline.subset_split(split, 3, seed=2))
    orders = [np.concatenate([y.numpy() for _, y in pipeline.make_dataset(a, sartaj_dir, "train", task="multiclass",
                                                                          image_size=16, seed=s, verbose=False)])
              for s in (5, 5)]
    np.testing.assert_array_equal(orders[0], orders[1])


def test_compute_class_weight():
    weights = training.compute_class_weight([0, 0, 0, 1])
    assert weights == pytest.approx({0: 4 / 6, 1: 2.0})
    with pytest.raises(ValueError, match="2 classes"):
        training.compute_class_weight([1, 1])


def test_class_weight_from_the_shipped_split():
    split = splits.load_split()
    weights = training.compute_class_weight(split, "binary")
    train = split[split["split"] == "train"]
    n_no = int((train["label"] == "no_tumor").sum())
    assert weights[0] == pytest.approx(len(train) / (2 * n_no)) and weights[0] > 1 > weights[1]
    assert len(training.compute_class_weight(split, "multiclass")) == 4


def test_train_records_history_times_and_checkpoint(tmp_path):
    training.set_seed(0)
    model = models.build_custom_cnn((24, 24, 1), 2, blocks=(8,), augment=False)
    x, y = _toy_data()
    checkpoint = tmp_path / "best.keras"
    result = training.train(model, (x, y), (x[:16], y[:16]), epochs=4, patience=2, checkpoint_path=str(checkpoint),
                            verbose=0, class_weight={0: 1.0, 1: 1.0})
    n = len(result.history["loss"])
    assert 1 <= n <= 4 and len(result.epoch_times) == n and len(result.history["val_loss"]) == n
    assert all(t > 0 for t in result.epoch_times) and result.wall_time >= sum(result.epoch_times) * 0.9
    assert checkpoint.is_file()
    json.dumps(result.to_dict())  # JSON-serialisable as it is


def test_artifacts_round_trip(tmp_path):
    model = models.build_custom_cnn((24, 24, 1), 4, blocks=(4,))
    name = artifacts.run_name("custom_cnn", "multiclass")
    assert name == "custom_cnn_multiclass"
    path = artifacts.save_run_item("model", name, model, tmp_path)
    assert path == tmp_path / "models" / "custom_cnn_multiclass.keras"
    x, _ = _toy_data(4)
    np.testing.assert_array_equal(artifacts.load_run_item("model", name, tmp_path).predict(x, verbose=0),
                                  model.predict(x, verbose=0))
    history = training.TrainResult({"loss": [np.float32(0.5)]}, [1.0], 1.0)
    artifacts.save_run_item("history", name, history, tmp_path)
    assert artifacts.load_run_item("history", name, tmp_path)["history"]["loss"] == [0.5]
    artifacts.save_run_item("metrics", name, {"accuracy": np.float64(0.9), "cm": np.eye(2)}, tmp_path)
    assert artifacts.load_run_item("metrics", name, tmp_path) == {"accuracy": 0.9, "cm": [[1.0, 0.0], [0.0, 1.0]]}
    with pytest.raises(artifacts.ArtifactNotFound, match="run the notebook"):
        artifacts.load_run_item("model", "mobilenet_binary", tmp_path)


def _toy_ds(x, y, batch=16):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def _small_weights(weights_dir):
    if not (weights_dir / SMALL_FILE).is_file():
        pytest.skip(f"{SMALL_FILE} not in {weights_dir}")
    return str(weights_dir / SMALL_FILE)


def test_cached_transfer_learning_gives_one_model_that_saves_and_loads(tmp_path, weights_dir):
    training.set_seed(0)
    x, y = _toy_data(48, 64)
    # real weights: a randomly initialised MobileNet's top features are ~0, so nothing would move
    model = models.build_mobilenet_classifier((64, 64, 1), 2, alpha=0.25, weights=_small_weights(weights_dir))
    base = model.get_layer("mobilenet_base")
    before = {name: [w.copy() for w in base.get_layer(name).get_weights()]
              for name in ("conv1", "conv_pw_13", "conv_pw_13_bn")}
    result = training.transfer_learn(model, _toy_ds(x, y), _toy_ds(x[:16], y[:16]), head_epochs=2,
                                     fine_tune_epochs=2, fine_tune_from=13, patience=0, verbose=0)
    assert result.history["stage"] == ["head", "head", "fine_tune", "fine_tune"]
    assert result.info["cached_train"] == 96  # 48 images + their mirror images
    assert result.info["frozen_up_to"] == "conv_pw_12_relu"
    json.dumps(result.to_dict())
    after = {name: base.get_layer(name).get_weights() for name in before}
    np.testing.assert_array_equal(after["conv1"][0], before["conv1"][0])  # below the cut: frozen
    for old, new in zip(before["conv_pw_13_bn"], after["conv_pw_13_bn"]):  # BatchNorm: frozen
        np.testing.assert_array_equal(old, new)
    assert not np.array_equal(after["conv_pw_13"][0], before["conv_pw_13"][0])  # fine-tuned
    path = tmp_path / "tl.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_one_cache_serves_two_heads():
    x, y4 = _toy_data(32, 48)
    y4 = (np.arange(32) % 4).astype("int32")
    model4 = models.build_mobilenet_classifier((48, 48, 1), 4, alpha=0.25, weights=None)
    cache = training.build_activation_cache(model4, _toy_ds(x, y4), _toy_ds(x[:8], y4[:8]), fine_tune_from=None,
                                            flip=False)
    binary = cache.relabel([1, 1, 0, 1])
    np.testing.assert_array_equal(binary.y_train, (y4 != 2).astype(int))
    model2 = models.build_mobilenet_classifier((48, 48, 1), 2, alpha=0.25, weights=None)
    model2.get_layer("mobilenet_base").set_weights(model4.get_layer("mobilenet_base").get_weights())
    result = training.transfer_learn(model2, head_epochs=1, cache=binary, verbose=0)
    assert result.history["stage"] == ["head"]
    with pytest.raises(ValueError, match="nothing left to fine-tune"):
        training.transfer_learn(model2, head_epochs=1, fine_tune_epochs=1, cache=binary, verbose=0)


def test_transfer_learning_on_real_data_beats_chance(sartaj_dir, weights_dir, monkeypatch):
    _small_weights(weights_dir)
    monkeypatch.setenv("BRAINXPERT_WEIGHTS_DIR", str(weights_dir))
    split = pipeline.subset_split(splits.load_split(), 40, seed=0)  # 40 per class per split, still grouped
    data = {s: pipeline.make_dataset(split, sartaj_dir, s, task="multiclass", image_size=160, verbose=False)
            for s in ("train", "val", "test")}
    training.set_seed(0)
    model = models.build_mobilenet_classifier((160, 160, 3), 4, alpha=0.25, download=False)
    training.transfer_learn(model, data["train"], data["val"], head_epochs=30, patience=5, verbose=0)
    result = evaluate(model, data["test"], split="test", task="multiclass", n_boot=200)
    assert result["n"] == 160
    assert result["accuracy"]["value"] >= 0.55  # 4 balanced classes: chance is 0.25
    assert result["accuracy"]["ci"][0] > 0.4
