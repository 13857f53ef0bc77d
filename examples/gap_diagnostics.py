"""What limits adaptation on a source/target pair: error breakdown and pseudo-label quality.

For a run folder of ``synpose train`` (or of ``synpose ablate``: ``OUT/seed0/shared``) this
measures, with the target's labels (analysis only):

1. **Error breakdown** of a model on labelled splits (default: the run's pre-trained model on the
   source and target test splits): PCK at several thresholds, the median error in heatmap pixels
   and the inversion rate (predictions closer to the mirror-image reading of the pose:
   ``synpose_keras.metrics.inversions``).
2. **The teacher's pseudo-labels on target training views** (the views the adaptation uses:
   whole images, no augmentation; the first ``--batches`` x 32 images in stored order): accuracy at PCK@0.05 of the 2D peaks and of the 3D
   reprojections, separately for inverted and for other samples, the teacher's confidence and
   the M_2D / M_3D rates on each, and the accuracy of what each mask selects.

Two ceilings complete the picture and are training runs, not part of this script (see
docs/results.md): a model trained on the target's labels alone (``synpose train --source
TARGET --target TARGET --stages style,pretrain``) and the adaptation with the target's labels in
place of the teacher's (``synpose ablate --variants oracle-labels``).

Usage::

    python examples/gap_diagnostics.py runs/ablation-hand/seed0/shared [--model M.keras]
        [--batches 8] [--teacher-rotations 4] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def error_breakdown(model, data_dir, split, skeleton, thresholds=(0.05, 0.1, 0.2)):
    """PCK at ``thresholds``, median error (heatmap px) and inversion rate of ``model``."""
    from synpose_keras.datasets.pipeline import eval_pipeline
    from synpose_keras.metrics import heatmap_argmax, inversions, pck
    from synpose_keras.models.forward import forward_function

    preds, gts, valid = [], [], []
    for batch in eval_pipeline(data_dir, input_size=int(model.input_size),
                               heatmap_size=int(model.heatmap_size), batch_size=32, split=split):
        preds.append(heatmap_argmax(np.asarray(forward_function(model)(batch["image"])))[0])
        gts.append(heatmap_argmax(batch["heatmaps"].numpy())[0])
        valid.append(batch["weights"].numpy())
    pred, gt, vis = (np.concatenate(x) for x in (preds, gts, valid))
    size = int(model.heatmap_size)
    ok = pck(pred, gt, vis, heatmap_size=size).valid
    out = {"samples": int(len(pred)),
           "median_error_px": float(np.median(np.linalg.norm(pred - gt, axis=-1)[ok])),
           "inversion_rate": 100.0 * inversions(pred, gt, ok, skeleton).rate}
    for t in thresholds:
        result = pck(pred, gt, vis, threshold=t, heatmap_size=size)
        out[f"pck@{t:g}"] = 100.0 * float(result.correct.sum() / max(result.valid.sum(), 1))
    return out


def teacher_labels(run_dir, config, skeleton, batches=8, teacher_rotations=None):
    """Quality of the pre-trained teacher's pseudo-labels on target training views.

    ``teacher_rotations`` (default: the run's ``adapt.teacher_rotations``) reads the labels off
    the teacher's rotation ensemble (:mod:`synpose_keras.pseudo_labels.ensemble`).
    """
    import keras

    from synpose_keras.datasets.pipeline import AugmentConfig, target_views_pipeline
    from synpose_keras.metrics import inversions
    from synpose_keras.training.adapt_stage import AdaptStage

    path = lambda name: os.path.join(run_dir, "pretrain", name)  # noqa: E731
    predictor = keras.models.load_model(path("pose_predictor.keras"))
    has_3d = os.path.exists(path("lifter.keras"))
    stage = AdaptStage(predictor, predictor, skeleton,
                       lifter=keras.models.load_model(path("lifter.keras")) if has_3d else None,
                       bone_ratios=np.load(path("bone_ratios.npy")) if has_3d else None,
                       pseudo="integrated" if has_3d else "2d", rec=False,
                       mask_fraction=config.adapt.mask_fraction,
                       agreement_px=config.adapt.agreement_px,
                       teacher_rotations=(config.adapt.teacher_rotations
                                          if teacher_rotations is None else teacher_rotations))
    ds = target_views_pipeline(config.target, input_size=config.model.input_size,
                               batch_size=32, seed=config.seed, training=False,
                               crop_from_keypoints=False, student_augment=AugmentConfig.none())
    stride = config.model.input_size / config.model.heatmap_size
    radius = 0.05 * config.model.heatmap_size
    rows = {k: [] for k in ("m2", "m3", "ok2", "ok3", "score", "inverted", "valid")}
    for batch in ds.take(batches):
        labels = stage.pseudo_labels(batch["teacher_image"])
        gt = batch["teacher_keypoints"].numpy()
        valid = batch["teacher_visible"].numpy() > 0
        peaks, rep = np.asarray(labels["keypoints_2d"]), np.asarray(labels["keypoints_3d"])
        rows["ok2"].append(np.linalg.norm(peaks - gt, axis=-1) / stride < radius)
        rows["ok3"].append(np.linalg.norm(rep - gt, axis=-1) / stride < radius)
        rows["m2"].append(np.asarray(labels["mask_2d"]) > 0)
        rows["m3"].append(np.asarray(labels["mask_3d"]) > 0)
        rows["score"].append(np.asarray(labels["scores"]))
        rows["inverted"].append(inversions(peaks, gt, valid, skeleton).inverted)
        rows["valid"].append(valid)
    r = {k: np.concatenate(v) for k, v in rows.items()}
    if not r["valid"].any():
        raise ValueError(f"The target {config.target} has no labelled train split to analyse.")
    out = {"samples": int(len(r["inverted"])), "inverted": float(r["inverted"].mean()),
           "groups": {}, "masks": {}}
    for name, rows_sel in (("inverted", r["inverted"]), ("not inverted", ~r["inverted"])):
        sel = rows_sel[:, None] & r["valid"]
        out["groups"][name] = {k: float(v[sel].mean()) if sel.any() else float("nan")
                               for k, v in (("score", r["score"]), ("mask_2d", r["m2"]),
                                            ("mask_3d", r["m3"]), ("accuracy_2d", r["ok2"]),
                                            ("accuracy_3d", r["ok3"]))}
    for name, mask in (("M_2D", r["m2"]), ("M_3D", r["m3"]), ("M_2D and M_3D", r["m2"] & r["m3"]),
                       ("M_2D or M_3D", r["m2"] | r["m3"])):
        sel = mask & r["valid"]
        out["masks"][name] = {"selected": float(sel.mean()),
                              "accuracy_2d": float(r["ok2"][sel].mean()) if sel.any() else None,
                              "accuracy_3d": float(r["ok3"][sel].mean()) if sel.any() else None}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run folder with pretrain/pose_predictor.keras")
    parser.add_argument("--model", help="model to break down (default: the pre-trained one)")
    parser.add_argument("--batches", type=int, default=8, help="target batches of 32 analysed")
    parser.add_argument("--teacher-rotations", type=int, choices=(1, 2, 4),
                        help="teacher views averaged (default: the run's adapt.teacher_rotations)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()

    import keras

    import synpose_keras  # noqa: F401  (registers the custom objects)
    from synpose_keras.skeletons import get_skeleton
    from synpose_keras.training.configs import load_config

    config = load_config(os.path.join(args.run, "config.json"))
    skeleton = get_skeleton(config.task)
    model_path = args.model or os.path.join(args.run, "pretrain", "pose_predictor.keras")
    model = keras.models.load_model(model_path)
    result = {"model": model_path, "breakdown": {}}
    for name, data in (("source test", config.source), ("target test", config.target)):
        result["breakdown"][name] = error_breakdown(model, data, "test", skeleton)
    result["teacher_on_target_train"] = teacher_labels(args.run, config, skeleton, args.batches,
                                                       args.teacher_rotations)

    print(f"Model {model_path}")
    print("| split | samples | PCK@0.05 | PCK@0.1 | PCK@0.2 | median error (hm px) | inverted % |")
    print("|---|---|---|---|---|---|---|")
    for name, row in result["breakdown"].items():
        print(f"| {name} | {row['samples']} | {row['pck@0.05']:.1f} | {row['pck@0.1']:.1f} | "
              f"{row['pck@0.2']:.1f} | {row['median_error_px']:.2f} | {row['inversion_rate']:.1f} |")
    t = result["teacher_on_target_train"]
    print(f"\nTeacher on {t['samples']} target training views: {100 * t['inverted']:.1f}% inverted")
    print("| samples | confidence | M_2D rate | M_3D rate | 2D label acc. | 3D label acc. |")
    print("|---|---|---|---|---|---|")
    for name, g in t["groups"].items():
        print(f"| {name} | {g['score']:.3f} | {g['mask_2d']:.3f} | {g['mask_3d']:.3f} | "
              f"{g['accuracy_2d']:.3f} | {g['accuracy_3d']:.3f} |")
    print("| mask | selected | 2D label acc. | 3D label acc. |")
    print("|---|---|---|---|")
    for name, m in t["masks"].items():
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"| {name} | {m['selected']:.3f} | {fmt(m['accuracy_2d'])} | "
              f"{fmt(m['accuracy_3d'])} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
