"""Grad-CAM heat maps (Selvaraju et al., 2017) that also work when MobileNet is nested in the classifier.

The usual recipe (keras-io "Grad-CAM class activation visualization") builds
``keras.Model(model.inputs, [model.get_layer(name).output, model.output])``. That works when the
target layer is a top-level layer of a functional model. When the layer lives inside a nested model
(our MobileNet classifier keeps the base as one layer named ``"mobilenet_base"``), the same call
fails ("Output ... is not connected to `inputs`" in Keras 3, "Graph disconnected" in Keras 2): the
inner layer's output belongs to the base's own graph, not to the classifier's.

Here, for a nested target we run the outer model's layers one by one, in inference mode, and replace
the nested base by a small model ``base input -> (target feature map, base output)`` built on the
base's own graph. The forward pass is checked against ``model(x)`` so a model that is not a simple
chain of layers raises a clear error instead of giving a silently wrong map.

Which score is explained:
- softmax head: the pre-softmax score (logit) of the class;
- single sigmoid unit (binary, class 1 = tumour): the logit ``z`` for class 1 and ``-z`` for class 0
  (``-z`` is the logit of ``1 - p``), so "no tumour" maps show what argues against a tumour.
When the last layer is not a Dense with a sigmoid/softmax activation, the model output itself is used
(``p`` for class 1 and ``1 - p`` for class 0 with one output unit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from brainxpert_utils.errors import BrainXpertError

_CONV_TYPES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")
_FOLLOWERS = ("BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU")
_NOT_A_CHAIN = ("Grad-CAM could not rebuild this model's forward pass: with the target layer inside a nested "
                "model, the outer model must be a simple chain (Input -> preprocessing -> base -> head). "
                "Explain a top-level layer instead (layer_name=...) or build the model as such a chain")


def _nested_models(model) -> list:
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def _last_conv_name(model) -> str:
    """Name of the last convolution block's output (after its batch norm / activation), looking
    inside nested models too (a top-level grey -> RGB 1x1 conv before the base does not count)."""
    import keras

    layers = list(model.layers)
    for i in reversed(range(len(layers))):
        if isinstance(layers[i], keras.Model):
            try:
                return _last_conv_name(layers[i])
            except BrainXpertError:
                continue
        if type(layers[i]).__name__ in _CONV_TYPES:
            while i + 1 < len(layers) and type(layers[i + 1]).__name__ in _FOLLOWERS:
                i += 1
            return layers[i].name
    raise BrainXpertError(f"model {model.name!r} has no convolution layer: Grad-CAM needs a CNN "
                          "(or pass layer_name= of a layer with a 4-D (batch, h, w, channels) output)")


def find_target_layer(model, layer_name: str | None = None) -> tuple:
    """``(owner, layer)``: the layer Grad-CAM explains and the nested model that holds it (None when
    it is a top-level layer). ``layer_name=None`` picks the last convolution block automatically."""
    name = layer_name or _last_conv_name(model)
    top = {layer.name: layer for layer in model.layers}
    if name in top:
        return None, top[name]
    for nested in _nested_models(model):
        if name in {layer.name for layer in nested.layers}:
            return nested, nested.get_layer(name)
    raise BrainXpertError(f"no layer named {name!r} in model {model.name!r} or its nested models; "
                          "use model.summary() (and base.summary() for the nested base) to see the names")


def _logit_head(model):
    """The final Dense layer when it ends in sigmoid/softmax (we then explain its logits), else None."""
    import keras

    last = model.layers[-1]
    if isinstance(last, keras.layers.Dense) and last.activation in (keras.activations.sigmoid,
                                                                     keras.activations.softmax):
        return last
    return None


def _dense_logits(dense, features):
    from keras import ops

    logits = ops.matmul(features, dense.kernel)
    return logits + dense.bias if dense.use_bias else logits


def _build_forward(model, layer_name: str | None) -> tuple[Callable, object]:
    """A function ``x -> (feature map, class scores)`` and the final Dense whose logits are the scores
    (or None when the scores are the model outputs)."""
    import keras

    owner, target = find_target_layer(model, layer_name)
    if len(target.output.shape) != 4:
        raise BrainXpertError(f"layer {target.name!r} has output shape {target.output.shape}; Grad-CAM "
                              "needs a 4-D feature map (batch, height, width, channels): pick a conv layer")
    head = _logit_head(model)
    if owner is None:  # the keras-io recipe works for top-level layers
        end = head.input if head is not None else model.outputs[0]
        grad_model = keras.Model(model.inputs, [target.output, end])

        def forward(x):
            features, out = grad_model(x, training=False)
            return features, _dense_logits(head, out) if head is not None else out
        return forward, head

    inner = keras.Model(owner.inputs, [target.output, owner.outputs[0]])
    chain = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]

    def forward(x):
        features = None
        try:
            for layer in chain:
                if layer is owner:
                    features, x = inner(x, training=False)
                elif layer is head:
                    x = _dense_logits(head, x)
                else:
                    x = layer(x, training=False)  # augmentation layers do nothing at inference
        except (ValueError, TypeError) as exc:
            raise BrainXpertError(_NOT_A_CHAIN) from exc
        return features, x
    return forward, head


def _prepare(model, images: np.ndarray) -> np.ndarray:
    """Float32 batch (N, H, W, C) that matches the model input (greyscale is repeated to RGB)."""
    images = np.asarray(images, dtype="float32")
    if images.ndim == 3 and images.shape[-1] not in (1, 3):
        images = images[..., None]  # (N, H, W) greyscale batch
    if images.ndim != 4:
        raise BrainXpertError(f"expected images of shape (N, H, W, C), got {images.shape}")
    expected = model.inputs[0].shape
    if expected[-1] == 3 and images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    for got, want, what in zip(images.shape[1:], expected[1:], ("height", "width", "channels")):
        if want is not None and got != want:
            raise BrainXpertError(f"image {what} is {got} but the model expects {want}: resize the images "
                                  f"to the model input {tuple(expected[1:])} (e.g. pipeline.load_images)")
    return images


def _class_scores(scores, head, class_index):
    """The score explained per image: the chosen class's logit (see the module docstring)."""
    import tensorflow as tf

    n_out = scores.shape[-1]
    if class_index is None:
        chosen = tf.cast(scores[:, 0] > (0.0 if head is not None else 0.5), tf.int32) if n_out == 1 \
            else tf.argmax(scores, axis=-1, output_type=tf.int32)
    else:
        chosen = tf.broadcast_to(tf.constant(class_index, dtype=tf.int32), tf.shape(scores)[:1])
    if n_out == 1:  # binary: class 1 -> z (or p), class 0 -> -z (or 1 - p)
        return tf.where(chosen == 1, scores[:, 0], -scores[:, 0] if head is not None else 1 - scores[:, 0])
    return tf.gather(scores, chosen, axis=1, batch_dims=1)


