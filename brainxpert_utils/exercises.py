"""Student-facing exercise checks: immediate feedback in plain words.

Every check prints ONE line and returns a bool; it never raises::

    ✅ Exercise 01.1: correct - 4 classes counted.
    ❌ Exercise 01.1: no_tumor should have 2 distinct images, you returned 3. Hint: ...
    ❌ Exercise 01.1: not attempted yet - replace the NotImplementedError line in the exercise cell.

How to write a check (authors of every notebook):

    @exercise_check("02.1")
    def check_conv_block(conv_block) -> str:
        out = conv_block(...)              # call the student's code on a tiny input
        expect(out.shape == ..., "the block should halve the size, got ... Hint: ...")
        return "the block convolves and halves the size."   # the success message

- ``expect(condition, message)`` fails the check with ``message`` (what is wrong + a hint).
- A ``NotImplementedError`` from the stub becomes "not attempted yet".
- Any other exception from the student's code becomes "your code raised <Type>: <msg>" + a hint.
- ``solved("02.1")`` tells later cells whether the last check of that exercise passed, so a
  notebook can fall back to the library implementation for a student who skipped it.

The hidden tests (``solutions/hidden_tests/``) decide the grade; these checks only give hints, so
they use small hand-made inputs with known answers. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NoReturn

__all__ = ["CheckFailed", "expect", "fail", "exercise_check", "solved", "reset"]

_RESULTS: dict[str, bool] = {}


class CheckFailed(Exception):
    """Raised inside a check to fail it with a message for the student (never escapes a check)."""


def _report(exercise_id: str, ok: bool, message: str) -> bool:
    """Print the one feedback line, remember the outcome, and return ``ok``."""
    mark = "✅" if ok else "❌"
    print(f"{mark} Exercise {exercise_id}: {message}")
    _RESULTS[exercise_id] = bool(ok)
    return bool(ok)


def expect(condition: Any, message: str) -> None:
    """Fail the running check with ``message`` unless ``condition`` is true."""
    if not condition:
        raise CheckFailed(message)


def fail(message: str) -> NoReturn:
    """Fail the running check with ``message``."""
    raise CheckFailed(message)


def exercise_check(exercise_id: str) -> Callable[[Callable[..., str | None]], Callable[..., bool]]:
    """Decorator turning a check body (raises CheckFailed / returns a message) into a safe check."""

    def decorate(body: Callable[..., str | None]) -> Callable[..., bool]:
        @functools.wraps(body)
        def check(*args: Any, **kwargs: Any) -> bool:
            try:
                message = body(*args, **kwargs)
            except NotImplementedError as exc:
                return _report(exercise_id, False, f"not attempted yet ({exc}). Write your code in the "
                               "exercise cell, run it, then run this cell again.")
            except CheckFailed as exc:
                return _report(exercise_id, False, str(exc))
            except Exception as exc:  # the student's code crashed: say where, never raise
                return _report(exercise_id, False, f"your code raised {type(exc).__name__}: {exc}. Hint: "
                               "run the exercise cell on a small input and read the error message.")
            return _report(exercise_id, True, message or "correct!")

        check.exercise_id = exercise_id  # type: ignore[attr-defined]
        return check

    return decorate


def solved(exercise_id: str) -> bool:
    """True when the last check of ``exercise_id`` run in this kernel passed."""
    return _RESULTS.get(exercise_id, False)


def reset() -> None:
    """Forget every recorded outcome (tests)."""
    _RESULTS.clear()


def _same_mapping(got: Any, want: dict, what: str, tol: float = 1e-6) -> None:
    """Fail with a plain message when mapping ``got`` differs from ``want`` (keys and values)."""
    expect(hasattr(got, "keys"), f"return a dict (or pandas Series) of {what}, got {type(got).__name__}.")
    got = {k: got[k] for k in got.keys()}
    missing = [k for k in want if k not in got]
    expect(not missing, f"{what}: missing key(s) {missing}. Hint: one entry per class.")
    extra = [k for k in got if k not in want]
    expect(not extra, f"{what}: unexpected key(s) {extra}.")
    for key, value in want.items():
        expect(abs(float(got[key]) - float(value)) <= tol * max(1.0, abs(float(value))),
               f"{what}: for {key!r} expected {value:g}, you returned {float(got[key]):g}.")


# =============================================================================================
# Notebook 01: data exploration (owner: course infrastructure author)
# =============================================================================================

def _tiny_scan_table():
    """A hand-made scan table with duplicates, a broken file and an empty-folder report row."""
    import pandas as pd

    rows = [
        ("Training/no_tumor/a.jpg", "no_tumor", "h1", True),
        ("Training/no_tumor/b.jpg", "no_tumor", "h1", True),   # byte-identical copy of a.jpg
        ("Testing/no_tumor/c.jpg", "no_tumor", "h2", True),
        ("Training/glioma_tumor/d.jpg", "glioma_tumor", "h3", True),
        ("Training/glioma_tumor/e.jpg", "glioma_tumor", "h4", True),
        ("Testing/glioma_tumor/f.jpg", "glioma_tumor", "h4", True),  # copy across the split
        ("Training/glioma_tumor/broken.jpg", "glioma_tumor", "h5", False),  # undecodable
        ("Training/pituitary_tumor/g.jpg", "pituitary_tumor", "h6", True),
    ]
    df = pd.DataFrame(rows, columns=["path", "class_name", "sha256", "ok"])
    df["problem"] = ["" if ok else "cannot decode" for ok in df["ok"]]
    return df


@exercise_check("01.1")
def check_count_distinct(count_distinct: Callable) -> str:
    """Exercise 01.1: distinct (decodable) images per class from a scan table."""
    got = count_distinct(_tiny_scan_table())
    expect(got is not None, "your function returned None. Hint: end it with `return ...`.")
    want = {"glioma_tumor": 2, "no_tumor": 2, "pituitary_tumor": 1}
    if hasattr(got, "keys") and got.get("glioma_tumor", None) == 3:
        fail("glioma_tumor should count 2 distinct images, you counted 3. Hint: keep only rows with "
             "ok == True before counting - an undecodable file is not an image.")
    if hasattr(got, "keys") and got.get("no_tumor", None) == 3:
        fail("no_tumor should count 2 distinct images, you counted 3: two files have the same sha256. "
             "Hint: count unique sha256 values per class (groupby('class_name')['sha256'].nunique()).")
    _same_mapping(got, want, "distinct images per class")
    return "correct - byte-identical copies and broken files are not counted twice."


@exercise_check("01.2")
def check_find_leaks(find_leaks: Callable) -> str:
    """Exercise 01.2: test files whose duplicate group also has a training file."""
    import pandas as pd

    split = pd.DataFrame({
        "relative_path": ["tr/a.jpg", "tr/b.jpg", "tr/c.jpg", "te/a2.jpg", "te/x.jpg", "te/c2.jpg", "te/y.jpg",
                          "te/y2.jpg"],
        "group": [1, 2, 3, 1, 4, 3, 5, 5],
        "split": ["train", "train", "train", "test", "test", "test", "test", "test"],
    })
    got = find_leaks(split)
    expect(got is not None, "your function returned None. Hint: end it with `return ...`.")
    got_set = set(got.tolist() if hasattr(got, "tolist") else got)
    want = {"te/a2.jpg", "te/c2.jpg"}
    if got_set >= {"te/y.jpg", "te/y2.jpg"}:
        fail("te/y.jpg and te/y2.jpg are duplicates of each other but both are in the test split: "
             "that is not a leak. Hint: only groups that also contain a TRAIN file leak.")
    if got_set & {"tr/a.jpg", "tr/c.jpg"}:
        fail("return the leaked TEST files only (relative paths of rows with split == 'test').")
    expect(got_set == want, f"expected the test files {sorted(want)}, you returned {sorted(got_set)}. Hint: "
           "take the set of groups of the train rows, then the test rows whose group is in that set.")
    return "correct - these test images have a copy in the training set."


@exercise_check("01.3")
def check_class_weights(class_weights: Callable) -> str:
    """Exercise 01.3: 'balanced' class weights n_total / (n_classes * n_c)."""
    labels = [0, 0, 0, 0, 0, 0, 1, 1]
    got = class_weights(labels)
    expect(got is not None, "your function returned None. Hint: end it with `return ...`.")
    want = {0: 8 / (2 * 6), 1: 8 / (2 * 2)}
    if hasattr(got, "keys") and got.get(0) is not None and abs(float(got[0]) - 0.75) < 1e-6:
        fail("you returned class proportions; a weight should be LARGER for the rarer class. "
             "Hint: weight_c = n_total / (n_classes * n_c).")
    _same_mapping(got, want, "class weights")
    return "correct - the rare class counts more in the loss, so both classes weigh the same in total."


# =============================================================================================
# Notebooks 02-04 (owner: notebooks 02-04 author; add checks below, one section per notebook)
# =============================================================================================

# ---- Notebook 02: custom CNN -----------------------------------------------------------------

@exercise_check("02.1")
def check_conv2d_output(conv2d_output: Callable) -> str:
    """Exercise 02.1: output shape and parameter count of a Conv2D layer."""
    cases = [  # (input_shape, filters, kernel, strides, padding) -> (shape, params), as Keras says
        (((32, 32, 3), 16, 3, 1, "valid"), ((30, 30, 16), 448)),
        (((128, 128, 3), 32, 3, 1, "same"), ((128, 128, 32), 896)),
        (((64, 64, 32), 64, 5, 2, "valid"), ((30, 30, 64), 51264)),
        (((63, 63, 8), 4, 3, 2, "same"), ((32, 32, 4), 292)),
    ]
    for (shape, filters, kernel, strides, padding), (want_shape, want_params) in cases:
        got = conv2d_output(shape, filters, kernel, strides=strides, padding=padding)
        expect(isinstance(got, tuple) and len(got) == 2,
               f"return a pair (output_shape, n_params), got {got!r}. Hint: `return (h, w, filters), n_params`.")
        got_shape, got_params = tuple(int(v) for v in got[0]), got[1]
        layer = f"Conv2D({filters}, {kernel}, strides={strides}, padding={padding!r}) on {shape}"
        if got_shape != want_shape:
            hint = ("with padding='same' the output is ceil(H / stride)" if padding == "same"
                    else "with padding='valid' the output is (H - k) // stride + 1")
            fail(f"{layer}: output shape should be {want_shape}, you returned {got_shape}. Hint: {hint}.")
        if got_params == want_params - filters:
            fail(f"{layer}: you forgot the biases - each filter has one ({want_params} in total, "
                 f"you returned {got_params}).")
        if got_params == (kernel * kernel + 1) * filters:
            fail(f"{layer}: each kernel spans all {shape[2]} input channels: k * k * C_in weights per "
                 f"filter. Expected {want_params}, you returned {got_params}.")
        expect(got_params == want_params, f"{layer}: expected {want_params} parameters, you returned "
               f"{got_params}. Hint: (k * k * C_in + 1) * filters.")
    return "correct - shapes and parameter counts match what Keras reports."


@exercise_check("02.2")
def check_receptive_field(receptive_field: Callable) -> str:
    """Exercise 02.2: receptive field of a stack of (kernel_size, stride) layers."""
    expect(receptive_field([]) == 1, f"with no layers each output pixel is one input pixel: expected 1, "
           f"you returned {receptive_field([])}. Hint: start with r = 1.")
    two_convs = receptive_field([(3, 1), (3, 1)])
    expect(two_convs == 5, f"two 3x3 convolutions should see 5x5 pixels, you returned {two_convs}. "
           "Hint: each 3x3 layer adds (3 - 1) * jump pixels.")
    stack = [(3, 1), (2, 2), (3, 1), (2, 2)]
    got = receptive_field(stack)
    if got == 8:
        fail("conv-pool-conv-pool should see 10 pixels, you returned 8: after a stride-2 pool, one step "
             "in the feature map is 2 input pixels. Hint: multiply the jump by the stride after each layer.")
    expect(got == 10, f"conv-pool-conv-pool should see 10 pixels, you returned {got}. "
           "Hint: r = r + (k - 1) * j, then j = j * s.")
    return "correct - pooling makes every later layer see a wider patch of the slice."


@exercise_check("02.3")
def check_conv_block(conv_block: Callable) -> str:
    """Exercise 02.3: Conv2D -> BatchNormalization -> ReLU -> MaxPooling2D."""
    import keras

    inputs = keras.Input(shape=(16, 16, 3))
    out = conv_block(inputs, 8)
    expect(out is not None, "your function returned None. Hint: end it with `return x`.")
    expect(tuple(out.shape[1:]) == (8, 8, 8), f"on a 16x16x3 input with 8 filters the block should "
           f"return 8x8x8, got {tuple(out.shape[1:])}. Hint: padding='same' keeps 16x16, the 2x2 "
           "max-pool halves it.")
    block = keras.Model(inputs, out)
    kinds = [type(layer).__name__ for layer in block.layers[1:]]
    expect("Conv2D" in kinds, f"no Conv2D layer in your block (layers: {kinds}).")
    expect("MaxPooling2D" in kinds, f"no MaxPooling2D layer in your block (layers: {kinds}).")
    expect("BatchNormalization" in kinds, f"no BatchNormalization in your block (layers: {kinds}).")
    conv = next(layer for layer in block.layers if type(layer).__name__ == "Conv2D")
    expect(tuple(conv.kernel_size) == (3, 3), f"use a 3x3 kernel, you used {tuple(conv.kernel_size)}.")
    expect(not conv.use_bias, "the convolution's bias is redundant: batch normalisation right after it "
           "subtracts the mean anyway. Hint: Conv2D(..., use_bias=False).")
    relu = any(kind == "ReLU" or getattr(layer, "activation", None) is keras.activations.relu
               for kind, layer in zip(kinds, block.layers[1:]))
    expect(relu, "no ReLU in your block. Hint: layers.Activation('relu') after the batch normalisation.")
    expect(kinds.index("BatchNormalization") < kinds.index("MaxPooling2D"),
           f"normalise before pooling: your order is {kinds}.")
    expect(block.count_params() == 3 * 3 * 3 * 8 + 4 * 8, f"the block should have {3 * 3 * 3 * 8 + 4 * 8} "
           f"parameters on this input, it has {block.count_params()}.")
    return "correct - convolution, normalisation, non-linearity, then pooling."

# ---- end of notebook 02 ----------------------------------------------------------------------

# ---- Notebook 03: MobileNet transfer learning ------------------------------------------------

@exercise_check("03.1")
def check_conv_params(conv_params: Callable) -> str:
    """Exercise 03.1: weights of a standard vs a depthwise separable convolution (no biases)."""
    got = conv_params(3, 32, 64)
    expect(isinstance(got, tuple) and len(got) == 2,
           f"return a pair (standard, separable), got {got!r}. Hint: `return standard, separable`.")
    standard, separable = (int(v) for v in got)
    if standard == 3 * 3 * 64:
        fail("a standard kernel spans every input channel: k * k * C_in * C_out weights. "
             f"Expected {3 * 3 * 32 * 64} for k=3, C_in=32, C_out=64, you returned {standard}.")
    expect(standard == 3 * 3 * 32 * 64, f"standard 3x3 convolution, 32 -> 64 channels: expected "
           f"{3 * 3 * 32 * 64} weights, you returned {standard}. Hint: k * k * C_in * C_out (no bias).")
    if separable == 3 * 3 * 32 * 64:
        fail("the separable count equals the standard one. A depthwise 3x3 filter per input channel "
             "(k * k * C_in) is followed by a 1x1 pointwise convolution (C_in * C_out).")
    expect(separable == 3 * 3 * 32 + 32 * 64, f"depthwise separable, 32 -> 64 channels: expected "
           f"{3 * 3 * 32 + 32 * 64} weights, you returned {separable}. Hint: k * k * C_in + C_in * C_out.")
    big = tuple(int(v) for v in conv_params(3, 512, 512))
    expect(big == (3 * 3 * 512 * 512, 3 * 3 * 512 + 512 * 512),
           f"for 512 -> 512 channels expected {(3 * 3 * 512 * 512, 3 * 3 * 512 + 512 * 512)}, got {big}.")
    return f"correct - at 512 channels the separable layer needs {big[0] / big[1]:.1f}x fewer weights."


@exercise_check("03.2")
def check_mobilenet_preprocess(mobilenet_preprocess: Callable) -> str:
    """Exercise 03.2: scale [0, 255] pixels to [-1, 1] as MobileNet's weights expect."""
    import numpy as np

    images = np.array([[[[0.0, 127.5, 255.0]]]], dtype="float32")
    original = images.copy()
    got = mobilenet_preprocess(images)
    expect(got is not None, "your function returned None. Hint: end it with `return ...`.")
    got = np.asarray(got, dtype="float64")
    expect(np.array_equal(images, original), "your function changed its input array in place, so the "
           "caller's images are now scaled twice if they call it again. Hint: work on a copy "
           "(np.array(images, dtype='float32') / 127.5 - 1).")
    if np.allclose(got.ravel(), [0.0, 0.5, 1.0]):
        fail("pixels / 255 gives [0, 1]: that was the original course's mistake. MobileNet's ImageNet "
             "weights were trained on pixels scaled to [-1, 1]. Hint: pixels / 127.5 - 1.")
    expect(got.shape == original.shape, f"keep the shape {original.shape}, got {got.shape}.")
    expect(np.allclose(got.ravel(), [-1.0, 0.0, 1.0]), f"0, 127.5 and 255 should become -1, 0 and 1, you "
           f"returned {np.round(got.ravel(), 3).tolist()}. Hint: pixels / 127.5 - 1.")
    return "correct - the same scaling keras.applications.mobilenet.preprocess_input does."

