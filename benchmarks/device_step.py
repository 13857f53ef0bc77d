"""Issue #21 item 4: the PoseResNet training step on an accelerator, Keras (JAX backend) vs PyTorch.

Run by ``benchmarks/device_check.sh`` (which carries Keras as a wheel and needs no TensorFlow);
one process per part, so that JAX's and PyTorch's GPU allocators never share a device::

    python benchmarks/device_step.py --framework keras --precision bf16 --out parts.jsonl
    python benchmarks/device_step.py --framework pytorch --precision fp32 --out parts.jsonl
    python benchmarks/device_step.py --table parts.jsonl [--result device_check.json]

A part appends one JSON line to ``--out`` and ``--table`` prints the markdown table of all of
them (framework, precision, ms/step median and minimum, ratio Keras/PyTorch, first step,
weights, device).

The step, the same work in both frameworks: forward in training mode, visibility-weighted
heatmap MSE in float32, backward, Adam (lr 1e-4).

- Keras: ``PosePredictor`` from the library under ``KERAS_BACKEND=jax``, its stateless API
  (``model.stateless_call`` + ``optimizer.stateless_apply``, loss ``synpose_keras.losses.HeatmapMSE``)
  inside one ``jax.jit`` with the weights, BatchNorm statistics and optimizer state donated: the
  fastest Keras path on JAX (what ``fit`` compiles, without its callbacks and metrics).
- PyTorch: the layer-for-layer twin ``benchmarks/torch_peer.py`` (plain PyTorch, no
  torchvision), eager, channels-last, ``cudnn.benchmark`` on a GPU.

Precisions: ``fp32`` is each framework's default float32 arithmetic (on a GPU both let
convolutions use TF32 by default: XLA's default precision, ``torch.backends.cudnn.allow_tf32``);
``bf16`` is Keras' ``mixed_bfloat16`` policy against ``torch.autocast(dtype=bfloat16)``, float32
weights and loss in both. Each timed step ends by reading the loss on the host (a device sync).

Sizes come from the command line or from environment variables (the script's defaults are the
paper's network on the issue's batch): ``SYNPOSE_DC_BATCH`` (32), ``SYNPOSE_DC_SIZE`` (256),
``SYNPOSE_DC_KEYPOINTS`` (21), ``SYNPOSE_DC_BACKBONE`` (resnet101; resnet50 and resnet18 also
have a PyTorch twin), ``SYNPOSE_DC_REPS`` (20), ``SYNPOSE_DC_WARMUP`` (3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402  (benchmarks/, light: standard library only)

HERE = os.path.dirname(os.path.abspath(__file__))


def _env_int(name, default):
    return int(os.environ.get(name, default))


def keras_part(args):
    """Builds the jitted Keras/JAX step; returns (step, info)."""
    os.environ["KERAS_BACKEND"] = "jax"
    from functools import partial

    import jax
    import keras
    from keras import ops

    if keras.backend.backend() != "jax":
        raise RuntimeError(f"Keras runs on {keras.backend.backend()!r}, not JAX: "
                           f"KERAS_BACKEND was set before keras was imported")
    from synpose_keras.losses import HeatmapMSE
    from synpose_keras.models import PosePredictor

    keras.mixed_precision.set_global_policy(
        "mixed_bfloat16" if args.precision == "bf16" else "float32")
    model = PosePredictor(num_keypoints=args.keypoints, backbone=args.backbone,
                          input_size=args.size)
    model.build((None, args.size, args.size, 3))
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(model.trainable_variables)
    loss_object = HeatmapMSE()

    def loss_fn(trainable, non_trainable, x, y, w):
        pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_object(y, ops.cast(pred, "float32"), sample_weight=w), non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @partial(jax.jit, donate_argnums=(0, 1, 2))
    def train_step(trainable, non_trainable, opt_vars, x, y, w):
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y, w)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, trainable, non_trainable, opt_vars

    images, heatmaps, weights = _common.step_inputs(args.batch, args.size, args.keypoints)
    device = jax.devices()[0]
    x, y, w = (jax.device_put(a, device) for a in (images, heatmaps, weights))
    # committed to the device like the step's outputs, so the second call reuses the first
    # call's executable (uncommitted inputs compiled it twice: 20 s more on the CPU here)
    state = jax.device_put([[v.value for v in model.trainable_variables],
                            [v.value for v in model.non_trainable_variables],
                            [v.value for v in optimizer.variables]], device)

    def step():
        loss, *new_state = train_step(*state, x, y, w)
        state[:] = new_state
        return float(loss)  # host read: waits for the step

    info = {"weights": int(model.count_params()), "device": f"{device.platform}: "
            f"{getattr(device, 'device_kind', device)}",
            "versions": {"keras": keras.__version__, "jax": jax.__version__,
                         "jaxlib": getattr(sys.modules.get("jaxlib"), "__version__", "?")},
            "tensorflow_imported": "tensorflow" in sys.modules}
    return step, info


def pytorch_part(args):
    """Builds the PyTorch peer's step; returns (step, info)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/README.md, item 1
    import numpy as np
    import torch

    sys.path.insert(0, HERE)
    import torch_peer

    blocks = {"resnet101": torch_peer.RESNET101_BLOCKS, "resnet50": torch_peer.RESNET50_BLOCKS,
              "resnet18": None}
    if args.backbone not in blocks:
        raise SystemExit(f"the PyTorch peer has no {args.backbone} (resnet101, resnet50, "
                         f"resnet18)")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(os.cpu_count())
    fmt = torch.channels_last
    if args.backbone == "resnet18":
        model = torch_peer.PoseResNet(num_keypoints=args.keypoints, basic=True)
    else:
        model = torch_peer.PoseResNet(num_keypoints=args.keypoints, blocks=blocks[args.backbone])
    model = model.to(device=device, memory_format=fmt).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images, heatmaps, weights = _common.step_inputs(args.batch, args.size, args.keypoints)
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)
    x = x.contiguous(memory_format=fmt)
    y = torch.from_numpy(np.ascontiguousarray(heatmaps.transpose(0, 3, 1, 2))).to(device)
    w = torch.from_numpy(weights).to(device)
    train_step = torch_peer.make_train_step(model, optimizer, bf16=args.precision == "bf16",
                                            device_type=device.type)

    def step():
        return float(train_step(x, y, w).detach())  # host read: waits for the step

    name = torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu"
    info = {"weights": int(torch_peer.parameter_count(model)), "device": f"{device.type}: {name}",
            "versions": {"torch": torch.__version__},
            "flags": {"channels_last": True, "cudnn_benchmark": cuda,
                      "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
                      "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32)},
            "tensorflow_imported": "tensorflow" in sys.modules}
    return step, info


def run_part(args):
    t0 = time.perf_counter()
    step, info = (keras_part if args.framework == "keras" else pytorch_part)(args)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loss = step()
    first_s = time.perf_counter() - t0  # compilation (JAX) or autotuning (cuDNN) included
    for _ in range(max(0, args.warmup - 1)):
        loss = step()
    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    record = {"framework": args.framework, "precision": args.precision, "batch": args.batch,
              "size": args.size, "keypoints": args.keypoints, "backbone": args.backbone,
              "reps": args.reps, "warmup": args.warmup, "build_s": round(build_s, 3),
              "first_step_s": round(first_s, 3), "times_s": [round(t, 5) for t in times],
              "median_ms": round(1000 * statistics.median(times), 3),
              "min_ms": round(1000 * min(times), 3), "last_loss": loss,
              "python": platform.python_version(), **info}
    line = json.dumps(record)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    print("@@ " + line, flush=True)
    return record


def table(records):
    """The markdown table of the parts (one row per framework and precision)."""
    rows = ["| framework | precision | ms/step (median) | ms/step (min) | ratio Keras/PyTorch "
            "(median) | first step (s) | weights | device |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    peer = {r["precision"]: r for r in records
            if r.get("framework") == "pytorch" and "median_ms" in r}
    label = {"keras": "Keras 3 (JAX backend)", "pytorch": "PyTorch (peer)"}
    for r in records:
        name = label.get(r.get("framework"), r.get("framework"))
        if "median_ms" not in r:
            rows.append(f"| {name} | {r.get('precision')} | failed: {r.get('error', '?')} "
                        f"| | | | | |")
            continue
        p = peer.get(r["precision"])
        ratio = f"{r['median_ms'] / p['median_ms']:.2f}" if p else "n/a"
        rows.append(f"| {name} | {r['precision']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} "
                    f"| {ratio} | {r['first_step_s']:.1f} | {r['weights']:,} | {r['device']} |")
    return "\n".join(rows)


def print_table(path, result=None):
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    order = {("keras", "fp32"): 0, ("pytorch", "fp32"): 1, ("keras", "bf16"): 2,
             ("pytorch", "bf16"): 3}
    records.sort(key=lambda r: order.get((r.get("framework"), r.get("precision")), 9))
    ok = [r for r in records if "median_ms" in r]
    if ok:
        r = ok[0]
        print(f"PoseResNet ({r['backbone']}, {r['size']}x{r['size']} input, {r['keypoints']} "
              f"keypoints), batch {r['batch']}: forward + backward + Adam, {r['reps']} timed "
              f"steps after {r['warmup']} warm-up")
    print(table(records))
    counts = {r["weights"] for r in ok}
    if len(counts) > 1:
        print(f"WARNING: the two networks differ in size: {sorted(counts)} weights")
    if result:
        data = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                "machine": platform.node(), "parts": records}
        os.makedirs(os.path.dirname(os.path.abspath(result)), exist_ok=True)
        with open(result, "w") as f:
            json.dump(data, f, indent=2)
        print(f"wrote {result}")
    return 0 if ok and len(ok) == len(records) and len(counts) == 1 else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--framework", choices=("keras", "pytorch"))
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch", type=int, default=_env_int("SYNPOSE_DC_BATCH", 32))
    parser.add_argument("--size", type=int, default=_env_int("SYNPOSE_DC_SIZE", 256))
    parser.add_argument("--keypoints", type=int, default=_env_int("SYNPOSE_DC_KEYPOINTS", 21))
    parser.add_argument("--backbone", default=os.environ.get("SYNPOSE_DC_BACKBONE", "resnet101"))
    parser.add_argument("--reps", type=int, default=_env_int("SYNPOSE_DC_REPS", 20))
    parser.add_argument("--warmup", type=int, default=_env_int("SYNPOSE_DC_WARMUP", 3))
    parser.add_argument("--out", help="append the part's JSON line to this file")
    parser.add_argument("--table", metavar="PARTS", help="print the table of a parts file")
    parser.add_argument("--result", help="with --table: also write the parts as one JSON file")
    args = parser.parse_args(argv)
    if args.table:
        return print_table(args.table, args.result)
    if not args.framework:
        parser.error("--framework or --table is required")
    run_part(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
