"""Tests of synpose_keras.ops.warp against an independent float64 NumPy reference."""

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf

from synpose_keras.ops import anti_alias_downsample
from synpose_keras.ops import denormalize_keypoints
from synpose_keras.ops import displacement_field
from synpose_keras.ops import grid_sample
from synpose_keras.ops import keypoints_to_gaussians
from synpose_keras.ops import make_coordinate_grid
from synpose_keras.ops import normalize_keypoints


# ------------------------------------------------------------------------------------------------
# Reference: PyTorch grid_sample(bilinear, zeros, align_corners=True) semantics, float64, written
# corner by corner with explicit loops over the four corners.
# ------------------------------------------------------------------------------------------------


def _corners(image, grid):
    b, height, width, _ = image.shape
    x = (grid[..., 0] + 1.0) / 2.0 * (width - 1)
    y = (grid[..., 1] + 1.0) / 2.0 * (height - 1)
    x0, y0 = np.floor(x), np.floor(y)
    batch = np.arange(b)[:, None, None]
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wx = 1.0 - np.abs(x - xi)  # (1 - fx) for the left corner, fx for the right one
            wy = 1.0 - np.abs(y - yi)
            sx = 1.0 if dx else -1.0  # d wx / d x
            sy = 1.0 if dy else -1.0
            inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
            xc = np.clip(xi, 0, width - 1).astype(int)
            yc = np.clip(yi, 0, height - 1).astype(int)
            value = image[batch, yc, xc] * inside[..., None]
            yield wx, wy, sx, sy, value, inside, batch, yc, xc


def reference_grid_sample(image, grid):
    out = 0.0
    for wx, wy, _, _, value, *_ in _corners(image, grid):
        out = out + (wx * wy)[..., None] * value
    return out


def reference_gradients(image, grid, cotangent):
    """d/d(image, grid) of sum(grid_sample(image, grid) * cotangent)."""
    _, height, width, _ = image.shape
    g_image = np.zeros_like(image)
    g_x = np.zeros(grid.shape[:-1])
    g_y = np.zeros(grid.shape[:-1])
    for wx, wy, sx, sy, value, inside, batch, yc, xc in _corners(image, grid):
        contrib = (cotangent * value).sum(-1)
        g_x += sx * wy * contrib
        g_y += sy * wx * contrib
        w = (wx * wy * inside)[..., None] * cotangent
        np.add.at(g_image, (np.broadcast_to(batch, yc.shape), yc, xc), w)
    g_grid = np.stack([g_x * (width - 1) / 2.0, g_y * (height - 1) / 2.0], -1)
    return g_image, g_grid


def _random_case(seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(2, 9, 13, 3))
    grid = rng.uniform(-1.3, 1.3, size=(2, 7, 5, 2))
    grid[0, 0, 0] = (-1.0 - 2.5 * 2.0 / 12, 0.1)  # left of the image by 2.5 px: reads 0
    grid[0, 0, 1] = (1.0 + 0.5 * 2.0 / 12, 0.0)  # half a pixel right of the edge
    cotangent = rng.normal(size=(2, 7, 5, 3))
    return image, grid, cotangent


def test_reference_gradients_match_finite_differences():
    # Guards the reference itself before it judges the implementation.
    image, grid, cotangent = _random_case(0)
    g_image, g_grid = reference_gradients(image, grid, cotangent)

    def loss(i, g):
        return float((reference_grid_sample(i, g) * cotangent).sum())

    eps = 1e-6
    for index in [(0, 3, 2, 0), (1, 6, 4, 1), (0, 2, 1, 1)]:
        plus, minus = grid.copy(), grid.copy()
        plus[index] += eps
        minus[index] -= eps
        assert (loss(image, plus) - loss(image, minus)) / (2 * eps) == pytest.approx(
            g_grid[index], abs=1e-5
        )
    for index in [(0, 4, 6, 1), (1, 0, 0, 2)]:
        plus, minus = image.copy(), image.copy()
        plus[index] += eps
        minus[index] -= eps
        assert (loss(plus, grid) - loss(minus, grid)) / (2 * eps) == pytest.approx(
            g_image[index], abs=1e-6
        )


