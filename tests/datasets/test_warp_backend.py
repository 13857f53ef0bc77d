"""The pipelines' warp kernels: OpenCV (default) and TensorFlow read the same coordinates."""

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.datasets import source_pipeline
from synpose_keras.datasets.pipeline import transforms
from synpose_keras.datasets.pipeline.transforms import affine_warp, set_warp_backend, warp_backend
from synpose_keras.ops import geometry
from tests.datasets.test_pipeline import scenes  # noqa: F401  (fixture)


def _params(angle, scale, tx, ty, centre=30.0):
    m = geometry.compose(geometry.translation_matrix(tx, ty),
                         geometry.rotation_matrix(angle, (centre, centre)),
                         geometry.scale_matrix(scale, (centre, centre)))
    return np.asarray(geometry.to_transform_params(geometry.invert_affine(
        tf.cast(m, tf.float32))), np.float32)


@pytest.fixture
def backend():
    previous = warp_backend()
    yield set_warp_backend
    set_warp_backend(previous)


def _warp(name, image, params, size):
    set_warp_backend(name)
    eager = affine_warp(tf.constant(image), tf.constant(params), size).numpy()
    ds = tf.data.Dataset.from_tensors((image, params)).map(
        lambda i, p: affine_warp(i, p, size), num_parallel_calls=2)
    mapped = next(iter(ds)).numpy()
    np.testing.assert_array_equal(eager, mapped)
    return eager


@pytest.mark.parametrize("angle,scale,tx,ty", [(0.0, 1.0, 0.0, 0.0), (0.4, 1.2, 3.3, -5.1),
                                               (-2.0, 0.7, 20.0, 11.5), (3.1, 1.9, -30.0, 4.0)])
def test_opencv_and_tensorflow_warps_agree(backend, angle, scale, tx, ty):
    rng = np.random.default_rng(0)
    image = (rng.random((50, 70, 3)) * 255).astype(np.float32)  # not square, with high contrast
    params = _params(angle, scale, tx, ty)
    cv = _warp("opencv", image, params, 64)
    ref = _warp("tensorflow", image, params, 64)
    assert cv.shape == ref.shape == (64, 64, 3) and cv.dtype == np.float32
    np.testing.assert_allclose(cv, ref, atol=0.01)
    # the zero fill outside the image is the same region
    np.testing.assert_array_equal(cv == 0, ref == 0)
    if angle == 0.0:  # the identity reads the pixels themselves
        np.testing.assert_array_equal(cv[:50, :64], image[:50, :64])


def test_the_backend_is_checked(backend):
    with pytest.raises(ValueError, match="warp backend must be one of"):
        set_warp_backend("pil")
    assert set_warp_backend("tensorflow") in transforms.WARP_BACKENDS
    assert warp_backend() == "tensorflow"


def test_source_pipeline_is_the_same_with_either_backend(backend, scenes):  # noqa: F811
    batches = {}
    for name in ("opencv", "tensorflow"):
        set_warp_backend(name)
        ds = source_pipeline(scenes, input_size=64, heatmap_size=16, batch_size=6, seed=2)
        batches[name] = next(iter(ds))
    a, b = batches["opencv"], batches["tensorflow"]
    np.testing.assert_allclose(a["image"].numpy(), b["image"].numpy(), atol=0.02)
    for key in ("keypoints", "heatmaps", "weights", "matrix"):
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
