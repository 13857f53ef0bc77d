"""Issue item 1: the pose network step, ours (Keras/TF) against the PyTorch peer.

The network is ``PosePredictor.paper()`` (ResNet-101 + three deconvolution blocks, 256² input,
21 keypoints) and its layer-for-layer PyTorch twin (``benchmarks/torch_peer.py``; the script
checks that both hold the same number of weights). Batch 8.

- training step: forward, visibility-weighted heatmap MSE, backward, Adam. Ours is the library's
  ``PretrainStage.train_step`` (the step ``synpose train`` runs, without restyling) inside a
  ``tf.function`` as ``fit`` compiles it (no XLA on CPU: Keras' ``jit_compile="auto"``);
  PyTorch's is the usual eager loop.
- inference: forward in inference mode (``tf.function`` of ``model(x, training=False)``;
  ``torch.inference_mode()`` + ``eval()``).

Both precisions: fp32 against fp32, and bf16 against bf16 (Keras ``mixed_bfloat16`` policy;
``torch.autocast("cpu", torch.bfloat16)``), losses in float32. The two frameworks run
interleaved in one process on the same cores.

Target: our training step <= 0.75 x PyTorch's.

Usage::

    python benchmarks/pose_step.py                       # fp32 and bf16, train and infer
    python benchmarks/pose_step.py --precisions fp32 --reps 3
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()
# PyTorch's OpenMP threads busy-wait at barriers by default; on a machine shared with other jobs
# (oversubscribed cores) that made its step 4-20x slower in our probes. Passive waiting is its
# best setting here (set before torch is imported; TensorFlow does not use OpenMP).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402


def keras_cases(batch, size, k, bf16, images, heatmaps, weights):
    import keras
    import tensorflow as tf

    from synpose_keras.models import PosePredictor
    from synpose_keras.training.pretrain_stage import PretrainStage

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if bf16 else "float32")
    model = PosePredictor.paper(num_keypoints=k, input_size=size)
    stage = PretrainStage(model)
    stage.compile(optimizer=keras.optimizers.Adam(1e-4))
    data = {"source": {"image": tf.constant(images), "heatmaps": tf.constant(heatmaps),
                       "weights": tf.constant(weights)}}
    step = tf.function(stage.train_step)
    infer_fn = tf.function(lambda x: model(x, training=False))
    x = tf.constant(images)

    def train():
        return float(step(data)["loss"])

    def infer():
        return infer_fn(x).numpy()

    keras.mixed_precision.set_global_policy("float32")
    return model, train, infer


def torch_cases(k, bf16, images, heatmaps, weights, channels_last):
    import torch

    import torch_peer

    model = torch_peer.PoseResNet(num_keypoints=k)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).contiguous(
        memory_format=fmt)
    y = torch.from_numpy(np.ascontiguousarray(heatmaps.transpose(0, 3, 1, 2)))
    w = torch.from_numpy(weights)
    step = torch_peer.make_train_step(model, optimizer, bf16=bf16)
    infer_fn = torch_peer.make_inference(model, bf16=bf16)

    def train():
        model.train()
        return float(step(x, y, w).detach())

    def infer():
        model.eval()
        return infer_fn(x).float().numpy()

    return model, train, infer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--keypoints", type=int, default=21)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--modes", default="train,infer")
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--torch-format", choices=("channels_last", "contiguous"),
                        default="channels_last",
                        help="PyTorch memory format (channels_last is its faster CPU setting)")
    parser.add_argument("--out", default="pose_step")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf
    import torch

    import torch_peer

    torch.set_num_threads(os.cpu_count())
    rng = np.random.default_rng(0)
    b, s, k = args.batch, args.size, args.keypoints
    images = rng.uniform(0, 255, (b, s, s, 3)).astype("float32")
    heatmaps = rng.uniform(0, 1, (b, s // 4, s // 4, k)).astype("float32")
    weights = np.ones((b, k), "float32")

    result = {"config": vars(args), "runs": {}}
    env = _common.environment({"torch_threads": torch.get_num_threads(),
                               "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
                               "torch_format": args.torch_format})
    for precision in args.precisions.split(","):
        bf16 = precision == "bf16"
        print(f"== {precision}")
        k_model, k_train, k_infer = keras_cases(b, s, k, bf16, images, heatmaps, weights)
        t_model, t_train, t_infer = torch_cases(k, bf16, images, heatmaps, weights,
                                                args.torch_format == "channels_last")
        counts = {"keras": int(k_model.count_params()),
                  "torch": int(torch_peer.parameter_count(t_model))}
        if counts["keras"] != counts["torch"]:
            raise RuntimeError(f"The two networks differ: {counts}")
        run = {"weights": counts}
        if "train" in args.modes:
            print(" training step")
            r = _common.interleave({"ours": k_train, "pytorch": t_train}, args.reps, args.warmup)
            r["ratio_ours_over_pytorch"] = _common.ratio(r, "ours", "pytorch")
            run["train"] = r
            print(f"  ratio ours/pytorch: {r['ratio_ours_over_pytorch']}")
        if "infer" in args.modes:
            print(" inference")
            r = _common.interleave({"ours": k_infer, "pytorch": t_infer}, args.reps, args.warmup)
            r["ratio_ours_over_pytorch"] = _common.ratio(r, "ours", "pytorch")
            run["infer"] = r
            print(f"  ratio ours/pytorch: {r['ratio_ours_over_pytorch']}")
        result["runs"][precision] = run
        del k_model, k_train, k_infer, t_model, t_train, t_infer
        keras.backend.clear_session()
        gc.collect()
    result["environment"] = env
    _common.write_result(args.out, result)


if __name__ == "__main__":
    main()
