"""RegDA: ground-truth/ground-false maps, KL loss, warm-start layer, and which parts each step
updates."""

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.training.methods import (
    AdversarialHead,
    InverseDecaySchedule,
    RegDAStage,
    regda_optimizers,
)
from synpose_keras.training.methods.regda import (
    feature_variables,
    ground_truth_and_false,
    head_variables,
    joints_kl_loss,
    scale_gradient,
    warm_start_coefficient,
)
from tests.training.stage_fixtures import SIZE, adapt_batch, predictor


def _gaussian(x, y, h=16, w=16, sigma=2.0):
    ys, xs = np.mgrid[0:h, 0:w]
    g = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
    g[np.abs(xs - x) > 3 * sigma] = 0
    g[np.abs(ys - y) > 3 * sigma] = 0
    return g.astype(np.float32)


def test_ground_false_is_the_other_keypoints_clipped():
    h = w = 16
    peaks = [(3, 4), (12, 10), (4, 5)]  # keypoints 0 and 2 overlap
    pred = np.zeros((1, h, w, 3), np.float32)
    for k, (x, y) in enumerate(peaks):
        pred[0, y, x, k] = 0.7
        pred[0, (y + 3) % h, (x + 5) % w, k] = 0.2  # a smaller distractor
    truth, false = (np.asarray(t) for t in ground_truth_and_false(pred))
    for k, (x, y) in enumerate(peaks):
        np.testing.assert_allclose(truth[0, ..., k], _gaussian(x, y), atol=1e-6)
    expected_false = [np.clip(_gaussian(*peaks[1]) + _gaussian(*peaks[2]), 0, 1),
                      np.clip(_gaussian(*peaks[0]) + _gaussian(*peaks[2]), 0, 1),
                      np.clip(_gaussian(*peaks[0]) + _gaussian(*peaks[1]), 0, 1)]
    for k in range(3):
        np.testing.assert_allclose(false[0, ..., k], expected_false[k], atol=1e-6)
    # keypoints 0 and 2 overlap: their sum exceeds 1 near the peaks and is clipped
    assert (_gaussian(*peaks[0]) + _gaussian(*peaks[2])).max() > 1.5
    assert false[0, ..., 1].max() == pytest.approx(1.0)
    # a keypoint's ground false has no mass of its own at its peak unless another is close
    assert false[0, 10, 12, 1] == 0.0


def test_non_positive_maps_put_the_peak_at_the_origin_like_tllib():
    pred = -np.ones((1, 16, 16, 1), np.float32)
    pred[0, 7, 9, 0] = -0.5
    truth, _ = ground_truth_and_false(pred)
    np.testing.assert_allclose(np.asarray(truth)[0, ..., 0], _gaussian(0, 0), atol=1e-6)


def test_joints_kl_loss_matches_the_formula():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    target = rng.uniform(0, 1, size=(2, 8, 8, 3)).astype(np.float32)
    target[0, :4, :, 1] = 0.0  # zeros contribute nothing
    weights = np.array([[1, 0, 1], [1, 1, 0.5]], np.float32)
    p = target.transpose(0, 3, 1, 2).reshape(2, 3, -1)
    p = p / p.sum(-1, keepdims=True)
    logits = pred.transpose(0, 3, 1, 2).reshape(2, 3, -1)
    log_q = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    kl = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - log_q), 0).sum(-1)
    expected = np.mean(kl * weights)
    assert float(joints_kl_loss(pred, target, weights)) == pytest.approx(expected, rel=1e-5)
    # zero when the prediction's softmax is the target
    assert float(joints_kl_loss(np.log(target + 1e-3), target + 1e-3)) == pytest.approx(0, abs=1e-6)
    # an all-zero target map (an invisible keypoint) gives 0, not NaN
    assert float(joints_kl_loss(pred, np.zeros_like(target))) == 0.0


