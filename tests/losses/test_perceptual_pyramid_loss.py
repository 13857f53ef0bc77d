"""SSIM, the L1 + SSIM fallback pyramid, and the VGG-19 file route (never downloads)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.losses import PerceptualPyramidLoss, ssim


def _images(seed, shape=(2, 32, 32, 3)):
    rng = np.random.default_rng(seed)
    return rng.random(shape).astype(np.float32), rng.random(shape).astype(np.float32)


def test_ssim_of_identical_images_is_one():
    x, _ = _images(0)
    np.testing.assert_allclose(ssim(x, x), [1.0, 1.0], rtol=0, atol=1e-6)


def test_ssim_matches_tf_image_ssim():
    x, y = _images(1)
    y = 0.6 * x + 0.4 * y  # correlated, SSIM well inside (0, 1)
    np.testing.assert_allclose(ssim(x, y), tf.image.ssim(x, y, max_val=1.0), atol=1e-5)
    value = np.asarray(ssim(x, y))
    assert np.all((value > 0.1) & (value < 0.99))


def test_ssim_small_images_shrink_the_window():
    x, y = _images(2, shape=(1, 8, 8, 3))
    assert np.asarray(ssim(x, x)).tolist() == pytest.approx([1.0], abs=1e-6)
    assert float(ssim(x, y)[0]) < 0.5


def test_fallback_is_zero_for_equal_images_and_positive_otherwise():
    x, y = _images(3, shape=(2, 64, 64, 3))
    loss = PerceptualPyramidLoss()
    assert loss.vgg is None
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(x, y)) > 0.5


def test_fallback_value_at_one_scale():
    x, y = _images(4)
    loss = PerceptualPyramidLoss(scales=(1.0,), l1_weight=2.0, ssim_weight=0.5)
    expected = 2.0 * np.abs(x - y).mean(axis=(1, 2, 3)) + 0.5 * (1 - tf.image.ssim(x, y, 1.0))
    assert float(loss(y, x)) == pytest.approx(float(np.mean(expected)), rel=1e-5)


def test_fallback_sums_over_scales():
    x, y = _images(5, shape=(2, 64, 64, 3))
    total = float(PerceptualPyramidLoss(scales=(1.0, 0.5, 0.25, 0.125))(x, y))
    parts = [float(PerceptualPyramidLoss(scales=(s,))(x, y)) for s in (1.0, 0.5, 0.25, 0.125)]
    assert total == pytest.approx(sum(parts), rel=1e-5)


def test_fallback_gradients_are_finite():
    x, y = _images(6, shape=(2, 64, 64, 3))
    loss = PerceptualPyramidLoss()
    for target in (x, y):  # equal images too: |0| and SSIM at its maximum
        pred = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = loss(target, pred)
        grad = tape.gradient(value, pred).numpy()
        assert np.all(np.isfinite(grad))
    assert np.abs(grad).sum() > 0


def test_missing_weights_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "vgg19_notop.h5"
    with pytest.raises(FileNotFoundError, match="vgg19_notop.h5"):
        PerceptualPyramidLoss(vgg_weights=str(path))


def test_validation():
    with pytest.raises(ValueError, match="Received: scales=\\(1.0, 0.3\\)"):
        PerceptualPyramidLoss(scales=(1.0, 0.3))
    with pytest.raises(ValueError, match="Received: layer_weights"):
        PerceptualPyramidLoss(layer_weights=(1.0, 1.0))


def test_vgg_weights_file_route(tmp_path):
    """VGG19 (random weights) saved to .weights.h5 and loaded back by path; value vs Keras."""
    keras.utils.set_random_seed(0)
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg19_random.weights.h5"
    vgg.save_weights(str(path))

    loss = PerceptualPyramidLoss(scales=(1.0,), vgg_weights=str(path),
                                 layer_weights=(1.0, 2.0, 3.0, 4.0, 5.0))
    for mine, saved in zip(loss.vgg.weights, vgg.weights):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(saved))
    assert not loss.vgg.trainable

    x, y = _images(7)
    reference = keras.Model(
        vgg.input, [vgg.get_layer(f"block{i}_conv1").output for i in range(1, 6)]
    )
    fx = reference(keras.applications.vgg19.preprocess_input(x * 255.0))
    fy = reference(keras.applications.vgg19.preprocess_input(y * 255.0))
    expected = sum(w * np.mean(np.abs(np.asarray(a) - np.asarray(b)))
                   for w, a, b in zip((1.0, 2.0, 3.0, 4.0, 5.0), fx, fy))
    assert expected > 0
    assert float(loss(y, x)) == pytest.approx(expected, rel=1e-4)
    assert float(loss(x, x)) == 0.0

    pyramid = PerceptualPyramidLoss(scales=(1.0, 0.5), vgg_weights=str(path))
    pred = tf.Variable(x)
    with tf.GradientTape() as tape:
        value = pyramid(y, pred)
    assert float(value) > 0
    assert np.all(np.isfinite(tape.gradient(value, pred).numpy()))
    with pytest.raises(ValueError, match="smaller than VGG-19's minimum"):
        PerceptualPyramidLoss(scales=(1.0, 0.25), vgg_weights=str(path))(y, x)


def _concatenated_vgg_term(loss, y_true, y_pred):
    """The loss as first written: VGG once on concat([pred, true]), target features stopped."""
    batch = y_pred.shape[0]
    both = tf.concat([y_pred, y_true], axis=0) * 255.0
    both = tf.reverse(both, axis=[-1]) - np.array([103.939, 116.779, 123.68], np.float32)
    total = 0.0
    for weight, feature in zip(loss.layer_weights, loss.vgg(both, training=False)):
        total += weight * tf.reduce_mean(
            tf.abs(feature[:batch] - tf.stop_gradient(feature[batch:])), axis=(1, 2, 3))
    return total


def test_vgg_term_value_and_gradient_equal_the_concatenated_formulation(tmp_path):
    keras.utils.set_random_seed(1)
    path = tmp_path / "vgg19_random.weights.h5"
    keras.applications.VGG19(include_top=False, weights=None).save_weights(str(path))
    loss = PerceptualPyramidLoss(scales=(1.0, 0.5), vgg_weights=str(path),
                                 layer_weights=(1.0, 2.0, 3.0, 4.0, 5.0))
    x, y = _images(3)
    pred, true = tf.Variable(x), tf.Variable(y)

    def both_ways():
        with tf.GradientTape(persistent=True) as tape:
            split = loss._vgg_term(true, pred)
            joined = _concatenated_vgg_term(loss, true, pred)
        grads = [tape.gradient(v, [pred, true]) for v in (split, joined)]
        return split, joined, grads

    for run in (both_ways, tf.function(both_ways)):
        split, joined, ((g_pred, g_true), (r_pred, r_true)) = run()
        assert split.shape == (2,) and float(tf.reduce_min(joined)) > 0
        np.testing.assert_allclose(split.numpy(), joined.numpy(), rtol=1e-5)
        scale = float(tf.reduce_max(tf.abs(r_pred)))
        assert scale > 0
        np.testing.assert_allclose(g_pred.numpy(), r_pred.numpy(), rtol=0, atol=1e-5 * scale)
        # the target gets no gradient; the concatenated form backpropagated zeros through it
        assert g_true is None
        assert float(tf.reduce_max(tf.abs(r_true))) == 0.0
