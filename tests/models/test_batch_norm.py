"""The fused BatchNorm fast path equals Keras's BatchNormalization (values, gradients, moving
statistics), in float32 and under mixed bfloat16, and falls back where it does not apply."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.models.batch_norm import BatchNorm


def _pair(dtype_policy, seed, channels=6):
    rng = np.random.default_rng(seed)
    layers = []
    for fast in (True, False):
        layer = BatchNorm(momentum=0.9, epsilon=1e-5, dtype=dtype_policy)
        layer.build((None, 5, 7, channels))
        layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32") if fast else
                           layers[0].gamma.numpy())
        layer.beta.assign(rng.normal(size=channels).astype("float32") if fast else
                          layers[0].beta.numpy())
        layer.moving_mean.assign(rng.normal(size=channels).astype("float32") if fast else
                                 layers[0].moving_mean.numpy())
        layer.moving_variance.assign(rng.uniform(0.5, 2.0, channels).astype("float32") if fast
                                     else layers[0].moving_variance.numpy())
        layers.append(layer)
    return layers


def _run(layer, x, training, fast):
    BatchNorm.fast_path = fast
    try:
        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            weights = tf.reshape(tf.cast(tf.range(tf.size(y)) % 7, tf.float32), tf.shape(y))
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2 * weights)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        return y, grads
    finally:
        BatchNorm.fast_path = False


@pytest.mark.parametrize("policy,tol", [("float32", 2e-5), ("mixed_bfloat16", 3e-2)])
@pytest.mark.parametrize("training", [True, False])
def test_fast_path_equals_keras_reference(policy, tol, training):
    fast, ref = _pair(policy, seed=1)
    x = np.random.default_rng(2).normal(3.0, 2.0, (4, 5, 7, 6)).astype("float32")
    if policy == "mixed_bfloat16":
        x = tf.cast(x, tf.bfloat16)
    y_fast, g_fast = _run(fast, x, training, fast=True)
    y_ref, g_ref = _run(ref, x, training, fast=False)
    assert y_fast.dtype == y_ref.dtype
    np.testing.assert_allclose(np.asarray(tf.cast(y_fast, tf.float32)),
                               np.asarray(tf.cast(y_ref, tf.float32)), rtol=tol, atol=tol)
    for a, b in zip(g_fast, g_ref):
        a, b = (np.asarray(tf.cast(g, tf.float32)) for g in (a, b))
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a / scale, b / scale, atol=tol)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(getattr(fast, name).numpy(), getattr(ref, name).numpy(),
                                   rtol=1e-5, atol=1e-5)
    if training:  # the statistics moved (the biased batch variance, as Keras tracks it)
        moments = tf.nn.moments(tf.cast(x, tf.float32), axes=[0, 1, 2])
        np.testing.assert_allclose(fast.moving_variance.numpy(),
                                   np.asarray(_pair(policy, seed=1)[1].moving_variance) * 0.9
                                   + 0.1 * moments[1].numpy(), rtol=1e-4)


@pytest.fixture
def fast_path():
    BatchNorm.fast_path = True
    yield
    BatchNorm.fast_path = False


def test_off_by_default():
    assert BatchNorm.fast_path is False


def test_fast_path_runs_the_fused_kernel_and_falls_back_elsewhere(fast_path):
    layer = BatchNorm()
    x = tf.ones((2, 3, 3, 4))
    layer(x, training=True)
    ops = [op.type for op in tf.function(lambda t: layer(t, training=True))
           .get_concrete_function(x).graph.get_operations()]
    assert "FusedBatchNormV3" in ops
    # not an NHWC image: Keras's own call
    flat = BatchNorm()
    flat(tf.ones((2, 4)), training=True)
    ops = [op.type for op in tf.function(lambda t: flat(t, training=True))
           .get_concrete_function(tf.ones((2, 4))).graph.get_operations()]
    assert "FusedBatchNormV3" not in ops
    # switched off: Keras's call
    BatchNorm.fast_path = False
    try:
        ops = [op.type for op in tf.function(lambda t: layer(t, training=False))
               .get_concrete_function(x).graph.get_operations()]
    finally:
        BatchNorm.fast_path = True
    assert "FusedBatchNormV3" not in ops


def test_saves_and_loads_as_batch_norm(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, BatchNorm(name="bn")(inputs))
    model.layers[-1].moving_mean.assign(np.arange(3, dtype="float32"))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("bn"), BatchNorm)
    x = np.random.default_rng(0).random((2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