# ---- end of notebook 03 ----------------------------------------------------------------------

# ---- Notebook 04: model comparison -----------------------------------------------------------

@exercise_check("04.1")
def check_sensitivity_specificity(sensitivity_specificity: Callable) -> str:
    """Exercise 04.1: sensitivity and specificity from true labels and 0/1 predictions."""
    import numpy as np

    y_true = np.array([1, 1, 1, 1, 1, 0, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 0, 0, 0, 1])   # 3 of 5 tumours found, 2 of 3 clear slices cleared
    got = sensitivity_specificity(y_true, y_pred)
    expect(isinstance(got, tuple) and len(got) == 2,
           f"return a pair (sensitivity, specificity), got {got!r}.")
    sens, spec = (float(v) for v in got)
    if np.isclose(sens, 2 / 3) and np.isclose(spec, 3 / 5):
        fail("you returned (specificity, sensitivity): swap them. Sensitivity is about the TUMOUR slices "
             "(label 1).")
    if np.isclose(sens, 3 / 4):
        fail("3/4 is the precision (share of 'tumour' predictions that are right). Sensitivity divides "
             "the true positives by ALL tumour slices: TP / (TP + FN).")
    expect(np.isclose(sens, 3 / 5), f"3 of the 5 tumour slices are found: sensitivity 0.6, you returned "
           f"{sens:.3f}. Hint: TP / (TP + FN).")
    expect(np.isclose(spec, 2 / 3), f"2 of the 3 tumour-free slices are cleared: specificity 0.667, you "
           f"returned {spec:.3f}. Hint: TN / (TN + FP).")
    return "correct - sensitivity counts the tumours found, specificity the healthy slices cleared."


