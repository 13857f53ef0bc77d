"""Inversion errors: predictions that read the pose as its mirror image.

An *inversion* (Ronchi & Perona, "Benchmarking and Error Diagnosis in Multi-Instance Pose
Estimation", ICCV 2017) swaps the keypoints of a symmetric pair: a body's left and right, or, for
a hand, whose chirality is fixed, the finger order (index <-> little, middle <-> ring: the palm
read as the back). Such a pose is confident and internally consistent, so confidence masks and
kinematic constraints (bone ratios, unsigned bend limits) do not reject it, and a teacher's
inverted pseudo-labels train the student towards the same error. The rate is a diagnostic of the
target domain, reported by the evaluation next to PCK.

Shape glossary: N samples, K keypoints.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synpose_keras.skeletons import Skeleton


@dataclasses.dataclass
class InversionResult:
    """Per-sample inversion flags.

    Attributes:
        inverted: bool (N,). The inverted assignment of the GT fits the prediction better.
        counted: bool (N,). The sample has at least two valid keypoints that an inversion moves
            (others are neither inverted nor counted).
    """

    inverted: np.ndarray
    counted: np.ndarray

    @classmethod
    def concatenate(cls, results) -> "InversionResult":
        """One result over the samples of several (e.g. the batches of an evaluation)."""
        results = list(results)
        if not results:
            return cls(inverted=np.zeros(0, bool), counted=np.zeros(0, bool))
        return cls(inverted=np.concatenate([r.inverted for r in results]),
                   counted=np.concatenate([r.counted for r in results]))

    @property
    def rate(self) -> float:
        """Fraction of counted samples that are inverted (NaN when none is counted)."""
        n = int(self.counted.sum())
        return float(self.inverted.sum() / n) if n else float("nan")


def inversions(pred, gt, visible, skeleton: Skeleton) -> InversionResult:
    """Which predictions are closer to the mirror-image reading of the GT than to the GT.

    For every sample, over the keypoints that ``skeleton.inversion_index`` moves and whose GT and
    swapped GT are both valid, the summed distance of the prediction to the GT is compared with
    its summed distance to the GT with the pairs swapped; the sample is inverted when the second
    is strictly smaller.

    Args:
        pred: array-like (N, K, 2). Predicted keypoints (any units, e.g. heatmap pixels).
        gt: array-like (N, K, 2). GT keypoints, same units.
        visible: optional array-like (N, K). GT visibility (> 0 counts). None: all visible.
        skeleton: Skeleton of the keypoints.

    Returns:
        InversionResult.

    Example:

    >>> from synpose_keras.skeletons import BODY16
    >>> gt = np.random.default_rng(0).uniform(0, 64, (1, 16, 2))
    >>> inversions(gt[:, list(BODY16.inversion_index)], gt, None, BODY16).inverted
    array([ True])
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    k = skeleton.num_keypoints
    if gt.ndim != 3 or gt.shape[1:] != (k, 2) or pred.shape != gt.shape:
        raise ValueError(
            f"`pred` and `gt` must both have shape (N, {k}, 2) for {skeleton.name}. "
            f"Received: pred.shape={pred.shape}, gt.shape={gt.shape}"
        )
    perm = np.asarray(skeleton.inversion_index)
    moved = perm != np.arange(k)
    valid = np.ones(gt.shape[:2], bool) if visible is None else np.asarray(visible) > 0
    if valid.shape != gt.shape[:2]:
        raise ValueError(
            f"`visible` must have shape (N, K) = {gt.shape[:2]}. Received: {valid.shape}"
        )
    use = valid & valid[:, perm] & moved[None, :]
    direct = np.linalg.norm(pred - gt, axis=-1)
    swapped = np.linalg.norm(pred - gt[:, perm], axis=-1)
    direct_sum = np.where(use, direct, 0.0).sum(axis=1)
    swapped_sum = np.where(use, swapped, 0.0).sum(axis=1)
    counted = use.sum(axis=1) >= 2
    return InversionResult(inverted=counted & (swapped_sum < direct_sum), counted=counted)
