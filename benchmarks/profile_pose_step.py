"""Profiling follow-up of issue item 1: where the PoseResNet-101 training step spends its time,
ours against PyTorch, phase by phase.

For batch 8 at 256², interleaved, in one process:

- ``forward``: forward in training mode (BatchNorm batch statistics) + loss;
- ``backward``: forward + loss + gradients (no update);
- ``step``: the full step (+ Adam).

Differences give the backward and the optimizer costs of each framework. ``--fused-bn`` builds
ours with the fused BatchNormalization of ``fused_bn.py``. ``--tf-profile DIR`` also writes a
TensorFlow profiler trace of two of our steps (open with TensorBoard's profile plugin).

Usage::

    python benchmarks/profile_pose_step.py [--precision fp32] [--reps 3] [--fused-bn]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see pose_step.py

import numpy as np  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--fused-bn", action="store_true")
    parser.add_argument("--tf-profile", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf
    import torch

    import torch_peer
    from synpose_keras.models import PosePredictor
    from synpose_keras.training.losses import heatmap_mse

    bf16 = args.precision == "bf16"
    torch.set_num_threads(os.cpu_count())
    rng = np.random.default_rng(0)
    b = args.batch
    images = rng.uniform(0, 255, (b, 256, 256, 3)).astype("float32")
    heatmaps = rng.uniform(0, 1, (b, 64, 64, 21)).astype("float32")
    weights = np.ones((b, 21), "float32")

    # ---- ours
    if args.fused_bn:
        import fused_bn

        bn = keras.layers.BatchNormalization
        bn._original_call = bn.call
        bn.call = fused_bn.fused_call
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
    model = PosePredictor.paper()
    keras.mixed_precision.set_global_policy("float32")
    optimizer = keras.optimizers.Adam(1e-4)
    x, y, w = tf.constant(images), tf.constant(heatmaps), tf.constant(weights)
    variables = model.trainable_variables

    @tf.function
    def k_forward():
        return heatmap_mse(y, model(x, training=True), w)

    @tf.function
    def k_backward():
        with tf.GradientTape() as tape:
            loss = heatmap_mse(y, model(x, training=True), w)
        grads = tape.gradient(loss, variables)
        return loss + 0.0 * tf.add_n([tf.reduce_sum(g) for g in grads])

    @tf.function
    def k_step():
        with tf.GradientTape() as tape:
            loss = heatmap_mse(y, model(x, training=True), w)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    # ---- PyTorch
    fmt = torch.channels_last
    peer = torch_peer.PoseResNet().to(memory_format=fmt).train()
    t_opt = torch.optim.Adam(peer.parameters(), lr=1e-4)
    tx = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).contiguous(
        memory_format=fmt)
    ty = torch.from_numpy(np.ascontiguousarray(heatmaps.transpose(0, 3, 1, 2)))
    tw = torch.from_numpy(weights)

    def t_loss():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = peer(tx)
        return torch_peer.heatmap_mse(pred.float(), ty, tw)

    def t_forward():
        with torch.no_grad():  # training-mode BN, no graph kept (as TF's forward-only function)
            return float(t_loss())

    def t_backward():
        t_opt.zero_grad(set_to_none=True)
        loss = t_loss()
        loss.backward()
        return float(loss.detach())

    def t_step():
        t_opt.zero_grad(set_to_none=True)
        loss = t_loss()
        loss.backward()
        t_opt.step()
        return float(loss.detach())

    cases = {"ours_forward": lambda: float(k_forward()),
             "ours_backward": lambda: float(k_backward()),
             "ours_step": lambda: float(k_step()),
             "pytorch_forward": t_forward, "pytorch_backward": t_backward,
             "pytorch_step": t_step}
    env = _common.environment({"fused_bn": args.fused_bn})
    r = _common.interleave(cases, args.reps, warmup=1)
    phases = {}
    for fw in ("ours", "pytorch"):
        f, bw, st = (r[f"{fw}_{p}"]["median"] for p in ("forward", "backward", "step"))
        phases[fw] = {"forward": round(f, 3), "backward_only": round(bw - f, 3),
                      "optimizer_only": round(st - bw, 3), "step": round(st, 3)}
    r["phases_median"] = phases
    print(phases)
    if args.tf_profile:
        tf.profiler.experimental.start(args.tf_profile)
        for _ in range(2):
            float(k_step())
        tf.profiler.experimental.stop()
    name = args.out or f"profile_pose_step_{args.precision}" + ("_fused_bn" if args.fused_bn else "")
    _common.write_result(name, {"config": vars(args), "timing": r, "environment": env})


if __name__ == "__main__":
    main()
