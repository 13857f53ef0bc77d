"""Warping ops for the reconstruction branch: grid sampling, keypoint Gaussians, displacement fields.

Coordinates follow FOMM (Siarohin et al., NeurIPS 2019; docs/protocol.md, "Warping and
coordinate conventions"): (x, y) in [-1, 1] where -1 and +1 are the CENTRES of the
first and last pixel (``align_corners=True``), i.e. ``x_n = 2 x / (W - 1) - 1`` for a pixel
coordinate ``x`` whose pixel centres sit at integers. Warping is backward: a sampling grid tells,
for every OUTPUT pixel, where to read the INPUT image. Everything uses ``keras.ops`` only.

Shape glossary:
    ``B``: batch size. ``H, W``: input image size. ``h, w``: output (grid) size.
    ``C``: channels. ``K``: number of keypoints. ``...``: any leading dimensions.

Reference:
    Siarohin et al., "First Order Motion Model for Image Animation", NeurIPS 2019;
    Lin et al., "Synthetic-to-Real Pose Estimation with Geometric Reconstruction", NeurIPS 2023,
    supplementary A (warping module W and generator G).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from synpose_keras.ops.heatmaps import _size_wh

# Sampling positions within this many pixels (relative to the axis length) of an integer are read
# as that integer. A grid built by `make_coordinate_grid` then unnormalises to exact integers (the
# float32 round trip is off by up to ~6e-8 * size px), so the identity grid reproduces the image
# bit for bit. The gradient is unaffected (straight-through), the value changes by < 1e-6 * size
# times the local pixel difference.
_SNAP_TOLERANCE = 1e-6


def _compute_dtype(*tensors):
    return "float64" if any(t.dtype == "float64" for t in tensors) else "float32"


def _unnormalize(coord, size, dtype):
    """[-1, 1] -> pixel coordinate in [0, size - 1], snapped to integers within the tolerance."""
    size = ops.cast(size, dtype)
    half = (size - 1.0) / 2.0
    pixel = coord * half + half
    nearest = ops.round(pixel)
    snapped = ops.where(
        ops.abs(pixel - nearest) <= _SNAP_TOLERANCE * ops.maximum(size, 1.0), nearest, pixel
    )
    return pixel + ops.stop_gradient(snapped - pixel)


def grid_sample(image, grid):
    """Bilinear sampling of ``image`` at the normalised positions ``grid``.

    ``align_corners=True`` (±1 are the centres of the edge pixels) and zero padding: corners that
    fall outside the image contribute 0, so a grid point half a pixel beyond the edge reads half the
    edge value. Gather-based (the four corners of every grid point are gathered from the flattened
    batch in one ``take``), differentiable with respect to both ``image`` and ``grid``; the identity
    grid of :func:`make_coordinate_grid` returns the image exactly.

    Args:
        image: float tensor of shape ``(B, H, W, C)``.
        grid: float tensor of shape ``(B, h, w, 2)``. (x, y) sampling positions in [-1, 1];
            values outside are allowed (zero padding); a NaN position reads NaN (never an
            out-of-range gather index).

    Returns:
        Tensor of shape ``(B, h, w, C)``, in ``image``'s floating dtype (float32 for integer
        images). Coordinates are computed in float32 (float64 if either input is float64), also
        under mixed precision.

    Example:

    >>> import numpy as np
    >>> from synpose_keras.ops import grid_sample, make_coordinate_grid
    >>> image = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
    >>> grid = np.broadcast_to(make_coordinate_grid(8, 8), (2, 8, 8, 2))
    >>> bool(np.array_equal(grid_sample(image, grid), image))
    True

    Reference:
        PyTorch ``F.grid_sample(mode="bilinear", padding_mode="zeros", align_corners=True)``, with
        NHWC tensors; FOMM (Siarohin et al., NeurIPS 2019), docs/protocol.md.
    """
    image = ops.convert_to_tensor(image)
    grid = ops.convert_to_tensor(grid)
    if len(image.shape) != 4:
        raise ValueError(f"`image` must have shape (B, H, W, C). Received: image.shape={image.shape}")
    if len(grid.shape) != 4 or (grid.shape[-1] is not None and grid.shape[-1] != 2):
        raise ValueError(f"`grid` must have shape (B, h, w, 2). Received: grid.shape={grid.shape}")
    if image.shape[0] is not None and grid.shape[0] is not None and image.shape[0] != grid.shape[0]:
        raise ValueError(
            "`image` and `grid` must have the same batch size. "
            f"Received: image.shape={image.shape}, grid.shape={grid.shape}"
        )
    out_dtype = image.dtype if "float" in str(image.dtype) else "float32"
    dtype = _compute_dtype(image, grid)
    image = ops.cast(image, dtype)
    grid = ops.cast(grid, dtype)

    shape = ops.shape(image)
    height, width, channels = shape[1], shape[2], shape[3]
    x = _unnormalize(grid[..., 0], width, dtype)  # (B, h, w)
    y = _unnormalize(grid[..., 1], height, dtype)
    x0 = ops.stop_gradient(ops.floor(x))
    y0 = ops.stop_gradient(ops.floor(y))
    wx1 = x - x0
    wy1 = y - y0
    wx0 = 1.0 - wx1
    wy0 = 1.0 - wy1

    # The four corners, stacked on a leading axis: (4, B, h, w).
    cx = ops.stack([x0, x0 + 1.0, x0, x0 + 1.0])
    cy = ops.stack([y0, y0, y0 + 1.0, y0 + 1.0])
    weight = ops.stack([wx0 * wy0, wx1 * wy0, wx0 * wy1, wx1 * wy1])
    inside = (
        (cx >= 0.0)
        & (cx <= ops.cast(width - 1, dtype))
        & (cy >= 0.0)
        & (cy <= ops.cast(height - 1, dtype))
    )
    # NaN coordinates (diverged weights upstream) give NaN outputs, so the loss shows the
    # divergence, and are never used as gather indices (a NaN cast to int is out of range)
    nan = ops.isnan(cx) | ops.isnan(cy)
    weight = ops.where(inside | nan, weight, ops.zeros_like(weight))
    cx = ops.where(nan, ops.zeros_like(cx), cx)
    cy = ops.where(nan, ops.zeros_like(cy), cy)
    ix = ops.cast(ops.clip(cx, 0.0, ops.cast(width - 1, dtype)), "int32")
    iy = ops.cast(ops.clip(cy, 0.0, ops.cast(height - 1, dtype)), "int32")
    # batch index b, from the tensor itself so that an unknown (symbolic) batch size works too
    batch_index = ops.cumsum(ops.ones_like(ix[0, :, :1, :1]), axis=0) - 1  # (B, 1, 1)
    index = (batch_index * height + iy) * width + ix  # (4, B, h, w)

    flat = ops.reshape(image, (-1, channels))  # (B * H * W, C)
    corners = ops.take(flat, index, axis=0)  # (4, B, h, w, C)
    out = ops.sum(corners * weight[..., None], axis=0)
    return ops.cast(out, out_dtype)


def make_coordinate_grid(height, width, dtype="float32"):
    """The identity sampling grid: pixel centres in normalised coordinates.

    Args:
        height: int. Number of rows.
        width: int. Number of columns.
        dtype: str. Defaults to "float32".

    Returns:
        Tensor of shape ``(height, width, 2)``: ``grid[i, j] = (x_j, y_i)`` with
        ``x_j = 2 j / (width - 1) - 1`` (0 when ``width == 1``), the FOMM ``make_coordinate_grid``.

    Example:

    >>> from synpose_keras.ops import make_coordinate_grid
    >>> make_coordinate_grid(2, 3).numpy()[1].tolist()
    [[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]
    """
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(
            f"Grid size must be positive. Received: height={height}, width={width}"
        )

    def axis(n):
        i = ops.arange(n, dtype=dtype)
        return 2.0 * (i / max(n - 1, 1)) - 1.0 if n > 1 else ops.zeros((1,), dtype=dtype)

    xs, ys = axis(width), axis(height)
    gx = ops.broadcast_to(xs[None, :], (height, width))
    gy = ops.broadcast_to(ys[:, None], (height, width))
    return ops.stack([gx, gy], axis=-1)


def normalize_keypoints(keypoints, size):
    """Pixel coordinates -> [-1, 1] (``align_corners=True``): ``x_n = 2 x / (W - 1) - 1``.

    Args:
        keypoints: float tensor ``(..., 2)``, (x, y) in pixels whose centres sit at integers.
        size: int or (width, height). Image size in pixels.

    Returns:
        float32 tensor ``(..., 2)``.

    Example:

    >>> from synpose_keras.ops import normalize_keypoints
    >>> normalize_keypoints([[0.0, 63.0]], 64).numpy().tolist()
    [[-1.0, 1.0]]
    """
    w, h = _size_wh(size, "size")
    scale = ops.convert_to_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], dtype="float32")
    return ops.cast(keypoints, "float32") * scale - 1.0


def denormalize_keypoints(keypoints, size):
    """[-1, 1] -> pixel coordinates: ``x = (x_n + 1) (W - 1) / 2``; inverse of
    :func:`normalize_keypoints`.

    Args:
        keypoints: float tensor ``(..., 2)`` in normalised coordinates.
        size: int or (width, height). Image size in pixels.

    Returns:
        float32 tensor ``(..., 2)`` in pixels.
    """
    w, h = _size_wh(size, "size")
    half = ops.convert_to_tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype="float32")
    return (ops.cast(keypoints, "float32") + 1.0) * half


def keypoints_to_gaussians(keypoints, height, width, variance=0.01):
    """Unnormalised Gaussian blobs at normalised keypoints (FOMM ``kp2gaussian``).

    ``G_k(z) = exp(-||z - p_k||² / (2 variance))`` on the identity grid of size (height, width).

    Args:
        keypoints: float tensor ``(..., K, 2)``, (x, y) in [-1, 1].
        height: int. Output height.
        width: int. Output width.
        variance: float. In normalised units. Defaults to 0.01 (FOMM).

    Returns:
        float32 tensor ``(..., height, width, K)``, peak 1 at each keypoint.

    Example:

    >>> from synpose_keras.ops import keypoints_to_gaussians
    >>> g = keypoints_to_gaussians([[[0.0, 0.0]]], 5, 5)
    >>> tuple(g.shape), float(g[0, 2, 2, 0])
    ((1, 5, 5, 1), 1.0)
    """
    keypoints = ops.cast(keypoints, "float32")
    grid = make_coordinate_grid(height, width)  # (h, w, 2)
    kp = ops.expand_dims(ops.expand_dims(keypoints, -3), -3)  # (..., 1, 1, K, 2)
    diff = grid[:, :, None, :] - kp  # (..., h, w, K, 2)
    return ops.exp(-0.5 * ops.sum(ops.square(diff), axis=-1) / variance)


def displacement_field(mask, kp_base, kp_driving):
    """Region-wise zero-order (translation) motion: the sampling grid of the base image.

    ``D(z) = z + Σ_{k=1..K} mask[..., k](z) · (p_k^base - p_k^drv)``; channel 0 of ``mask`` is the
    background, which keeps the identity. Warping is backward (FOMM): ``grid_sample(base, D)``
    reads, at every driving-frame pixel, the base image where that region's content came from, so
    a keypoint that moves by ``Δ = p_drv - p_base`` shows up in D as ``-Δ``.

    Args:
        mask: float tensor ``(B, h, w, K + 1)``, usually a softmax over regions.
        kp_base: float tensor ``(B, K, 2)``, base keypoints in [-1, 1].
        kp_driving: float tensor ``(B, K, 2)``, driving keypoints in [-1, 1].

    Returns:
        float32 tensor ``(B, h, w, 2)``, (x, y) sampling positions in [-1, 1] for
        :func:`grid_sample`.

    Example:

    >>> import numpy as np
    >>> from synpose_keras.ops import displacement_field
    >>> mask = np.zeros((1, 4, 4, 2), "float32"); mask[..., 1] = 1.0
    >>> d = displacement_field(mask, [[[0.5, 0.0]]], [[[0.0, 0.0]]])
    >>> d.numpy()[0, 0, 0].tolist()   # identity (-1, -1) shifted by p_base - p_drv
    [-0.5, -1.0]

    Reference:
        Siarohin et al., FOMM (NeurIPS 2019), dense motion with zero-order motion; the paper's
        supplementary A (warping module W).
    """
    mask = ops.cast(mask, "float32")
    kp_base = ops.cast(kp_base, "float32")
    kp_driving = ops.cast(kp_driving, "float32")
    if len(mask.shape) != 4:
        raise ValueError(f"`mask` must have shape (B, h, w, K + 1). Received: mask.shape={mask.shape}")
    num_kp = kp_base.shape[-2]
    if (
        mask.shape[-1] is not None
        and num_kp is not None
        and mask.shape[-1] != num_kp + 1
    ):
        raise ValueError(
            "`mask` must have K + 1 channels (background first) for K keypoints. "
            f"Received: mask.shape={mask.shape}, kp_base.shape={kp_base.shape}"
        )
    if mask.shape[1] is None or mask.shape[2] is None:
        raise ValueError(
            f"`mask` must have a static spatial size. Received: mask.shape={mask.shape}"
        )
    grid = make_coordinate_grid(mask.shape[1], mask.shape[2])
    delta = kp_base - kp_driving  # (B, K, 2)
    motion = ops.einsum("bhwk,bkc->bhwc", mask[..., 1:], delta)
    return grid[None] + motion


def anti_alias_downsample(image, scale):
    """Gaussian blur then subsampling (FOMM ``AntiAliasInterpolation2d``).

    ``σ = (1 / scale - 1) / 2``, kernel size ``2 round(4σ) + 1`` (13×13 for scale 1/4), zero
    padding, normalised kernel, then every ``1 / scale``-th pixel starting at 0.

    Args:
        image: float tensor ``(B, H, W, C)`` with a known channel count.
        scale: float in (0, 1] whose inverse is an integer (1, 1/2, 1/4...). 1 returns the image.

    Returns:
        Tensor ``(B, ceil(H * scale), ceil(W * scale), C)``.

    Example:

    >>> import numpy as np
    >>> from synpose_keras.ops import anti_alias_downsample
    >>> tuple(anti_alias_downsample(np.ones((1, 64, 64, 3), "float32"), 0.25).shape)
    (1, 16, 16, 3)
    """
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"`scale` must be in (0, 1]. Received: scale={scale!r}")
    step = 1.0 / scale
    if abs(step - round(step)) > 1e-6:
        raise ValueError(
            f"`scale` must be the inverse of an integer (1, 1/2, 1/4, ...). Received: scale={scale!r}"
        )
    step = int(round(step))
    image = ops.convert_to_tensor(image)
    if step == 1:
        return image
    channels = image.shape[-1]
    if channels is None or len(image.shape) != 4:
        raise ValueError(
            "`image` must have shape (B, H, W, C) with a known C. "
            f"Received: image.shape={image.shape}"
        )
    sigma = (step - 1) / 2.0
    size = 2 * int(round(sigma * 4)) + 1
    half = size // 2
    taps = np.exp(-((np.arange(size) - (size - 1) / 2.0) ** 2) / (2 * sigma**2))
    taps = (taps / taps.sum()).astype("float32")  # the 2-D kernel is the separable product
    dtype = image.dtype if "float" in str(image.dtype) else "float32"
    image = ops.cast(image, dtype)
    kernel_y = ops.cast(np.tile(taps[:, None, None, None], (1, 1, channels, 1)), dtype)
    kernel_x = ops.cast(np.tile(taps[None, :, None, None], (1, 1, channels, 1)), dtype)
    padded = ops.pad(image, [[0, 0], [half, half], [half, half], [0, 0]])
    out = ops.depthwise_conv(padded, kernel_y, strides=(step, 1), padding="valid")
    return ops.depthwise_conv(out, kernel_x, strides=(1, step), padding="valid")


__all__ = [
    "grid_sample",
    "make_coordinate_grid",
    "normalize_keypoints",
    "denormalize_keypoints",
    "keypoints_to_gaussians",
    "displacement_field",
    "anti_alias_downsample",
]
