"""Pinhole cameras for the synthetic benchmark: intrinsics, extrinsics and subject framing.

Pixel convention: the centre of the top-left pixel is (0, 0) (``datasets.schema``), so the
principal point of a W x H image centred on the optical axis is ((W - 1) / 2, (H - 1) / 2).
"""

from __future__ import annotations

import dataclasses

import numpy as np


def intrinsics_matrix(focal: float, cx: float, cy: float) -> np.ndarray:
    """3x3 camera matrix with square pixels and no skew."""
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])


def project(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points -> (N, 2) pixels."""
    uvw = np.asarray(points_cam, np.float64) @ np.asarray(intrinsics, np.float64).T
    return uvw[:, :2] / uvw[:, 2:3]


@dataclasses.dataclass
class PinholeCamera:
    """A calibrated pinhole camera: ``x_cam = rotation @ (x_world - centre)``, pixels = K x_cam.

    Args:
        intrinsics: (3, 3) camera matrix K (pixels of the stored image).
        rotation: (3, 3) world-to-camera rotation (camera axes: x right, y down, z forward).
        centre: (3,) camera centre in world coordinates (metres).
        width: int. Image width in pixels.
        height: int. Image height in pixels.
    """

    intrinsics: np.ndarray
    rotation: np.ndarray
    centre: np.ndarray
    width: int
    height: int

    @property
    def translation(self) -> np.ndarray:
        """t of ``x_cam = R x_world + t``."""
        return -self.rotation @ self.centre

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) camera-frame points."""
        return (np.asarray(points_world, np.float64) - self.centre) @ self.rotation.T

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 2) pixels."""
        return project(self.to_camera(points_world), self.intrinsics)

    @classmethod
    def framing(cls, points_world, rotation, intrinsics, width: int, height: int,
                fill: float, offset=(0.0, 0.0)) -> "PinholeCamera":
        """A camera with orientation ``rotation`` placed so ``points_world`` fill the image.

        The camera moves along its own axes (orientation fixed) until the bounding box of the
        projected points has its longer side equal to ``fill`` x the image's shorter side and its
        centre at the image centre plus ``offset`` (pixels).

        Args:
            points_world: (N, 3) points to frame (e.g. every keypoint of a whole sequence).
            rotation: (3, 3) world-to-camera rotation.
            intrinsics: (3, 3) camera matrix.
            width, height: int. Image size.
            fill: float in (0, 1]. Longer side of the projected box / shorter image side.
            offset: (2,) pixels. Where the box centre goes, relative to the image centre.
        """
        pts = np.asarray(points_world, np.float64)
        rotation = np.asarray(rotation, np.float64)
        k = np.asarray(intrinsics, np.float64)
        focal = k[0, 0]
        mean = pts.mean(axis=0)
        local = (pts - mean) @ rotation.T  # camera-oriented, centred
        target = np.array([(width - 1) / 2 + offset[0], (height - 1) / 2 + offset[1]])
        want = fill * min(width, height)
        ext = np.ptp(local[:, :2], axis=0).max()
        t = np.array([0.0, 0.0, focal * ext / max(want, 1e-6) + np.ptp(local[:, 2]) / 2])
        for _ in range(6):
            t[2] = max(t[2], 0.05 - local[:, 2].min())  # keep every point in front of the camera
            uv = project(local + t, k)
            lo, hi = uv.min(axis=0), uv.max(axis=0)
            side = (hi - lo).max()
            t[2] *= side / want  # bigger than wanted -> move back
            uv = project(local + t, k)
            centre = (uv.min(axis=0) + uv.max(axis=0)) / 2
            t[:2] += (target - centre) * t[2] / focal
        camera_centre = mean - rotation.T @ t
        return cls(intrinsics=k, rotation=rotation, centre=camera_centre, width=width, height=height)
