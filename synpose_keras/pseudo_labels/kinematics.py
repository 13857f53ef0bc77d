"""Kinematic constraints for 3D pseudo-labels: bone-length ratios, joint bend limits, and the
reprojection of a corrected 3D pose onto the image.

All functions use ``keras.ops`` so they run inside a training step; they accept numpy arrays too.

Shapes: B batch, K keypoints, E = K - 1 bones (one per non-root keypoint, in keypoint order).

Reference:
    Lin et al., NeurIPS 2023, Sec. 3.3 ("3D pseudo-labels ... made kinematically valid").
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from synpose_keras.ops.geometry import fit_scale_translation
from synpose_keras.skeletons import Skeleton


def topological_order(skeleton: Skeleton) -> list:
    """Keypoints ordered so every parent comes before its children (root first)."""
    order, seen = [], set()
    parents = skeleton.parents

    def visit(i):
        if i in seen:
            return
        if parents[i] >= 0:
            visit(parents[i])
        seen.add(i)
        order.append(i)

    for i in range(skeleton.num_keypoints):
        visit(i)
    return order


def bone_lengths(poses, skeleton: Skeleton):
    """Length of each bone (child, parent) of ``skeleton.bones``: (..., E)."""
    poses = ops.convert_to_tensor(poses, "float32")
    child = [c for c, _ in skeleton.bones]
    parent = [p for _, p in skeleton.bones]
    diff = ops.take(poses, child, axis=-2) - ops.take(poses, parent, axis=-2)
    return ops.sqrt(ops.sum(ops.square(diff), axis=-1))


def reference_bone_ratios(poses_3d, skeleton: Skeleton, visible=None) -> np.ndarray:
    """Mean bone-length ratios of a set of 3D poses (e.g. the source's labels), as numpy.

    Each pose's bone lengths are divided by their sum, so the ratios are scale-free; the result
    is the mean over poses and sums to 1.

    Args:
        poses_3d: (N, K, 3) array.
        skeleton: the poses' skeleton.
        visible: optional (N, K); poses with any invisible keypoint are ignored when given.
    """
    poses = np.asarray(poses_3d, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (skeleton.num_keypoints, 3):
        raise ValueError(
            f"poses_3d must have shape (N, {skeleton.num_keypoints}, 3). Received: {poses.shape}"
        )
    if visible is not None:
        poses = poses[np.all(np.asarray(visible) > 0, axis=1)]
    if len(poses) == 0:
        raise ValueError("No complete 3D pose to measure bone ratios on.")
    lengths = np.asarray(bone_lengths(poses, skeleton), dtype=np.float64)
    ratios = lengths / np.maximum(lengths.sum(axis=-1, keepdims=True), 1e-12)
    mean = ratios.mean(axis=0)
    return (mean / mean.sum()).astype(np.float32)


def _normalize(v, eps=1e-8):
    return v / ops.maximum(ops.sqrt(ops.sum(ops.square(v), axis=-1, keepdims=True)), eps)


def _limit_bend(direction, parent_direction, max_angle_deg):
    """Rotates ``direction`` towards ``parent_direction`` so their angle is <= max_angle."""
    cos_max = math.cos(math.radians(max_angle_deg))
    sin_max = math.sin(math.radians(max_angle_deg))
    cos = ops.sum(direction * parent_direction, axis=-1, keepdims=True)
    ortho = _normalize(direction - cos * parent_direction)
    limited = cos_max * parent_direction + sin_max * ortho
    return ops.where(cos < cos_max, limited, direction)


def project_to_skeleton(poses, skeleton: Skeleton, ratios, apply_limits=True):
    """Kinematic projection: keeps each bone's direction, sets its length from ``ratios``.

    The root stays in place; the overall scale (the sum of bone lengths) is kept, so only the
    proportions change. With ``apply_limits``, bones whose bend against the parent bone exceeds
    ``skeleton.bend_limits`` are rotated back onto the limit (in the plane of the two bones).

    Args:
        poses: (B, K, 3).
        skeleton: Skeleton.
        ratios: (E,) bone-length ratios (e.g. :func:`reference_bone_ratios` on the source).
        apply_limits: bool. Enforce ``skeleton.bend_limits``.

    Returns:
        (B, K, 3) poses whose bone-length ratios equal ``ratios`` exactly.
    """
    poses = ops.convert_to_tensor(poses, "float32")
    ratios = ops.convert_to_tensor(np.asarray(ratios, dtype=np.float32))
    scale = ops.sum(bone_lengths(poses, skeleton), axis=-1)[..., None]  # (B, 1)
    bone_index = {child: e for e, (child, _) in enumerate(skeleton.bones)}
    parents = skeleton.parents
    new = {}
    directions = {}
    for joint in topological_order(skeleton):
        parent = parents[joint]
        if parent < 0:
            new[joint] = poses[:, joint]
            continue
        direction = _normalize(poses[:, joint] - poses[:, parent])
        grand = parents[parent]
        if apply_limits and joint in skeleton.bend_limits and grand >= 0:
            direction = _limit_bend(direction, directions[parent], skeleton.bend_limits[joint])
        directions[joint] = direction
        length = ratios[bone_index[joint]] * scale
        new[joint] = new[parent] + direction * length
    return ops.stack([new[j] for j in range(skeleton.num_keypoints)], axis=1)


def reproject(poses_3d, keypoints_2d, weights=None):
    """Orthographic reprojection of root-relative 3D poses onto 2D keypoints.

    The (x, y) of each pose is aligned to ``keypoints_2d`` by a least-squares scale and
    translation (weighted by ``weights``, e.g. teacher confidences).

    Returns:
        (B, K, 2) reprojected keypoints in the units of ``keypoints_2d``.
    """
    xy = ops.convert_to_tensor(poses_3d, "float32")[..., :2]
    targets = ops.convert_to_tensor(keypoints_2d, "float32")
    if weights is not None:
        weights = ops.convert_to_tensor(weights, "float32")
    scale, translation = fit_scale_translation(xy, targets, weights)
    return scale[..., None, None] * xy + translation[..., None, :]
