"""PosePredictor (f_kp) and the backbones: shapes, input conventions, decoding, weights, saving."""

import urllib.error

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format  # writes Keras's legacy .h5 weight format

from synpose_keras.models import PosePredictor
from synpose_keras.models import backbones
from synpose_keras.models.forward import forward_function
from synpose_keras.models.backbones import (
    PretrainedWeightsUnavailableError,
    build_backbone,
    normalize_images,
)
from synpose_keras.ops.heatmaps import encode_heatmaps, local_soft_argmax
from tests.models.helpers import (
    assert_config_complete,
    assert_save_load_identical,
    randomize_batchnorm_statistics,
)

K = 5
TINY = dict(num_keypoints=K, backbone="resnet18", input_size=64, width_multiplier=0.25,
            deconv_filters=16)


def _images(seed, batch=2, size=64):
    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3)).astype("uint8")


@pytest.fixture
def tiny():
    keras.utils.set_random_seed(0)
    return PosePredictor(**TINY)


def _no_network(calls):
    def get_file(fname=None, origin=None, **kwargs):
        calls.append((fname, origin))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    return get_file


def _write_legacy_h5(model, path):
    """A weight file in the format of Keras's ImageNet downloads (legacy HDF5, by layer)."""
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


# ---------------------------------------------------------------------------------- shapes


def test_output_shape_dtype_and_stride(tiny):
    heatmaps = tiny(_images(0))
    assert tuple(heatmaps.shape) == (2, 16, 16, K)
    assert heatmaps.dtype == "float32"
    assert tiny.stride == 4 and tiny.heatmap_size == 16
    # Any size divisible by 32 runs; the heatmaps stay at 1/4.
    assert tuple(tiny(_images(1, batch=1, size=96)).shape) == (1, 24, 24, K)