def _cams(forward, head, model, x, class_index, check: bool) -> np.ndarray:
    """Grad-CAM of one batch: gradient-weighted feature maps, ReLU, upsampled, scaled to [0, 1]."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)  # records every op, also through frozen (non-trainable) layers
        features, scores = forward(x)
        scores = tf.reshape(scores, (tf.shape(x)[0], -1))
        score = _class_scores(scores, head, class_index)
    if check:
        _check_forward(model, x, scores, head)
    grads = tape.gradient(score, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # one weight per channel
    cams = tf.nn.relu(tf.reduce_sum(features * weights, axis=-1))[..., None]
    cams = tf.image.resize(cams, tf.shape(x)[1:3], method="bilinear")[..., 0]
    peak = tf.reduce_max(cams, axis=(1, 2), keepdims=True)
    cams = tf.math.divide_no_nan(cams, peak)  # an all-zero map stays zero: no positive evidence
    return np.clip(cams.numpy(), 0.0, 1.0)


def grad_cam_batch(model, images: np.ndarray, class_index: int | Sequence[int] | None = None,
                   layer_name: str | None = None, check: bool = True, batch_size: int = 32) -> np.ndarray:
    """Grad-CAM heat maps ``(N, H, W)`` in [0, 1] for a batch of raw images ``(N, H, W, C)`` in [0, 255].

    ``class_index``: None explains each image's predicted class; an int or one int per image explains
    that class. ``layer_name``: the feature map to explain (default: the last conv block, found inside
    a nested base too). ``check`` compares the rebuilt forward pass with ``model(x)``.
    """
    import tensorflow as tf

    images = _prepare(model, images)
    n_classes = max(2, int(model.outputs[0].shape[-1]))
    if class_index is not None:
        class_index = np.broadcast_to(np.asarray(class_index, dtype="int32"), (len(images),))
        if class_index.min() < 0 or class_index.max() >= n_classes:
            raise BrainXpertError(f"class_index must be in 0..{n_classes - 1} for this model "
                                  "(binary: 0 = no tumour, 1 = tumour), or None for the predicted class")
    forward, head = _build_forward(model, layer_name)
    chunks = [_cams(forward, head, model, tf.convert_to_tensor(images[i:i + batch_size]),
                    None if class_index is None else class_index[i:i + batch_size], check)
              for i in range(0, len(images), batch_size)]
    return np.concatenate(chunks)


def _check_forward(model, x, scores, head) -> None:
    """Raise when the rebuilt forward pass does not reproduce the model's own prediction."""
    import keras

    expected = keras.ops.convert_to_numpy(model(x, training=False)).reshape(len(x), -1)
    got = scores.numpy()
    if head is not None:
        got = keras.ops.convert_to_numpy(head.activation(got))
    if not np.allclose(got, expected, atol=1e-3):
        raise BrainXpertError(_NOT_A_CHAIN)


