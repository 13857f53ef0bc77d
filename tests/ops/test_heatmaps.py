"""Tests of the heatmap codec (protocol of docs/protocol.md, "Evaluation protocol")."""

import math

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.ops import SOFT_ARGMAX_BETA
from synpose_keras.ops import HeatmapCodec
from synpose_keras.ops import decode_heatmaps
from synpose_keras.ops import encode_heatmaps
from synpose_keras.ops import soft_argmax


def _random_keypoints(seed, shape, low=-20.0, high=276.0):
    rng = np.random.default_rng(seed)
    kp = rng.uniform(low, high, shape + (2,)).astype("float32")
    visible = (rng.random(shape) > 0.2).astype("float32")
    return kp, visible


def test_encode_decode_round_trip_recovers_rounded_centres():
    kp, visible = _random_keypoints(0, (21,), low=0.0, high=255.0)
    heatmaps, weights = encode_heatmaps(kp, visible, 256, 64)
    assert tuple(heatmaps.shape) == (64, 64, 21) and heatmaps.dtype == "float32"
    assert tuple(weights.shape) == (21,) and weights.dtype == "float32"
    decoded, scores = decode_heatmaps(heatmaps)
    expected = np.floor(kp / 4.0 + 0.5)
    on = visible > 0
    assert 0 < on.sum() < 21
    np.testing.assert_array_equal(decoded.numpy()[on], expected[on])
    np.testing.assert_array_equal(scores.numpy()[on], 1.0)
    np.testing.assert_array_equal(scores.numpy()[~on], 0.0)
    np.testing.assert_array_equal(weights.numpy(), visible)


def test_encode_matches_explicit_protocol_rendering():
    kp, visible = _random_keypoints(1, (6,))
    heatmaps, weights = encode_heatmaps(kp, visible, 256, 64)
    ys, xs = np.mgrid[0:64, 0:64]
    for k in range(6):
        cx, cy = math.floor(kp[k, 0] / 4 + 0.5), math.floor(kp[k, 1] / 4 + 0.5)
        expected = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 8.0)
        expected[(np.abs(xs - cx) > 6) | (np.abs(ys - cy) > 6)] = 0.0
        valid = visible[k] > 0 and 0 <= cx < 64 and 0 <= cy < 64
        if not valid:
            expected[:] = 0.0
        assert weights.numpy()[k] == float(valid)
        np.testing.assert_allclose(heatmaps.numpy()[..., k], expected, atol=1e-6)


def test_invisible_and_out_of_map_joints_give_zero_maps():
    kp = np.array(
        [
            [100.0, 100.0],  # visible, inside
            [100.0, 100.0],  # invisible
            [-3.0, 40.0],  # x/4 + 0.5 = -0.25 -> -1: outside
            [254.0, 40.0],  # x/4 + 0.5 = 64.0 -> 64: outside (map is [0, 64))
            [253.9, 40.0],  # -> 63: inside
            [-2.0, 40.0],  # -> 0: inside (rounded centre on the first column)
            [40.0, 300.0],  # far below
        ],
        "float32",
    )
    visible = np.array([1, 0, 1, 1, 1, 1, 1], "float32")
    heatmaps, weights = encode_heatmaps(kp, visible, 256, 64)
    np.testing.assert_array_equal(weights.numpy(), [1, 0, 0, 0, 1, 1, 0])
    peak = heatmaps.numpy().max(axis=(0, 1))
    np.testing.assert_array_equal(peak, [1, 0, 0, 0, 1, 1, 0])
    decoded, _ = decode_heatmaps(heatmaps)
    np.testing.assert_array_equal(decoded.numpy()[[4, 5]], [[63.0, 10.0], [0.0, 10.0]])


def test_window_is_13_by_13_with_sigma_2():
    heatmaps, _ = encode_heatmaps(np.array([[120.0, 120.0]]), np.array([1.0]), 256, 64)
    hm = heatmaps.numpy()[..., 0]  # centre (30, 30)
    assert hm[30, 30] == 1.0
    assert hm[30, 36] == pytest.approx(math.exp(-36 / 8), rel=1e-6)  # dx = 6: inside
    assert hm[30, 24] == pytest.approx(math.exp(-36 / 8), rel=1e-6)
    assert hm[36, 36] == pytest.approx(math.exp(-72 / 8), rel=1e-5)  # window corner
    assert hm[30, 37] == 0.0 and hm[30, 23] == 0.0  # dx = 7: outside
    assert hm[37, 30] == 0.0 and hm[23, 30] == 0.0
    assert (hm > 0).sum() == 13 * 13


