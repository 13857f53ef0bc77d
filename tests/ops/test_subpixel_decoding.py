"""DARK sub-pixel decoding (Zhang et al., CVPR 2020) of the heatmap codec."""

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.ops.heatmaps import (
    DECODINGS,
    HeatmapCodec,
    check_decoding,
    dark_refine,
    decode_heatmaps,
    encode_heatmaps,
)

STRIDE = 4.0


def _subpixel_maps(size, n, margin, seed):
    """n sub-pixel keypoints (heatmap px) at least ``margin`` px inside a size x size map, encoded
    by the codec's own Gaussian encoder centred on the exact positions; maps as (n, H, W, 1)."""
    rng = np.random.default_rng(seed)
    kp_hm = rng.uniform(margin, size - 1 - margin, (n, 2)).astype("float32")
    codec = HeatmapCodec(int(size * STRIDE), size)
    heatmaps, weights = codec.encode(kp_hm * STRIDE, np.ones(n, "float32"), subpixel=True)
    assert np.all(np.asarray(weights) == 1.0)
    heatmaps = np.moveaxis(np.asarray(heatmaps), -1, 0)[..., None]  # (n, H, W, 1)
    return kp_hm, heatmaps, codec


@pytest.mark.parametrize("size", [32, 64])
def test_dark_recovers_subpixel_keypoints_within_a_tenth_of_a_pixel(size):
    # anywhere but on the border pixel, where the argmax is kept (rounded centre in [1, size-2])
    kp_hm, heatmaps, codec = _subpixel_maps(size, 300, margin=0.6, seed=size)
    dark, scores = decode_heatmaps(heatmaps, decoding="dark")
    argmax, argmax_scores = decode_heatmaps(heatmaps)
    dark_err = np.abs(np.asarray(dark)[:, 0] - kp_hm).max()
    argmax_err = np.abs(np.asarray(argmax)[:, 0] - kp_hm).max()
    assert dark_err < 0.1
    assert argmax_err > 0.4  # the argmax is off by up to half a pixel: the test can fail
    np.testing.assert_array_equal(np.asarray(scores), np.asarray(argmax_scores))
    # without the smoothing the Newton step is exact on a Gaussian, up to the border pixel
    kp_hm, heatmaps, _ = _subpixel_maps(size, 300, margin=0.6, seed=size + 1)
    raw = decode_heatmaps(heatmaps, decoding="dark", blur=False)[0]
    assert np.abs(np.asarray(raw)[:, 0] - kp_hm).max() < 1e-3
    # through the codec, in input pixels
    decoded, _ = codec.decode(np.moveaxis(heatmaps[..., 0], 0, -1), decoding="dark", blur=False)
    assert np.abs(np.asarray(decoded) - kp_hm * STRIDE).max() < 4e-3


def test_protocol_heatmaps_decode_to_their_integer_centres():
    # protocol maps are centred on integer pixels: DARK returns that pixel (symmetric Gaussian)
    centres = np.random.default_rng(0).integers(0, 64, (60, 2)).astype("float32")
    centres[:6] = [[0, 5], [63, 63], [1, 1], [62, 30], [2, 61], [40, 1]]  # at / near the border
    heatmaps, _ = encode_heatmaps(centres * STRIDE, np.ones(60), 256, 64)
    for blur in (True, False):
        dark, _ = decode_heatmaps(heatmaps, decoding="dark", blur=blur)
        np.testing.assert_allclose(np.asarray(dark), centres, atol=1e-4)


def test_argmax_stays_the_default_and_unknown_decodings_are_refused():
    kp_hm, heatmaps, codec = _subpixel_maps(32, 5, margin=4, seed=3)
    np.testing.assert_array_equal(np.asarray(decode_heatmaps(heatmaps)[0]),
                                  np.asarray(decode_heatmaps(heatmaps, decoding="argmax")[0]))
    assert np.all(np.asarray(decode_heatmaps(heatmaps)[0]) % 1 == 0)
    assert DECODINGS == ("argmax", "dark") and check_decoding("dark") == "dark"
    with pytest.raises(ValueError, match=r"decoding='soft'"):
        decode_heatmaps(heatmaps, decoding="soft")
    with pytest.raises(ValueError, match=r"\['argmax', 'dark'\]"):
        codec.decode(heatmaps, decoding="none")


