"""Part of issue item 2: the VGG-19 perceptual pyramid loss, as written and with the target half
kept out of the backward pass.

``PerceptualPyramidLoss._vgg_term`` runs VGG-19 once on ``concat([pred, true])`` and stops the
gradient of the ``true`` features afterwards. The backward pass of every VGG layer then still
runs over the whole concatenated batch (the zero gradients of the ``true`` half are propagated
like any other), so half of VGG's backward work is spent on images that need none. Running VGG
twice (``pred`` with gradient; ``true`` under ``stop_gradient``) keeps the forward cost and
halves the backward cost.

Timed, interleaved, in ``tf.function``: loss value + gradient with respect to ``pred`` for
(a) the library's loss, (b) the split variant; values and gradients compared. VGG weights are
random (a local file; same arithmetic as ImageNet weights).

Usage::

    python benchmarks/perceptual_loss.py [--batch 2] [--size 256] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()

import numpy as np  # noqa: E402


def split_loss_class():
    from keras import ops

    from synpose_keras.losses.perceptual_pyramid_loss import (
        _CAFFE_MEAN_BGR,
        PerceptualPyramidLoss,
    )

    class SplitPerceptualPyramidLoss(PerceptualPyramidLoss):
        """The proposed ``_vgg_term``: VGG on pred (with gradient) and on true (without)."""

        def _vgg_term(self, y_true, y_pred):
            mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR)
            pred = ops.flip(y_pred * 255.0, axis=-1) - mean
            true = ops.stop_gradient(ops.flip(y_true * 255.0, axis=-1) - mean)
            pred_features = self.vgg(pred, training=False)
            true_features = [ops.stop_gradient(f) for f in self.vgg(true, training=False)]
            total = 0.0
            for weight, p, t in zip(self.layer_weights, pred_features, true_features):
                diff = ops.cast(p, "float32") - ops.cast(t, "float32")
                total += weight * ops.mean(ops.abs(diff), axis=(1, 2, 3))
            return total

    return SplitPerceptualPyramidLoss


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", default="perceptual_loss")
    args = parser.parse_args(argv)

    import tensorflow as tf

    import adapt_iteration
    from synpose_keras.losses import PerceptualPyramidLoss

    tmp = tempfile.mkdtemp(prefix="synpose-bench-")
    vgg = adapt_iteration.vgg_weights_file(tmp)
    library = PerceptualPyramidLoss(vgg_weights=vgg)
    split = split_loss_class()(vgg_weights=vgg)
    rng = np.random.default_rng(0)
    shape = (args.batch, args.size, args.size, 3)
    true = tf.constant(rng.uniform(0, 1, shape).astype("float32"))
    pred = tf.constant(rng.uniform(0, 1, shape).astype("float32"))

    def make(loss):
        @tf.function
        def fn():
            with tf.GradientTape() as tape:
                tape.watch(pred)
                value = tf.reduce_mean(loss.call(true, pred))
            return value, tape.gradient(value, pred)

        return fn

    f_lib, f_split = make(library), make(split)
    (v1, g1), (v2, g2) = f_lib(), f_split()
    check = {"value_library": float(v1), "value_split": float(v2),
             "grad_max_abs_diff": float(tf.reduce_max(tf.abs(g1 - g2))),
             "grad_max_abs": float(tf.reduce_max(tf.abs(g1)))}
    print("check:", check)
    env = _common.environment()
    r = _common.interleave({"library": lambda: f_lib()[0].numpy(),
                            "split": lambda: f_split()[0].numpy()}, args.reps, args.warmup)
    r["speedup"] = _common.ratio(r, "library", "split")
    print("speed-up:", r["speedup"])
    _common.write_result(args.out, {"config": vars(args), "check": check, "timing": r,
                                    "environment": env})


if __name__ == "__main__":
    main()