@exercise_check("04.2")
def check_threshold_for_sensitivity(threshold_for_sensitivity: Callable) -> str:
    """Exercise 04.2: the highest threshold whose sensitivity reaches a target."""
    import numpy as np

    y_true = np.array([1, 1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.4, 0.2, 0.3, 0.1])
    got = threshold_for_sensitivity(y_true, scores, 0.75)
    expect(got is not None, "your function returned None. Hint: end it with `return threshold`.")
    got = float(got)
    found = float(np.mean(scores[y_true == 1] >= got))
    expect(found >= 0.75, f"with threshold {got:g} only {found:.0%} of the tumours score >= the threshold; "
           "the target was 75%. Hint: sort the tumour slices' scores from high to low and keep enough of them.")
    expect(np.isclose(got, 0.4), f"the HIGHEST threshold that still finds 3 of the 4 tumours is 0.4, you "
           f"returned {got:g}. A lower threshold raises more false alarms than needed.")
    all_found = float(threshold_for_sensitivity(y_true, scores, 1.0))
    expect(np.isclose(all_found, 0.2), f"to find every tumour the threshold must drop to the lowest tumour "
           f"score, 0.2; you returned {all_found:g}.")
    return "correct - the operating point is chosen on validation data, then reported on the test split."

# ---- end of notebook 04 ----------------------------------------------------------------------