def test_head_layout():
    model = PosePredictor(**{**TINY, "num_deconv_layers": 2, "deconv_filters": 8})
    deconvs = [layer for layer in model.head_layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    norms = [layer for layer in model.head_layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [(d.filters, d.kernel_size, d.strides, d.use_bias) for d in deconvs] == [
        (8, (4, 4), (2, 2), False)] * 2
    assert [(n.momentum, n.epsilon) for n in norms] == [(0.9, 1e-5)] * 2
    assert model.final_conv.kernel_size == (1, 1) and model.final_conv.filters == K
    assert model.stride == 8
    assert tuple(model(_images(0, batch=1)).shape) == (1, 8, 8, K)


def test_resnet18_widths_and_stride():
    backbone = build_backbone("resnet18", width_multiplier=0.25)
    assert backbone.output.shape[-1] == 128
    assert tuple(backbone(np.zeros((1, 64, 96, 3), "float32")).shape) == (1, 2, 3, 128)
    full = build_backbone("resnet18")
    assert full.output.shape[-1] == 512
    # torchvision's resnet18 without its fc has 11,176,512 parameters; Keras adds 9,600 BN
    # moving statistics (4,800 channels).
    assert full.count_params() == 11_186_112
    assert sum(int(np.prod(v.shape)) for v in full.trainable_variables) == 11_176_512


# ------------------------------------------------------------------------ input conventions


def test_uint8_and_float_inputs_give_the_same_heatmaps(tiny):
    images = _images(3)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(tiny(images)),
        keras.ops.convert_to_numpy(tiny(images.astype("float32"))),
    )


def test_normalisation_per_backbone():
    pixel = np.array([[[[255.0, 0.0, 128.0]]]], "float32")
    torch = keras.ops.convert_to_numpy(normalize_images(pixel, "torch"))[0, 0, 0]
    np.testing.assert_allclose(
        torch, [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225], rtol=1e-6)
    caffe = keras.ops.convert_to_numpy(normalize_images(pixel, "caffe"))[0, 0, 0]
    np.testing.assert_allclose(caffe, [128 - 103.939, 0 - 116.779, 255 - 123.68], rtol=1e-6)
    # Keras's own preprocessing for its ResNet weights agrees.
    np.testing.assert_allclose(
        caffe, keras.applications.resnet.preprocess_input(pixel.copy())[0, 0, 0], rtol=1e-6)
    assert backbones.BACKBONE_NORMALIZATION == {
        "resnet101": "caffe", "resnet50": "caffe", "resnet18": "torch"}
    assert PosePredictor(**TINY).normalization == "torch"
    with pytest.raises(ValueError, match="Received: mode='tf'"):
        normalize_images(pixel, "tf")


def test_model_applies_the_normalisation_inside(tiny):
    images = _images(4).astype("float32")
    features = tiny.backbone(normalize_images(images, "torch"))
    x = features
    for layer in tiny.head_layers:
        x = layer(x)
    expected = keras.ops.convert_to_numpy(tiny.final_conv(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tiny(images)), expected, rtol=1e-5,
                               atol=1e-7)


# ---------------------------------------------------------------------------------- decoding


def test_predict_keypoints_is_argmax_of_predict_times_stride(tiny):
    images = _images(5, batch=3)
    heatmaps = tiny.predict(images, batch_size=2, verbose=0)
    keypoints, scores = tiny.predict_keypoints(images, batch_size=2, decoding="argmax")
    assert keypoints.shape == (3, K, 2) and scores.shape == (3, K)
    for b in range(3):
        for k in range(K):
            y, x = np.unravel_index(np.argmax(heatmaps[b, :, :, k]), (16, 16))
            assert tuple(keypoints[b, k]) == (4.0 * x, 4.0 * y)
            assert scores[b, k] == heatmaps[b, y, x, k]


def test_predict_keypoints_of_one_batch_equals_predict(tiny):
    images = _images(6, batch=3)
    heatmaps = tiny.predict(images, verbose=0)
    forward = forward_function(tiny)
    assert forward_function(tiny) is forward  # traced once per model
    np.testing.assert_allclose(np.asarray(forward(images)), heatmaps, rtol=1e-5, atol=1e-6)
    keypoints, scores = tiny.predict_keypoints(images)  # 3 <= 32: the cached forward
    by_predict = tiny.predict_keypoints(images, batch_size=2)  # 3 > 2: `predict`
    # the default DARK decoding is continuous in the heatmaps: round-off-level differences
    np.testing.assert_allclose(keypoints, by_predict[0], rtol=0, atol=1e-3)
    np.testing.assert_allclose(scores, by_predict[1], rtol=1e-5, atol=1e-6)
    assert keypoints.dtype == np.float32 and scores.shape == (3, K)


def test_forward_function_does_not_keep_its_model_alive():
    import gc
    import weakref

    from synpose_keras.models import forward as forward_module

    model = PosePredictor(num_keypoints=K, backbone="resnet18", input_size=64,
                          width_multiplier=0.125, deconv_filters=16)
    forward_function(model)(np.zeros((1, 64, 64, 3), "float32"))
    assert model in forward_module._FORWARD
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_predict_keypoints_rejects_bad_shapes(tiny):
    with pytest.raises(ValueError, match=r"Received: images.shape=\(2, 64, 64\)"):
        tiny.predict_keypoints(np.zeros((2, 64, 64), "uint8"))


def test_soft_keypoints_are_in_input_pixels(tiny):
    keypoints = np.array([[[8.0, 12.0], [30.0, 41.0], [52.0, 20.0], [16.0, 46.0], [40.0, 40.0]]],
                         "float32")
    heatmaps, _ = encode_heatmaps(keypoints, np.ones((1, K)), 64, 16)
    soft = keras.ops.convert_to_numpy(tiny.soft_keypoints(heatmaps))
    # Gaussians centred on round(kp / 4), away from the border: soft-argmax gives that centre
    # back (within 1e-3 heatmap px), times the stride.
    np.testing.assert_allclose(soft, 4.0 * np.floor(keypoints / 4.0 + 0.5), atol=4e-3)


def test_keypoints_are_differentiable_soft_argmax(tiny):
    import tensorflow as tf

    images = _images(6).astype("float32")
    with tf.GradientTape() as tape:
        keypoints = tiny.keypoints(images, training=False)
        total = keras.ops.sum(keypoints)
    expected = 4.0 * keras.ops.convert_to_numpy(local_soft_argmax(
        tiny(images), window=tiny.soft_argmax_window, beta=tiny.soft_argmax_local_beta))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keypoints), expected, rtol=1e-6)
    assert keypoints.shape == (2, K, 2)
    gradient = tape.gradient(total, tiny.final_conv.kernel)
    gradient = keras.ops.convert_to_numpy(gradient)
    assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0


# ------------------------------------------------------------------------------- serialising


def test_config_is_complete():
    kwargs = dict(TINY, num_deconv_layers=2, soft_argmax_beta=10.0)
    assert_config_complete(PosePredictor, PosePredictor(**kwargs), kwargs)


def test_save_load_identical(tiny, tmp_path):
    randomize_batchnorm_statistics(tiny, seed=1)
    reloaded = assert_save_load_identical(tiny, _images(7), tmp_path)
    assert reloaded.get_config() == tiny.get_config()


def test_reload_never_reads_the_initial_weights_again(tmp_path):
    weights = tmp_path / "backbone.weights.h5"
    build_backbone("resnet18", width_multiplier=0.25).save_weights(weights)
    model = PosePredictor(**TINY, backbone_weights=str(weights))
    model.save(tmp_path / "model.keras")
    weights.unlink()  # a machine without the file (or without network for "imagenet")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert reloaded.backbone_weights == str(weights)  # provenance kept in the config
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(reloaded(_images(8))), keras.ops.convert_to_numpy(model(_images(8))))


