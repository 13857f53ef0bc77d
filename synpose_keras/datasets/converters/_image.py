"""Image helpers shared by the converters: strict loading and horizontal flips.

Public API (kept stable, other converters import it):

- ``load_image(path, allow_truncated=False) -> np.ndarray`` uint8 (H, W, 3) RGB; raises
  ``BadSampleError`` naming the file when it is missing, truncated or not an image.
- ``load_mask(path) -> np.ndarray`` uint8 (H, W) (first channel / palette index), same errors.
- ``hflip(image, keypoints, keypoints_3d=None, intrinsics=None, flip_index=None)`` -> tuple
  (image, keypoints, keypoints_3d, intrinsics), all flipped consistently.
- ``hflip_keypoints(keypoints, width, flip_index=None)``, ``hflip_intrinsics(intrinsics, width)``,
  ``hflip_points_3d(points_3d, flip_index=None)``.
- ``project(points_3d, intrinsics) -> (..., K, 2)`` pinhole projection (numpy).

Pixel convention: pixel ``i`` covers ``[i - 0.5, i + 0.5]`` and its centre is at ``x = i`` (the
convention of ``keypoints`` everywhere in synpose). Mirroring the image columns (``image[:, ::-1]``)
therefore maps ``x -> (W - 1) - x``. In camera space the flip is ``X -> -X``; the intrinsics become
``F @ K @ diag(-1, 1, 1)`` with ``F`` the 2D flip, i.e. ``cx -> (W - 1) - cx`` and skew
``-> -skew``, so ``project(flipped_xyz, flipped_K) == flipped_uv`` exactly.
"""

from __future__ import annotations

import io
import os
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from synpose_keras.datasets.converters.base import BadSampleError