# =============================================================================================
# Notebook 05: going further (owner: course infrastructure author)
# =============================================================================================

@exercise_check("05.1")
def check_per_class_recall(per_class_recall: Callable) -> str:
    """Exercise 05.1: recall per class from a confusion matrix (rows = true class)."""
    import numpy as np

    cm = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    got = per_class_recall(cm)
    expect(got is not None, "your function returned None. Hint: end it with `return ...`.")
    got = np.asarray(got, dtype=float)
    expect(got.shape == (3,), f"return one recall per class (shape (3,)), got shape {got.shape}.")
    want = np.array([0.8, 0.75, 0.0])
    if np.allclose(got[:2], [8 / 9, 3 / 5]):
        fail("you divided by the column sums: that is precision. Recall divides the diagonal by the ROW "
             "sums (all images that truly are that class).")
    expect(np.all(np.isfinite(got)), "a class with no images gave NaN or inf. Hint: return 0 where the row "
           "sum is 0 (np.divide(..., where=row_sums > 0, out=np.zeros(...))).")
    expect(np.allclose(got, want), f"expected {want.tolist()}, you returned {np.round(got, 3).tolist()}. "
           "Hint: recall_c = cm[c, c] / cm[c, :].sum().")
    return "correct - recall is the share of each true class that the model finds."