def test_centre_rounds_half_up():
    # 10 / 4 = 2.5 -> 3 (banker's rounding would give 2); 9.99 / 4 -> 2; 6 / 4 = 1.5 -> 2
    kp = np.array([[10.0, 6.0], [9.99, 2.0], [-2.0, 13.99]], "float32")
    heatmaps, _ = encode_heatmaps(kp, np.ones(3), 256, 64)
    decoded, _ = decode_heatmaps(heatmaps)
    np.testing.assert_array_equal(decoded.numpy(), [[3.0, 2.0], [2.0, 1.0], [0.0, 3.0]])


def test_batched_equals_unbatched_and_bool_visibility():
    kp, visible = _random_keypoints(2, (3, 5))
    hm_b, w_b = encode_heatmaps(kp, visible > 0, 256, 64)
    assert tuple(hm_b.shape) == (3, 64, 64, 5)
    for b in range(3):
        hm, w = encode_heatmaps(kp[b], visible[b], 256, 64)
        np.testing.assert_array_equal(hm_b.numpy()[b], hm.numpy())
        np.testing.assert_array_equal(w_b.numpy()[b], w.numpy())
    kp_dec, scores = decode_heatmaps(hm_b)
    assert tuple(kp_dec.shape) == (3, 5, 2) and tuple(scores.shape) == (3, 5)


def test_non_square_sizes_and_sigma():
    # input 192 wide x 256 high, heatmap 48 x 64: stride 4 on both axes but W != H
    hm, w = encode_heatmaps(np.array([[189.0, 10.0]]), np.array([1.0]), (192, 256), (48, 64), sigma=1.0)
    assert tuple(hm.shape) == (64, 48, 1)
    kp, _ = decode_heatmaps(hm)
    np.testing.assert_array_equal(kp.numpy(), [[47.0, 3.0]])  # floor(47.25 + .5)
    assert (hm.numpy()[..., 0] > 0).sum() == 4 * 7  # window |d| <= 3, clipped at the right edge
    # anisotropic strides: x stride 4, y stride 2
    hm, _ = encode_heatmaps(np.array([[40.0, 40.0]]), np.array([1.0]), (256, 128), 64)
    np.testing.assert_array_equal(decode_heatmaps(hm)[0].numpy(), [[10.0, 20.0]])


