"""Lifter: normalisation helpers, output convention, learning, saving."""

import keras
import numpy as np
import pytest

from synpose_keras.models import Lifter
from tests.models.helpers import (
    assert_config_complete,
    assert_save_load_identical,
    randomize_batchnorm_statistics,
)

K = 6
TINY = dict(num_keypoints=K, hidden_units=32, num_blocks=1, dropout=0.1, root_index=2)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_output_is_root_relative():
    keras.utils.set_random_seed(0)
    lifter = Lifter(**TINY)
    x = np.random.default_rng(0).normal(size=(4, K, 2)).astype("float32")
    pose = _np(lifter(x))
    assert pose.shape == (4, K, 3) and pose.dtype == np.float32
    np.testing.assert_array_equal(pose[:, 2], 0.0)
    assert np.abs(pose[:, [0, 1, 3, 4, 5]]).max() > 0


def test_normalize_2d_is_translation_and_scale_invariant_and_invertible():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 200, (3, K, 2)).astype("float32")
    normalized, root, scale = Lifter.normalize_2d(points, root_index=2)
    normalized, root, scale = _np(normalized), _np(root), _np(scale)
    assert normalized.shape == (3, K, 2) and root.shape == (3, 1, 2) and scale.shape == (3, 1, 1)
    np.testing.assert_array_equal(normalized[:, 2], 0.0)
    # RMS distance of the joints from the root is 1.
    np.testing.assert_allclose(np.sqrt(np.mean(np.sum(normalized**2, -1), -1)), 1.0, rtol=1e-5)
    moved = 3.5 * points + np.float32([17.0, -40.0])
    np.testing.assert_allclose(_np(Lifter.normalize_2d(moved, root_index=2)[0]), normalized,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_np(Lifter.denormalize_2d(normalized, root, scale)), points,
                               rtol=1e-5, atol=1e-3)


def test_normalize_2d_scale_over_visible_joints():
    points = np.zeros((1, 3, 2), "float32")
    points[0, 1] = [3.0, 4.0]  # distance 5 from the root
    points[0, 2] = [100.0, 0.0]  # invisible outlier
    _, _, scale = Lifter.normalize_2d(points, root_index=0, visible=np.float32([[1, 1, 0]]))
    np.testing.assert_allclose(_np(scale)[0, 0, 0], np.sqrt(25.0 / 2.0), rtol=1e-6)


def test_normalize_3d():
    rng = np.random.default_rng(2)
    pose = rng.normal(size=(2, K, 3)).astype("float32") * 300.0  # millimetres
    normalized, scale = Lifter.normalize_3d(pose, root_index=2)
    normalized = _np(normalized)
    np.testing.assert_array_equal(normalized[:, 2], 0.0)
    np.testing.assert_allclose(np.sqrt(np.mean(np.sum(normalized**2, -1), -1)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(normalized * _np(scale) + pose[:, 2:3], pose, rtol=1e-5, atol=1e-2)


def test_learns_a_toy_lifting_task():
    # Poses = a fixed template rotated about the vertical axis; the 2D view is the orthographic
    # projection. Depth is recoverable from the 2D shape, so a small lifter must fit it.
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    template = rng.normal(size=(K, 3)).astype("float32")
    angles = rng.uniform(-np.pi / 2, np.pi / 2, 512)
    c, s = np.cos(angles), np.sin(angles)
    rotation = np.stack([np.stack([c, 0 * c, s], -1), np.stack([0 * c, 1 + 0 * c, 0 * c], -1),
                         np.stack([-s, 0 * c, c], -1)], -2)  # (N, 3, 3)
    poses = np.einsum("nij,kj->nki", rotation, template).astype("float32")
    x, _, _ = Lifter.normalize_2d(poses[..., :2], root_index=0)
    y, _ = Lifter.normalize_3d(poses, root_index=0)
    x, y = _np(x), _np(y)
    lifter = Lifter(num_keypoints=K, hidden_units=64, num_blocks=1, dropout=0.0)
    lifter.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    before = float(lifter.evaluate(x, y, verbose=0))
    lifter.fit(x, y, batch_size=64, epochs=10, verbose=0, shuffle=False)
    after = float(lifter.evaluate(x, y, verbose=0))
    assert after < 0.01 * before


def test_lift_normalises_pixels():
    keras.utils.set_random_seed(4)
    lifter = Lifter(**TINY)
    points = np.random.default_rng(4).uniform(0, 64, (2, K, 2)).astype("float32")
    normalized, _, _ = Lifter.normalize_2d(points, root_index=2)
    np.testing.assert_allclose(_np(lifter.lift(points)), _np(lifter(normalized, training=False)),
                               rtol=1e-6)


def test_config_is_complete():
    assert_config_complete(Lifter, Lifter(**TINY), TINY)


def test_save_load_identical(tmp_path):
    keras.utils.set_random_seed(5)
    lifter = Lifter(**TINY)
    randomize_batchnorm_statistics(lifter, seed=5)
    x = np.random.default_rng(5).normal(size=(3, K, 2)).astype("float32")
    assert_save_load_identical(lifter, x, tmp_path)


@pytest.mark.parametrize(
    "kwargs, received",
    [
        (dict(root_index=6), "root_index=6"),
        (dict(dropout=1.0), "dropout=1.0"),
        (dict(hidden_units=0), "hidden_units=0"),
        (dict(num_blocks=-1), "num_blocks=-1"),
        (dict(num_keypoints=0), "num_keypoints=0"),
    ],
)
def test_invalid_arguments(kwargs, received):
    with pytest.raises(ValueError, match=f"Received: {received}"):
        Lifter(**{**TINY, **kwargs})
