"""Issue item 4: ``synpose_keras.ops.grid_sample`` against ``keras.ops.image.map_coordinates``.

An 8×64×64×256 feature map (the generator's warped features at 1/4 of 256²) sampled at a random
grid of the same size, bilinear, zero padding, align_corners=True; forward alone and forward +
backward (gradients with respect to the feature map and to the grid). Both run inside a
``tf.function`` (graph mode, as in training), interleaved.

``map_coordinates`` has no batch or channel axis: the only one-call way to sample a batched
multi-channel map is to give it coordinates for all four axes (batch index, y, x, channel
index), shape (4, B, h, w, C); integer batch/channel coordinates make its 4-D linear
interpolation exact. The values and both gradients are compared.

Target: grid_sample >= 5x faster, equal values.

Usage::

    python benchmarks/warp.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()

import numpy as np  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="8,64,64,256", help="B,H,W,C")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--check-only", action="store_true", help="values and gradients only")
    parser.add_argument("--out", default="warp")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf
    from keras import ops

    from synpose_keras.ops.warp import grid_sample, make_coordinate_grid

    b, h, w, c = (int(v) for v in args.shape.split(","))
    rng = np.random.default_rng(0)
    image = tf.constant(rng.standard_normal((b, h, w, c)).astype("float32"))
    identity = np.broadcast_to(np.asarray(make_coordinate_grid(h, w)), (b, h, w, 2))
    # a smooth random deformation, some of it outside [-1, 1] (zero padding is exercised)
    grid = (identity * 1.1 + rng.normal(0, 0.05, (b, h, w, 2))).astype("float32")
    # Bilinear sampling has a kink at integer pixel positions; there the two ops may take
    # different one-sided derivatives (grid_sample snaps positions within 1e-6 x size of an
    # integer to it, by design). Keep the grid >= 1e-3 px away from integers so that the
    # gradient comparison is about the ops, not about which side of a kink they pick.
    size = np.array([w, h], "float32")
    pixel = (grid + 1.0) * (size - 1.0) / 2.0
    near = np.abs(pixel - np.round(pixel)) < 1e-3
    pixel = np.where(near, np.round(pixel) + 2e-3, pixel)
    nudged = int(near.sum())
    grid = tf.constant((2.0 * pixel / (size - 1.0) - 1.0).astype("float32"))
    upstream = tf.constant(rng.standard_normal((b, h, w, c)).astype("float32"))

    def ours(img, g):
        return grid_sample(img, g)

    def keras_map_coordinates(img, g):
        shape = ops.shape(img)
        hh, ww, cc = shape[1], shape[2], shape[3]
        x = (g[..., 0] + 1.0) * ops.cast(ww - 1, "float32") / 2.0  # (B, h, w)
        y = (g[..., 1] + 1.0) * ops.cast(hh - 1, "float32") / 2.0
        full = (b, h, w, c)
        bi = ops.broadcast_to(ops.reshape(ops.arange(b, dtype="float32"), (b, 1, 1, 1)), full)
        ci = ops.broadcast_to(ops.reshape(ops.arange(c, dtype="float32"), (1, 1, 1, c)), full)
        coords = ops.stack([bi, ops.broadcast_to(y[..., None], full),
                            ops.broadcast_to(x[..., None], full), ci])
        return keras.ops.image.map_coordinates(img, coords, order=1, fill_mode="constant",
                                               fill_value=0.0)

    def forward(fn):
        f = tf.function(fn)
        return lambda: f(image, grid).numpy(), f

    def backward(fn):
        @tf.function
        def f(img, g):
            with tf.GradientTape() as tape:
                tape.watch([img, g])
                out = fn(img, g)
                loss = tf.reduce_sum(out * upstream)
            return tape.gradient(loss, [img, g])

        return lambda: [t.numpy() for t in f(image, grid)], f

    cases_fwd = {"grid_sample": forward(ours), "map_coordinates": forward(keras_map_coordinates)}
    cases_bwd = {"grid_sample": backward(ours), "map_coordinates": backward(keras_map_coordinates)}

    # equal values (and gradients)
    out_a = cases_fwd["grid_sample"][0]()
    out_b = cases_fwd["map_coordinates"][0]()
    ga, gb = cases_bwd["grid_sample"][0](), cases_bwd["map_coordinates"][0]()
    check = {
        "forward_max_abs_diff": float(np.max(np.abs(out_a - out_b))),
        "grad_image_max_abs_diff": float(np.max(np.abs(ga[0] - gb[0]))),
        "grad_grid_max_abs_diff": float(np.max(np.abs(ga[1] - gb[1]))),
        "grad_grid_max_abs": float(np.max(np.abs(ga[1]))),
        "forward_max_abs": float(np.max(np.abs(out_a))),
        "grid_values_nudged_off_integers": nudged,
    }
    print("values:", check)

    result = {"config": vars(args), "check": check}
    if args.check_only:
        result["environment"] = _common.environment()
        _common.write_result(args.out + "_check", result)
        return
    env = _common.environment()
    print("== forward")
    r = _common.interleave({k: v[0] for k, v in cases_fwd.items()}, args.reps, args.warmup)
    r["speedup"] = _common.ratio(r, "map_coordinates", "grid_sample")
    result["forward"] = r
    print("  speed-up:", r["speedup"])
    print("== forward + backward")
    r = _common.interleave({k: v[0] for k, v in cases_bwd.items()}, args.reps, args.warmup)
    r["speedup"] = _common.ratio(r, "map_coordinates", "grid_sample")
    result["forward_backward"] = r
    print("  speed-up:", r["speedup"])
    result["environment"] = env
    _common.write_result(args.out, result)


if __name__ == "__main__":
    main()
