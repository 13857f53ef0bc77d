"""PosePredictor's differentiable readout: local by default, global on request, serialised, and
models saved before the option still load."""

import json
import zipfile

import keras
import numpy as np
import pytest

from synpose_keras.models import PosePredictor
from synpose_keras.ops.heatmaps import encode_heatmaps, local_soft_argmax, soft_argmax
from tests.models.helpers import assert_config_complete

K = 5
TINY = dict(num_keypoints=K, backbone="resnet18", input_size=64, width_multiplier=0.25,
            deconv_filters=16)
NEW_KEYS = ("soft_argmax_readout", "soft_argmax_window", "soft_argmax_local_beta")


def _images(seed, batch=2, size=64):
    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3)).astype("uint8")


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return PosePredictor(**TINY)


def test_keypoints_use_the_local_readout_and_are_differentiable(tiny):
    import tensorflow as tf

    images = _images(6).astype("float32")
    with tf.GradientTape() as tape:
        keypoints = tiny.keypoints(images, training=False)
        total = keras.ops.sum(keypoints)
    heatmaps = keras.ops.convert_to_numpy(tiny(images))
    expected = 4.0 * keras.ops.convert_to_numpy(local_soft_argmax(heatmaps, window=2, beta=50.0))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keypoints), expected, rtol=1e-5,
                               atol=1e-4)
    gradient = keras.ops.convert_to_numpy(tape.gradient(total, tiny.final_conv.kernel))
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0


def test_weak_maps_read_at_their_peak(tiny):
    keypoints = np.array([[[8.0, 12.0], [30.0, 41.0], [52.0, 20.0], [4.0, 60.0], [40.0, 40.0]]],
                         "float32")
    heatmaps, _ = encode_heatmaps(keypoints, np.ones((1, K)), 64, 16)
    weak = 0.1 * keras.ops.convert_to_numpy(heatmaps)
    centres = 4.0 * np.floor(keypoints / 4.0 + 0.5)
    soft = keras.ops.convert_to_numpy(tiny.soft_keypoints(weak))
    np.testing.assert_allclose(soft, centres, atol=4e-3)
    glob = PosePredictor(**TINY, soft_argmax_readout="global")
    soft_global = keras.ops.convert_to_numpy(glob.soft_keypoints(weak))
    np.testing.assert_allclose(soft_global, 4.0 * soft_argmax(weak).numpy(), rtol=1e-6)
    assert np.abs(soft_global - centres).max() > 4.0  # more than a heatmap pixel off


def test_config_is_complete_and_checked():
    kwargs = dict(TINY, soft_argmax_readout="global", soft_argmax_window=3,
                  soft_argmax_local_beta=30.0)
    assert_config_complete(PosePredictor, PosePredictor(**kwargs), kwargs)
    with pytest.raises(ValueError, match="Received: soft_argmax_readout='soft'"):
        PosePredictor(**TINY, soft_argmax_readout="soft")
    with pytest.raises(ValueError, match="Received: soft_argmax_window=0"):
        PosePredictor(**TINY, soft_argmax_window=0)
    with pytest.raises(ValueError, match="Received: soft_argmax_local_beta=-1"):
        PosePredictor(**TINY, soft_argmax_local_beta=-1)


def test_a_model_saved_before_the_readout_option_loads_with_the_local_readout(tiny, tmp_path):
    path = tmp_path / "new.keras"
    tiny.save(path)
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                for key in NEW_KEYS:
                    assert config["config"].pop(key) is not None
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    reloaded = keras.models.load_model(old)
    assert reloaded.soft_argmax_readout == "local" and reloaded.soft_argmax_window == 2
    assert reloaded.soft_argmax_local_beta == 50.0 and reloaded.soft_argmax_beta == 25.0
    images = _images(3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(images)),
                               keras.ops.convert_to_numpy(tiny(images)), atol=1e-6)
    saved = keras.models.load_model(path)
    assert saved.get_config() == tiny.get_config()
