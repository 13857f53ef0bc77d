"""Evaluation with the PCK protocol (docs/protocol.md, "Evaluation protocol"): protocol crop,
argmax of predicted and GT heatmaps, PCK@0.05 of the heatmap size, part groups of the skeleton
(Table A layout).

Options that are not the protocol, reported as such: test-time rotation ensembling
(``rotations``) and DARK sub-pixel decoding of the predictions (``decoding="dark"``)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from synpose_keras.datasets import read_meta
from synpose_keras.metrics import (
    InversionResult,
    PCKAccumulator,
    heatmap_argmax,
    inversions,
    part_group_table,
)
from synpose_keras.models.forward import forward_function
from synpose_keras.ops.heatmaps import check_decoding, dark_refine
from synpose_keras.pseudo_labels.ensemble import check_rotations, ensemble_heatmaps
from synpose_keras.skeletons import get_skeleton


def evaluate_predictor(model, data_dir: str, split: str = "test", batch_size: int = 32,
                       limit: Optional[int] = None, threshold: float = 0.05,
                       rotations: int = 1, decoding: str = "argmax") -> dict:
    """PCK of a PosePredictor on a converted dataset.

    Args:
        model: PosePredictor (or any model mapping (B,S,S,3) [0,255] images to heatmaps, with
            ``input_size`` and ``heatmap_size`` attributes).
        data_dir: str. Converted dataset folder.
        split: str. Split to evaluate. Defaults to "test".
        batch_size: int. Defaults to 32.
        limit: optional int. Evaluate the first N samples only (for per-epoch monitoring).
        threshold: float. PCK threshold as a fraction of the heatmap size. Defaults to 0.05.
        rotations: int. 1 (the protocol): one forward pass per image. 2 or 4: test-time
            ensembling, the heatmaps averaged over the image turned by 0/180 or 0/90/180/270
            degrees (:mod:`synpose_keras.pseudo_labels.ensemble`); not the protocol, report it
            as such.
        decoding: str. "argmax" (the protocol, default; comparable with TLlib's numbers):
            predicted and GT heatmaps are both decoded to their integer argmax. "dark": the
            predicted argmax is refined to sub-pixel precision
            (:func:`synpose_keras.ops.heatmaps.dark_refine`, Zhang et al., CVPR 2020) and
            compared with the same GT argmax; not the protocol, report it as such.

    Returns:
        dict: ``table`` (column -> PCK in %), ``per_keypoint`` (K values in %, NaN where no
        valid sample), ``count`` (samples), ``inversion_rate`` (% of samples whose prediction is
        closer to the mirror-image reading of the GT, :func:`synpose_keras.metrics.inversions`;
        NaN when no sample has the keypoints to tell), ``data``, ``split``, ``threshold``,
        ``rotations``, ``decoding``.
    """

    from synpose_keras.datasets.pipeline import eval_pipeline

    meta = read_meta(data_dir)
    if split not in meta["counts"]:
        raise ValueError(
            f"Split {split!r} not in {data_dir} (available: {sorted(meta['counts'])})."
        )
    skeleton = get_skeleton(meta["skeleton"])
    rotations = check_rotations(rotations, "rotations")
    check_decoding(decoding)
    input_size = int(model.input_size)
    heatmap_size = int(model.heatmap_size)
    forward = forward_function(model)
    ds = eval_pipeline(data_dir, input_size=input_size, heatmap_size=heatmap_size,
                       batch_size=batch_size, split=split)
    if limit is not None:
        ds = ds.unbatch().take(limit).batch(batch_size)
    acc = PCKAccumulator(skeleton.num_keypoints, threshold=threshold, heatmap_size=heatmap_size)
    count = 0
    swaps = []
    for batch in ds:
        pred = ensemble_heatmaps(forward, batch["image"], rotations, input_size // heatmap_size,
                                 heatmap_size)
        if pred.shape[-1] != skeleton.num_keypoints:
            raise ValueError(
                f"The model predicts {pred.shape[-1]} keypoints but {data_dir} uses "
                f"{skeleton.name} ({skeleton.num_keypoints} keypoints)."
            )
        pred = np.asarray(pred)
        pred_kp, pred_max = heatmap_argmax(pred)
        if decoding == "dark":  # maps whose maximum is <= 0 keep the protocol's (0, 0)
            refined = np.asarray(dark_refine(pred, pred_kp), np.float64)
            pred_kp = np.where((pred_max > 0)[..., None], refined, pred_kp)
        gt_kp, _ = heatmap_argmax(batch["heatmaps"].numpy())
        result = acc.add(pred_kp, gt_kp, batch["weights"].numpy())
        swaps.append(inversions(pred_kp, gt_kp, result.valid, skeleton))
        count += int(batch["image"].shape[0])
    per_kp = acc.result()
    return {
        "table": dict(part_group_table(per_kp, skeleton)),
        "per_keypoint": [float(100.0 * v) for v in per_kp],
        "count": count,
        "inversion_rate": 100.0 * InversionResult.concatenate(swaps).rate,
        "data": str(data_dir),
        "split": split,
        "threshold": threshold,
        "rotations": rotations,
        "decoding": decoding,
    }