def grad_cam(model, image: np.ndarray, class_index: int | None = None,
             layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM heat map ``(H, W)`` in [0, 1] of one raw image ``(H, W, C)`` in [0, 255].

    ``class_index=None`` explains the predicted class (binary: 1 = tumour, 0 = no tumour). An all-zero
    map means the layer holds no positive evidence for that class.
    """
    return grad_cam_batch(model, np.asarray(image)[None], class_index, layer_name)[0]


def _resize(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if heatmap.shape == tuple(shape):
        return heatmap
    resized = Image.fromarray(heatmap.astype("float32")).resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(resized)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """Blend a heat map (coloured with ``cmap``) over an image: uint8 RGB ``(H, W, 3)``.

    ``image`` is greyscale or RGB in [0, 255]; ``heatmap`` in [0, 1] is resized to the image if needed.
    """
    import matplotlib

    image = np.asarray(image, dtype="float32")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    heat = np.clip(_resize(np.asarray(heatmap, dtype="float32"), image.shape[:2]), 0, 1)
    colours = matplotlib.colormaps[cmap](heat)[..., :3] * 255.0
    return np.clip((1 - alpha) * image + alpha * colours, 0, 255).astype(np.uint8)


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Binary dilation by a (2*pixels+1) square, NumPy only."""
    mask = np.asarray(mask, dtype=bool)
    if pixels <= 0:
        return mask
    padded = np.pad(mask, pixels)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(2 * pixels + 1):
        for dx in range(2 * pixels + 1):
            out |= padded[dy:dy + h, dx:dx + w]
    return out


def mass_in_mask(heatmap: np.ndarray, mask: np.ndarray, dilate: int = 0) -> float:
    """Fraction of the heat map's total mass that falls inside the (dilated) mask (0 for an empty map)."""
    heat = _resize(np.asarray(heatmap, dtype="float32"), np.shape(mask))
    total = float(heat.sum())
    return float(heat[_dilate(mask, dilate)].sum() / total) if total > 0 else 0.0


def pointing_hit(heatmap: np.ndarray, mask: np.ndarray, dilate: int = 0) -> bool:
    """Pointing game: does the heat map's maximum fall inside the (dilated) mask?"""
    heat = _resize(np.asarray(heatmap, dtype="float32"), np.shape(mask))
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return bool(_dilate(mask, dilate)[y, x])
