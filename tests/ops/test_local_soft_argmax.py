"""The local soft-argmax readout: agrees with the argmax, on weak maps too, and is differentiable
inside its window only."""

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.ops import LOCAL_SOFT_ARGMAX_BETA
from synpose_keras.ops import LOCAL_SOFT_ARGMAX_WINDOW
from synpose_keras.ops import HeatmapCodec
from synpose_keras.ops import decode_heatmaps
from synpose_keras.ops import encode_heatmaps
from synpose_keras.ops import local_soft_argmax
from synpose_keras.ops import soft_argmax

# Protocol centres on a 64 x 64 map: random ones, and borders and corners, where the window shrinks.
_RNG = np.random.default_rng(4)
CENTRES = np.concatenate([
    _RNG.integers(0, 64, size=(40, 2)),
    [[0, 0], [63, 63], [0, 30], [30, 63], [1, 1], [62, 5], [2, 61]],
]).astype("float32")


def _maps(peak):
    heatmaps, _ = encode_heatmaps(CENTRES * 4.0, np.ones(len(CENTRES)), 256, 64)
    return peak * heatmaps.numpy()  # (64, 64, N)


def _window_mask(x0, y0, height, width, window=LOCAL_SOFT_ARGMAX_WINDOW):
    rx = min(window, x0, width - 1 - x0)
    ry = min(window, y0, height - 1 - y0)
    ys, xs = np.mgrid[0:height, 0:width]
    return (np.abs(xs - x0) <= rx) & (np.abs(ys - y0) <= ry)


@pytest.mark.parametrize("peak", [1.0, 0.3, 0.1])
def test_equals_the_argmax_on_gaussian_maps_even_weak_ones(peak):
    heatmaps = _maps(peak)
    hard, _ = decode_heatmaps(heatmaps)
    np.testing.assert_array_equal(hard.numpy(), CENTRES)
    local = local_soft_argmax(heatmaps).numpy()
    assert np.abs(local - CENTRES).max() < 0.05
    # the global soft-argmax on the same maps: fine on strong maps, far off on weak ones (the
    # whole map pulls it to the centre), so the assertion above is not vacuous
    error = np.abs(soft_argmax(heatmaps).numpy() - CENTRES).max(-1)
    if peak == 0.1:
        assert np.median(error) > 1.0 and error.max() > 10.0
    if peak == 1.0:
        assert error.max() < 0.1


def test_follows_a_sub_pixel_peak_and_tracks_its_motion():
    ys, xs = np.mgrid[0:32, 0:32].astype("float32")
    mu = tf.Variable([12.3, 20.6])
    with tf.GradientTape() as tape:
        # a weak, wide predicted-looking map: peak 0.15, sigma 3
        hm = 0.15 * tf.exp(-((xs - mu[0]) ** 2 + (ys - mu[1]) ** 2) / 18.0)[..., None]
        kp = local_soft_argmax(hm)
        loss = kp[0, 0] + 2.0 * kp[0, 1]
    grad = tape.gradient(loss, mu).numpy()
    assert np.isfinite(grad).all() and grad[0] > 0.1 and grad[1] > 0.2
    # on the correct side of the integer argmax (12, 21), within one pixel of the true peak
    x, y = kp.numpy()[0]
    assert 12.0 < x < 12.5 and 20.5 < y < 21.0