@exercise_check("05.2")
def check_tumour_probability(tumour_probability: Callable) -> str:
    """Exercise 05.2: P(tumour) from 4-class softmax outputs (no_tumor is class 2)."""
    import numpy as np

    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.05, 0.05, 0.85, 0.05], [0.2, 0.3, 0.4, 0.1]])
    got = tumour_probability(probs)
    expect(got is not None, "your function returned None. Hint: end it with `return ...`.")
    got = np.asarray(got, dtype=float)
    expect(got.shape == (3,), f"return one probability per image (shape (3,)), got shape {got.shape}.")
    want = np.array([0.9, 0.15, 0.6])
    if np.allclose(got, 1 - want):
        fail("you returned P(no tumour). The tumour probability is 1 - P(no_tumor), or the sum of the "
             "three tumour classes.")
    if np.allclose(got, probs.max(axis=1)):
        fail("the largest probability is the model's confidence, not P(tumour). Hint: add up the three "
             "tumour classes (columns 0, 1 and 3).")
    expect(np.allclose(got, want), f"expected {want.tolist()}, you returned {np.round(got, 3).tolist()}. "
           "Hint: no_tumor is column 2 (class order glioma, meningioma, no_tumor, pituitary).")
    return "correct - a 4-class model also answers the yes/no question."


