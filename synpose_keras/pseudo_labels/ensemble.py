"""Rotation ensembling of the teacher's heatmaps (multi-transform inference for pseudo-labels).

The teacher sees each target image turned by 0, 90, 180 and 270 degrees (or 0 and 180), its
heatmaps are turned back and averaged, and the pseudo-labels (peaks and confidences) are read off
the average. Quarter turns are exact on the heatmap grid when the image is turned about the
input point that heatmap pixel ``(H - 1) / 2`` maps to, ``c = stride * (H - 1) / 2`` (heatmap
pixel ``u`` is input pixel ``stride * u`` in this library), so no resampling error enters the
labels; the image's outermost ``stride - 1`` pixels on one side are lost and zero-filled.

This is *not* part of Lin et al.'s method; it is the multi-transform inference of data
distillation (Radosavovic et al., "Data Distillation: Towards Omni-Supervised Learning",
CVPR 2018), which generated keypoint pseudo-labels the same way. Why it is here (measured,
docs/results.md): a source-trained hand model reads a third of the target hands as their
mirror image with the same confidence as the others, and the ensemble's average both corrects
some of them and lowers the confidence of those the turned views disagree on, so the
confidence mask M_2D can drop them.

Shapes: B batch, S input size, H heatmap size, K keypoints.
"""

from __future__ import annotations

import numpy as np
from keras import ops

ROTATIONS = (1, 2, 4)


def check_rotations(rotations, name: str = "teacher_rotations") -> int:
    """Validates a number of views (1 = no ensembling, 2 = 0/180, 4 = quarter turns)."""
    if isinstance(rotations, bool) or rotations not in ROTATIONS:
        raise ValueError(
            f"{name} must be one of {list(ROTATIONS)} (1: no ensembling; 2: 0 and 180 "
            f"degrees; 4: 0, 90, 180 and 270 degrees). Received: {name}={rotations!r}")
    return int(rotations)


def quarter_turns(rotations: int) -> tuple:
    """The quarter turns (counter-clockwise on the displayed image) of each teacher view."""
    return {1: (0,), 2: (0, 2), 4: (0, 1, 2, 3)}[check_rotations(rotations)]


def rotate_images(images, k: int, stride: int, heatmap_size: int):
    """Turns ``(B, S, S, C)`` images by ``k`` quarter turns about ``stride * (H - 1) / 2``.

    Turning the image this way and then ``ops.rot90(heatmaps, k, axes=(1, 2))`` on the heatmap
    grid describe the same motion of every point: a keypoint at input pixel ``p`` moves to
    ``R (p - c) + c`` and its heatmap pixel ``p / stride`` to ``R (p / stride - u_c) + u_c``.
    """
    k = int(k) % 4
    if k == 0:
        return images
    c = stride * (heatmap_size - 1) / 2.0
    theta = np.pi / 2.0 * k
    # display coordinates (x right, y down): a counter-clockwise turn on screen
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]]).round()
    inverse = rot.T  # output pixel -> input pixel
    shift = np.array([c, c]) - inverse @ np.array([c, c])
    transform = np.array([inverse[0, 0], inverse[0, 1], shift[0],
                          inverse[1, 0], inverse[1, 1], shift[1], 0.0, 0.0], np.float32)
    return ops.image.affine_transform(images, transform, interpolation="nearest",
                                      fill_mode="constant", fill_value=0.0)


def ensemble_heatmaps(predict, images, rotations: int, stride: int, heatmap_size: int):
    """Mean of ``predict``'s heatmaps over the turned views, each turned back.

    Args:
        predict: callable ``(N, S, S, 3) -> (N, H, H, K)`` (the teacher, inference mode).
        images: ``(B, S, S, 3)`` images (cast to float32 for the turned views).
        rotations: 1, 2 or 4 views (1 returns ``predict(images)``).
        stride: int. ``S // H``.
        heatmap_size: int. H.

    Returns:
        ``(B, H, H, K)`` heatmaps. All views run as one batch of ``B * rotations``.
    """
    turns = quarter_turns(rotations)
    if turns == (0,):
        return predict(images)
    images = ops.cast(images, "float32")
    batch = ops.shape(images)[0]
    views = [rotate_images(images, k, stride, heatmap_size) for k in turns]
    heatmaps = predict(ops.concatenate(views, axis=0))
    total = 0.0
    for i, k in enumerate(turns):
        part = heatmaps[i * batch:(i + 1) * batch]
        total = total + (ops.rot90(part, k=-k, axes=(1, 2)) if k else part)
    return total / float(len(turns))
