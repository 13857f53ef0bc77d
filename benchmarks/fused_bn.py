"""Profiling follow-up of issue item 1: what Keras's un-fused BatchNormalization costs the step.

Keras 3's ``BatchNormalization`` computes the batch moments with separate reductions and
normalises with ``tf.nn.batch_normalization`` (several elementwise passes forward and backward;
under ``mixed_bfloat16`` it also casts every input to float32 and back). TensorFlow has a fused
kernel (``FusedBatchNormV3``, oneDNN-accelerated on x86) that does the same in one pass each way.
``PosePredictor.paper()`` has 107 BatchNormalization layers.

This script times ``PretrainStage.train_step`` of ``PosePredictor.paper()`` (batch 8, 256²) as
written and with ``BatchNormalization.call`` replaced by a fused version (same variables, same
normalisation; the moving variance is updated with the biased batch variance, as Keras does),
interleaved, fp32 and bf16, and checks that losses and gradients agree.

Usage::

    python benchmarks/fused_bn.py [--precisions fp32,bf16] [--reps 4]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()

import numpy as np  # noqa: E402


def fused_call(self, inputs, training=None, mask=None):
    """``BatchNormalization.call`` with TensorFlow's fused kernel (NHWC, axis -1, no mask)."""
    import tensorflow as tf

    if (mask is not None or len(inputs.shape) != 4 or self.axis not in (-1, 3) or self.renorm
            or not (self.scale and self.center)):
        return type(self)._original_call(self, inputs, training=training, mask=mask)
    x = inputs
    if x.dtype not in (tf.float32, tf.bfloat16):
        x = tf.cast(x, tf.float32)
    gamma = tf.cast(self.gamma, tf.float32)
    beta = tf.cast(self.beta, tf.float32)
    if training and self.trainable:
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
        n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
        variance = variance * (n - 1.0) / n  # the kernel returns the unbiased variance
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
    else:
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
            variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
            data_format="NHWC", is_training=False)
    return tf.cast(y, self.compute_dtype)


def build(bf16, data):
    import keras
    import tensorflow as tf

    from synpose_keras.models import PosePredictor
    from synpose_keras.training.pretrain_stage import PretrainStage

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
    model = PosePredictor.paper()
    stage = PretrainStage(model)
    stage.compile(optimizer=keras.optimizers.Adam(1e-4))
    keras.mixed_precision.set_global_policy("float32")
    step = tf.function(stage.train_step)

    @tf.function
    def loss_and_grads():
        with tf.GradientTape() as tape:
            hm = model(data["source"]["image"], training=True)
            loss = tf.reduce_mean(tf.square(hm - data["source"]["heatmaps"]))
        return loss, tape.gradient(loss, model.trainable_variables)

    return model, step, loss_and_grads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--check-only", action="store_true")
    parser.add_argument("--out", default="fused_bn")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    b = args.batch
    data = {"source": {"image": tf.constant(rng.uniform(0, 255, (b, 256, 256, 3)).astype("float32")),
                       "heatmaps": tf.constant(rng.uniform(0, 1, (b, 64, 64, 21)).astype("float32")),
                       "weights": tf.ones((b, 21))}}
    bn = keras.layers.BatchNormalization
    result = {"config": vars(args), "runs": {}}
    env = _common.environment()
    for precision in args.precisions.split(","):
        bf16 = precision == "bf16"
        print(f"== {precision}")
        model_a, step_a, grads_a = build(bf16, data)
        grads_a()  # traces with Keras's BatchNormalization
        float(step_a(data)["loss"])
        bn._original_call = bn.call
        bn.call = fused_call
        try:
            model_b, step_b, grads_b = build(bf16, data)
            model_b.set_weights(model_a.get_weights())
            lb, gb = grads_b()  # traces with the fused call, on A's current weights
            float(step_b(data)["loss"])
        finally:
            bn.call = bn._original_call
        model_b.set_weights(model_a.get_weights())
        la, ga = grads_a()
        lb, gb = grads_b()
        scale = max(float(tf.reduce_max(tf.abs(x))) for x in ga)
        diff = max(float(tf.reduce_max(tf.abs(x - y))) for x, y in zip(ga, gb))
        # per variable, ignoring gradients that are ~0 in both (e.g. the biases of the
        # convolutions that feed a BatchNormalization: BN removes them, their gradient is noise)
        per_var = max(float(tf.reduce_max(tf.abs(x - y)) / tf.reduce_max(tf.abs(x)))
                      for x, y in zip(ga, gb) if float(tf.reduce_max(tf.abs(x))) > 1e-4 * scale)
        check = {"loss_keras_bn": float(la), "loss_fused_bn": float(lb),
                 "max_abs_grad_diff_over_max_abs_grad": diff / scale,
                 "max_per_variable_relative_grad_diff": per_var}
        print("  check:", check)
        if args.check_only:
            result["runs"][precision] = {"check": check}
            keras.backend.clear_session()
            continue
        r = _common.interleave({"keras_bn": lambda: float(step_a(data)["loss"]),
                                "fused_bn": lambda: float(step_b(data)["loss"])},
                               args.reps, warmup=0)
        r["fused_over_keras"] = _common.ratio(r, "fused_bn", "keras_bn")
        r["fused_over_keras_per_rep"] = [round(f / k, 3) for f, k in
                                         zip(r["fused_bn"]["times"], r["keras_bn"]["times"])]
        print("  fused/keras:", r["fused_over_keras"], r["fused_over_keras_per_rep"])
        result["runs"][precision] = {"check": check, "timing": r}
        del model_a, model_b, step_a, step_b, grads_a, grads_b
        keras.backend.clear_session()
    result["environment"] = env
    _common.write_result(args.out + ("_check" if args.check_only else ""), result)


if __name__ == "__main__":
    main()
