"""The reconstruction path f_kp -> W -> G -> L1 is differentiable end to end."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from synpose_keras.models.generator import Generator
from synpose_keras.models.pose_predictor import PosePredictor
from synpose_keras.models.reconstruction import reconstruct
from synpose_keras.models.warping_module import WarpingModule
from synpose_keras.ops.heatmaps import soft_argmax
from synpose_keras.ops.warp import grid_sample, normalize_keypoints

SIZE = 64
K = 5


def _soft_keypoints(predictor, images01):
    """Soft-argmax keypoints of images in [0, 1], normalised to [-1, 1] of the image."""
    heatmaps = predictor(images01 * 255.0, training=True)  # (B, 16, 16, K)
    stride = SIZE / heatmaps.shape[1]
    keypoints_px = soft_argmax(heatmaps) * stride  # heatmap px -> input px
    return normalize_keypoints(keypoints_px, SIZE)


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(0)
    predictor = PosePredictor(
        num_keypoints=K,
        backbone="resnet18",
        input_size=SIZE,
        width_multiplier=0.125,
        deconv_filters=16,
    )
    warping_module = WarpingModule(
        num_keypoints=K, block_expansion=8, num_blocks=4, max_features=64
    )
    generator = Generator(block_expansion=8, max_features=64, num_residual_blocks=2)
    return predictor, warping_module, generator


def test_reconstruct_returns_image_and_motion(models):
    _, warping_module, generator = models
    rng = np.random.default_rng(1)
    image = rng.random((2, SIZE, SIZE, 3)).astype("float32")
    kp = rng.uniform(-0.5, 0.5, (2, K, 2)).astype("float32")
    generated, motion = reconstruct(warping_module, generator, image, kp, kp + 0.1)
    assert tuple(generated.shape) == (2, SIZE, SIZE, 3)
    assert sorted(motion) == ["deformation", "mask", "occlusion"]
    # Same result as running the two modules by hand.
    by_hand = warping_module([image, kp, kp + 0.1])
    expected = generator([image, by_hand["deformation"], by_hand["occlusion"]])
    np.testing.assert_array_equal(np.asarray(generated), np.asarray(expected))


def test_gradients_reach_the_pose_predictor(models):
    predictor, warping_module, generator = models
    rng = np.random.default_rng(2)
    base = tf.constant(rng.random((2, SIZE, SIZE, 3)).astype("float32"))
    driving = tf.constant(rng.random((2, SIZE, SIZE, 3)).astype("float32"))

    with tf.GradientTape() as tape:
        kp_base = _soft_keypoints(predictor, base)
        kp_driving = _soft_keypoints(predictor, driving)
        generated, _ = reconstruct(
            warping_module, generator, base, kp_base, kp_driving, training=True
        )
        loss = ops.mean(ops.abs(generated - driving))
    variables = predictor.trainable_variables
    gradients = tape.gradient(loss, variables)

    assert np.isfinite(float(loss))
    checked = {"head": 0, "last_block": 0}
    for variable, gradient in zip(variables, gradients):
        assert gradient is not None, variable.path
        gradient = np.asarray(gradient)
        assert np.all(np.isfinite(gradient)), variable.path
        if variable.path.endswith("heatmaps/bias"):
            # Soft-argmax ignores a constant added to a whole heatmap: this gradient is ~0.
            continue
        if "deconv" in variable.path or variable.path.endswith("heatmaps/kernel"):
            checked["head"] += 1
        elif "stage4_block2" in variable.path:
            checked["last_block"] += 1
        else:
            continue
        assert np.abs(gradient).max() > 0.0, f"zero gradient for {variable.path}"
    # 3 deconvs × (kernel, gamma, beta) + the 1×1 kernel; 2 convs + 2 BNs × 2 in the last block.
    assert checked == {"head": 10, "last_block": 6}

    # W and G receive gradients too (they are trained with the same loss in stage `generator`).
    with tf.GradientTape() as tape:
        generated, _ = reconstruct(
            warping_module, generator, base, kp_base, kp_driving, training=True
        )
        loss = ops.mean(ops.abs(generated - driving))
    w_and_g = warping_module.trainable_variables + generator.trainable_variables
    for variable, gradient in zip(w_and_g, tape.gradient(loss, w_and_g)):
        assert gradient is not None, variable.path
        assert np.all(np.isfinite(np.asarray(gradient))), variable.path


def test_gradient_with_respect_to_keypoints_is_finite_and_nonzero(models):
    _, warping_module, generator = models
    rng = np.random.default_rng(3)
    base = tf.constant(rng.random((1, SIZE, SIZE, 3)).astype("float32"))
    driving = tf.constant(rng.random((1, SIZE, SIZE, 3)).astype("float32"))
    kp_base = tf.Variable(rng.uniform(-0.5, 0.5, (1, K, 2)).astype("float32"))
    kp_driving = tf.Variable(rng.uniform(-0.5, 0.5, (1, K, 2)).astype("float32"))
    with tf.GradientTape() as tape:
        generated, _ = reconstruct(warping_module, generator, base, kp_base, kp_driving)
        loss = ops.mean(ops.abs(generated - driving))
    for gradient in tape.gradient(loss, [kp_base, kp_driving]):
        gradient = np.asarray(gradient)
        assert np.all(np.isfinite(gradient))
        assert np.all(np.abs(gradient).max(axis=-1) > 0.0)  # every keypoint moves the loss


def test_blend_gradient_reaches_the_keypoints_through_the_displacement_field():
    # Without an occlusion map (C = 1) the blended output is the base image warped at full
    # resolution by D: the decoder has no weight, so the keypoints' gradient comes through D.
    keras.utils.set_random_seed(4)
    warping_module = WarpingModule(
        num_keypoints=K, block_expansion=8, num_blocks=4, max_features=64,
        estimate_occlusion=False,
    )
    generator = Generator(block_expansion=8, max_features=64, num_residual_blocks=1)
    assert generator.output_mode == "blend"
    rng = np.random.default_rng(4)
    base = tf.constant(rng.random((1, SIZE, SIZE, 3)).astype("float32"))
    driving = tf.constant(rng.random((1, SIZE, SIZE, 3)).astype("float32"))
    kp_base = tf.Variable(rng.uniform(-0.5, 0.5, (1, K, 2)).astype("float32"))
    kp_driving = tf.Variable(rng.uniform(-0.5, 0.5, (1, K, 2)).astype("float32"))
    with tf.GradientTape() as tape:
        generated, motion = reconstruct(warping_module, generator, base, kp_base, kp_driving)
        loss = ops.mean(ops.abs(generated - driving))
    field = Generator.resize_deformation(motion["deformation"], SIZE, SIZE)
    np.testing.assert_allclose(
        np.asarray(generated), np.asarray(grid_sample(base, field)), atol=1e-6
    )
    for gradient in tape.gradient(loss, [kp_base, kp_driving]):
        gradient = np.asarray(gradient)
        assert np.all(np.isfinite(gradient))
        assert np.all(np.abs(gradient).max(axis=-1) > 0.0)  # every keypoint moves the loss
