"""Issue item 1, bounded: how fast can a PoseResNet-101 training step be on this machine?

Item 1 asks for our training step (batch 8, 256², 21 keypoints) to take at most 0.75 x the
PyTorch peer's. This script measures, in one run and on the same cores, what bounds any
implementation of that *same network* here:

- **arithmetic**: the multiply-adds of every convolution of ``PosePredictor.paper()``, counted
  from the layers' kernels and the activation shapes of a real forward pass. A training step
  does each convolution's forward, its weight gradient and its input gradient (all but the first
  convolution, whose input is the image): ``3 F - F_conv1`` multiply-adds, 2 FLOP each.
- **the machine's matrix-multiply peak**: the best GFLOP/s of a large square matmul, fp32 and
  bf16, in TensorFlow and in PyTorch (the best any convolution kernel can hope for: a
  convolution is a matmul plus data movement).
- **the convolutions alone**: every convolution of the network, forward and both gradients, at
  its own input shape, with nothing else (no BatchNormalization, ReLU, loss or optimizer): ours
  (the Keras layers themselves under ``tf.function``, the calls the step makes) and PyTorch's
  (the peer's ``nn.Conv2d`` / ``nn.ConvTranspose2d`` modules, channels-last).
- **the full steps**, ours and PyTorch's, as ``pose_step.py --same-process`` times them,
  interleaved with the above. In one process PyTorch's step ran slower and erratically on
  2026-12-06 (benchmarks/README.md, item 1), so the derived ``target_step_s`` here is generous
  to us; the item-1 verdict takes PyTorch's step from ``pose_step.py`` (one process per
  framework).

From these: the GFLOP/s each step sustains, the share of each step that is convolution, and the
GFLOP/s (and fraction of the matmul peak) that a step taking 0.75 x PyTorch's would have to
sustain.

Usage::

    python benchmarks/roofline.py                      # fp32 and bf16, 3 repetitions
    python benchmarks/roofline.py --precisions fp32 --reps 2
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

_common.quiet_tensorflow()
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as pose_step.py (see benchmarks/README)

import numpy as np

TARGET = 0.75


# --------------------------------------------------------------------------------- counting
def conv_layers(model):
    """The model's convolution layers in forward order, each with its input shape (batch 1).

    Shapes come from a real forward pass of one zero image through the backbone, then the head's
    ``compute_output_shape`` chain (the head is a plain sequence).
    """
    import keras

    kinds = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
    convs = [layer for layer in model.backbone.layers if isinstance(layer, kinds)]
    probe = keras.Model(model.backbone.inputs, [layer.input for layer in convs]
                        + [model.backbone.outputs[0]])
    size = model.input_size
    values = probe([np.zeros((1, size, size, 3), "float32")])
    found = [(layer, tuple(v.shape[1:])) for layer, v in zip(convs, values[:-1])]
    shape = (1,) + tuple(values[-1].shape[1:])
    for layer in model.head_layers + [model.final_conv]:
        if isinstance(layer, kinds):
            found.append((layer, tuple(shape[1:])))
        shape = tuple(layer.compute_output_shape(shape))
    return found


def layer_macs(layer, input_shape):
    """Multiply-adds of one image through ``layer`` (Conv2D or Conv2DTranspose, groups 1)."""
    import keras

    kh, kw, a, b = layer.kernel.shape
    if isinstance(layer, keras.layers.Conv2DTranspose):
        # every input pixel meets every tap of the kernel: H_in W_in kh kw C_in C_out
        return int(np.prod(input_shape[:2])) * kh * kw * a * b
    out = layer.compute_output_shape((1,) + tuple(input_shape))
    return int(np.prod(out[1:3])) * kh * kw * a * b


def step_flops(model, batch):
    convs = conv_layers(model)
    macs = [layer_macs(layer, shape) for layer, shape in convs]
    forward = sum(macs)
    train = 3 * forward - macs[0]  # no input gradient for the first convolution
    return {"convolutions": len(convs), "forward_gmac_per_image": round(forward / 1e9, 4),
            "first_conv_gmac_per_image": round(macs[0] / 1e9, 4),
            "train_step_gflop": round(2 * train * batch / 1e9, 2),
            "forward_gflop": round(2 * forward * batch / 1e9, 2)}


# ----------------------------------------------------------------------------- matmul peak
def matmul_peaks(n, reps):
    """Best GFLOP/s of an n x n x n matmul (10 chained per timed call), per framework and dtype."""
    import tensorflow as tf
    import torch

    flop = 2 * n ** 3 * 10
    out = {}
    for dtype in ("float32", "bfloat16"):
        a = tf.random.normal((n, n), dtype=tf.float32)
        a = tf.cast(a, dtype)

        @tf.function
        def tf_mm(a=a, dtype=dtype):
            c = a
            for _ in range(10):
                c = tf.linalg.matmul(a, c) * tf.constant(1e-3, dtype)  # keep values bounded
            return c[0, 0]

        ta = torch.randn(n, n, dtype=getattr(torch, dtype))

        def torch_mm(ta=ta):
            c = ta
            for _ in range(10):
                c = torch.mm(ta, c) * 1e-3
            return float(c[0, 0])

        for name, fn in (("tensorflow", lambda: float(tf_mm())), ("pytorch", torch_mm)):
            fn()
            best = min(_timed(fn) for _ in range(reps))
            out[f"{name}_{dtype}"] = round(flop / best / 1e9, 1)
    return out


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------ convolutions only
def keras_convs(model, batch, bf16, rng):
    """One callable: every convolution of ``model`` forward + gradients, at its input shape."""
    import tensorflow as tf

    convs = conv_layers(model)
    dtype = "bfloat16" if bf16 else "float32"
    xs, dys = [], []
    for layer, shape in convs:
        x = rng.standard_normal((batch,) + shape).astype("float32")
        y_shape = tuple(layer.compute_output_shape((batch,) + shape))
        xs.append(tf.constant(x, dtype))
        dys.append(tf.constant(rng.standard_normal(y_shape).astype("float32"), dtype))

    @tf.function
    def run():
        acc = []
        for i, (layer, _) in enumerate(convs):
            x = xs[i]
            with tf.GradientTape() as tape:
                if i:
                    tape.watch(x)
                y = layer(x, training=True)
            sources = ([x] if i else []) + list(layer.trainable_variables)
            grads = tape.gradient(y, sources, output_gradients=tf.cast(dys[i], y.dtype))
            # the forward output is not needed by the gradients of a linear op: use it, or
            # the graph optimizer prunes the forward convolution
            acc.append(tf.add_n([tf.reduce_sum(tf.cast(t[..., :1], "float32"))
                                 for t in [y] + grads]))
        return tf.add_n(acc)

    return lambda: float(run())


def torch_convs(peer, batch, bf16, rng, size):
    """The same for the PyTorch peer's convolution modules (channels-last, autocast for bf16)."""
    import torch
    from torch import nn

    modules = [m for m in peer.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    shapes = {}

    def record(mod, inp, out):  # returns None: the output is left alone
        shapes.setdefault(mod, (tuple(inp[0].shape), tuple(out.shape)))

    hooks = [m.register_forward_hook(record) for m in modules]
    with torch.no_grad():
        peer.eval()
        peer(torch.zeros(1, 3, size, size))
        peer.train()
    for h in hooks:
        h.remove()
    if len(shapes) != len(modules):
        raise RuntimeError("some convolutions of the peer did not run")
    cl = torch.channels_last
    dt = torch.bfloat16 if bf16 else torch.float32
    cases = []
    for i, m in enumerate(modules):
        (_, c, h, w), (_, co, ho, wo) = shapes[m]
        x = torch.from_numpy(rng.standard_normal((batch, c, h, w)).astype("float32"))
        x = x.contiguous(memory_format=cl).requires_grad_(i > 0)
        dy = torch.from_numpy(rng.standard_normal((batch, co, ho, wo)).astype("float32"))
        cases.append((m, x, dy.to(dt).contiguous(memory_format=cl)))

    def run():
        total = 0.0
        for m, x, dy in cases:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = m(x)
            y.backward(dy)
            total += float(m.weight.grad[:1].sum()) + float(y[:1, :1].detach().float().sum())
            m.zero_grad(set_to_none=True)
            x.grad = None
        return total

    return run, len(modules)


# ------------------------------------------------------------------------------------ main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--keypoints", type=int, default=21)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--out", default="roofline")
    args = parser.parse_args(argv)

    import keras
    import pose_step
    import torch
    import torch_peer

    from synpose_keras.models import PosePredictor

    torch.set_num_threads(os.cpu_count())
    b, s, k = args.batch, args.size, args.keypoints
    images, heatmaps, weights = pose_step._inputs(b, s, k)
    rng = np.random.default_rng(1)  # the convolutions' random inputs

    result = {"config": vars(args)}
    env = _common.environment({"torch_threads": torch.get_num_threads(),
                               "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")})
    flops = step_flops(PosePredictor.paper(num_keypoints=k, input_size=s), b)
    keras.backend.clear_session()
    result["flops"] = flops
    print(f"arithmetic: {flops}")
    _common.wait_for_idle()
    peaks = matmul_peaks(args.matmul_size, reps=5)
    result["matmul_peak_gflops"] = peaks
    print(f"matmul peaks (GFLOP/s): {peaks}")

    result["runs"] = {}
    for precision in args.precisions.split(","):
        bf16 = precision == "bf16"
        print(f"== {precision}")
        k_model, k_train, _ = pose_step.keras_cases(b, s, k, bf16, images, heatmaps, weights)
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
        k_convs = keras_convs(k_model, b, bf16, rng)
        keras.mixed_precision.set_global_policy("float32")
        t_model, t_train, _ = pose_step.torch_cases(k, bf16, images, heatmaps, weights, True)
        t_convs, n_torch = torch_convs(t_model, b, bf16, rng, s)
        if n_torch != flops["convolutions"]:
            raise RuntimeError(f"convolutions: ours {flops['convolutions']}, peer {n_torch}")
        if k_model.count_params() != torch_peer.parameter_count(t_model):
            raise RuntimeError("the two networks differ in size")
        r = _common.interleave({"ours_step": k_train, "pytorch_step": t_train,
                                "ours_convs": k_convs, "pytorch_convs": t_convs},
                               args.reps, warmup=1)
        gflop = flops["train_step_gflop"]
        peak = max(peaks[f"tensorflow_{'bfloat16' if bf16 else 'float32'}"],
                   peaks[f"pytorch_{'bfloat16' if bf16 else 'float32'}"])
        med = {name: r[name]["median"] for name in
               ("ours_step", "pytorch_step", "ours_convs", "pytorch_convs")}
        target_s = TARGET * med["pytorch_step"]
        derived = {
            "gflops_sustained": {n: round(gflop / t, 1) for n, t in med.items()},
            "conv_share_of_step": {
                "ours": round(med["ours_convs"] / med["ours_step"], 3),
                "pytorch": round(med["pytorch_convs"] / med["pytorch_step"], 3)},
            "matmul_peak_gflops": peak,
            "target_step_s": round(target_s, 3),
            "target_gflops_needed": round(gflop / target_s, 1),
            "target_fraction_of_matmul_peak": round(gflop / target_s / peak, 3),
            "floor_at_matmul_peak_s": round(gflop / peak, 3),
            "ours_convs_over_target": round(med["ours_convs"] / target_s, 3),
            "ratio_ours_over_pytorch_step": round(med["ours_step"] / med["pytorch_step"], 3),
        }
        r["derived"] = derived
        result["runs"][precision] = r
        print(f"  {derived}")
        del k_model, k_train, k_convs, t_model, t_train, t_convs
        keras.backend.clear_session()
        gc.collect()
    result["environment"] = env
    _common.write_result(args.out, result)


if __name__ == "__main__":
    main()
