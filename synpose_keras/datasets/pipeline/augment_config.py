"""AugmentConfig: the random geometric and photometric augmentation of the training pipelines."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

#: Per-task defaults (UniFrame/TLlib; docs/protocol.md, "Comparison methods"): rotation range and
#: flip probability.
ROTATION_BY_SKELETON = {"hand21": 180.0, "body16": 60.0}
#: Hands are not flipped by default: a flipped left hand is a right hand, and the hand protocols
#: store every hand as one handedness (RHD and FreiHAND flips). Bodies swap left/right joints.
FLIP_BY_SKELETON = {"hand21": 0.0, "body16": 0.5}


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation applied as ONE affine warp (+ colour jitter) per image.

    The geometric part is composed about the centre of the ``S x S`` input (after the square
    crop): ``translate . rotate . shear . scale . flip``; the same matrix moves the keypoints.

    Args:
        rotation: optional float. Rotation range in degrees, uniform in ``[-rotation, rotation]``.
            Defaults to None: 180 for hands, 60 for bodies.
        shear: float. Horizontal shear range in degrees, uniform in ``[-shear, shear]``.
            Defaults to 30.
        translate: float. Translation range as a fraction of the input size, per axis, uniform in
            ``[-translate, translate]``. Defaults to 0.05.
        scale: (float, float). Zoom factor range (> 1 zooms in), uniform. Defaults to (0.6, 1.3).
        color_jitter: float. Brightness, contrast and saturation factors uniform in
            ``[1 - color_jitter, 1 + color_jitter]``. Defaults to 0.25.
        flip_prob: optional float. Probability of a horizontal flip (left/right joints swapped
            through ``Skeleton.flip_index``). Defaults to None: 0 for hands, 0.5 for bodies.

    Example:

    ```python
    from synpose_keras.datasets import AugmentConfig
    config = AugmentConfig(rotation=30.0).resolve("body16")
    ```

    Reference:
        UniFrame augmentation (Kim et al., ECCV 2022; docs/protocol.md, "Comparison methods"):
        rotation ±180° hands / ±60° bodies, shear ±30°, translate 5%, scale 0.6-1.3, colour
        jitter 0.25.
    """

    rotation: Optional[float] = None
    shear: float = 30.0
    translate: float = 0.05
    scale: Tuple[float, float] = (0.6, 1.3)
    color_jitter: float = 0.25
    flip_prob: Optional[float] = None

    def __post_init__(self):
        if self.rotation is not None and self.rotation < 0:
            raise ValueError(f"rotation must be >= 0. Received: rotation={self.rotation}")
        if not 0 <= self.shear < 90:
            raise ValueError(f"shear must be in [0, 90). Received: shear={self.shear}")
        if self.translate < 0:
            raise ValueError(f"translate must be >= 0. Received: translate={self.translate}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high. Received: scale={self.scale}")
        if not 0 <= self.color_jitter < 1:
            raise ValueError(f"color_jitter must be in [0, 1). Received: color_jitter={self.color_jitter}")
        if self.flip_prob is not None and not 0 <= self.flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1]. Received: flip_prob={self.flip_prob}")

    @classmethod
    def none(cls) -> "AugmentConfig":
        """No augmentation at all (identity warp, no jitter, no flip)."""
        return cls(rotation=0.0, shear=0.0, translate=0.0, scale=(1.0, 1.0), color_jitter=0.0, flip_prob=0.0)

    @classmethod
    def light(cls) -> "AugmentConfig":
        """Mild augmentation (teacher view option): ±10° rotation, scale 0.9-1.1, jitter 0.1."""
        return cls(rotation=10.0, shear=0.0, translate=0.02, scale=(0.9, 1.1), color_jitter=0.1, flip_prob=0.0)

    def resolve(self, skeleton) -> "AugmentConfig":
        """Fills the per-skeleton defaults (``rotation``, ``flip_prob``) for ``skeleton`` (a
        :class:`~synpose_keras.skeletons.Skeleton` or its name)."""
        name = getattr(skeleton, "name", skeleton)
        rotation = self.rotation if self.rotation is not None else ROTATION_BY_SKELETON.get(name, 60.0)
        flip = self.flip_prob if self.flip_prob is not None else FLIP_BY_SKELETON.get(name, 0.0)
        return dataclasses.replace(self, rotation=float(rotation), flip_prob=float(flip))
