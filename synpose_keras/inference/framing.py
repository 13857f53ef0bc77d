"""Framing an arbitrary image for a square-input model, and mapping keypoints back exactly.

A *region* is a square ``(center, side)`` in original-image pixels (pixel centres at integers,
the convention of :mod:`synpose_keras.datasets.schema`). It is resampled onto the
``S x S`` model input by the same affine as the training crop,
:func:`synpose_keras.ops.geometry.crop_matrix`::

    x_in = (x - cx) * S / side + (S - 1) / 2

so the region's edges ``[cx - side/2, cx + side/2]`` (pixel edges) land on the input's edges
``[-0.5, S - 0.5]``. Keypoints predicted in input pixels go back with the inverse affine.

- :func:`letterbox_region`: the whole image, padded to a square around its centre (aspect ratio
  kept; the shorter axis gets equal black bands).
- :func:`keypoint_region`: the protocol crop around keypoints (side 1.5 x the longer side of
  their box, shifted to stay inside the image), as in ``synpose convert --crop``.
- :func:`render_region`: the pixels, with Pillow's antialiased resampling (bilinear filter),
  zero outside the image.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from synpose_keras.ops.geometry import apply_affine, crop_matrix, invert_affine


def letterbox_region(width: int, height: int) -> tuple:
    """The square ``(center (2,), side)`` that holds the whole ``width x height`` image."""
    center = np.array([(width - 1) / 2.0, (height - 1) / 2.0], np.float64)
    return center, float(max(width, height))


def keypoint_region(keypoints, width: int, height: int, scores=None, min_score: float = 0.0,
                    crop_scale: float = 1.5):
    """The protocol crop around keypoints, or None when they span less than 2 pixels.

    Args:
        keypoints: (K, 2) original-image pixels.
        width, height: int. Image size.
        scores: optional (K,). Keypoints scoring below ``min_score`` are left out of the box.
        min_score: float. Defaults to 0.
        crop_scale: float. Side / longer side of the keypoint box. Defaults to 1.5.

    Returns:
        ``(center (2,), side)`` or None.
    """
    from synpose_keras.datasets.writer import crop_box

    visible = np.ones(len(keypoints), np.float32)
    if scores is not None:
        visible = (np.asarray(scores) >= min_score).astype(np.float32)
    # zero-padded where the region leaves the image (render_region), never capped
    box = crop_box(np.asarray(keypoints, np.float64), visible, width, height, crop_scale,
                   policy="pad")
    if box is None:
        return None
    left, top, side = box
    return np.array([left + side / 2.0 - 0.5, top + side / 2.0 - 0.5]), float(side)


def region_matrix(center, side: float, input_size: int) -> np.ndarray:
    """3x3 affine, original pixels -> input pixels, of a region."""
    return np.asarray(crop_matrix(np.asarray(center, np.float64), float(side), int(input_size)),
                      np.float64)


def render_region(image: Image.Image, center, side: float, input_size: int) -> np.ndarray:
    """Resamples the square region of ``image`` onto an ``input_size`` square (uint8 RGB).

    Pillow's ``resize`` with a float ``box`` applies exactly :func:`region_matrix` and filters
    (antialiases) when it shrinks; the image is zero-padded where the region leaves it.
    """
    image = image.convert("RGB")
    w, h = image.size
    cx, cy = float(center[0]), float(center[1])
    half = float(side) / 2.0
    # pixel-edge coordinates of the region (pixel i spans [i, i + 1))
    x0, y0 = cx - half + 0.5, cy - half + 0.5
    x1, y1 = x0 + float(side), y0 + float(side)
    pad_l, pad_t = max(0, math.ceil(-x0)), max(0, math.ceil(-y0))
    pad_r, pad_b = max(0, math.ceil(x1 - w)), max(0, math.ceil(y1 - h))
    if pad_l or pad_t or pad_r or pad_b:
        canvas = Image.new("RGB", (w + pad_l + pad_r, h + pad_t + pad_b), (0, 0, 0))
        canvas.paste(image, (pad_l, pad_t))
        image = canvas
    box = (x0 + pad_l, y0 + pad_t, x1 + pad_l, y1 + pad_t)
    out = image.resize((int(input_size), int(input_size)), Image.Resampling.BILINEAR, box=box)
    return np.asarray(out, np.uint8)


def to_input(points, center, side: float, input_size: int) -> np.ndarray:
    """Original pixels -> input pixels (``(..., 2)``)."""
    return np.asarray(apply_affine(region_matrix(center, side, input_size),
                                   np.asarray(points, np.float64)))


def to_original(points, center, side: float, input_size: int) -> np.ndarray:
    """Input pixels -> original pixels (``(..., 2)``), the exact inverse of :func:`to_input`."""
    inverse = invert_affine(region_matrix(center, side, input_size))
    return np.asarray(apply_affine(np.asarray(inverse), np.asarray(points, np.float64)))