def test_warm_start_coefficient_and_gradient_scaling():
    assert float(warm_start_coefficient(0)) == pytest.approx(0.0, abs=1e-7)
    assert float(warm_start_coefficient(1000)) == pytest.approx(0.2 / (1 + np.exp(-1)) - 0.1)
    assert float(warm_start_coefficient(10 ** 6)) == pytest.approx(0.1, abs=1e-6)
    x = tf.constant([1.0, -2.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = scale_gradient(x, 0.25)
        loss = tf.reduce_sum(y * tf.constant([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [0.25, 0.5, 0.75])


def test_inverse_decay_schedule_follows_iterations():
    schedule = InverseDecaySchedule(0.1, gamma=1e-4, power=0.75, steps_per_iteration=2)
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(1)) == pytest.approx(0.1)  # still iteration 0
    assert float(schedule(2000)) == pytest.approx(0.1 * (1 + 0.1) ** -0.75)
    config = schedule.get_config()
    assert InverseDecaySchedule.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="steps_per_iteration"):
        InverseDecaySchedule(0.1, steps_per_iteration=0)


def test_adversarial_head_config_and_shapes():
    head = AdversarialHead(num_keypoints=5, filters=8, num_layers=2)
    assert head(np.zeros((2, 4, 4, 8), np.float32)).shape == (2, 4, 4, 5)
    config = head.get_config()
    assert (config["num_keypoints"], config["filters"], config["num_layers"]) == (5, 8, 2)
    assert len(head.trainable_variables) == 6  # conv (2) + bn (2) + conv (2)
    with pytest.raises(ValueError, match="num_layers"):
        AdversarialHead(num_keypoints=5, num_layers=0)


def _stage(**optimizer_args):
    stage = RegDAStage(predictor(0))
    stage.compile(**regda_optimizers(lr=0.1, **optimizer_args))
    stage.build_all(SIZE)
    return stage


def _values(variables):
    return [np.array(v) for v in variables]


def _changed(before, variables):
    return [not np.allclose(b, np.array(v)) for b, v in zip(before, variables)]


def test_each_regda_step_updates_only_its_parts():
    stage = _stage()
    batch = adapt_batch(0)
    p = stage.predictor
    groups = {"features": feature_variables(p), "head": head_variables(p),
              "adversarial": stage.adversarial_head.trainable_variables}
    coefficient = tf.constant(0.1)

    # B: the adversarial head fits the ground-false maps; nothing else moves
    before = {k: _values(v) for k, v in groups.items()}
    loss = stage.adversarial_step(batch["target"]["student_image"], coefficient)
    assert np.isfinite(float(loss)) and float(loss) > 0
    assert any(_changed(before["adversarial"], groups["adversarial"]))
    assert not any(_changed(before["features"], groups["features"]))
    assert not any(_changed(before["head"], groups["head"]))

    # C: the features move through the gradient layer; the heads do not
    before = {k: _values(v) for k, v in groups.items()}
    loss = stage.feature_step(batch["target"]["student_image"], coefficient)
    assert np.isfinite(float(loss))
    assert any(_changed(before["features"], groups["features"]))
    assert not any(_changed(before["adversarial"], groups["adversarial"]))
    assert not any(_changed(before["head"], groups["head"]))

    # A: everything moves
    before = {k: _values(v) for k, v in groups.items()}
    loss, supervised, disparity = stage.source_step(batch["source"], coefficient)
    assert all(np.isfinite(float(v)) for v in (loss, supervised, disparity))
    assert float(loss) == pytest.approx(float(supervised) + 4.0 * float(disparity), rel=1e-5)
    for name in groups:
        assert any(_changed(before[name], groups[name])), name


def test_feature_step_with_a_zero_coefficient_leaves_the_features():
    # plain SGD (no momentum, no weight decay): only the gradient could move a weight
    stage = _stage(momentum=0.0, weight_decay=0.0)
    features = feature_variables(stage.predictor)
    before = _values(features)
    stage.feature_step(adapt_batch(3)["target"]["student_image"], tf.constant(0.0))
    assert not any(_changed(before, features))
    stage.feature_step(adapt_batch(3)["target"]["student_image"], tf.constant(0.1))
    assert any(_changed(before, features))


def test_regda_train_step_logs_finite_losses_and_counts_iterations():
    stage = _stage()
    logs = stage.train_step(adapt_batch(1))
    for name in ("loss", "source", "source_disparity", "ground_false", "ground_truth"):
        assert np.isfinite(float(logs[name])), name
    assert float(logs["gl"]) == pytest.approx(0.0, abs=1e-7)  # first iteration
    assert int(stage.head_optimizer.iterations) == 1
    assert int(stage.optimizer.iterations) == 2  # steps A and C
    assert int(stage.adversarial_optimizer.iterations) == 2  # steps A and B
    logs = stage.train_step(adapt_batch(2))
    assert float(stage.gl_coefficient()) == pytest.approx(float(warm_start_coefficient(2)))
