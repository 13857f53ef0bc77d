"""Part of issue item 2: the VGG-19 perceptual pyramid loss, as first written (one VGG pass on the
concatenated batch) and as the library now computes it (finding F3 of benchmarks/README.md applied).

The first ``PerceptualPyramidLoss._vgg_term`` ran VGG-19 once on ``concat([pred, true])`` and
stopped the gradient of the ``true`` features afterwards. The backward pass of every VGG layer
then still ran over the whole concatenated batch (the zero gradients of the ``true`` half are
propagated like any other), so half of VGG's backward work was spent on images that need none.
The library now runs VGG twice (``pred`` with gradient; ``true`` under ``stop_gradient``): the
same forward cost, half the backward cost.

Timed, interleaved, in ``tf.function``: loss value + gradient with respect to ``pred`` for
(a) ``concatenated``: the first formulation (kept here as a subclass), (b) ``library``; values and
gradients compared. VGG weights are random (a local file; same arithmetic as ImageNet weights).

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


def concatenated_loss_class():
    from keras import ops

    from synpose_keras.losses.perceptual_pyramid_loss import (
        _CAFFE_MEAN_BGR,
        PerceptualPyramidLoss,
    )

    class ConcatenatedPerceptualPyramidLoss(PerceptualPyramidLoss):
        """The first ``_vgg_term``: VGG once on concat([pred, true]), true features stopped."""

        def _vgg_term(self, y_true, y_pred):
            batch = ops.shape(y_pred)[0]
            both = ops.concatenate([y_pred, y_true], axis=0) * 255.0
            both = ops.flip(both, axis=-1) - ops.convert_to_tensor(_CAFFE_MEAN_BGR)
            total = 0.0
            for weight, feature in zip(self.layer_weights, self.vgg(both, training=False)):
                feature = ops.cast(feature, "float32")
                pred_f, true_f = feature[:batch], ops.stop_gradient(feature[batch:])
                total += weight * ops.mean(ops.abs(pred_f - true_f), axis=(1, 2, 3))
            return total

    return ConcatenatedPerceptualPyramidLoss


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
    concatenated = concatenated_loss_class()(vgg_weights=vgg)
    library = PerceptualPyramidLoss(vgg_weights=vgg)
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

    f_cat, f_lib = make(concatenated), make(library)
    (v1, g1), (v2, g2) = f_cat(), f_lib()
    check = {"value_concatenated": float(v1), "value_library": float(v2),
             "grad_max_abs_diff": float(tf.reduce_max(tf.abs(g1 - g2))),
             "grad_max_abs": float(tf.reduce_max(tf.abs(g1)))}
    print("check:", check)
    env = _common.environment()
    r = _common.interleave({"concatenated": lambda: f_cat()[0].numpy(),
                            "library": lambda: f_lib()[0].numpy()}, args.reps, args.warmup)
    r["speedup"] = _common.ratio(r, "concatenated", "library")
    print("speed-up:", r["speedup"])
    _common.write_result(args.out, {"config": vars(args), "check": check, "timing": r,
                                    "environment": env})


if __name__ == "__main__":
    main()
