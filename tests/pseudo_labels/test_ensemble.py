import numpy as np
import pytest
from keras import ops

from synpose_keras.pseudo_labels.ensemble import (check_rotations, ensemble_heatmaps,
                                                  quarter_turns, rotate_images)

STRIDE, H = 4, 8
S = STRIDE * H


def _subsample(images):
    """A rotation-equivariant 'predictor': heatmap pixel (u, v) = image pixel (4u, 4v)."""
    return images[:, ::STRIDE, ::STRIDE, :]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_turned_image_and_turned_heatmap_grid_move_a_keypoint_alike(k):
    rng = np.random.default_rng(k)
    for _ in range(5):
        u, v = rng.integers(0, H, size=2)
        image = np.zeros((1, S, S, 1), np.float32)
        image[0, STRIDE * v, STRIDE * u, 0] = 1.0
        turned = np.asarray(rotate_images(image, k, STRIDE, H))
        (y, x), = np.argwhere(turned[0, :, :, 0] > 0.5)
        assert x % STRIDE == 0 and y % STRIDE == 0
        grid = np.zeros((1, H, H, 1), np.float32)
        grid[0, v, u, 0] = 1.0
        (v2, u2), = np.argwhere(np.asarray(ops.rot90(grid, k=k, axes=(1, 2)))[0, :, :, 0] > 0.5)
        assert (u2, v2) == (x // STRIDE, y // STRIDE)


def test_ensemble_of_an_equivariant_predictor_equals_one_pass():
    images = np.random.default_rng(0).random((3, S, S, 2)).astype("float32")
    for rotations in (2, 4):
        out = np.asarray(ensemble_heatmaps(_subsample, images, rotations, STRIDE, H))
        np.testing.assert_allclose(out, _subsample(images), atol=1e-6)


def test_ensemble_is_the_mean_of_the_turned_back_views():
    images = np.random.default_rng(1).random((2, S, S, 1)).astype("float32")
    calls = []

    def predict(x):  # not equivariant: its output depends on absolute position
        calls.append(int(x.shape[0]))
        return np.asarray(x)[:, ::STRIDE, ::STRIDE, :] * np.arange(H)[None, :, None, None]

    out = np.asarray(ensemble_heatmaps(predict, images, 4, STRIDE, H))
    assert calls == [8]  # all four views in one batch
    expected = np.mean([np.rot90(predict(np.asarray(rotate_images(images, k, STRIDE, H))),
                                 k=-k, axes=(1, 2)) for k in range(4)], axis=0)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert not np.allclose(out, predict(images))


def test_rotations_are_checked():
    assert quarter_turns(1) == (0,) and quarter_turns(2) == (0, 2)
    assert check_rotations(4) == 4
    with pytest.raises(ValueError, match="teacher_rotations must be one of"):
        check_rotations(3)
