"""CC-SSL: the consistency filter and the temporal rule on hand-built cases, the curriculum,
the warps, and the self-training step."""

import keras
import numpy as np
import pytest

from synpose_keras.ops.heatmaps import encode_heatmaps
from synpose_keras.training.methods import CCSSLStage
from synpose_keras.training.methods.ccssl import (
    consensus,
    curriculum_fraction,
    temporal_update,
    transform_matrices,
    warp_back,
    warp_by,
)
from tests.training.stage_fixtures import K, SIZE, adapt_batch, predictor


def _maps(points, h=16, k=2):
    """(B=1, h, h, k) maps with a unit Gaussian per keypoint at ``points`` (heatmap px)."""
    kp = np.asarray(points, np.float32)[None]
    hm, _ = encode_heatmaps(kp, np.ones((1, k), np.float32), h, h)
    return np.asarray(hm)


def test_consensus_keeps_what_the_passes_agree_on():
    agree = [_maps([(4, 5), (10, 10)]), _maps([(4, 5), (10, 10)]), _maps([(4, 5), (10, 10)])]
    kp, conf = (np.asarray(v) for v in consensus(agree))
    np.testing.assert_allclose(kp[0], [[4, 5], [10, 10]])
    np.testing.assert_allclose(conf[0], [1.0, 1.0], atol=1e-6)
    # keypoint 1 disagrees under one pass (far away): its averaged peak drops to 2/3;
    # all three passes disagree: 1/3 (the peaks are more than a window apart)
    two_of_three = [_maps([(4, 5), (10, 10)]), _maps([(4, 5), (10, 10)]), _maps([(4, 5), (1, 1)])]
    kp, conf = (np.asarray(v) for v in consensus(two_of_three))
    np.testing.assert_allclose(kp[0, 1], [10, 10])
    np.testing.assert_allclose(conf[0], [1.0, 2 / 3], atol=1e-6)
    none = [_maps([(1, 1), (1, 1)]), _maps([(14, 1), (14, 1)]), _maps([(1, 14), (14, 14)])]
    _, conf = consensus(none)
    np.testing.assert_allclose(np.asarray(conf)[0], [1 / 3, 1 / 3], atol=1e-6)
    # a label is kept by the curriculum only if its confidence ranks high: agreement wins
    assert np.asarray(consensus(two_of_three)[1])[0, 0] > np.asarray(consensus(none)[1])[0, 0]


def test_equivariance_warp_brings_a_transformed_prediction_back():
    # a perfectly equivariant "model": the heatmap of a transformed image is the transformed
    # heatmap. Warping it back must put the peak where the identity pass has it.
    stride, size = 4, 64
    # scale 1.2, rotation -30 degrees
    matrix = np.asarray(transform_matrices(np.array([0.8]), np.array([-1.0]), size))
    point_in = np.array([[36.0, 24.0]], np.float32)  # input pixels
    moved = (matrix[0] @ np.array([36.0, 24.0, 1.0]))[:2]
    transformed_map = _maps([moved / stride], h=16, k=1)
    back = np.asarray(warp_back(transformed_map, matrix, stride))
    kp, _ = consensus([back])
    np.testing.assert_allclose(np.asarray(kp)[0, 0] * stride, point_in[0], atol=stride)
    # images: warp_by moves a bright pixel from p to matrix @ p
    image = np.zeros((1, size, size, 3), np.float32)
    image[0, 24, 36] = 255.0
    warped = np.asarray(warp_by(image, matrix))
    y, x = np.unravel_index(np.argmax(warped[0, ..., 0]), (size, size))
    np.testing.assert_allclose([x, y], moved, atol=1.0)


def test_transform_matrices_follow_ccssl_ranges():
    noise = np.array([0.0, 10.0, -10.0])
    m = np.asarray(transform_matrices(noise, noise, 64))
    np.testing.assert_allclose(m[0], np.eye(3), atol=1e-6)
    scale = np.sqrt(np.linalg.det(m[:, :2, :2]))
    np.testing.assert_allclose(scale, [1.0, 1.25, 0.75], atol=1e-6)  # clipped to 1 +- 0.25
    angles = np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0]))
    np.testing.assert_allclose(angles, [0.0, 60.0, -60.0], atol=1e-4)  # clipped to +-2 * 30
    centre = np.array([31.5, 31.5, 1.0])
    np.testing.assert_allclose(m @ centre, np.tile(centre, (3, 1)), atol=1e-4)


