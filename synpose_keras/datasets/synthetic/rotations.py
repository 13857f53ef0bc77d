"""Small rotation helpers (numpy, float64) used by the procedural hand and body models.

Conventions: 3x3 matrices act on column vectors (``R @ v``); angles in radians unless a name
says ``deg``. ``rot_x(a)`` turns +y towards +z, ``rot_y(a)`` turns +z towards +x, ``rot_z(a)``
turns +x towards +y (right-handed).
"""

from __future__ import annotations

import numpy as np


def rot_x(angle: float) -> np.ndarray:
    """Rotation about +x by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    """Rotation about +y by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle: float) -> np.ndarray:
    """Rotation about +z by ``angle`` radians."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def axis_angle(axis, angle: float) -> np.ndarray:
    """Rotation by ``angle`` radians about the unit vector ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, np.float64)
    axis = axis / max(np.linalg.norm(axis), 1e-12)
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation drawn uniformly from SO(3) (Shoemake's unit-quaternion method)."""
    u1, u2, u3 = rng.random(3)
    a, b = np.sqrt(1.0 - u1), np.sqrt(u1)
    qx, qy = a * np.sin(2 * np.pi * u2), a * np.cos(2 * np.pi * u2)
    qz, qw = b * np.sin(2 * np.pi * u3), b * np.cos(2 * np.pi * u3)
    return np.array([
        [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
        [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
        [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)],
    ])


def random_unit_vector(rng: np.random.Generator) -> np.ndarray:
    """A direction drawn uniformly from the unit sphere."""
    v = rng.standard_normal(3)
    return v / max(np.linalg.norm(v), 1e-12)


def look_at(eye, target, up) -> np.ndarray:
    """World-to-camera rotation of a camera at ``eye`` looking at ``target``.

    Camera axes: x right, y down, z forward (the pinhole / OpenCV convention), with the image's
    "up" as close to ``up`` as possible.
    """
    z = np.asarray(target, np.float64) - np.asarray(eye, np.float64)
    z = z / np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, np.float64))
    if np.linalg.norm(x) < 1e-8:  # looking along `up`: any perpendicular will do
        x = np.cross(z, np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 0.0, 1.0]))
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])
