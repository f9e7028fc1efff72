"""Hidden tests of notebook 03 (MobileNet transfer learning). Each test_<id>(ns) gets the notebook's globals."""

EXERCISES = {
    "03.1": {"points": 2, "title": "weights of a standard vs a depthwise separable convolution"},
    "03.2": {"points": 2, "title": "MobileNet's preprocessing"},
}


def test_03_1(ns):
    import keras

    conv_params = ns["conv_params"]
    for kernel, c_in, c_out in [(3, 3, 8), (5, 16, 16), (3, 256, 512), (1, 7, 9)]:
        standard = keras.layers.Conv2D(c_out, kernel, use_bias=False)
        separable = keras.layers.SeparableConv2D(c_out, kernel, use_bias=False)
        for layer in (standard, separable):
            layer.build((None, 32, 32, c_in))
        want = (standard.count_params(), separable.count_params())
        got = tuple(int(v) for v in conv_params(kernel, c_in, c_out))
        assert got == want, (f"conv_params({kernel}, {c_in}, {c_out}): Keras counts {want} "
                             f"(standard, separable), you returned {got}")


def test_03_2(ns):
    import keras
    import numpy as np

    mobilenet_preprocess = ns["mobilenet_preprocess"]
    images = np.random.default_rng(3).uniform(0, 255, size=(2, 5, 4, 3)).astype("float32")
    original = images.copy()
    got = np.asarray(mobilenet_preprocess(images), dtype="float32")
    assert np.array_equal(images, original), "mobilenet_preprocess modified its input array in place"
    want = keras.applications.mobilenet.preprocess_input(original.copy())
    assert got.shape == want.shape, f"expected shape {want.shape}, got {got.shape}"
    assert np.allclose(got, want, atol=1e-5), (
        "the output differs from keras.applications.mobilenet.preprocess_input (pixels / 127.5 - 1)")
