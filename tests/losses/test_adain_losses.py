"""AdaIN content and style losses against numpy."""

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.losses import AdaINContentLoss, AdaINStyleLoss


def _features(seed, shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) * (i + 1) for i, s in enumerate(shapes)]


def test_content_loss_is_feature_mse():
    target, output = _features(0, [(2, 4, 4, 8), (2, 4, 4, 8)])
    assert float(AdaINContentLoss()(target, output)) == pytest.approx(
        np.mean((output - target) ** 2), rel=1e-6
    )
    assert float(AdaINContentLoss()(target, target)) == 0.0


def _numpy_style(style_feats, output_feats, eps=1e-5):
    total = 0.0
    for s, o in zip(style_feats, output_feats):
        s_mean, o_mean = s.mean(axis=(1, 2)), o.mean(axis=(1, 2))
        s_std = np.sqrt(s.var(axis=(1, 2)) + eps)
        o_std = np.sqrt(o.var(axis=(1, 2)) + eps)
        total += np.mean((o_mean - s_mean) ** 2) + np.mean((o_std - s_std) ** 2)
    return total


def test_style_loss_matches_numpy():
    shapes_style = [(3, 16, 16, 4), (3, 8, 8, 8), (3, 4, 4, 16)]
    shapes_output = [(3, 12, 12, 4), (3, 6, 6, 8), (3, 3, 3, 16)]  # sizes may differ
    style = _features(1, shapes_style)
    output = _features(2, shapes_output)
    value = float(AdaINStyleLoss()(style, output))
    assert value == pytest.approx(_numpy_style(style, output), rel=1e-5)
    assert value > 0


def test_style_loss_ignores_spatial_arrangement():
    style = _features(3, [(2, 8, 8, 4)])
    shuffled = [style[0][:, ::-1, ::-1, :].copy()]
    assert float(AdaINStyleLoss()(style, shuffled)) == pytest.approx(0.0, abs=1e-10)


def test_style_loss_single_tensor_and_epsilon():
    style, output = _features(4, [(2, 5, 5, 3), (2, 5, 5, 3)])
    value = float(AdaINStyleLoss(epsilon=0.0)(style, output))
    assert value == pytest.approx(_numpy_style([style], [output], eps=0.0), rel=1e-5)


def test_style_loss_layer_count_mismatch():
    style = _features(5, [(1, 4, 4, 2), (1, 4, 4, 2)])
    with pytest.raises(ValueError, match="len\\(y_true\\)=2, len\\(y_pred\\)=1"):
        AdaINStyleLoss()(style, style[:1])


def test_style_loss_gradients_finite_on_constant_features():
    style = _features(6, [(2, 4, 4, 3)])
    output = tf.Variable(np.zeros((2, 4, 4, 3), np.float32))  # zero variance: sqrt(eps)
    with tf.GradientTape() as tape:
        value = AdaINStyleLoss()(style, [output])
    assert np.all(np.isfinite(tape.gradient(value, output).numpy()))