def test_temporal_rule_on_hand_built_cases():
    kp = np.array([[[10, 10], [20, 20], [30, 30], [40, 40]]], np.float32)
    conf = np.array([[0.5, 0.5, 0.8, 0.5]], np.float32)
    kp_n = np.array([[[12, 10], [20, 40], [31, 30], [41, 40]]], np.float32)
    conf_n = np.array([[0.9, 0.9, 0.8, 0.0]], np.float32)
    new_kp, new_conf = (np.asarray(v) for v in temporal_update(kp, conf, kp_n, conf_n, [True],
                                                               ratio=0.9, max_motion=15.0))
    # 0: less confident than 0.9 x the neighbour, close: takes the neighbour's label
    np.testing.assert_allclose(new_kp[0, 0], [12, 10])
    assert new_conf[0, 0] == pytest.approx(0.81)
    # 1: the neighbour moved 20 px > 15: ignored; 2: confident enough; 3: neighbour has nothing
    np.testing.assert_allclose(new_kp[0, 1:], kp[0, 1:])
    np.testing.assert_allclose(new_conf[0, 1:], conf[0, 1:])
    # without a neighbouring frame nothing changes
    same_kp, same_conf = temporal_update(kp, conf, kp_n, conf_n, [False])
    np.testing.assert_array_equal(np.asarray(same_kp), kp)
    np.testing.assert_array_equal(np.asarray(same_conf), conf)


def test_curriculum_rises_like_ccssl():
    fractions = [curriculum_fraction(r) for r in range(6)]
    assert fractions == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8])


def _draws(n, passes, seed=0):
    rng = np.random.default_rng(seed)
    return {"scale": rng.normal(size=(n, passes)).astype(np.float32),
            "rotation": rng.normal(size=(n, passes)).astype(np.float32),
            "gains": rng.uniform(size=(n, passes, 3)).astype(np.float32)}


def _batch(seed=0, n=2, passes=2):
    batch = adapt_batch(seed, n)
    target = batch["target"]
    target["neighbor_image"] = np.roll(target["teacher_image"], 1, axis=2)
    target["has_neighbor"] = np.array([1.0, 0.0][:n], np.float32)
    return {"source": batch["source"], "target": target, "draws": _draws(n, passes, seed)}


def _stage(temporal=True):
    stage = CCSSLStage(predictor(0), predictor(1), temporal=temporal)
    stage.compile(optimizer=keras.optimizers.RMSprop(1e-3))
    stage.build_all(SIZE)
    stage.initialize_teacher()
    return stage


def test_consensus_labels_identity_pass_alone_is_the_teacher_argmax():
    stage = _stage()
    images = adapt_batch(4)["target"]["teacher_image"]
    kp, conf = stage.consensus_labels(images, _draws(2, 0))
    heatmaps = np.asarray(stage.teacher(images, training=False))
    flat = heatmaps.reshape(2, -1, K)
    np.testing.assert_allclose(np.asarray(conf), flat.max(1), rtol=1e-6)
    idx = flat.argmax(1)
    np.testing.assert_allclose(np.asarray(kp), np.stack([idx % 16, idx // 16], -1) * 4.0)


def test_ccssl_step_trains_the_student_only_and_keeps_the_curriculum_fraction():
    stage = _stage()
    teacher_before = [np.array(w) for w in stage.teacher.weights]
    student_before = [np.array(w) for w in stage.student.trainable_weights]
    logs = stage.train_step(_batch(0))
    for name in ("loss", "source", "target", "confidence"):
        assert np.isfinite(float(logs[name])), name
    assert float(logs["target"]) > 0
    # the curriculum keeps 20% of the 2 x 21 labels (ties kept): at least 8 of 42
    assert float(logs["kept"]) >= round(0.2 * 2 * K) / (2 * K) - 1e-6
    assert float(logs["kept"]) <= 0.5
    for b, w in zip(teacher_before, stage.teacher.weights):
        np.testing.assert_array_equal(b, np.array(w))
    assert any(not np.allclose(b, np.array(w))
               for b, w in zip(student_before, stage.student.trainable_weights))


def test_start_round_refreshes_the_teacher_and_moves_the_curriculum():
    stage = _stage(temporal=False)
    stage.train_step(_batch(1))
    stage.start_round(2)
    assert float(stage.keep_fraction) == pytest.approx(0.6)
    assert int(stage.round) == 2
    for t, s in zip(stage.teacher.weights, stage.student.weights):
        np.testing.assert_array_equal(np.array(t), np.array(s))
    with pytest.raises(ValueError, match="keep_start"):
        CCSSLStage(predictor(0), predictor(1), keep_start=0.0)
