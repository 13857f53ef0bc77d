"""Pseudo-label masks M_2D and M_3D, their overlap, and the mask strategies of Table B(a).

Shapes: B batch, K keypoints. Masks are float32 (B, K) with values in {0, 1}.

The five strategies (plus "none"), for the two pseudo-label losses (L_2D on the teacher's
2D peaks, L_3D on the kinematically corrected reprojection of the lifted pose):

=============  ==========================  ==========================
mode           mask of L_2D                mask of L_3D
=============  ==========================  ==========================
``2d``         M_2D                        (off)
``3d``         (off)                       M_3D
``union``      M_2D ∪ M_3D                 M_2D ∪ M_3D
``independent`` M_2D                       M_3D
``integrated`` M_2D, then M_2D ∪ M_3D      M_3D, then M_2D ∪ M_3D
``none``       (off)                       (off)
=============  ==========================  ==========================

``integrated`` switches once the M_2D/M_3D overlap reaches a threshold (0.8 by default), and
never switches back; the switch is decided on the epoch's mean overlap (see
:class:`IntegrationSchedule`), so a single lucky batch cannot trigger it.

Reference:
    Lin et al., NeurIPS 2023, Sec. 3.3 "Integrated pseudo-labelling" and supplementary Table B(a).
"""

from __future__ import annotations

import dataclasses

from keras import ops

MODES = ("integrated", "independent", "union", "2d", "3d", "none")


def top_fraction_mask(scores, fraction=0.5):
    """M_2D as UniFrame: the most confident ``fraction`` of keypoint instances of the batch.

    Args:
        scores: (B, K) teacher confidences (heatmap maxima).
        fraction: float in (0, 1]. Fraction of the B*K instances kept.

    Returns:
        (B, K) float32 mask. Ties at the threshold are all kept.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1]. Received: fraction={fraction}")
    scores = ops.convert_to_tensor(scores, "float32")
    flat = ops.reshape(scores, (-1,))
    n = ops.shape(flat)[0]
    k = ops.maximum(ops.cast(ops.round(ops.cast(n, "float32") * fraction), "int32"), 1)
    ordered = ops.sort(flat)  # ascending
    threshold = ordered[n - k]
    return ops.cast(scores >= threshold, "float32")


def threshold_mask(scores, threshold):
    """A fixed-confidence mask: ``scores >= threshold``."""
    return ops.cast(ops.convert_to_tensor(scores, "float32") >= threshold, "float32")


def agreement_mask(keypoints_a, keypoints_b, max_distance, valid=None):
    """M_3D: keypoints where two estimates agree within ``max_distance`` (same units).

    Args:
        keypoints_a: (B, K, 2), e.g. the teacher's 2D peaks.
        keypoints_b: (B, K, 2), e.g. the kinematically corrected reprojection.
        max_distance: float. Agreement radius.
        valid: optional (B, K) mask ANDed in.
    """
    a = ops.convert_to_tensor(keypoints_a, "float32")
    b = ops.convert_to_tensor(keypoints_b, "float32")
    dist = ops.sqrt(ops.sum(ops.square(a - b), axis=-1))
    mask = ops.cast(dist < max_distance, "float32")
    if valid is not None:
        mask = mask * ops.cast(valid, "float32")
    return mask


def mask_overlap(mask_2d, mask_3d):
    """Overlap of the two masks as intersection over union (1.0 when both are empty)."""
    m2 = ops.cast(mask_2d, "float32")
    m3 = ops.cast(mask_3d, "float32")
    inter = ops.sum(m2 * m3)
    union = ops.sum(ops.maximum(m2, m3))
    return ops.where(union > 0, inter / ops.maximum(union, 1.0), 1.0)


def strategy_masks(mode, mask_2d, mask_3d, combined=False):
    """Masks applied to L_2D and L_3D under a Table B(a) strategy.

    Args:
        mode: str. One of :data:`MODES`.
        mask_2d: (B, K) M_2D.
        mask_3d: (B, K) M_3D.
        combined: bool or scalar tensor. For "integrated": whether the schedule has switched to
            the combined mask.

    Returns:
        (mask for L_2D, mask for L_3D), each (B, K) float32.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}. Received: mode={mode!r}")
    m2 = ops.cast(mask_2d, "float32")
    m3 = ops.cast(mask_3d, "float32")
    zeros = ops.zeros_like(m2)
    union = ops.maximum(m2, m3)
    if mode == "none":
        return zeros, zeros
    if mode == "2d":
        return m2, zeros
    if mode == "3d":
        return zeros, m3
    if mode == "union":
        return union, union
    if mode == "independent":
        return m2, m3
    switch = ops.cast(combined, "float32")
    return switch * union + (1.0 - switch) * m2, switch * union + (1.0 - switch) * m3


@dataclasses.dataclass
class IntegrationSchedule:
    """When "integrated" switches from independent to combined masks.

    Args:
        mode: str. Strategy (only "integrated" ever switches).
        threshold: float. Overlap (IoU of M_2D and M_3D) that triggers the switch.
        combined: bool. Current state; restored from checkpoints.

    Example:
    >>> schedule = IntegrationSchedule("integrated", threshold=0.8)
    >>> schedule.update(0.45), schedule.update(0.83), schedule.update(0.6)
    (False, True, True)
    """

    mode: str = "integrated"
    threshold: float = 0.8
    combined: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}. Received: mode={self.mode!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1]. Received: threshold={self.threshold}")

    def update(self, epoch_overlap: float) -> bool:
        """Feeds the epoch's mean overlap; returns whether the combined mask is now in use."""
        if self.mode == "integrated" and not self.combined and epoch_overlap >= self.threshold:
            self.combined = True
        return self.combined
