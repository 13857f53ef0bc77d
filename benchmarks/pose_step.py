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
interleaved on the same cores, each in its own child process driven in turn by this one
(since 2026-12-06; ``--same-process`` runs both in this process, as before: PyTorch's step was
slower and erratic there, see benchmarks/README.md, item 1). PyTorch's child runs with glibc
malloc set to keep freed memory (``MALLOC_KEEP``, its best setting here; ``--malloc-keep``).

Target: our training step <= 0.75 x PyTorch's.

Usage::

    python benchmarks/pose_step.py                       # fp32 and bf16, train and infer
    python benchmarks/pose_step.py --precisions fp32 --reps 3
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common

_common.quiet_tensorflow()
# PyTorch's OpenMP threads busy-wait at barriers by default; on a machine shared with other jobs
# (oversubscribed cores) that made its step 4-20x slower in our probes. Passive waiting is its
# best setting here (set before torch is imported; TensorFlow does not use OpenMP).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np


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


def serve(args):
    """Child side of the separate-process protocol: one framework, one precision.

    Prints ``@@ {"weights": n}`` when built, then runs ``train`` or ``infer`` for every such line
    read from stdin and answers ``@@ done`` (the parent times the round trip), until ``quit``.
    """
    b, s, k = args.batch, args.size, args.keypoints
    bf16 = args.precisions == "bf16"
    images, heatmaps, weights = _common.step_inputs(b, s, k)
    if args.serve == "ours":
        model, train, infer = keras_cases(b, s, k, bf16, images, heatmaps, weights)
        count = int(model.count_params())
    else:
        import torch
        import torch_peer

        torch.set_num_threads(os.cpu_count())
        model, train, infer = torch_cases(k, bf16, images, heatmaps, weights,
                                          args.torch_format == "channels_last")
        count = int(torch_peer.parameter_count(model))
    cases = {"train": train, "infer": infer}
    print("@@ " + json.dumps({"weights": count}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        cases[command]()
        print("@@ done", flush=True)


#: glibc malloc settings that keep freed memory in the process: no ``mmap`` for large blocks and
#: no trimming. PyTorch's CPU allocator frees every activation to the C library after each step;
#: with glibc's defaults the large ones go back to the kernel and are faulted in again on the next
#: step (230,000-460,000 minor page faults per PoseResNet-101 step here; ours 25,000-41,000).
#: With these settings its step is ~10% faster (benchmarks/README.md, item 1): PyTorch's best
#: setting here, the effect Intel's CPU tuning guide gets from preloading jemalloc or tcmalloc.
MALLOC_KEEP = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2 ** 36)}


class Served:
    """Parent side: a child process serving one framework's cases (see :func:`serve`)."""

    def __init__(self, framework, args, precision, env=None):
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", framework,
               "--precisions", precision, "--batch", str(args.batch), "--size", str(args.size),
               "--keypoints", str(args.keypoints), "--torch-format", args.torch_format]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        self.info = json.loads(self._answer())

    def _answer(self):
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                return line[3:].strip()
        raise RuntimeError(f"the benchmark child exited (rc {self.proc.wait()})")

    def case(self, mode):
        def run():
            self.proc.stdin.write(mode + "\n")
            self.proc.stdin.flush()
            self._answer()
        return run

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


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
    parser.add_argument("--no-settle", action="store_true",
                        help="do not wait for an idle machine before each timed case")
    parser.add_argument("--same-process", action="store_true",
                        help="run both frameworks in this process (the protocol before "
                             "2026-12-06; PyTorch's step slowed there, see benchmarks/README)")
    parser.add_argument("--malloc-keep", choices=("pytorch", "both", "none"), default="pytorch",
                        help="which child processes run with glibc malloc set to keep freed "
                             "memory (MALLOC_KEEP; PyTorch's best setting here, no gain for ours)")
    parser.add_argument("--serve", choices=("ours", "pytorch"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default="pose_step")
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args)

    import torch
    import torch_peer

    torch.set_num_threads(os.cpu_count())
    b, s, k = args.batch, args.size, args.keypoints
    images, heatmaps, weights = _common.step_inputs(b, s, k)

    result = {"config": vars(args), "runs": {}}
    env = _common.environment({"torch_threads": torch.get_num_threads(),
                               "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
                               "torch_format": args.torch_format,
                               "processes": "same" if args.same_process else "separate",
                               "malloc_keep": None if args.same_process else
                               {"which": args.malloc_keep, "settings": MALLOC_KEEP}})
    for precision in args.precisions.split(","):
        bf16 = precision == "bf16"
        print(f"== {precision}")
        if args.same_process:
            k_model, k_train, k_infer = keras_cases(b, s, k, bf16, images, heatmaps, weights)
            t_model, t_train, t_infer = torch_cases(k, bf16, images, heatmaps, weights,
                                                    args.torch_format == "channels_last")
            counts = {"keras": int(k_model.count_params()),
                      "torch": int(torch_peer.parameter_count(t_model))}
        else:
            # one process per framework, driven in turn: neither shares a process (allocator,
            # thread pools) with the other
            keep = {"ours": args.malloc_keep == "both",
                    "pytorch": args.malloc_keep in ("pytorch", "both")}
            k_model = Served("ours", args, precision, MALLOC_KEEP if keep["ours"] else None)
            t_model = Served("pytorch", args, precision, MALLOC_KEEP if keep["pytorch"] else None)
            k_train, k_infer = k_model.case("train"), k_model.case("infer")
            t_train, t_infer = t_model.case("train"), t_model.case("infer")
            counts = {"keras": k_model.info["weights"], "torch": t_model.info["weights"]}
        if counts["keras"] != counts["torch"]:
            raise RuntimeError(f"The two networks differ: {counts}")
        run = {"weights": counts}
        if "train" in args.modes:
            print(" training step")
            r = _common.interleave({"ours": k_train, "pytorch": t_train}, args.reps, args.warmup,
                                   settle=not args.no_settle)
            r["ratio_ours_over_pytorch"] = _common.ratio(r, "ours", "pytorch")
            run["train"] = r
            print(f"  ratio ours/pytorch: {r['ratio_ours_over_pytorch']}")
        if "infer" in args.modes:
            print(" inference")
            r = _common.interleave({"ours": k_infer, "pytorch": t_infer}, args.reps, args.warmup,
                                   settle=not args.no_settle)
            r["ratio_ours_over_pytorch"] = _common.ratio(r, "ours", "pytorch")
            run["infer"] = r
            print(f"  ratio ours/pytorch: {r['ratio_ours_over_pytorch']}")
        result["runs"][precision] = run
        if args.same_process:
            import keras
            keras.backend.clear_session()
        else:
            k_model.close()
            t_model.close()
        del k_model, k_train, k_infer, t_model, t_train, t_infer
        gc.collect()
    result["environment"] = env
    _common.write_result(args.out, result)


if __name__ == "__main__":
    main()
