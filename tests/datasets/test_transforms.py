"""Pipeline transforms: the one-pass colour jitter equals the sequential adjustments."""

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.datasets.pipeline.transforms import adjust_color


def _sequential_adjust_color(image, color):
    """Brightness, contrast, saturation one after the other (the first formulation)."""
    img = tf.cast(image, tf.float32) * color[0]
    mean = tf.reduce_mean(tf.image.rgb_to_grayscale(img))
    img = (img - mean) * color[1] + mean
    grey = tf.image.rgb_to_grayscale(img)
    img = (img - grey) * color[2] + grey
    return tf.clip_by_value(img, 0.0, 255.0)


COLORS = [(1.0, 1.0, 1.0), (1.3, 0.7, 1.4), (0.6, 1.5, 0.5), (1.2, 1.3, 0.0), (0.8, 0.0, 1.6)]


def _image(seed, dtype):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 255, (40, 56, 3))
    image[:, :20] = image[:, :20] * [1.0, 0.3, 0.1]  # a saturated region
    return image.astype(np.uint8) if dtype == "uint8" else image.astype(np.float32)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_adjust_color_equals_the_sequential_adjustments_eagerly(dtype):
    image = _image(0, dtype)
    clipped = 0
    for color in COLORS:
        color = tf.constant(color, tf.float32)
        out = adjust_color(tf.constant(image), color)
        expected = _sequential_adjust_color(tf.constant(image), color)
        assert out.dtype == tf.float32 and out.shape == (40, 56, 3)
        np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=0, atol=1e-4 * 255)
        clipped += int(np.sum((expected.numpy() == 0) | (expected.numpy() == 255)))
    assert clipped > 0  # the clipping at both ends is exercised
    np.testing.assert_allclose(adjust_color(tf.constant(image), tf.ones(3)).numpy(),
                               image.astype(np.float32), rtol=0, atol=1e-4 * 255)


def test_adjust_color_equals_the_sequential_adjustments_in_dataset_map():
    images = np.stack([_image(i, "uint8") for i in range(len(COLORS))])
    colors = np.array(COLORS, np.float32)
    ds = tf.data.Dataset.from_tensor_slices((images, colors))
    fused = list(ds.map(adjust_color))
    sequential = list(ds.map(_sequential_adjust_color))
    for i, (a, b) in enumerate(zip(fused, sequential)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-4 * 255)
        eager = adjust_color(tf.constant(images[i]), tf.constant(colors[i]))
        np.testing.assert_allclose(a.numpy(), eager.numpy(), rtol=0, atol=1e-4 * 255)