_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def to_rgb8(img: Image.Image) -> Image.Image:
    """A Pillow image of any mode as 8-bit RGB, with high-bit-depth images *scaled*.

    ``Image.convert("RGB")`` clips 16-bit, 32-bit integer and float images at 255 (a 16-bit
    grayscale PNG becomes almost white). Here ``I;16*`` images are divided by 257
    (65535 -> 255); ``I`` (32-bit integer) and ``F`` (float) images are read by their value
    range: [0, 1] floats are multiplied by 255, values up to 255 kept, up to 65535 divided by
    257, larger ranges scaled from their minimum and maximum. Every other mode (1, L, LA, P,
    PA, RGB, RGBA, CMYK, YCbCr, ...) goes through Pillow's conversion (alpha is dropped).
    """
    if img.mode not in _HIGH_DEPTH_MODES:
        return img if img.mode == "RGB" else img.convert("RGB")
    values = np.asarray(img, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if img.mode.startswith("I;16"):
        scaled = values / 257.0
    elif finite.size == 0:
        scaled = np.zeros_like(values)
    else:
        low, high = float(finite.min()), float(finite.max())
        if img.mode == "F" and low >= 0.0 and high <= 1.0:
            scaled = values * 255.0
        elif low >= 0.0 and high <= 255.0:
            scaled = values
        elif low >= 0.0 and high <= 65535.0:
            scaled = values / 257.0
        else:
            scaled = (values - low) * (255.0 / max(high - low, 1e-12))
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    gray = np.clip(np.round(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), mode="RGB")


def _read_bytes(path: str) -> bytes:
    """Reads a local file, or a ``scheme://`` path through ``tf.io.gfile``."""
    if "://" in str(path):
        import tensorflow as tf  # only for bucket paths

        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def _open_decoded(path: str, allow_truncated: bool = False) -> Image.Image:
    path = os.fspath(path)
    try:
        data = _read_bytes(path)
    except FileNotFoundError as e:
        raise BadSampleError(f"{path}: image file not found") from e
    except OSError as e:
        raise BadSampleError(f"{path}: cannot read image file ({e})") from e
    try:
        img = Image.open(io.BytesIO(data))
        # Decode now, so truncated files fail here and not later in the writer. The Pillow flag
        # is global: set it for this call only (strict even if another library turned it on).
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = bool(allow_truncated)
        try:
            img.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadSampleError(
            f"{path}: truncated or corrupt image ({type(e).__name__}: {e}); "
            "re-download the file or convert with skip_bad=True to skip it"
        ) from e
    return img


def load_image(path: str, allow_truncated: bool = False) -> np.ndarray:
    """Loads an image file as uint8 RGB (H, W, 3).

    Args:
        path: str. Image file (PNG, JPEG, ... anything Pillow reads).
        allow_truncated: bool. Decode truncated files as far as they go (Pillow's
            ``LOAD_TRUNCATED_IMAGES``, the missing part is filled) instead of raising; some
            reference loaders (TLlib's H3D) do this. Defaults to False.

    Returns:
        np.ndarray uint8 (H, W, 3).

    Raises:
        BadSampleError: naming ``path`` when the file is missing, truncated or not an image.
    """
    img = to_rgb8(_open_decoded(path, allow_truncated))
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise BadSampleError(f"{path}: expected an RGB image, got an array of shape {arr.shape}")
    return np.ascontiguousarray(arr)


def load_mask(path: str) -> np.ndarray:
    """Loads a label / segmentation mask as uint8 (H, W) (palette index or first channel).

    Raises:
        BadSampleError: naming ``path`` when the file is missing, truncated or not an image.
    """
    img = _open_decoded(path)
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return np.ascontiguousarray(arr.astype(np.uint8))


def hflip_keypoints(
    keypoints: np.ndarray, width: int, flip_index: Optional[Sequence[int]] = None
) -> np.ndarray:
    """Mirrors (..., K, 2) pixel keypoints in an image of ``width`` columns: ``x -> W - 1 - x``.

    Args:
        keypoints: array (..., K, 2), (x, y) in pixels.
        width: int. Image width W.
        flip_index: optional permutation of K (e.g. ``Skeleton.flip_index``) applied after the
            mirror so that left/right joint names stay correct. Defaults to None (no permutation).
    """
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    kp[..., 0] = (width - 1) - kp[..., 0]
    if flip_index is not None:
        kp = kp[..., list(flip_index), :]
    return kp


def hflip_points_3d(
    points_3d: np.ndarray, flip_index: Optional[Sequence[int]] = None
) -> np.ndarray:
    """Mirrors (..., K, 3) camera-space points: ``X -> -X`` (then the optional permutation)."""
    p = np.array(points_3d, dtype=np.float32, copy=True)
    p[..., 0] = -p[..., 0]
    if flip_index is not None:
        p = p[..., list(flip_index), :]
    return p


def hflip_intrinsics(intrinsics: np.ndarray, width: int) -> np.ndarray:
    """Intrinsics of the mirrored image for mirrored points: ``F @ K @ diag(-1, 1, 1)``.

    With ``F`` = [[-1, 0, W-1], [0, 1, 0], [0, 0, 1]]; for a plain pinhole K this keeps fx, fy, cy,
    sets ``cx -> W - 1 - cx`` and negates the skew.
    """
    k = np.asarray(intrinsics, dtype=np.float64)
    if k.shape != (3, 3):
        raise ValueError(f"intrinsics must have shape (3, 3). Received: intrinsics.shape={k.shape}")
    f = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return (f @ k @ np.diag([-1.0, 1.0, 1.0])).astype(np.float32)


def hflip(
    image: np.ndarray,
    keypoints: np.ndarray,
    keypoints_3d: Optional[np.ndarray] = None,
    intrinsics: Optional[np.ndarray] = None,
    flip_index: Optional[Sequence[int]] = None,
):
    """Mirrors an image and its annotations consistently.

    Args:
        image: array (H, W, C) (or (H, W) for a mask).
        keypoints: array (K, 2), (x, y) pixels.
        keypoints_3d: optional array (K, 3), camera coordinates.
        intrinsics: optional array (3, 3).
        flip_index: optional permutation of the K keypoints (left/right swap). Defaults to None.

    Returns:
        (image, keypoints, keypoints_3d, intrinsics); the optional ones stay None when not given.
        The visibility vector is not touched: permute it with ``flip_index`` yourself if you use
        one.
    """
    image = np.asarray(image)
    width = image.shape[1]
    out_image = np.ascontiguousarray(image[:, ::-1])
    out_kp = hflip_keypoints(keypoints, width, flip_index)
    out_3d = None if keypoints_3d is None else hflip_points_3d(keypoints_3d, flip_index)
    out_k = None if intrinsics is None else hflip_intrinsics(intrinsics, width)
    return out_image, out_kp, out_3d, out_k


def project(points_3d: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Pinhole projection of (..., K, 3) camera points with (3, 3) intrinsics -> (..., K, 2)."""
    p = np.asarray(points_3d, dtype=np.float64)
    k = np.asarray(intrinsics, dtype=np.float64)
    uvw = p @ k.T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[..., :2] / uvw[..., 2:3]
    return uv.astype(np.float32)
