"""Pseudo-label statistics per epoch (Table B(b) and supplementary C.2 of the paper).

These need a *labelled* target split and are for analysis only: nothing here feeds training.

Definitions (a "label" is one keypoint instance (sample id, keypoint) that a mask selected for
training, i.e. that received a pseudo-label in that epoch):

- ``overlap``: mean over the epoch's batches of IoU(M_2D, M_3D).
- ``accuracy``: fraction of selected labels that are correct (within PCK@0.05 of the ground truth).
- ``saturation``: fraction of all valid target keypoint instances seen so far that have *ever*
  received a correct pseudo-label (cumulative over epochs).
- ``coincidence``: |W_{t-1} ∩ W_t| / |W_{t-1} ∪ W_t| where W_t is the set of incorrect selected
  labels of epoch t (how persistent the wrong labels are; lower is better). NaN in the first epoch.
- ``inversion``: fraction of the analysed samples whose teacher pose is the mirror-image reading
  of the ground truth (:func:`synpose_keras.metrics.inversions`; NaN when not measured). Such
  labels are confident and kinematically valid, so no mask removes them.
"""

from __future__ import annotations

import math

import numpy as np

from synpose_keras.metrics.inversions import InversionResult


class PseudoLabelStatistics:
    """Accumulates pseudo-label statistics over batches and epochs.

    Args:
        heatmap_size: int. Heatmap side; a label is correct when its distance to the ground truth
            is below ``threshold * heatmap_size`` heatmap pixels.
        threshold: float. PCK threshold. Defaults to 0.05.

    Example:
    >>> stats = PseudoLabelStatistics(heatmap_size=64)
    >>> stats.update(ids, labels, gt, gt_visible, selected, overlap=0.5)  # per batch
    >>> row = stats.end_epoch()  # {"epoch": 0, "overlap": ..., "saturation": ..., ...}
    """

    def __init__(self, heatmap_size: int, threshold: float = 0.05):
        self.radius = threshold * heatmap_size
        self.history: list = []
        self._ever_correct: set = set()
        self._seen_valid: set = set()
        self._previous_wrong = None
        self._reset_epoch()

    def _reset_epoch(self):
        self._wrong: set = set()
        self._overlaps: list = []
        self._selected = 0
        self._correct = 0
        self._combined = False
        self._inversions: list = []

    def update(self, sample_ids, labels, gt, gt_visible, selected, overlap=None, combined=False,
               inversions=None):
        """Adds one batch.

        Args:
            sample_ids: (B,) ids unique over the target split (str or int).
            labels: (B, K, 2) pseudo-labels, heatmap pixels.
            gt: (B, K, 2) ground truth, heatmap pixels.
            gt_visible: (B, K) ground-truth visibility.
            selected: (B, K) mask of the labels used for training.
            overlap: optional float, IoU(M_2D, M_3D) of the batch.
            combined: bool, whether the integrated schedule used the combined mask.
            inversions: optional :class:`synpose_keras.metrics.InversionResult` of the batch.
        """
        labels = np.asarray(labels, dtype=np.float64)
        gt = np.asarray(gt, dtype=np.float64)
        valid = (np.asarray(gt_visible) > 0) & (gt[..., 0] > 1) & (gt[..., 1] > 1)
        selected = (np.asarray(selected) > 0) & valid
        correct = np.linalg.norm(labels - gt, axis=-1) < self.radius
        ids = [i.decode() if isinstance(i, bytes) else i for i in np.asarray(sample_ids).tolist()]
        for b, sid in enumerate(ids):
            for k in np.flatnonzero(valid[b]):
                self._seen_valid.add((sid, int(k)))
            for k in np.flatnonzero(selected[b]):
                key = (sid, int(k))
                if correct[b, k]:
                    self._ever_correct.add(key)
                else:
                    self._wrong.add(key)
        self._selected += int(selected.sum())
        self._correct += int((selected & correct).sum())
        if overlap is not None:
            self._overlaps.append(float(overlap))
        self._combined = self._combined or bool(combined)
        if inversions is not None:
            self._inversions.append(inversions)

    def end_epoch(self) -> dict:
        """Closes the epoch and returns its row (also appended to ``history``)."""
        if self._previous_wrong is None:
            coincidence = math.nan
        else:
            union = self._previous_wrong | self._wrong
            coincidence = len(self._previous_wrong & self._wrong) / len(union) if union else math.nan
        row = {
            "epoch": len(self.history),
            "overlap": float(np.mean(self._overlaps)) if self._overlaps else math.nan,
            "selected": self._selected,
            "accuracy": self._correct / self._selected if self._selected else math.nan,
            "saturation": (len(self._ever_correct) / len(self._seen_valid)
                           if self._seen_valid else math.nan),
            "coincidence": coincidence,
            "combined": self._combined,
            "inversion": InversionResult.concatenate(self._inversions).rate,
        }
        self.history.append(row)
        self._previous_wrong = self._wrong
        self._reset_epoch()
        return row

    def state(self) -> dict:
        """JSON-serialisable state, for checkpoints."""
        return {
            "history": self.history,
            "ever_correct": sorted([list(k) for k in self._ever_correct]),
            "seen_valid": sorted([list(k) for k in self._seen_valid]),
            "previous_wrong": (None if self._previous_wrong is None
                               else sorted([list(k) for k in self._previous_wrong])),
        }

    def load_state(self, state: dict) -> None:
        self.history = list(state["history"])
        self._ever_correct = {tuple(k) for k in state["ever_correct"]}
        self._seen_valid = {tuple(k) for k in state["seen_valid"]}
        prev = state["previous_wrong"]
        self._previous_wrong = None if prev is None else {tuple(k) for k in prev}
