import keras
import numpy as np
import pytest

from synpose_keras.skeletons import HAND21
from synpose_keras.training.adapt_stage import AdaptStage

from tests.training.stage_fixtures import (SIZE, adapt_batch, bone_ratios, lifter, predictor,
                            warping_and_generator)


def _stage(pseudo="integrated", rec=True, ema_decay=0.9):
    warp, gen = warping_and_generator()
    stage = AdaptStage(predictor(0), predictor(1), HAND21, lifter=lifter(),
                       bone_ratios=bone_ratios(), warping_module=warp, generator=gen,
                       pseudo=pseudo, rec=rec, ema_decay=ema_decay)
    stage.compile(optimizer=keras.optimizers.Adam(1e-3))
    stage.build_all(SIZE)
    stage.initialize_teacher()
    return stage


@pytest.mark.slow
def test_adapt_step_losses_finite_and_decreasing_on_a_fixed_batch():
    stage = _stage()
    batch = adapt_batch(0)
    losses = []
    for _ in range(6):
        for tracker in stage.metrics:
            tracker.reset_state()
        logs = stage.train_step(batch)
        losses.append(float(logs["loss"]))
        for name in ("source", "pseudo_2d", "pseudo_3d", "rec"):
            assert np.isfinite(float(logs[name])), name
    assert losses[-1] < losses[0]
    assert float(logs["rec"]) > 0


def test_teacher_is_the_ema_of_the_student():
    stage = _stage(pseudo="2d", rec=False, ema_decay=0.9)
    before = [np.array(w) for w in stage.teacher.weights]
    stage.train_step(adapt_batch(1))
    student = [np.array(w) for w in stage.student.weights]
    after = [np.array(w) for w in stage.teacher.weights]
    changed = 0
    for b, s, a in zip(before, student, after):
        np.testing.assert_allclose(a, 0.9 * b + 0.1 * s, rtol=1e-5, atol=1e-6)
        changed += int(not np.allclose(a, b))
    assert changed > 0


def test_only_the_student_and_generator_are_trained():
    stage = _stage(pseudo="union", rec=True)
    lifter_before = [np.array(w) for w in stage.lifter.weights]
    gen_before = [np.array(w) for w in stage.generator.trainable_weights]
    stage.train_step(adapt_batch(2))
    for b, a in zip(lifter_before, stage.lifter.weights):
        np.testing.assert_array_equal(b, np.array(a))
    assert any(not np.allclose(b, np.array(a))
               for b, a in zip(gen_before, stage.generator.trainable_weights))


def test_3d_modes_need_a_lifter():
    with pytest.raises(ValueError, match="pseudo='3d' needs 3D pseudo-labels"):
        AdaptStage(predictor(0), predictor(1), HAND21, pseudo="3d", rec=False)
    with pytest.raises(ValueError, match="rec=True needs"):
        AdaptStage(predictor(0), predictor(1), HAND21, pseudo="2d", rec=True)


def test_pseudo_labels_shapes_and_mask_fraction():
    stage = _stage()
    labels = stage.pseudo_labels(adapt_batch(3)["target"]["teacher_image"])
    assert tuple(labels["keypoints_3d"].shape) == (2, 21, 2)
    assert float(np.mean(labels["mask_2d"])) == pytest.approx(0.5, abs=0.05)


class _TwoBackwardAdaptStage(AdaptStage):
    """The reference: d(total)/d(student) and d(L_rec)/d(W, G) as two separate gradients."""

    def _one_backward(self):
        return False


def _sgd_stage(cls, lambda_rec):
    keras.utils.set_random_seed(5)
    warp, gen = warping_and_generator()
    stage = cls(predictor(0), predictor(1), HAND21, lifter=lifter(), bone_ratios=bone_ratios(),
                warping_module=warp, generator=gen, pseudo="integrated", rec=True,
                lambda_rec=lambda_rec)
    # plain SGD with lr 1: every update is minus the gradient
    stage.compile(optimizer=keras.optimizers.SGD(1.0),
                  generator_optimizer=keras.optimizers.SGD(1.0))
    stage.build_all(SIZE)
    stage.initialize_teacher()
    return stage