# ------------------------------------------------------------------------- weights & errors


def test_local_weights_file_is_loaded(tmp_path):
    source = build_backbone("resnet18", width_multiplier=0.25)
    randomize_batchnorm_statistics(source, seed=2)
    path = tmp_path / "resnet18.weights.h5"
    source.save_weights(path)
    model = PosePredictor(**TINY, backbone_weights=path)  # a pathlib.Path is fine ...
    assert model.get_config()["backbone_weights"] == str(path)  # ... and stored as str
    for a, b in zip(source.variables, model.backbone.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_imagenet_weights_come_from_the_keras_file(tmp_path, monkeypatch):
    # Stand-in for Keras's resnet50 "notop" download, in the same legacy .h5 format.
    source = keras.applications.ResNet50(include_top=False, weights=None)
    path = _write_legacy_h5(source, tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    calls = []

    def get_file(fname=None, origin=None, **kwargs):
        calls.append(fname)
        return str(path)

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    model = PosePredictor(num_keypoints=K, backbone="resnet50", input_size=64,
                          backbone_weights="imagenet", deconv_filters=16)
    assert calls == ["resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"]
    assert model.normalization == "caffe"
    for a, b in zip(source.variables, model.backbone.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


@pytest.mark.parametrize("backbone", ["resnet101", "resnet50"])
def test_imagenet_without_network_says_what_to_do(backbone, monkeypatch):
    calls = []
    monkeypatch.setattr(keras.utils, "get_file", _no_network(calls))
    file_name = f"{backbone}_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(PretrainedWeightsUnavailableError) as info:
        PosePredictor(num_keypoints=K, backbone=backbone, backbone_weights="imagenet")
    message = str(info.value)
    assert file_name in message
    assert f"backbone_weights=/path/to/{file_name}" in message
    assert "cannot download" in message
    assert [fname for fname, _ in calls] == [file_name]


def test_bad_backbone_name():
    with pytest.raises(ValueError, match=r"Received: backbone='resnet7'"):
        PosePredictor(backbone="resnet7")
    with pytest.raises(ValueError, match=r"Received: backbone='vgg'"):
        build_backbone("vgg")


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "resnet18.weights.h5"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        PosePredictor(**TINY, backbone_weights=str(missing))


def test_resnet18_has_no_imagenet_weights(monkeypatch):
    calls = []
    monkeypatch.setattr(keras.utils, "get_file", _no_network(calls))
    with pytest.raises(ValueError, match="no official Keras ImageNet weights for resnet18"):
        PosePredictor(**TINY, backbone_weights="imagenet")
    assert calls == []


@pytest.mark.parametrize(
    "kwargs, received",
    [
        (dict(input_size=100), "input_size=100"),
        (dict(num_keypoints=0), "num_keypoints=0"),
        (dict(num_deconv_layers=6), "num_deconv_layers=6"),
        (dict(deconv_filters=0), "deconv_filters=0"),
        (dict(soft_argmax_beta=0.0), "soft_argmax_beta=0.0"),
        (dict(backbone_weights=3), "backbone_weights=3"),
    ],
)
def test_invalid_arguments(kwargs, received):
    with pytest.raises(ValueError, match=f"Received: {received}"):
        PosePredictor(**{**TINY, **kwargs})


def test_width_multiplier_only_for_resnet18():
    with pytest.raises(ValueError, match="Received: backbone='resnet50', width_multiplier=0.5"):
        build_backbone("resnet50", width_multiplier=0.5)



def test_output_stride_16_keeps_a_larger_feature_map():
    from synpose_keras.models import PosePredictor

    model = PosePredictor(num_keypoints=5, backbone="resnet18", input_size=64,
                          width_multiplier=0.125, deconv_filters=8, output_stride=16,
                          num_deconv_layers=2)
    assert model.stride == 4 and model.heatmap_size == 16
    assert model.get_config()["output_stride"] == 16
    out = model.predict(np.zeros((1, 64, 64, 3), np.uint8), verbose=0)
    assert out.shape == (1, 16, 16, 5)
    features = model.backbone(np.zeros((1, 64, 64, 3), np.float32))
    assert tuple(features.shape[1:3]) == (4, 4)


def test_output_stride_is_validated():
    from synpose_keras.models import PosePredictor

    with pytest.raises(ValueError, match="output_stride"):
        PosePredictor(backbone="resnet50", output_stride=16, input_size=64)
    with pytest.raises(ValueError, match="Received: output_stride=12"):
        PosePredictor(output_stride=12, input_size=96)