@pytest.mark.parametrize("blur", [True, False])
def test_border_peaks_and_flat_maps_are_finite_and_within_one_pixel(blur):
    h = w = 16
    ys, xs = np.mgrid[0:h, 0:w].astype("float32")
    maps = []
    # Gaussians whose peak is on the border or a corner, or just inside it
    for cx, cy in [(0.2, 7.3), (15.0, 7.6), (6.4, 0.0), (7.7, 15.4), (0.0, 0.0), (15.3, 15.2),
                   (1.2, 8.0), (14.1, 1.4)]:
        maps.append(np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 8.0))
    maps.append(np.zeros((h, w)))  # all zero
    maps.append(np.full((h, w), 0.7))  # constant
    maps.append(np.full((h, w), -0.3))  # negative constant
    plateau = np.zeros((h, w))
    plateau[5:11, 4:12] = 1.0  # flat top: argmax at its corner
    maps.append(plateau)
    spike = np.zeros((h, w))
    spike[8, 8] = 1.0  # a single pixel: zero neighbours
    maps.append(spike)
    lopsided = np.full((h, w), -1.0)
    lopsided[6, 6], lopsided[6, 7] = 0.5, 0.5  # two-pixel ridge amid negative values
    maps.append(lopsided)
    heatmaps = np.stack(maps, -1).astype("float32")[None]  # (1, H, W, K)
    argmax, _ = decode_heatmaps(heatmaps)
    dark, _ = decode_heatmaps(heatmaps, decoding="dark", blur=blur)
    argmax, dark = np.asarray(argmax)[0], np.asarray(dark)[0]
    assert np.all(np.isfinite(dark))
    assert np.abs(dark - argmax).max() <= 1.0 + 1e-6
    on_border = (argmax == 0) | (argmax == w - 1)
    border_rows = on_border.any(-1)
    np.testing.assert_array_equal(dark[border_rows], argmax[border_rows])  # argmax kept
    k_zero, k_const, k_neg = 8, 9, 10
    for k in (k_zero, k_const, k_neg):
        np.testing.assert_array_equal(dark[k], argmax[k])
    # explicit interior peaks on flat maps: no step (the Hessian is not negative definite)
    flat = np.stack([np.zeros((h, w)), np.full((h, w), 0.7)], -1).astype("float32")
    peaks = np.full((2, 2), 8.0, "float32")
    refined = np.asarray(dark_refine(flat, peaks, blur=False))
    np.testing.assert_array_equal(refined, peaks)
    assert np.all(np.isfinite(np.asarray(dark_refine(flat, peaks))))


def test_batched_leading_dims_and_tf_function_match_eager():
    kp_hm, heatmaps, _ = _subpixel_maps(32, 12, margin=4, seed=7)
    batched = heatmaps[..., 0].reshape(3, 4, 32, 32).transpose(0, 2, 3, 1)  # (3, H, W, 4)
    eager = np.asarray(decode_heatmaps(batched, decoding="dark")[0])
    assert eager.shape == (3, 4, 2)
    np.testing.assert_allclose(eager.reshape(12, 2), np.asarray(
        decode_heatmaps(heatmaps, decoding="dark")[0])[:, 0], atol=1e-5)
    traced = tf.function(lambda x: decode_heatmaps(x, decoding="dark")[0],
                         input_signature=[tf.TensorSpec((None, None, None, 4), tf.float32)])
    np.testing.assert_allclose(traced(tf.constant(batched)).numpy(), eager, atol=1e-5)


def test_predict_keypoints_decodes_with_dark_by_default():
    from tests.cli.inference_helpers import tiny_predictor

    model = tiny_predictor(21, seed=2)
    images = np.random.default_rng(9).integers(0, 256, (2, 64, 64, 3)).astype("uint8")
    dark, scores = model.predict_keypoints(images)
    argmax, argmax_scores = model.predict_keypoints(images, decoding="argmax")
    heatmaps = model.predict(images, verbose=0)
    expected = np.asarray(decode_heatmaps(heatmaps, decoding="dark")[0]) * model.stride
    np.testing.assert_allclose(dark, expected, atol=1e-3)
    assert np.all(argmax % model.stride == 0)
    assert np.abs(dark - argmax).max() <= model.stride + 1e-4  # within one heatmap pixel
    np.testing.assert_allclose(scores, argmax_scores)
    with pytest.raises(ValueError, match="decoding="):
        model.predict_keypoints(images, decoding="soft")
