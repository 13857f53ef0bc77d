"""BatchNormalization with TensorFlow's fused kernel as a fast path.

Keras 3's ``BatchNormalization`` computes the batch moments with separate reductions and
normalises with several elementwise passes (under mixed bfloat16 it also casts every input to
float32 and back). On the TensorFlow backend, :class:`BatchNorm` runs the same normalisation with
TensorFlow's fused kernel (``FusedBatchNormV3``, oneDNN-accelerated on x86), one pass each way.
Everywhere else — other backends, masks, inputs that are not NHWC images, renormalisation,
synchronised statistics, layers without scale or centre — it is Keras's own ``call``, which stays
the reference: ``tests/models/test_batch_norm.py`` checks that both give the same outputs,
gradients and moving statistics in float32 and under ``mixed_bfloat16``. The variables, the
config and the saved files are those of ``keras.layers.BatchNormalization``; the speed-up is
measured in ``benchmarks/README.md``.

The fast path is off by default (``BatchNorm.fast_path = False``, a class attribute): on
2026-12-07 it did not measurably speed up the PoseResNet-101 step on the 2-core development CPU
(benchmarks/README.md). Set ``BatchNorm.fast_path = True`` before building a model to use it.
"""

from __future__ import annotations

import keras

__all__ = ["BatchNorm"]


@keras.saving.register_keras_serializable(package="synpose_keras")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with a fused TensorFlow fast path (same arguments).

    Example:

    >>> import numpy as np
    >>> from synpose_keras.models.batch_norm import BatchNorm
    >>> bn = BatchNorm(momentum=0.9, epsilon=1e-5)  # BatchNorm.fast_path = True: fused kernel
    >>> tuple(bn(np.ones((2, 4, 4, 3), "float32"), training=True).shape)
    (2, 4, 4, 3)
    """

    #: Use the fused kernel where it applies (TensorFlow backend); False (default): Keras's call.
    fast_path = False

    def _fused_applies(self, inputs, mask) -> bool:
        if not type(self).fast_path or keras.backend.backend() != "tensorflow":
            return False
        axis = self.axis if isinstance(self.axis, int) else None
        return (mask is None and len(inputs.shape) == 4 and axis in (-1, 3)
                and not self.renorm and not getattr(self, "synchronized", False)
                and self.scale and self.center
                and str(inputs.dtype) in ("float32", "bfloat16", "<dtype: 'float32'>",
                                          "<dtype: 'bfloat16'>"))

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        gamma = tf.cast(self.gamma, tf.float32)
        beta = tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC",
                is_training=True)
            # the kernel returns the unbiased batch variance; Keras tracks the biased one
            count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
            variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
            momentum = self.momentum
            self.moving_mean.assign(
                tf.cast(self.moving_mean, tf.float32) * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                tf.cast(self.moving_variance, tf.float32) * momentum
                + variance * (1.0 - momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                data_format="NHWC", is_training=False)
        return tf.cast(outputs, self.compute_dtype)