def test_flat_and_plateau_maps_stay_in_the_window():
    rng = np.random.default_rng(0)
    near_flat = 0.5 + 1e-4 * rng.random((24, 20, 6)).astype("float32")
    plateau = np.zeros((24, 20, 1), "float32")
    plateau[6:13, 4:11, 0] = 0.3  # first maximum (row-major) at its corner (4, 6)
    zeros = np.zeros((24, 20, 1), "float32")
    negative = -1.0 - rng.random((24, 20, 1)).astype("float32")
    heatmaps = np.concatenate([near_flat, plateau, zeros, negative], -1)
    hard = decode_heatmaps(heatmaps)[0].numpy()
    local = local_soft_argmax(heatmaps).numpy()
    assert np.isfinite(local).all()
    assert (np.abs(local - hard) <= LOCAL_SOFT_ARGMAX_WINDOW + 1e-5).all()
    # a near-flat window is averaged evenly: its centre, the argmax (the global readout of the
    # same maps goes to the map's centre) ...
    assert np.abs(local[:6] - hard[:6]).max() < 0.01
    assert np.abs(soft_argmax(near_flat).numpy() - [9.5, 11.5]).max() < 0.01
    # ... the plateau reads the mean of its 3 x 3 part of the window (the global readout goes
    # to the plateau's centre, 3 px away), the empty map reads its argmax (0, 0)
    np.testing.assert_allclose(local[6], [5.0, 7.0], atol=1e-4)
    np.testing.assert_allclose(soft_argmax(plateau).numpy()[0], [7.0, 9.0], atol=0.05)
    np.testing.assert_allclose(local[7], [0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("centre", [(13.0, 18.0), (1.0, 30.0), (0.0, 0.0), (62.0, 5.0)])
def test_gradient_is_non_zero_inside_the_window_and_zero_outside(centre):
    # a sub-pixel Gaussian so that no pixel of the window sits at the readout's x or y
    heatmaps, _ = encode_heatmaps([[4.0 * centre[0] + 1.2, 4.0 * centre[1] + 1.4]], [1.0], 256, 64,
                                  subpixel=True)
    heatmaps = tf.constant(0.2 * heatmaps.numpy())
    x0, y0 = (int(v) for v in decode_heatmaps(heatmaps)[0].numpy()[0])
    inside = _window_mask(x0, y0, 64, 64)
    grads = []
    for axis in (0, 1):
        with tf.GradientTape() as tape:
            tape.watch(heatmaps)
            value = local_soft_argmax(heatmaps)[0, axis]
        grads.append(tape.gradient(value, heatmaps).numpy()[..., 0])
    gx, gy = grads
    assert np.isfinite(gx).all() and np.isfinite(gy).all()
    assert (gx[~inside] == 0).all() and (gy[~inside] == 0).all()
    # an axis whose window did not shrink to one pixel (peak on the border) has a gradient at
    # every pixel of the window; the other reads the argmax itself
    for g, c in ((gx, x0), (gy, y0)):
        if 0 < c < 63:
            assert np.abs(g[inside]).min() > 0
        else:
            assert (g == 0).all()
    # the readout is invariant to scaling the map, so the gradient is orthogonal to it
    h = heatmaps.numpy()[..., 0]
    assert abs(float((gx * h).sum())) < 1e-4 and abs(float((gy * h).sum())) < 1e-4


def test_batched_input_and_tf_function_equal_per_map_eager():
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 127, (3, 5, 2)).astype("float32")
    heatmaps, _ = encode_heatmaps(kp, np.ones((3, 5)), 128, 32, subpixel=True)
    heatmaps = heatmaps.numpy() * rng.uniform(0.05, 1.0, (3, 1, 1, 5)).astype("float32")
    heatmaps += 0.01 * rng.standard_normal(heatmaps.shape).astype("float32")
    eager = local_soft_argmax(heatmaps).numpy()
    assert eager.shape == (3, 5, 2)
    for b in range(3):
        for k in range(5):
            single = local_soft_argmax(heatmaps[b, :, :, k:k + 1]).numpy()[0]
            np.testing.assert_allclose(eager[b, k], single, atol=1e-5)

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, None), tf.float32)])
    def traced(h):
        with tf.GradientTape() as tape:
            tape.watch(h)
            out = local_soft_argmax(h, window=3)
            total = tf.reduce_sum(out)
        return out, tape.gradient(total, h)

    out, grad = traced(tf.constant(heatmaps))
    np.testing.assert_allclose(out.numpy(), local_soft_argmax(heatmaps, window=3).numpy(),
                               atol=1e-5)
    assert np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).max() > 0
    # within the window of its argmax, a sub-pixel readout
    hard = decode_heatmaps(heatmaps)[0].numpy()
    assert (np.abs(eager - hard) <= LOCAL_SOFT_ARGMAX_WINDOW).all()
    assert np.abs(eager - kp / 4.0).max() < 1.0


def test_arguments_are_checked():
    hm = np.zeros((8, 8, 1), "float32")
    with pytest.raises(ValueError, match="Received: window=0"):
        local_soft_argmax(hm, window=0)
    with pytest.raises(ValueError, match="Received: window=1.5"):
        local_soft_argmax(hm, window=1.5)
    with pytest.raises(ValueError, match="Received: beta=0"):
        local_soft_argmax(hm, beta=0)
    with pytest.raises(ValueError, match=r"Received: heatmaps.shape=\(8, 8\)"):
        local_soft_argmax(hm[..., 0])


def test_codec_soft_decode_is_local_by_default_and_serialises():
    codec = HeatmapCodec(256, 64)
    assert codec.readout == "local" and codec.window == LOCAL_SOFT_ARGMAX_WINDOW
    assert codec.local_beta == LOCAL_SOFT_ARGMAX_BETA == 50.0 and codec.beta == 25.0
    weak = _maps(0.1)
    np.testing.assert_allclose(codec.soft_decode(weak).numpy(), 4.0 * CENTRES, atol=0.2)
    glob = HeatmapCodec(256, 64, readout="global")
    np.testing.assert_allclose(glob.soft_decode(weak).numpy(), 4.0 * soft_argmax(weak).numpy(),
                               rtol=1e-6)
    wide = HeatmapCodec(256, 64, window=3, local_beta=10.0, beta=5.0)
    np.testing.assert_allclose(wide.soft_decode(weak).numpy(),
                               4.0 * local_soft_argmax(weak, window=3, beta=10.0).numpy(),
                               rtol=1e-6)
    config = wide.get_config()
    assert config["readout"] == "local" and config["window"] == 3 and config["local_beta"] == 10.0
    assert HeatmapCodec.from_config(config).get_config() == config
    # a config written before the readout option loads with the local readout
    old = {k: v for k, v in config.items() if k not in ("readout", "window", "local_beta")}
    assert HeatmapCodec.from_config(old).readout == "local"
    with pytest.raises(ValueError, match="Received: local_beta=0"):
        HeatmapCodec(256, 64, local_beta=0)
    with pytest.raises(ValueError, match="Received: readout='soft'"):
        HeatmapCodec(256, 64, readout="soft")
    with pytest.raises(ValueError, match="Received: window=-1"):
        HeatmapCodec(256, 64, window=-1)


def test_heatmaps_module_does_not_import_tensorflow():
    # keras.ops only: the codec runs under any Keras backend
    import ast
    import inspect

    from synpose_keras.ops import heatmaps

    tree = ast.parse(inspect.getsource(heatmaps))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "tensorflow" not in imported and "keras" in imported
