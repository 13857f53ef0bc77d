"""StyleNet (f_sty): AdaIN, alpha, style codes, losses, frozen encoder, weights, saving."""

import urllib.error

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format  # writes Keras's legacy .h5 weight format

from synpose_keras.models import StyleNet
from synpose_keras.models.backbones import PretrainedWeightsUnavailableError, normalize_images
from synpose_keras.models.style_net import adaptive_instance_normalization
from tests.models.helpers import assert_config_complete, assert_save_load_identical

TINY = dict(width_multiplier=0.125)  # VGG widths 8-16-32-64
CODE_SIZE = 2 * (8 + 16 + 32 + 64)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _images(seed, batch=2, size=64):
    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3)).astype("uint8")


@pytest.fixture(scope="module")
def net():
    keras.utils.set_random_seed(0)
    return StyleNet(**TINY)


def test_call_shape_and_range(net):
    out = _np(net([_images(0), _images(1)], alpha=1.0))
    assert out.shape == (2, 64, 64, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    # Style images may have another size than the content.
    assert _np(net([_images(0), _images(1, size=32)])).shape == (2, 64, 64, 3)


def test_encoder_layers_and_widths(net):
    features = net.encode(_images(2))
    assert [tuple(f.shape) for f in features] == [
        (2, 64, 64, 8), (2, 32, 32, 16), (2, 16, 16, 32), (2, 8, 8, 64)]
    names = [layer.name for layer in net.encoder.layers if isinstance(layer, keras.layers.Conv2D)]
    assert names == ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
                     "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
                     "block4_conv1"]


def test_encoder_takes_rgb_0_255_with_caffe_preprocessing(net):
    images = _images(3)
    direct = net.encoder(normalize_images(images, "caffe"))
    for a, b in zip(net.encode(images), direct):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-6)
    for a, b in zip(net.encode(images), net.encode(images.astype("float32"))):
        np.testing.assert_array_equal(_np(a), _np(b))


def test_adain_matches_style_statistics():
    rng = np.random.default_rng(4)
    content = rng.normal(2.0, 3.0, (2, 8, 8, 5)).astype("float32")
    style = rng.normal(-1.0, 0.5, (2, 4, 4, 5)).astype("float32")
    out = _np(adaptive_instance_normalization(content, style))
    np.testing.assert_allclose(out.mean(axis=(1, 2)), style.mean(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), style.std(axis=(1, 2)), rtol=1e-3)


def test_alpha_zero_ignores_the_style(net):
    content = _images(5)
    a = _np(net([content, _images(6)], alpha=0.0))
    b = _np(net([content, _images(7)], alpha=0.0))
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.abs(_np(net([content, _images(6)], alpha=1.0)) - a).max() > 1e-3


def test_per_sample_alpha(net):
    content, style = _images(8), _images(9)
    mixed = _np(net([content, style], alpha=np.float32([0.0, 1.0])))
    np.testing.assert_allclose(mixed[0], _np(net([content, style], alpha=0.0))[0], atol=1e-4)
    np.testing.assert_allclose(mixed[1], _np(net([content, style], alpha=1.0))[1], atol=1e-4)
    np.testing.assert_allclose(_np(net.stylize(content, style, alpha=0.3)),
                               _np(net([content, style], alpha=0.3)), atol=1e-6)


def test_style_code_is_mean_and_std_of_every_layer(net):
    images = _images(10)
    code = _np(net.style_code(images))
    assert code.shape == (2, CODE_SIZE)
    expected = []
    for features in net.encode(images):
        f = _np(features)
        expected += [f.mean(axis=(1, 2)), np.sqrt(f.var(axis=(1, 2)) + 1e-5)]
    np.testing.assert_allclose(code, np.concatenate(expected, -1), rtol=1e-4, atol=1e-4)


def test_style_distance(net):
    a, b = _images(11), _images(12)
    np.testing.assert_allclose(_np(net.style_distance(a, a)), 0.0, atol=1e-3)
    d_ab = _np(net.style_distance(a, b))
    assert d_ab.shape == (2,) and np.all(d_ab > 0)
    np.testing.assert_allclose(d_ab, _np(net.style_distance(b, a)), rtol=1e-6)
    codes_a, codes_b = _np(net.style_code(a)), _np(net.style_code(b))
    pairwise = _np(StyleNet.code_distance(codes_a[:, None], codes_b[None]))
    assert pairwise.shape == (2, 2)
    np.testing.assert_allclose(np.diag(pairwise), d_ab, rtol=1e-5)
    np.testing.assert_allclose(pairwise[0, 1], np.linalg.norm(codes_a[0] - codes_b[1]), rtol=1e-5)


