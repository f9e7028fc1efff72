"""Hidden tests of notebook 02 (custom CNN). Each test_<id>(ns) gets the executed notebook's globals."""

EXERCISES = {
    "02.1": {"points": 2, "title": "output shape and parameter count of a Conv2D layer"},
    "02.2": {"points": 2, "title": "the receptive field of a stack of layers"},
    "02.3": {"points": 3, "title": "a convolution block"},
}


def _keras_conv(input_shape, filters, kernel, strides, padding):
    """What Keras itself says: (output shape, parameter count)."""
    import keras

    layer = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding)
    layer.build((None, *input_shape))
    return tuple(layer.compute_output_shape((None, *input_shape))[1:]), layer.count_params()


def test_02_1(ns):
    conv2d_output = ns["conv2d_output"]
    cases = [((28, 28, 1), 6, 5, 1, "valid"), ((224, 224, 3), 32, 3, 2, "same"), ((17, 17, 64), 128, 3, 2, "valid"),
             ((9, 9, 16), 10, 1, 1, "same"), ((100, 60, 3), 7, 7, 3, "valid")]
    for shape, filters, kernel, strides, padding in cases:
        want = _keras_conv(shape, filters, kernel, strides, padding)
        got = conv2d_output(shape, filters, kernel, strides=strides, padding=padding)
        got = (tuple(int(v) for v in got[0]), int(got[1]))
        assert got == want, (f"Conv2D({filters}, {kernel}, strides={strides}, padding={padding!r}) on {shape}: "
                             f"Keras gives shape {want[0]} and {want[1]} parameters, you returned {got[0]} and {got[1]}")


def test_02_2(ns):
    receptive_field = ns["receptive_field"]

    def reference(specs):
        field, jump = 1, 1
        for kernel, stride in specs:
            field, jump = field + (kernel - 1) * jump, jump * stride
        return field

    cases = [[], [(7, 2)], [(3, 1), (2, 2)] * 3, [(7, 2), (3, 2), (3, 1), (3, 1)], [(5, 1), (3, 2), (5, 2), (2, 2), (3, 1)]]
    for specs in cases:
        assert int(receptive_field(specs)) == reference(specs), (
            f"receptive_field({specs}) should be {reference(specs)}, you returned {receptive_field(specs)}")


def test_02_3(ns):
    import keras

    conv_block = ns["conv_block"]
    inputs = keras.Input(shape=(20, 24, 5))
    block = keras.Model(inputs, conv_block(inputs, 12))
    assert tuple(block.output.shape[1:]) == (10, 12, 12), (
        f"on a 20x24x5 input with 12 filters the block should output (10, 12, 12), got {tuple(block.output.shape[1:])}")
    kinds = [type(layer).__name__ for layer in block.layers[1:]]
    for kind in ("Conv2D", "BatchNormalization", "MaxPooling2D"):
        assert kind in kinds, f"the block has no {kind} layer (layers: {kinds})"
    assert kinds.index("Conv2D") < kinds.index("BatchNormalization") < kinds.index("MaxPooling2D"), (
        f"order should be Conv2D -> BatchNormalization -> ReLU -> MaxPooling2D, got {kinds}")
    assert block.count_params() == 3 * 3 * 5 * 12 + 4 * 12, (
        f"expected {3 * 3 * 5 * 12 + 4 * 12} parameters (3x3 kernels without bias + batch norm), got {block.count_params()}")
    import numpy as np

    out = np.asarray(block(np.full((1, 20, 24, 5), -1.0, "float32"), training=False))
    assert out.min() >= 0.0, "the block's output has negative values: apply ReLU before pooling"
