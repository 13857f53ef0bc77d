"""PCK (percentage of correct keypoints) in the protocol of TLlib / UniFrame (numpy).

The protocol (docs/protocol.md, "Evaluation protocol") that every synthetic-to-real pose paper
reports:

- predicted location = argmax of the predicted heatmap, GT location = argmax of the GT heatmap,
  both in *heatmap pixels*; a heatmap whose maximum is <= 0 decodes to (0, 0) (TLlib's
  ``get_max_preds``), so an all-zero GT map never counts;
- a keypoint is correct when its distance to the GT is < ``threshold × heatmap size``
  (0.05 × 64 = 3.2 heatmap pixels, i.e. 12.8 px at 256 input). It is *not* normalised by the
  bounding box or the torso;
- only GT keypoints with x > 1 and y > 1 (heatmap pixels) that are visible count ("valid");
- per keypoint: fraction correct among valid samples (NaN when a keypoint has no valid sample);
- part group: mean of its keypoints (see ``synpose_keras.metrics.table``).

For non-square heatmaps the offsets are normalised per axis, ``sqrt((dx/W)² + (dy/H)²) <
threshold``, which is exactly ``distance < threshold × size`` for square maps.

Difference with TLlib, on purpose: TLlib averages *per-batch* group accuracies weighted by the batch
size (and a keypoint without a valid sample in a batch enters its group as -1). Here correct and
valid counts are accumulated over the whole evaluation set (``PCKAccumulator``), so the number does
not depend on the batch size.

Shape glossary: N samples, K keypoints, H×W heatmap size.

Example:

```python
from synpose_keras.metrics import pck, pck_from_heatmaps

result = pck(pred, gt, visible, threshold=0.05, heatmap_size=64)  # pred, gt: (N, K, 2)
result.per_keypoint   # (K,) accuracy in [0, 1], NaN where no valid sample
result.correct        # (N, K) bool, False where not valid
result.valid          # (N, K) bool
result = pck_from_heatmaps(pred_heatmaps, gt_heatmaps, visible)   # (N, H, W, K) heatmaps
```

Reference:
    Lin et al., "Synthetic-to-Real Pose Estimation with Geometric Reconstruction", NeurIPS 2023,
    supplementary Table A (PCK@0.05); Jiang et al., "Regressive Domain Adaptation for Unsupervised
    Keypoint Detection" (RegDA, CVPR 2021), TLlib ``keypoint_detection.accuracy``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "PCKResult",
    "pck",
    "pck_from_heatmaps",
    "heatmap_argmax",
    "heatmap_size_pair",
]


class PCKResult(NamedTuple):
    """Per-keypoint PCK and the per-sample masks it was computed from.

    Attributes:
        per_keypoint: float64 array (K,). Fraction of valid samples that are correct, in [0, 1];
            NaN for a keypoint without any valid sample.
        correct: bool array (N, K). True where the sample is valid *and* within the threshold.
        valid: bool array (N, K). True where the GT is visible and has x > 1 and y > 1.
    """

    per_keypoint: np.ndarray
    correct: np.ndarray
    valid: np.ndarray


def heatmap_size_pair(heatmap_size) -> tuple:
    """Returns ``(width, height)`` from an int or a ``(width, height)`` pair, validated."""
    if np.ndim(heatmap_size) == 0:
        size = (heatmap_size, heatmap_size)
    else:
        size = tuple(heatmap_size)
    if len(size) != 2 or not all(np.isfinite(s) and s > 0 for s in size):
        raise ValueError(
            "`heatmap_size` must be a positive number or a (width, height) pair of positive "
            f"numbers. Received: heatmap_size={heatmap_size!r}"
        )
    return float(size[0]), float(size[1])


def _check_threshold(threshold):
    if not (np.ndim(threshold) == 0 and np.isfinite(threshold) and threshold > 0):
        raise ValueError(
            f"`threshold` must be a positive number. Received: threshold={threshold!r}"
        )


def _visible_mask(visible, shape) -> np.ndarray:
    if visible is None:
        return np.ones(shape, dtype=bool)
    visible = np.asarray(visible)
    if visible.shape != shape:
        raise ValueError(
            f"`visible` must have shape (N, K) = {shape}. Received: visible.shape={visible.shape}"
        )
    return visible > 0


def pck(pred, gt, visible=None, threshold: float = 0.05, heatmap_size=64) -> PCKResult:
    """PCK of predicted against GT keypoints given in heatmap pixels.

    Args:
        pred: array-like (N, K, 2). Predicted (x, y) in heatmap pixels (argmax of the predicted
            heatmap in the protocol). NaN predictions count as wrong.
        gt: array-like (N, K, 2). GT (x, y) in heatmap pixels (argmax of the GT heatmap in the
            protocol, (0, 0) for an empty map).
        visible: optional array-like (N, K). Visibility (> 0 means visible). Defaults to None
            (every keypoint visible; the x > 1, y > 1 rule still applies).
        threshold: float. Fraction of the heatmap size. Defaults to 0.05.
        heatmap_size: int or (width, height). Heatmap size in pixels. Defaults to 64.

    Returns:
        ``PCKResult(per_keypoint (K,), correct (N, K), valid (N, K))``.

    Example:

    >>> gt = np.array([[[10.0, 10.0]]])
    >>> pck(np.array([[[13.1, 10.0]]]), gt).per_keypoint
    array([1.])
    """
    _check_threshold(threshold)
    width, height = heatmap_size_pair(heatmap_size)
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if gt.ndim != 3 or gt.shape[-1] != 2 or pred.shape != gt.shape:
        raise ValueError(
            "`pred` and `gt` must both have shape (N, K, 2). "
            f"Received: pred.shape={pred.shape}, gt.shape={gt.shape}"
        )
    valid = _visible_mask(visible, gt.shape[:2])
    with np.errstate(invalid="ignore"):
        valid &= (gt[..., 0] > 1) & (gt[..., 1] > 1)
        offset = (pred - gt) / np.array([width, height])
        distance = np.sqrt(np.sum(np.square(offset), axis=-1))
        correct = valid & (distance < threshold)
    num_valid = valid.sum(axis=0)
    num_correct = correct.sum(axis=0)
    per_keypoint = np.full(num_valid.shape, np.nan, dtype=np.float64)
    np.divide(num_correct, num_valid, out=per_keypoint, where=num_valid > 0)
    return PCKResult(per_keypoint=per_keypoint, correct=correct, valid=valid)


def heatmap_argmax(heatmaps):
    """Argmax locations of NHWC heatmaps, as TLlib's ``get_max_preds`` (numpy).

    Ties go to the first maximum in row-major order (smallest y, then smallest x). A heatmap whose
    maximum is <= 0 decodes to (0, 0).

    Args:
        heatmaps: array-like (N, H, W, K).

    Returns:
        ``(keypoints, maxvals)``: float64 (N, K, 2) (x, y) in heatmap pixels and (N, K) maxima.
    """
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim != 4:
        raise ValueError(
            f"`heatmaps` must have shape (N, H, W, K). Received: heatmaps.shape={heatmaps.shape}"
        )
    n, h, w, k = heatmaps.shape
    flat = np.moveaxis(heatmaps, -1, 1).reshape(n, k, h * w)
    index = np.argmax(flat, axis=-1)
    maxvals = np.take_along_axis(flat, index[..., None], axis=-1)[..., 0].astype(np.float64)
    keypoints = np.stack([index % w, index // w], axis=-1).astype(np.float64)
    keypoints *= (maxvals > 0)[..., None]
    return keypoints, maxvals


def pck_from_heatmaps(pred_heatmaps, gt_heatmaps, visible=None, threshold: float = 0.05):
    """PCK exactly as the protocol: argmax of predicted vs argmax of GT heatmaps.

    Args:
        pred_heatmaps: array-like (N, H, W, K). Predicted heatmaps.
        gt_heatmaps: array-like (N, H, W, K). GT heatmaps (all-zero for a missing keypoint).
        visible: optional array-like (N, K). Visibility or target weights (> 0 counts).
            Defaults to None.
        threshold: float. Fraction of the heatmap size (W for x, H for y). Defaults to 0.05.

    Returns:
        ``PCKResult`` as ``pck`` (heatmap size taken from the heatmaps' shape).
    """
    pred_heatmaps = np.asarray(pred_heatmaps)
    gt_heatmaps = np.asarray(gt_heatmaps)
    if pred_heatmaps.shape != gt_heatmaps.shape:
        raise ValueError(
            "`pred_heatmaps` and `gt_heatmaps` must have the same shape (N, H, W, K). Received: "
            f"pred_heatmaps.shape={pred_heatmaps.shape}, gt_heatmaps.shape={gt_heatmaps.shape}"
        )
    pred, _ = heatmap_argmax(pred_heatmaps)
    gt, _ = heatmap_argmax(gt_heatmaps)
    height, width = gt_heatmaps.shape[1:3]
    return pck(pred, gt, visible, threshold=threshold, heatmap_size=(width, height))


def __getattr__(name):
    # The agreed API names pck.py as the home of PCKMetric and PCKAccumulator; they live in their
    # own files (one public class per file) and are re-exported lazily to avoid an import cycle.
    if name == "PCKMetric":
        from synpose_keras.metrics.pck_metric import PCKMetric

        return PCKMetric
    if name == "PCKAccumulator":
        from synpose_keras.metrics.pck_accumulator import PCKAccumulator

        return PCKAccumulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
