"""PCKAccumulator: PCK over an evaluation set, batch by batch (numpy)."""

from __future__ import annotations

import numpy as np

from synpose_keras.metrics.pck import PCKResult, _check_threshold, heatmap_size_pair, pck
from synpose_keras.metrics.pck import pck_from_heatmaps
from synpose_keras.metrics.table import part_group_table


class PCKAccumulator:
    """Accumulates PCK counts over batches; the evaluation loop's PCK.

    Correct and valid counts are summed per keypoint over every batch, so the result does not
    depend on the batch size (TLlib averages per-batch accuracies instead; see
    ``synpose_keras.metrics.pck``).

    Args:
        num_keypoints: int. K.
        threshold: float. PCK threshold as a fraction of the heatmap size. Defaults to 0.05.
        heatmap_size: int or (width, height). Heatmap size for ``add`` (coordinates in heatmap
            pixels); ``add_heatmaps`` reads it from the heatmaps. Defaults to 64.
        keep_masks: bool. Keep every batch's (N, K) correct/valid masks (for pseudo-label
            statistics); read them with ``correct_mask`` / ``valid_mask``. Defaults to False.

    Shape glossary: N samples in a batch, K keypoints, H×W heatmap size.

    Example:

    ```python
    from synpose_keras.metrics import PCKAccumulator
    from synpose_keras.skeletons import HAND21

    acc = PCKAccumulator(num_keypoints=21)
    for pred_hm, gt_hm, visible in batches:          # (N, 64, 64, 21), (N, 64, 64, 21), (N, 21)
        acc.add_heatmaps(pred_hm, gt_hm, visible)
    acc.result()           # (21,) per-keypoint accuracy in [0, 1], NaN where never valid
    acc.table(HAND21)      # {"MCP": ..., "PIP": ..., "DIP": ..., "Fin": ..., "All": ...} in %
    ```

    Reference:
        Lin et al., NeurIPS 2023, supplementary Table A (PCK@0.05).
    """

    def __init__(self, num_keypoints: int, threshold: float = 0.05, heatmap_size=64,
                 keep_masks: bool = False):
        if not (isinstance(num_keypoints, (int, np.integer)) and num_keypoints > 0):
            raise ValueError(
                f"`num_keypoints` must be a positive int. Received: num_keypoints={num_keypoints!r}"
            )
        _check_threshold(threshold)
        heatmap_size_pair(heatmap_size)
        self.num_keypoints = int(num_keypoints)
        self.threshold = threshold
        self.heatmap_size = heatmap_size
        self.keep_masks = keep_masks
        self.reset()

    def reset(self):
        """Forgets every batch."""
        self.num_correct = np.zeros(self.num_keypoints, dtype=np.int64)
        self.num_valid = np.zeros(self.num_keypoints, dtype=np.int64)
        self.num_samples = 0
        self._correct = []
        self._valid = []

    def _add_result(self, result: PCKResult) -> PCKResult:
        if result.correct.shape[1] != self.num_keypoints:
            raise ValueError(
                f"Expected {self.num_keypoints} keypoints. "
                f"Received: a batch with {result.correct.shape[1]} keypoints"
            )
        self.num_correct += result.correct.sum(axis=0)
        self.num_valid += result.valid.sum(axis=0)
        self.num_samples += result.correct.shape[0]
        if self.keep_masks:
            self._correct.append(result.correct)
            self._valid.append(result.valid)
        return result

    def add(self, pred, gt, visible=None) -> PCKResult:
        """Adds a batch of keypoints in heatmap pixels; returns that batch's ``PCKResult``.

        Args:
            pred: array-like (N, K, 2). Predicted (x, y) in heatmap pixels.
            gt: array-like (N, K, 2). GT (x, y) in heatmap pixels.
            visible: optional array-like (N, K). Defaults to None (all visible).
        """
        return self._add_result(pck(pred, gt, visible, self.threshold, self.heatmap_size))

    def add_heatmaps(self, pred_heatmaps, gt_heatmaps, visible=None) -> PCKResult:
        """Adds a batch of heatmaps (N, H, W, K); returns that batch's ``PCKResult``."""
        return self._add_result(
            pck_from_heatmaps(pred_heatmaps, gt_heatmaps, visible, self.threshold)
        )

    def result(self) -> np.ndarray:
        """Per-keypoint accuracy (K,) in [0, 1]; NaN for keypoints never valid."""
        out = np.full(self.num_keypoints, np.nan, dtype=np.float64)
        np.divide(self.num_correct, self.num_valid, out=out, where=self.num_valid > 0)
        return out

    def table(self, skeleton):
        """Part-group table (column -> %) of the accumulated result for a skeleton."""
        return part_group_table(self.result(), skeleton)

    def _masks(self, masks):
        if not self.keep_masks:
            raise ValueError(
                "Masks are only kept with keep_masks=True. Received: keep_masks=False"
            )
        if not masks:
            return np.zeros((0, self.num_keypoints), dtype=bool)
        return np.concatenate(masks, axis=0)

    @property
    def correct_mask(self) -> np.ndarray:
        """(num_samples, K) bool, every batch's correct mask in order (needs keep_masks)."""
        return self._masks(self._correct)

    @property
    def valid_mask(self) -> np.ndarray:
        """(num_samples, K) bool, every batch's valid mask in order (needs keep_masks)."""
        return self._masks(self._valid)