def test_grid_sample_matches_reference_values():
    image, grid, _ = _random_case(1)
    assert np.abs(grid).max() > 1.0  # some points sample outside the image
    out = grid_sample(image.astype("float32"), grid.astype("float32")).numpy()
    assert out.shape == (2, 7, 5, 3)
    assert out.dtype == np.float32
    expected = reference_grid_sample(image, grid)
    np.testing.assert_allclose(out, expected, atol=2e-5)
    np.testing.assert_array_equal(out[0, 0, 0], 0.0)
    np.testing.assert_allclose(out[0, 0, 1], 0.5 * image[0, 4, 12], atol=1e-5)


def test_grid_sample_float64_matches_reference_tightly():
    image, grid, _ = _random_case(2)
    out = grid_sample(image, grid).numpy()
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, reference_grid_sample(image, grid), atol=1e-12)


def test_grid_sample_gradients_match_reference():
    image, grid, cotangent = _random_case(3)
    image_t = tf.constant(image, tf.float32)
    grid_t = tf.constant(grid, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([image_t, grid_t])
        loss = tf.reduce_sum(grid_sample(image_t, grid_t) * cotangent.astype("float32"))
    g_image, g_grid = tape.gradient(loss, [image_t, grid_t])
    ref_image, ref_grid = reference_gradients(image, grid, cotangent)
    assert np.abs(ref_grid).max() > 0.1 and np.abs(ref_image).max() > 0.1
    np.testing.assert_allclose(tf.convert_to_tensor(g_image).numpy(), ref_image, atol=1e-4)
    np.testing.assert_allclose(g_grid.numpy(), ref_grid, atol=1e-4)


@pytest.mark.parametrize("height, width", [(64, 64), (37, 50), (1, 7), (256, 17)])
def test_identity_grid_returns_image_exactly(height, width):
    rng = np.random.default_rng(height * 1000 + width)
    image = (rng.random((2, height, width, 3)) * 255.0).astype("float32")
    grid = np.broadcast_to(make_coordinate_grid(height, width).numpy(), (2, height, width, 2))
    np.testing.assert_array_equal(grid_sample(image, grid).numpy(), image)


@pytest.mark.parametrize("shift_x, shift_y", [(3, 0), (-2, 5), (0, -4)])
def test_integer_translation_moves_content_exactly(shift_x, shift_y):
    height, width = 16, 20
    rng = np.random.default_rng(7)
    image = rng.random((1, height, width, 2)).astype("float32") + 1.0  # never 0 inside
    grid = make_coordinate_grid(height, width).numpy()
    grid = grid + np.array([shift_x * 2.0 / (width - 1), shift_y * 2.0 / (height - 1)], "float32")
    out = grid_sample(image, grid[None]).numpy()[0]
    expected = np.zeros_like(image[0])
    ys, xs = np.mgrid[0:height, 0:width]
    src_y, src_x = ys + shift_y, xs + shift_x
    inside = (src_x >= 0) & (src_x < width) & (src_y >= 0) & (src_y < height)
    expected[inside] = image[0, src_y[inside], src_x[inside]]
    np.testing.assert_array_equal(out, expected)
    assert (out[~inside] == 0).all() and (~inside).sum() > 0


def test_grid_sample_in_graph_with_unknown_batch():
    fn = tf.function(
        grid_sample,
        input_signature=[
            tf.TensorSpec([None, 8, 8, 1], tf.float32),
            tf.TensorSpec([None, 4, 4, 2], tf.float32),
        ],
    )
    rng = np.random.default_rng(4)
    image = rng.random((3, 8, 8, 1)).astype("float32")
    grid = rng.uniform(-1.1, 1.1, (3, 4, 4, 2)).astype("float32")
    np.testing.assert_allclose(
        fn(image, grid).numpy(), reference_grid_sample(image.astype(float), grid.astype(float)), atol=1e-5
    )


def test_grid_sample_in_a_functional_model():
    import keras

    image_in, grid_in = keras.Input((8, 8, 2)), keras.Input((4, 5, 2))
    model = keras.Model([image_in, grid_in], grid_sample(image_in, grid_in))
    rng = np.random.default_rng(9)
    image = rng.random((2, 8, 8, 2)).astype("float32")
    grid = rng.uniform(-1.2, 1.2, (2, 4, 5, 2)).astype("float32")
    np.testing.assert_allclose(
        model.predict([image, grid], verbose=0), reference_grid_sample(image.astype(float), grid.astype(float)), atol=1e-5
    )


def test_grid_sample_rejects_bad_shapes():
    with pytest.raises(ValueError, match="grid.shape"):
        grid_sample(np.zeros((1, 4, 4, 1), "float32"), np.zeros((1, 4, 4, 3), "float32"))
    with pytest.raises(ValueError, match="same batch size"):
        grid_sample(np.zeros((2, 4, 4, 1), "float32"), np.zeros((1, 4, 4, 2), "float32"))


# ------------------------------------------------------------------------------------------------
# Grids, keypoints, Gaussians
# ------------------------------------------------------------------------------------------------


def test_make_coordinate_grid_layout():
    grid = make_coordinate_grid(3, 5).numpy()
    assert grid.shape == (3, 5, 2)
    np.testing.assert_allclose(grid[0, :, 0], [-1.0, -0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(grid[:, 0, 1], [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(grid[:, :, 0], np.broadcast_to(grid[0, :, 0], (3, 5)))


def test_normalize_denormalize_keypoints():
    kp = np.array([[0.0, 0.0], [63.0, 31.0], [31.5, 15.5], [-4.0, 40.0]], "float32")
    norm = normalize_keypoints(kp, (64, 32)).numpy()
    np.testing.assert_allclose(norm[:3], [[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(denormalize_keypoints(norm, (64, 32)).numpy(), kp, atol=1e-5)
    # consistent with the sampling grid: pixel (j, i) <-> grid[i, j]
    grid = make_coordinate_grid(32, 64).numpy()
    np.testing.assert_allclose(normalize_keypoints([[10.0, 20.0]], (64, 32)).numpy()[0], grid[20, 10], atol=1e-6)


def test_keypoints_to_gaussians():
    kp = np.array([[[0.0, 0.0], [-1.0, 1.0]]], "float32")  # (1, 2, 2)
    g = keypoints_to_gaussians(kp, 5, 9).numpy()
    assert g.shape == (1, 5, 9, 2)
    assert g[0, 2, 4, 0] == 1.0 and g[0, 4, 0, 1] == 1.0
    grid = make_coordinate_grid(5, 9).numpy()
    expected = np.exp(-0.5 * ((grid[1, 6] - kp[0, 0]) ** 2).sum() / 0.01)
    assert g[0, 1, 6, 0] == pytest.approx(expected, rel=1e-5)
    # unbatched keypoints and another variance
    g2 = keypoints_to_gaussians(kp[0], 5, 9, variance=0.1).numpy()
    assert g2.shape == (5, 9, 2)
    assert g2[1, 6, 0] == pytest.approx(np.exp(-0.5 * ((grid[1, 6] - kp[0, 0]) ** 2).sum() / 0.1), rel=1e-5)


# ------------------------------------------------------------------------------------------------
# Displacement field
# ------------------------------------------------------------------------------------------------


def _random_mask(rng, shape):
    logits = rng.normal(size=shape) * 3.0
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype("float32")


def test_displacement_identical_keypoints_is_identity():
    rng = np.random.default_rng(11)
    mask = _random_mask(rng, (2, 8, 12, 4))
    kp = rng.uniform(-1, 1, (2, 3, 2)).astype("float32")
    d = displacement_field(mask, kp, kp).numpy()
    assert d.shape == (2, 8, 12, 2)
    identity = make_coordinate_grid(8, 12).numpy()
    np.testing.assert_array_equal(d, np.broadcast_to(identity, d.shape))


@pytest.mark.parametrize("region", [1, 2, 3])
def test_displacement_one_hot_mask_is_region_translation(region):
    rng = np.random.default_rng(region)
    mask = np.zeros((2, 6, 7, 4), "float32")
    mask[..., region] = 1.0
    kp_base = rng.uniform(-1, 1, (2, 3, 2)).astype("float32")
    kp_drv = rng.uniform(-1, 1, (2, 3, 2)).astype("float32")
    d = displacement_field(mask, kp_base, kp_drv).numpy()
    shift = kp_base[:, region - 1] - kp_drv[:, region - 1]  # (2, 2)
    expected = make_coordinate_grid(6, 7).numpy()[None] + shift[:, None, None, :]
    np.testing.assert_allclose(d, expected, atol=1e-6)
    # a background-only mask is the identity whatever the keypoints
    bg = np.zeros_like(mask)
    bg[..., 0] = 1.0
    np.testing.assert_array_equal(
        displacement_field(bg, kp_base, kp_drv).numpy(),
        np.broadcast_to(make_coordinate_grid(6, 7).numpy(), d.shape),
    )


def test_displacement_warp_moves_blob_to_driving_location():
    size = 64
    p_base = np.array([[20.0, 30.0]], "float32")  # pixels (x, y)
    p_drv = np.array([[41.0, 25.0]], "float32")
    base_norm = normalize_keypoints(p_base, size).numpy()[None]  # (1, 1, 2)
    drv_norm = normalize_keypoints(p_drv, size).numpy()[None]
    base_image = keypoints_to_gaussians(base_norm, size, size).numpy()  # blob at p_base, (1,64,64,1)
    mask = np.zeros((1, size, size, 2), "float32")
    mask[..., 1] = 1.0
    grid = displacement_field(mask, base_norm, drv_norm)
    warped = grid_sample(base_image, grid).numpy()[0, ..., 0]
    assert np.unravel_index(warped.argmax(), warped.shape) == (25, 41)  # (row y, col x) = p_drv
    np.testing.assert_allclose(warped, keypoints_to_gaussians(drv_norm, size, size).numpy()[0, ..., 0], atol=1e-5)
    # the field reads the base at p_base where the driving keypoint is: D(p_drv) = p_base
    np.testing.assert_allclose(grid.numpy()[0, 25, 41], base_norm[0, 0], atol=1e-6)


def test_displacement_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="K \\+ 1 channels"):
        displacement_field(np.zeros((1, 4, 4, 3), "float32"), np.zeros((1, 3, 2)), np.zeros((1, 3, 2)))


# ------------------------------------------------------------------------------------------------
# Anti-aliased downsampling
# ------------------------------------------------------------------------------------------------


def test_anti_alias_downsample_matches_reference():
    rng = np.random.default_rng(5)
    image = rng.random((2, 64, 48, 3)).astype("float32")
    out = anti_alias_downsample(image, 0.25).numpy()
    assert out.shape == (2, 16, 12, 3)
    sigma, size = 1.5, 13  # FOMM at scale 1/4
    taps = np.exp(-((np.arange(size) - 6.0) ** 2) / (2 * sigma**2))
    kernel = np.outer(taps, taps)
    kernel /= kernel.sum()
    for b in range(2):
        for c in range(3):
            blurred = scipy.ndimage.correlate(image[b, ..., c].astype(float), kernel, mode="constant")
            np.testing.assert_allclose(out[b, ..., c], blurred[::4, ::4], atol=1e-5)
    np.testing.assert_array_equal(np.asarray(anti_alias_downsample(image, 1.0)), image)
    assert anti_alias_downsample(image, 0.5).shape == (2, 32, 24, 3)


def test_anti_alias_downsample_rejects_non_integer_factor():
    with pytest.raises(ValueError, match="scale=0.3"):
        anti_alias_downsample(np.zeros((1, 8, 8, 1), "float32"), 0.3)


def test_grid_sample_nan_positions_read_nan_instead_of_failing():
    """Diverged weights upstream give NaN keypoints; the gather must not see them as indices
    (issue 18: InvalidArgumentError 'indices = -2147466496' in the warping module)."""
    image = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    grid = np.zeros((2, 3, 3, 2), np.float32)
    grid[0, 1, 1] = np.nan
    grid[1, 2, 0, 1] = np.nan
    out = np.asarray(grid_sample(image, grid))
    nan = np.isnan(out).any(axis=-1)
    assert nan[0, 1, 1] and nan[1, 2, 0] and nan.sum() == 2
