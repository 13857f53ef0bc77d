"""The output of a procedural model: labels in both annotation conventions plus render primitives."""

from __future__ import annotations

import dataclasses

import numpy as np

# Surface materials; an appearance (see ``domains.py``) gives each one a colour.
MATERIALS = ("skin", "palm", "nail", "shirt", "trousers", "shoes", "hair", "occluder")
MATERIAL_INDEX = {name: i for i, name in enumerate(MATERIALS)}


@dataclasses.dataclass
class PosedSkeleton:
    """A posed subject: 3D labels in both annotation conventions and its surface primitives.

    Shapes: K keypoints, P capsules, T triangles. All coordinates in metres, in one frame (the
    model's world frame, or a camera frame after :meth:`transformed`).

    Args:
        keypoints_source: (K, 3) labels in the source ("synthetic") annotation convention.
        keypoints_target: (K, 3) labels in the target ("real") convention; they differ from
            ``keypoints_source`` only at the annotation-gap joints.
        frames: (K, 3, 3) local frame of each keypoint (columns = local axes): the frame of the
            bone ending at it (the root's frame for the root). The annotation gaps
            (``hand_model.HAND_GAP``, ``body_model.BODY_GAP``) are offsets in these frames.
        scale: float. The subject's overall size s (1 = the reference adult).
        capsule_a, capsule_b: (P, 3) end points of capsule axes (a sphere has a == b).
        capsule_ra, capsule_rb: (P,) radii at a and b.
        capsule_material: (P,) int, index into ``MATERIALS``.
        capsule_shade: (P,) float brightness factor of each capsule (part-wise shading).
        triangles: (T, 3, 3) triangle vertices; the front side is the one its normal
            ``(v1 - v0) x (v2 - v0)`` points to.
        triangle_front, triangle_back: (T,) int materials of the two sides.
        triangle_outer: (T, 3) bool. Whether the edge opposite each vertex is on the outline of
            its polygon (outline edges are antialiased, inner edges of a fan are not).
    """

    keypoints_source: np.ndarray
    keypoints_target: np.ndarray
    frames: np.ndarray
    scale: float
    capsule_a: np.ndarray
    capsule_b: np.ndarray
    capsule_ra: np.ndarray
    capsule_rb: np.ndarray
    capsule_material: np.ndarray
    capsule_shade: np.ndarray
    triangles: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 3, 3)))
    triangle_front: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.int64))
    triangle_back: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.int64))
    triangle_outer: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 3), bool))

    def keypoints(self, convention: str) -> np.ndarray:
        """(K, 3) labels of ``convention`` ("source" or "target")."""
        if convention == "source":
            return self.keypoints_source
        if convention == "target":
            return self.keypoints_target
        raise ValueError(f"convention must be 'source' or 'target'. Received: convention={convention!r}")

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> "PosedSkeleton":
        """The same subject under ``x -> rotation @ x + translation`` (e.g. world -> camera)."""
        r = np.asarray(rotation, np.float64)
        t = np.asarray(translation, np.float64)

        def pts(x):
            return np.asarray(x, np.float64) @ r.T + t

        return dataclasses.replace(
            self,
            keypoints_source=pts(self.keypoints_source),
            keypoints_target=pts(self.keypoints_target),
            frames=np.einsum("ij,kjl->kil", r, self.frames),
            capsule_a=pts(self.capsule_a),
            capsule_b=pts(self.capsule_b),
            triangles=pts(self.triangles.reshape(-1, 3)).reshape(self.triangles.shape),
        )

    def with_extra_capsules(self, a, b, ra, rb, material, shade) -> "PosedSkeleton":
        """A copy with more capsules appended (e.g. a scene occluder)."""
        return dataclasses.replace(
            self,
            capsule_a=np.concatenate([self.capsule_a, np.reshape(a, (-1, 3))]),
            capsule_b=np.concatenate([self.capsule_b, np.reshape(b, (-1, 3))]),
            capsule_ra=np.concatenate([self.capsule_ra, np.ravel(ra)]),
            capsule_rb=np.concatenate([self.capsule_rb, np.ravel(rb)]),
            capsule_material=np.concatenate([self.capsule_material, np.ravel(material).astype(np.int64)]),
            capsule_shade=np.concatenate([self.capsule_shade, np.ravel(shade)]),
        )


class PrimitiveList:
    """Accumulates capsules and triangles while a model builds its surface (used by the hand and
    body models; not part of the public API)."""

    def __init__(self) -> None:
        self.caps, self.tris = [], []

    def capsule(self, a, b, ra, rb, material: str, shade: float = 1.0) -> None:
        self.caps.append((np.asarray(a, np.float64), np.asarray(b, np.float64), float(ra), float(rb),
                          MATERIAL_INDEX[material], float(shade)))

    def sphere(self, c, r, material: str, shade: float = 1.0) -> None:
        self.capsule(c, c, r, r, material, shade)

    def polygon(self, vertices, front: str, back: str) -> None:
        """A planar convex polygon, fan-triangulated from its first vertex."""
        v = [np.asarray(p, np.float64) for p in vertices]
        for i in range(1, len(v) - 1):
            # edges opposite (v0, vi, vi+1): (vi, vi+1) is always on the outline; (vi+1, v0) only
            # for the last triangle, (v0, vi) only for the first
            outer = (True, i == len(v) - 2, i == 1)
            self.tris.append((np.stack([v[0], v[i], v[i + 1]]), MATERIAL_INDEX[front], MATERIAL_INDEX[back], outer))

    def build(self, keypoints_source, keypoints_target, frames, scale) -> PosedSkeleton:
        a, b, ra, rb, mat, shade = zip(*self.caps)
        if self.tris:
            tri, tf, tb, outer = zip(*self.tris)
            tri, tf, tb = np.stack(tri), np.array(tf, np.int64), np.array(tb, np.int64)
            outer = np.array(outer, bool)
        else:
            tri, tf, tb = np.zeros((0, 3, 3)), np.zeros((0,), np.int64), np.zeros((0,), np.int64)
            outer = np.zeros((0, 3), bool)
        return PosedSkeleton(
            keypoints_source=np.asarray(keypoints_source, np.float64),
            keypoints_target=np.asarray(keypoints_target, np.float64),
            frames=np.asarray(frames, np.float64),
            scale=float(scale),
            capsule_a=np.stack(a), capsule_b=np.stack(b),
            capsule_ra=np.array(ra), capsule_rb=np.array(rb),
            capsule_material=np.array(mat, np.int64), capsule_shade=np.array(shade),
            triangles=tri, triangle_front=tf, triangle_back=tb, triangle_outer=outer,
        )
