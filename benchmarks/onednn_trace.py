"""Issue item 1: which oneDNN kernels each framework's PoseResNet-101 training step runs, and for how long.

Both TensorFlow and PyTorch run their CPU convolutions through oneDNN. With ``ONEDNN_VERBOSE=1``
oneDNN prints one line per primitive it executes: kind (convolution, reorder, ...), the kernel
implementation (e.g. ``brg_conv_fwd:avx512_core``), the propagation kind, the shape and the time
in milliseconds. This script runs one training step (batch 8, 256², 21 keypoints) of each
framework in a fresh process with that switch on, after two warm-up steps, and reports:

- per framework, the summed execution time of the oneDNN primitives by kind and by
  implementation (the convolutions' share of the step, measured inside the step itself);
- whether the two frameworks run the *same* convolution implementations on the same shapes
  (the multiset of (implementation, propagation, shape) compared).

Usage::

    python benchmarks/onednn_trace.py                     # fp32
    python benchmarks/onednn_trace.py --precision bf16
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
MARK = "==synpose-measured-step=="


def _mark(text):
    """Writes ``text`` to fd 1 after flushing C stdio (oneDNN prints with printf)."""
    sys.stdout.flush()
    ctypes.CDLL(None).fflush(None)
    os.write(1, (text + "\n").encode())


def child(framework, precision, batch, size, k):
    import _common
    import numpy as np
    _common.quiet_tensorflow()
    import pose_step

    bf16 = precision == "bf16"
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    heatmaps = rng.uniform(0, 1, (batch, size // 4, size // 4, k)).astype("float32")
    weights = np.ones((batch, k), "float32")
    if framework == "tensorflow":
        _, train, _ = pose_step.keras_cases(batch, size, k, bf16, images, heatmaps, weights)
    else:
        import torch
        torch.set_num_threads(os.cpu_count())
        _, train, _ = pose_step.torch_cases(k, bf16, images, heatmaps, weights, True)
    train()
    train()
    _mark(MARK + " start")
    t0 = time.perf_counter()
    train()
    wall = time.perf_counter() - t0
    _mark(MARK + f" end {wall:.4f}")


def parse(path):
    """Sums the executed primitives between the markers of the child's output."""
    inside, wall = False, None
    by_kind = collections.Counter()
    by_impl = collections.Counter()
    conv_set = collections.Counter()
    count = collections.Counter()
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(MARK):
                inside = line.split()[1] == "start"
                if not inside:
                    wall = float(line.split()[2])
                continue
            if not inside or not line.startswith("onednn_verbose"):
                continue
            parts = line.rstrip("\n").split(",")
            # onednn_verbose,v1,primitive,exec,cpu,<kind>,<impl>,<prop>,<descs>,<attrs>,<aux>,<shape>,<ms>
            if len(parts) < 13 or parts[2:4] != ["primitive", "exec"]:
                continue
            kind, impl, prop, shape, ms = parts[5], parts[6], parts[7], parts[-2], float(parts[-1])
            by_kind[kind] += ms
            by_impl[f"{kind} {impl} {prop}"] += ms
            count[kind] += 1
            if kind in ("convolution", "deconvolution"):
                conv_set[(impl, prop, shape)] += 1
    if wall is None:
        raise RuntimeError(f"{path}: the measured step's markers were not found")
    return {"step_wall_s": wall,
            "primitive_s_by_kind": {k: round(v / 1e3, 4) for k, v in by_kind.most_common()},
            "primitive_count_by_kind": dict(count),
            "primitive_s_by_impl": {k: round(v / 1e3, 4) for k, v in by_impl.most_common()},
            "_conv_set": conv_set}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--keypoints", type=int, default=21)
    parser.add_argument("--child", choices=("tensorflow", "pytorch"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.precision, args.batch, args.size, args.keypoints)
        return

    import _common

    env = _common.environment()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for framework in ("tensorflow", "pytorch"):
            log = os.path.join(tmp, f"{framework}.log")
            cmd = [sys.executable, os.path.abspath(__file__), "--child", framework,
                   "--precision", args.precision, "--batch", str(args.batch),
                   "--size", str(args.size), "--keypoints", str(args.keypoints)]
            child_env = dict(os.environ, ONEDNN_VERBOSE="1", OMP_WAIT_POLICY="PASSIVE")
            _common.wait_for_idle()
            with open(log, "w") as out:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True,
                                      env=child_env, check=False)
            if proc.returncode:
                raise RuntimeError(f"{framework} child failed:\n{proc.stderr[-3000:]}")
            runs[framework] = parse(log)
            r = runs[framework]
            conv = sum(v for k, v in r["primitive_s_by_kind"].items()
                       if k in ("convolution", "deconvolution"))
            r["convolution_s"] = round(conv, 4)
            r["convolution_share_of_step"] = round(conv / r["step_wall_s"], 3)
            print(f"{framework}: step {r['step_wall_s']:.3f} s (with verbose output), "
                  f"convolutions {conv:.3f} s ({100 * conv / r['step_wall_s']:.0f}%), "
                  f"by kind {r['primitive_s_by_kind']}")
    a, b = runs["tensorflow"].pop("_conv_set"), runs["pytorch"].pop("_conv_set")
    impls = {fw: sorted({f"{i} {p}" for (i, p, _) in s}) for fw, s in
             (("tensorflow", a), ("pytorch", b))}
    same = {
        "convolution_calls": {"tensorflow": sum(a.values()), "pytorch": sum(b.values())},
        "implementations": impls,
        "identical_implementation_prop_shape_multiset": a == b,
        "only_tensorflow": [list(k) + [v] for k, v in (a - b).items()][:20],
        "only_pytorch": [list(k) + [v] for k, v in (b - a).items()][:20],
    }
    print(json.dumps(same, indent=1)[:3000])
    _common.write_result(args.out or f"onednn_trace_{args.precision}",
                         {"config": vars(args), "runs": runs, "comparison": same,
                          "environment": env})


if __name__ == "__main__":
    main()