@exercise_check("05.3")
def check_remove_overlap(remove_overlap: Callable) -> str:
    """Exercise 05.3: drop external images that sit in a duplicate group spanning both datasets."""
    import pandas as pd

    nav, sar = "navoneel_brain_mri_images", "sartaj_brain_tumor_classification_mri"
    groups = pd.DataFrame({
        "group": [1, 1, 2, 3, 3, 4],
        "dataset": [nav, sar, nav, nav, nav, sar],
        "relative_path": ["yes/a.jpg", "Training/glioma_tumor/x.jpg", "no/b.jpg", "yes/c.jpg", "yes/c2.jpg",
                          "Training/no_tumor/z.jpg"],
    })
    external = ["yes/a.jpg", "no/b.jpg", "yes/c.jpg", "yes/c2.jpg", "no/d.jpg"]
    got = remove_overlap(external, groups)
    expect(got is not None, "your function returned None. Hint: end it with `return ...`.")
    got_list = list(got.tolist() if hasattr(got, "tolist") else got)
    want = ["no/b.jpg", "yes/c.jpg", "yes/c2.jpg", "no/d.jpg"]
    expect("no/d.jpg" in got_list, "no/d.jpg is in no duplicate group at all: keep it. Hint: only drop "
           "files whose group holds files of BOTH datasets.")
    expect("yes/a.jpg" not in got_list, "yes/a.jpg has a near copy in the Sartaj data (group 1): drop it.")
    expect(got_list == want, f"expected {want}, you returned {got_list}. Hint: keep the input order; "
           "duplicates WITHIN the external set (yes/c.jpg, yes/c2.jpg) are not a leak. A cross-dataset "
           "group is one where groupby('group')['dataset'].nunique() > 1.")
    return "correct - the external test set now shares no image with the training data."