def test_losses_train_only_the_decoder(net):
    content, style = _images(13), _images(14)
    with tf.GradientTape() as tape:
        losses = net.compute_losses(content, style)
    values = {k: float(v) for k, v in losses.items()}
    assert set(values) == {"loss", "content_loss", "style_loss"}
    assert all(np.isfinite(v) and v > 0 for v in values.values())
    assert values["loss"] == pytest.approx(values["content_loss"] + 0.1 * values["style_loss"],
                                           rel=1e-6)
    target = adaptive_instance_normalization(net.encode(content)[-1], net.encode(style)[-1])
    generated = _np(net.encode(net.decode(target))[-1])
    assert values["content_loss"] == pytest.approx(
        float(np.mean((generated - _np(target)) ** 2)), rel=1e-4)
    decoder_ids = {id(v) for v in net.decoder.trainable_variables}
    assert {id(v) for v in net.trainable_variables} == decoder_ids
    assert net.encoder.trainable_variables == []
    gradients = tape.gradient(losses["loss"], net.trainable_variables)
    assert all(g is not None and np.all(np.isfinite(_np(g))) for g in gradients)
    assert max(np.abs(_np(g)).max() for g in gradients) > 0


def test_decoder_training_reduces_the_loss():
    keras.utils.set_random_seed(15)
    model = StyleNet(width_multiplier=0.125)
    content, style = _images(15, batch=4, size=32), _images(16, batch=4, size=32)
    optimizer = keras.optimizers.Adam(1e-3)
    first = None
    for _ in range(12):
        with tf.GradientTape() as tape:
            loss = model.compute_losses(content, style)["loss"]
        first = float(loss) if first is None else first
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    assert float(model.compute_losses(content, style)["loss"]) < 0.5 * first


def test_config_is_complete():
    kwargs = dict(width_multiplier=0.125, style_weight=0.5)
    assert_config_complete(StyleNet, StyleNet(**kwargs), kwargs)


def test_save_load_identical(net, tmp_path):
    assert_save_load_identical(net, [_images(17), _images(18)], tmp_path, {"alpha": 0.5})


def _write_vgg19_notop(path):
    """Stand-in for Keras's vgg19 "notop" download, in the same legacy .h5 format."""
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, vgg)
    return vgg


def test_imagenet_weights_load_by_layer_name(tmp_path, monkeypatch):
    path = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    vgg = _write_vgg19_notop(path)
    calls = []

    def get_file(fname=None, origin=None, **kwargs):
        calls.append(fname)
        return str(path)

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    model = StyleNet(encoder_weights="imagenet")
    assert calls == ["vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"]
    for layer in model.encoder.layers:
        if isinstance(layer, keras.layers.Conv2D):
            source = vgg.get_layer(layer.name)
            np.testing.assert_array_equal(_np(layer.kernel), _np(source.kernel))
            np.testing.assert_array_equal(_np(layer.bias), _np(source.bias))
    # relu4_1 of the StyleNet = block4_conv1 of Keras's VGG-19 on Caffe-preprocessed input.
    images = _images(19, batch=1, size=32)
    reference = keras.Model(vgg.input, vgg.get_layer("block4_conv1").output)(
        keras.applications.vgg19.preprocess_input(images.astype("float32")))
    np.testing.assert_allclose(_np(model.encode(images)[-1]), _np(reference), rtol=1e-4, atol=1e-3)


def test_weights_file_without_vgg_layers_is_rejected(tmp_path):
    path = tmp_path / "other.h5"
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, other)
    with pytest.raises(ValueError, match=r"lacks the layers \['block1_conv1'"):
        StyleNet(encoder_weights=str(path))


def test_imagenet_without_network_says_what_to_do(monkeypatch):
    calls = []

    def get_file(fname=None, origin=None, **kwargs):
        calls.append(fname)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    with pytest.raises(PretrainedWeightsUnavailableError) as info:
        StyleNet(encoder_weights="imagenet")
    message = str(info.value)
    assert "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "encoder_weights=/path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert calls == ["vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"]


def test_errors(tmp_path):
    missing = tmp_path / "vgg19.h5"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        StyleNet(encoder_weights=str(missing))
    with pytest.raises(ValueError, match="Received: encoder_weights='imagenet', width_multiplier=0.5"):
        StyleNet(encoder_weights="imagenet", width_multiplier=0.5)
    with pytest.raises(ValueError, match="Received: width_multiplier=0"):
        StyleNet(width_multiplier=0)
    with pytest.raises(ValueError, match="Received: style_weight=-1"):
        StyleNet(style_weight=-1)
