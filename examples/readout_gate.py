"""How far the differentiable keypoint readouts are from the argmax on a run's real predictions.

Loads ``RUN/pretrain/pose_predictor.keras`` and the run's target (``RUN/config.json``, key
``target``), predicts the heatmaps of the target's test split through the evaluation pipeline
(``synpose_keras.datasets.pipeline.eval_pipeline``: the protocol crop, as ``synpose evaluate``),
and measures, for every predicted keypoint, the distance in heatmap pixels between the integer
argmax and

- ``local``: :func:`synpose_keras.ops.local_soft_argmax` (the reconstruction path's readout,
  with the model's ``soft_argmax_window`` and ``soft_argmax_local_beta``);
- ``global``: :func:`synpose_keras.ops.soft_argmax` over the whole map (the model's
  ``soft_argmax_beta``).

It prints the median and the 90th percentile of each (all keypoints, and the labelled visible
ones), the fraction beyond the PCK@0.05 radius, and the gate: median ``|local - argmax|`` <= 0.3
heatmap px.

Usage::

    python examples/readout_gate.py runs/demo-hand [--limit 200] [--json readout_gate.json]
"""

from __future__ import annotations

import argparse
import json
import os

def measure(run: str, split: str = "test", limit=None, batch_size: int = 32) -> dict:
    """The readout distances of ``RUN``'s pre-trained predictor on its target's ``split``
    (:func:`synpose_keras.training.diagnose.readout_gate`, which ``synpose diagnose`` runs too)."""
    import keras

    import synpose_keras  # noqa: F401  (registers the custom objects)
    from synpose_keras.datasets import read_meta
    from synpose_keras.training.diagnose import readout_gate

    with open(os.path.join(run, "config.json")) as f:
        target = json.load(f).get("target")
    if not target:
        raise SystemExit(f"{run}/config.json names no target dataset (key 'target')")
    model_path = os.path.join(run, "pretrain", "pose_predictor.keras")
    if not os.path.exists(model_path):
        raise SystemExit(f"{model_path} not found: run the 'pretrain' stage first")
    if split not in read_meta(target)["counts"]:
        raise SystemExit(f"{target} has no {split!r} split")
    model = keras.models.load_model(model_path)
    try:
        result = readout_gate(model, target, split=split, limit=limit, batch_size=batch_size)
    except ValueError as error:
        raise SystemExit(str(error))
    return {"run": run, "model": model_path, "target": target, **result}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run folder with pretrain/pose_predictor.keras and config.json")
    parser.add_argument("--limit", type=int, default=None, help="first N test images only")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default=None, help="write the numbers to this JSON file")
    args = parser.parse_args()

    r = measure(args.run, split=args.split, limit=args.limit, batch_size=args.batch_size)
    print(f"{r['model']} on {r['target']} ({r['split']}, {r['images']} images, "
          f"{r['heatmap_size']}x{r['heatmap_size']} heatmaps, median peak "
          f"{r['peak']['median']:.3f}):")
    print("|readout - argmax| in heatmap px   median    p90   beyond PCK radius "
          f"({r['pck_radius_px']:.1f} px)")
    for name in ("local", "global", "local_visible", "global_visible"):
        s = r[name]
        if s["count"]:
            print(f"  {name:<15} ({s['count']:>6} kp)    {s['median']:6.3f} {s['p90']:6.3f}   "
                  f"{100 * s['beyond_pck_radius']:5.1f}%")
    print(f"gate: median |local - argmax| = {r['local']['median']:.3f} <= {r['gate_px']} heatmap px: "
          f"{'PASS' if r['gate_passed'] else 'FAIL'}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
