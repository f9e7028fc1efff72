"""Hidden tests of notebook 04 (model comparison). Each test_<id>(ns) gets the notebook's globals."""

EXERCISES = {
    "04.1": {"points": 2, "title": "sensitivity and specificity"},
    "04.2": {"points": 3, "title": "a threshold for a target sensitivity"},
}


def test_04_1(ns):
    import numpy as np

    sensitivity_specificity = ns["sensitivity_specificity"]
    rng = np.random.default_rng(4)
    for _ in range(5):
        y_true = rng.integers(0, 2, 40)
        y_true[:2] = [0, 1]
        y_pred = rng.integers(0, 2, 40)
        sens = np.mean(y_pred[y_true == 1] == 1)
        spec = np.mean(y_pred[y_true == 0] == 0)
        got = tuple(float(v) for v in sensitivity_specificity(y_true, y_pred))
        assert np.allclose(got, (sens, spec)), f"expected (sensitivity, specificity) = ({sens:.3f}, {spec:.3f}), got {got}"
    got = tuple(float(v) for v in sensitivity_specificity([1, 1, 0], [True, False, False]))
    assert np.allclose(got, (0.5, 1.0)), f"boolean predictions: expected (0.5, 1.0), got {got}"


def test_04_2(ns):
    import numpy as np

    threshold_for_sensitivity = ns["threshold_for_sensitivity"]
    rng = np.random.default_rng(5)
    for target in (0.5, 0.8, 0.9, 0.95, 1.0):
        y_true = np.r_[np.ones(37, int), np.zeros(23, int)]
        scores = np.r_[rng.uniform(0.2, 1.0, 37), rng.uniform(0.0, 0.7, 23)]
        got = float(threshold_for_sensitivity(y_true, scores, target))
        reached = np.mean(scores[y_true == 1] >= got)
        assert reached >= target - 1e-9, f"target {target}: threshold {got:.4f} finds only {reached:.1%} of the tumours"
        higher = scores[y_true == 1][scores[y_true == 1] > got + 1e-12]
        assert len(higher) / 37 < target - 1e-9, (
            f"target {target}: a higher threshold (the next tumour score above {got:.4f}) still reaches the "
            "target; return the highest threshold that does")