@pytest.mark.parametrize("lambda_rec", [0.5, 0.01])
def test_one_backward_step_equals_two_separate_gradients(lambda_rec):
    one, two = _sgd_stage(AdaptStage, lambda_rec), _sgd_stage(_TwoBackwardAdaptStage, lambda_rec)
    assert one._one_backward() and not two._one_backward()
    groups = {"student": lambda s: s.student.trainable_weights,
              "wg": lambda s: s._generator_variables()}
    before = {k: [np.array(w) for w in get(one)] for k, get in groups.items()}
    for k, get in groups.items():
        for b, w in zip(before[k], get(two)):
            np.testing.assert_array_equal(b, np.array(w))
    batch = adapt_batch(4)
    logs_one, logs_two = one.train_step(batch), two.train_step(batch)
    for name in ("loss", "rec", "source"):
        assert float(logs_one[name]) == pytest.approx(float(logs_two[name]), rel=1e-6)
    for k, get in groups.items():
        updates_one = [np.array(w) - b for b, w in zip(before[k], get(one))]
        updates_two = [np.array(w) - b for b, w in zip(before[k], get(two))]
        largest = max(float(np.abs(u).max()) for u in updates_two)
        assert largest > 0, k  # the reference moved this group
        for u1, u2 in zip(updates_one, updates_two):
            np.testing.assert_allclose(u1, u2, rtol=0, atol=1e-4 * largest)


def test_without_reconstruction_weight_the_generator_takes_its_own_gradient():
    stage = _sgd_stage(AdaptStage, 0.0)
    assert not stage._one_backward()
    before = [np.array(w) for w in stage._generator_variables()]
    stage.train_step(adapt_batch(5))
    assert any(not np.allclose(b, np.array(w))
               for b, w in zip(before, stage._generator_variables()))


def test_oracle_labels_replace_the_teacher_peaks_only():
    """``adapt.oracle_labels`` (analysis): stored positions, the teacher's confidences and masks."""
    stage = _stage(pseudo="2d", rec=False)
    batch = adapt_batch(4)
    images = batch["target"]["teacher_image"]
    oracle = np.random.default_rng(5).uniform(4, SIZE - 4, (2, 21, 2)).astype(np.float32)
    teacher = stage.pseudo_labels(images)
    labels = stage.pseudo_labels(images, oracle)
    np.testing.assert_allclose(np.asarray(labels["keypoints_2d"]), oracle)
    np.testing.assert_array_equal(np.asarray(labels["mask_2d"]), np.asarray(teacher["mask_2d"]))
    np.testing.assert_array_equal(np.asarray(labels["scores"]), np.asarray(teacher["scores"]))

    # in a step, unlabelled keypoints get no oracle label: none labelled -> no pseudo loss
    batch["target"]["oracle_keypoints"] = oracle
    batch["target"]["oracle_visible"] = np.zeros((2, 21), np.float32)
    logs = stage.train_step(batch)
    assert float(logs["mask_2d"]) == 0.0 and float(logs["pseudo_2d"]) == 0.0
    batch["target"]["oracle_visible"] = np.ones((2, 21), np.float32)
    for tracker in stage.metrics:
        tracker.reset_state()
    logs = stage.train_step(batch)
    assert float(logs["mask_2d"]) > 0.0 and float(logs["pseudo_2d"]) > 0.0


def test_teacher_rotations_read_labels_off_the_rotation_ensemble():
    from synpose_keras.ops.heatmaps import decode_heatmaps
    from synpose_keras.pseudo_labels.ensemble import ensemble_heatmaps

    warp, gen = warping_and_generator()
    stage = AdaptStage(predictor(0), predictor(1), HAND21, lifter=lifter(),
                       bone_ratios=bone_ratios(), warping_module=warp, generator=gen,
                       teacher_rotations=4)
    stage.compile(optimizer=keras.optimizers.Adam(1e-3))
    stage.build_all(SIZE)
    stage.initialize_teacher()
    images = adapt_batch(4)["target"]["teacher_image"]
    labels = stage.pseudo_labels(images)
    teacher = stage.teacher
    mean = ensemble_heatmaps(lambda x: teacher(x, training=False), np.asarray(images, "float32"),
                             4, teacher.stride, SIZE // teacher.stride)
    peaks, scores = decode_heatmaps(mean)
    np.testing.assert_allclose(np.asarray(labels["scores"]), np.asarray(scores), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(labels["keypoints_2d"]),
                               np.asarray(peaks) * teacher.stride)
    single = decode_heatmaps(teacher(np.asarray(images, "float32"), training=False))[1]
    assert not np.allclose(np.asarray(single), np.asarray(scores))
    logs = stage.train_step(adapt_batch(5))
    assert all(np.isfinite(float(logs[n])) for n in ("loss", "pseudo_2d", "pseudo_3d", "rec"))
    with pytest.raises(ValueError, match="teacher_rotations must be one of"):
        AdaptStage(predictor(0), predictor(1), HAND21, pseudo="2d", rec=False,
                   teacher_rotations=3)