def test_decode_matches_numpy_argmax_with_ties():
    rng = np.random.default_rng(3)
    hm = rng.integers(0, 5, size=(2, 16, 12, 4)).astype("float32")  # many ties
    kp, scores = decode_heatmaps(hm)
    flat = hm.transpose(0, 3, 1, 2).reshape(2, 4, -1)
    idx = flat.argmax(-1)
    np.testing.assert_array_equal(kp.numpy()[..., 0], idx % 12)
    np.testing.assert_array_equal(kp.numpy()[..., 1], idx // 12)
    np.testing.assert_array_equal(scores.numpy(), flat.max(-1))


def test_soft_argmax_matches_argmax_on_protocol_heatmaps():
    rng = np.random.default_rng(4)
    centres = np.concatenate(
        [
            rng.integers(0, 64, size=(40, 2)),
            [[0, 0], [63, 63], [0, 30], [30, 63], [1, 1], [62, 5]],  # borders and corners
        ]
    ).astype("float32")
    heatmaps, _ = encode_heatmaps(centres * 4.0, np.ones(len(centres)), 256, 64)
    soft = soft_argmax(heatmaps).numpy()
    hard, _ = decode_heatmaps(heatmaps)
    np.testing.assert_array_equal(hard.numpy(), centres)
    assert np.abs(soft - centres).max() < 0.1
    interior = (centres >= 6).all(-1) & (centres <= 57).all(-1)
    assert np.abs(soft[interior] - centres[interior]).max() < 1e-3
    # a lower temperature is measurably worse at the border: the tolerance above is not vacuous
    assert np.abs(soft_argmax(heatmaps, beta=10.0).numpy() - centres).max() > 0.5
    assert SOFT_ARGMAX_BETA == 25.0


def test_soft_argmax_gradient_follows_the_peak():
    ys, xs = np.mgrid[0:32, 0:32].astype("float32")
    mu = tf.Variable([12.3, 20.6])
    with tf.GradientTape() as tape:
        hm = tf.exp(-((xs - mu[0]) ** 2 + (ys - mu[1]) ** 2) / 8.0)[..., None]  # (32, 32, 1)
        kp = soft_argmax(hm)
        loss = kp[0, 0] + 2.0 * kp[0, 1]
    grad = tape.gradient(loss, mu).numpy()
    assert np.isfinite(grad).all()
    # moving the peak moves the decoded point the same way (the sharp softmax makes the map from
    # mu to the soft-argmax a smoothed staircase, so the slope is positive but not exactly 1)
    assert grad[0] > 0.2 and grad[1] > 0.4
    np.testing.assert_allclose(kp.numpy()[0], [12.3, 20.6], atol=0.5)
    with tf.GradientTape() as tape:
        heatmaps = tf.constant(encode_heatmaps([[50.0, 70.0]], [1.0], 256, 64)[0])
        tape.watch(heatmaps)
        x = soft_argmax(heatmaps)[0, 0]
    g = tape.gradient(x, heatmaps).numpy()
    assert np.abs(g).max() > 1e-3
    assert g[18, 14, 0] > 0.1 and g[18, 12, 0] < -0.1  # centre (13, 18): right pulls x right


def test_codec_decodes_to_input_pixels():
    codec = HeatmapCodec(256, 64)
    assert codec.stride == 4.0 and codec.stride_xy == (4.0, 4.0)
    kp, visible = _random_keypoints(5, (2, 7), low=0.0, high=255.0)
    hm, w = codec.encode(kp, visible)
    decoded, scores = codec.decode(hm)
    on = w.numpy() > 0  # visible and rounded centre inside (x >= 254 rounds to 64: outside)
    assert 0 < on.sum() < visible.sum()
    np.testing.assert_array_equal(decoded.numpy()[on], (np.floor(kp / 4 + 0.5) * 4)[on])
    assert np.abs(codec.soft_decode(hm).numpy()[on] - decoded.numpy()[on]).max() < 0.4
    assert np.abs(decoded.numpy()[on] - kp[on]).max() <= 2.0  # rounding costs at most stride/2
    assert HeatmapCodec.from_config(codec.get_config()).get_config() == codec.get_config()
    assert HeatmapCodec((192, 256), (48, 32)).stride.tolist() == [4.0, 8.0]
    with pytest.raises(ValueError, match="Received: heatmap_size="):
        HeatmapCodec(256, "big")
    with pytest.raises(ValueError, match="Received: sigma=0"):
        HeatmapCodec(256, 64, sigma=0)


def test_encode_inside_tf_data_map_equals_eager():
    kp, visible = _random_keypoints(6, (10, 5))
    eager = [encode_heatmaps(kp[i], visible[i], 256, 64) for i in range(10)]

    ds = tf.data.Dataset.from_tensor_slices({"keypoints": kp, "visible": visible})
    mapped = ds.map(lambda d: encode_heatmaps(d["keypoints"], d["visible"], 256, 64))
    for i, (hm, w) in enumerate(mapped):
        np.testing.assert_array_equal(hm.numpy(), eager[i][0].numpy())
        np.testing.assert_array_equal(w.numpy(), eager[i][1].numpy())

    # batched with an unknown batch dimension, then decoded inside the pipeline too
    batched = ds.batch(4).map(
        lambda d: decode_heatmaps(encode_heatmaps(d["keypoints"], d["visible"], 256, 64)[0])
    )
    decoded = np.concatenate([k.numpy() for k, _ in batched])
    expected = np.stack([decode_heatmaps(h)[0].numpy() for h, _ in eager])
    np.testing.assert_array_equal(decoded, expected)
