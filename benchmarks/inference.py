"""Issue item 6: inference latency for deployment, batch 1 and batch 32.

``PosePredictor.paper()`` (ResNet-101, 256², 21 keypoints; random weights: same arithmetic),
saved as ``.keras`` and exported with ``synpose_keras.inference.export_model`` (the code behind
``synpose export``) as a SavedModel and a TFLite file. Timed, interleaved, fp32:

- ``keras_predict``: ``model.predict(x)`` (what users call; includes its per-call set-up);
- ``predict_keypoints``: ``PosePredictor.predict_keypoints(x)`` (heatmaps + argmax decoding;
  since finding F7 of benchmarks/README.md it runs a cached traced forward for inputs of up to
  one batch of 32);
- ``keras_call``: a ``tf.function`` of ``model(x, training=False)`` (the compiled forward alone);
- ``saved_model``: ``tf.saved_model.load(path).serve(x)``;
- ``tflite``: the ``.tflite`` through ``tf.lite.Interpreter`` with ``num_threads`` = the cores
  (``tflite_default`` too, with the interpreter's default thread setting, which is what
  ``synpose_keras.inference.export.run_artefact`` uses);
- ``pytorch``: the PyTorch peer (``benchmarks/torch_peer.py``) in ``eval()`` +
  ``inference_mode()``, channels-last, in its own process with glibc malloc keeping freed memory
  (its best setting here, as in ``pose_step.py``; since 2026-12-06);
- ``pytorch_same_process``: the same in this process with glibc's defaults (the protocol
  before 2026-12-06).

Usage::

    python benchmarks/inference.py [--batches 1,32] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see pose_step.py

import numpy as np  # noqa: E402


def tflite_runner(path, batch, num_threads):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {} if num_threads is None else {"num_threads": num_threads}
        interpreter = tf.lite.Interpreter(model_path=path, **kwargs)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], [batch] + list(inp["shape"][1:]))
    interpreter.allocate_tensors()
    out = interpreter.get_output_details()[0]

    def run(x):
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pytorch", choices=("both", "separate", "same"), default="both",
                        help="time the peer in its own process (MALLOC_KEEP), in this one, or both")
    parser.add_argument("--out", default="inference")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf
    import torch

    import pose_step
    import torch_peer
    from synpose_keras.inference.export import export_model
    from synpose_keras.models import PosePredictor

    torch.set_num_threads(os.cpu_count())
    tmp = tempfile.mkdtemp(prefix="synpose-bench-infer-")
    model = PosePredictor.paper(input_size=args.size)
    keras_path = os.path.join(tmp, "pose.keras")
    model.save(keras_path)
    exports = {}
    for fmt, name in (("saved_model", "saved_model"), ("tflite", "pose.tflite")):
        info = export_model(keras_path, os.path.join(tmp, name), format=fmt, verify=True)
        exports[fmt] = {"path": info["path"], "max_abs_diff_vs_keras": info["max_abs_diff"]}
        print(f"exported {fmt}: max |diff| vs Keras {info['max_abs_diff']:.2e}")
    loaded = tf.saved_model.load(exports["saved_model"]["path"])
    call = tf.function(lambda x: model(x, training=False))
    if args.pytorch in ("both", "same"):  # the in-process peer (the separate one is a child)
        peer = torch_peer.PoseResNet().to(memory_format=torch.channels_last).eval()
        infer = torch_peer.make_inference(peer)

    result = {"config": vars(args), "exports": exports, "runs": {}}
    env = _common.environment({"torch_threads": torch.get_num_threads(),
                               "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
                               "pytorch_malloc_keep": pose_step.MALLOC_KEEP})
    rng = np.random.default_rng(0)
    for batch in (int(b) for b in args.batches.split(",")):
        x = rng.uniform(0, 255, (batch, args.size, args.size, 3)).astype("float32")
        xt = tf.constant(x)
        xp = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).contiguous(
            memory_format=torch.channels_last)
        lite = tflite_runner(exports["tflite"]["path"], batch, os.cpu_count())
        lite_default = tflite_runner(exports["tflite"]["path"], batch, None)
        cases = {
            "keras_predict": lambda: model.predict(x, batch_size=batch, verbose=0),
            "predict_keypoints": lambda: model.predict_keypoints(x),
            "keras_call": lambda: call(xt).numpy(),
            "saved_model": lambda: loaded.serve(xt)["heatmaps"].numpy(),
            "tflite": lambda: lite(x),
            "tflite_default": lambda: lite_default(x),
        }
        served = None
        if args.pytorch in ("both", "separate"):
            served = pose_step.Served(
                "pytorch", argparse.Namespace(batch=batch, size=args.size, keypoints=21,
                                              torch_format="channels_last"),
                "fp32", pose_step.MALLOC_KEEP)
            cases["pytorch"] = served.case("infer")
        if args.pytorch in ("both", "same"):
            cases["pytorch_same_process"] = lambda: infer(xp).numpy()
        print(f"== batch {batch}")
        r = _common.interleave(cases, args.reps, args.warmup)
        if served is not None:
            served.close()
        for name in cases:
            r[name]["ms_per_image_median"] = round(1000 * r[name]["median"] / batch, 1)
        result["runs"][str(batch)] = r
    result["environment"] = env
    _common.write_result(args.out, result)


if __name__ == "__main__":
    main()
