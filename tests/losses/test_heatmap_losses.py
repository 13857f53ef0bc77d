"""HeatmapMSE and ConsistencyLoss against numpy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.losses import ConsistencyLoss, HeatmapMSE


def _maps(seed, shape=(3, 8, 8, 4)):
    rng = np.random.default_rng(seed)
    return rng.random(shape).astype(np.float32), rng.random(shape).astype(np.float32)


def test_heatmap_mse_equals_tllib_joints_mse():
    y_true, y_pred = _maps(0)
    weights = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1]], dtype=np.float32)
    value = float(HeatmapMSE()(y_true, y_pred, sample_weight=weights))
    # JointsMSELoss: mean over B, K, H·W of 0.5 · (pred − gt)² · w
    expected = np.mean(0.5 * (y_pred - y_true) ** 2 * weights[:, None, None, :])
    assert value == pytest.approx(expected, rel=1e-6)


def test_heatmap_mse_without_weights_and_per_sample_weights():
    y_true, y_pred = _maps(1)
    assert float(HeatmapMSE()(y_true, y_pred)) == pytest.approx(
        np.mean(0.5 * (y_pred - y_true) ** 2), rel=1e-6
    )
    per_sample = np.array([1.0, 0.0, 2.0], dtype=np.float32)
    assert float(HeatmapMSE()(y_true, y_pred, sample_weight=per_sample)) == pytest.approx(
        np.mean(0.5 * (y_pred - y_true) ** 2 * per_sample[:, None, None, None]), rel=1e-6
    )


def test_invisible_joints_contribute_zero():
    y_true, y_pred = _maps(2)
    weights = np.ones((3, 4), dtype=np.float32)
    weights[1, 2] = 0.0
    base = float(HeatmapMSE()(y_true, y_pred, sample_weight=weights))
    changed = y_pred.copy()
    changed[1, :, :, 2] += 100.0
    assert float(HeatmapMSE()(y_true, changed, sample_weight=weights)) == pytest.approx(
        base, rel=1e-6
    )
    y_pred_var = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        loss = HeatmapMSE()(y_true, y_pred_var, sample_weight=weights)
    grad = tape.gradient(loss, y_pred_var).numpy()
    assert np.all(grad[1, :, :, 2] == 0.0)
    assert np.all(grad[0] != 0.0)


def test_heatmap_mse_per_instance_values():
    y_true, y_pred = _maps(3)
    values = HeatmapMSE(reduction=None)(y_true, y_pred)
    np.testing.assert_allclose(
        values, 0.5 * ((y_pred - y_true) ** 2).mean(axis=(1, 2)), rtol=1e-6
    )
    assert tuple(values.shape) == (3, 4)


def test_heatmap_mse_in_fit_with_keypoint_sample_weight():
    y_true, y_pred = _maps(4, shape=(4, 8, 8, 2))
    weights = np.array([[1, 0], [1, 1], [0, 0], [1, 1]], dtype=np.float32)
    model = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Identity()])
    model.compile(loss=HeatmapMSE())
    logs = model.evaluate(y_pred, y_true, sample_weight=weights, batch_size=4,
                          return_dict=True, verbose=0)
    expected = np.mean(0.5 * (y_pred - y_true) ** 2 * weights[:, None, None, :])
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)


def test_consistency_loss_mask_normalisation():
    pseudo, student = _maps(5)
    mask = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    value = float(ConsistencyLoss()(pseudo, student, sample_weight=mask))
    per_instance = 0.5 * ((student - pseudo) ** 2).mean(axis=(1, 2))
    assert value == pytest.approx((per_instance * mask).sum() / 3.0, rel=1e-6)
    # masked-out keypoints do not matter
    changed = student.copy()
    changed[1] += 50.0
    changed[0, :, :, 1] -= 50.0
    assert float(ConsistencyLoss()(pseudo, changed, sample_weight=mask)) == pytest.approx(
        value, rel=1e-6
    )


def test_consistency_loss_full_mask_equals_heatmap_mse():
    pseudo, student = _maps(6)
    full = np.ones((3, 4), dtype=np.float32)
    assert float(ConsistencyLoss()(pseudo, student, sample_weight=full)) == pytest.approx(
        float(HeatmapMSE()(pseudo, student)), rel=1e-6
    )
    assert float(ConsistencyLoss()(pseudo, student)) == pytest.approx(
        float(HeatmapMSE()(pseudo, student)), rel=1e-6
    )


def test_consistency_loss_sum_over_batch_size_is_uniframe_variant():
    pseudo, student = _maps(7)
    mask = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    value = float(ConsistencyLoss(reduction="sum_over_batch_size")(pseudo, student, mask))
    per_instance = 0.5 * ((student - pseudo) ** 2).mean(axis=(1, 2))
    assert value == pytest.approx((per_instance * mask).sum() / 12.0, rel=1e-6)


def test_consistency_loss_empty_mask_is_zero_with_finite_gradients():
    pseudo, student = _maps(8)
    student_var = tf.Variable(student)
    pseudo_var = tf.Variable(pseudo)
    with tf.GradientTape(persistent=True) as tape:
        loss = ConsistencyLoss()(pseudo_var, student_var, sample_weight=np.zeros((3, 4)))
    assert float(loss) == 0.0
    grad = tape.gradient(loss, student_var)
    assert np.all(np.isfinite(grad.numpy()))
    assert np.all(grad.numpy() == 0.0)
    # pseudo-labels never receive a gradient
    with tf.GradientTape() as tape:
        loss = ConsistencyLoss()(pseudo_var, student_var, sample_weight=np.ones((3, 4)))
    assert tape.gradient(loss, pseudo_var) is None
