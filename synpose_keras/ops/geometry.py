"""2-D affine helpers, camera projection and alignment fits.

Conventions (used by the data pipeline, the pseudo-labels and the 3D lifting):

- Points are (x, y) PIXEL coordinates with pixel centres at integers: pixel ``i`` covers
  ``[i - 0.5, i + 0.5]``, an image of width ``W`` spans ``[-0.5, W - 0.5]`` and its centre is
  ``(W - 1) / 2``. This is the convention of ``keras.ops.image.affine_transform`` /
  TensorFlow's ``ImageProjectiveTransformV3`` and of the keypoint labels (a horizontal flip maps
  ``x`` to ``W - 1 - x``, as in TLlib).
- Matrices are 3×3 homogeneous affine matrices ``[[a, b, tx], [c, d, ty], [0, 0, 1]]`` acting on
  column vectors: ``p' = M @ (x, y, 1)``. A batch of matrices is ``(..., 3, 3)``.
- ``compose(A, B, C) = A @ B @ C``: like a matrix product, the LAST matrix is applied FIRST.
- Angles in degrees; a positive rotation turns the image counter-clockwise as displayed (y axis
  pointing down), like OpenCV's ``getRotationMatrix2D``.

Every function takes NumPy arrays / Python numbers (and returns float64 NumPy arrays) or backend
tensors (and returns tensors, computed with ``keras.ops``, so they can run inside
``tf.data.Dataset.map`` or a ``train_step``). Builders accept batched parameters: an angle of
shape ``(B,)`` gives ``(B, 3, 3)`` matrices.

Shape glossary:
    ``...``: leading batch dimensions. ``N``: number of points. ``D``: point dimension (2 or 3).

Reference:
    Umeyama, "Least-squares estimation of transformation parameters between two point
    patterns", TPAMI 1991 (:func:`procrustes`).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops


# --------------------------------------------------------------------------------------------
# NumPy / keras.ops dispatch
# --------------------------------------------------------------------------------------------


def _is_tensor(x):
    return ops.is_tensor(x) or isinstance(x, keras.KerasTensor)


class _NumpyNS:
    """The handful of array functions used below, NumPy flavour (float64)."""

    tensor = False
    stack = staticmethod(np.stack)
    matmul = staticmethod(np.matmul)
    sum = staticmethod(np.sum)
    sqrt = staticmethod(np.sqrt)
    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)
    tan = staticmethod(np.tan)
    zeros_like = staticmethod(np.zeros_like)
    ones_like = staticmethod(np.ones_like)
    maximum = staticmethod(np.maximum)
    where = staticmethod(np.where)
    expand_dims = staticmethod(np.expand_dims)
    swapaxes = staticmethod(np.swapaxes)
    sign = staticmethod(np.sign)
    det = staticmethod(np.linalg.det)

    @staticmethod
    def svd(x):
        return np.linalg.svd(x)

    @staticmethod
    def asarray(x):
        return np.asarray(x, dtype=np.float64)


class _KerasNS:
    """The same functions through keras.ops (float32 unless a float64 tensor comes in)."""

    tensor = True
    stack = staticmethod(ops.stack)
    matmul = staticmethod(ops.matmul)
    sum = staticmethod(ops.sum)
    sqrt = staticmethod(ops.sqrt)
    cos = staticmethod(ops.cos)
    sin = staticmethod(ops.sin)
    tan = staticmethod(ops.tan)
    zeros_like = staticmethod(ops.zeros_like)
    ones_like = staticmethod(ops.ones_like)
    maximum = staticmethod(ops.maximum)
    where = staticmethod(ops.where)
    expand_dims = staticmethod(ops.expand_dims)
    swapaxes = staticmethod(ops.swapaxes)
    sign = staticmethod(ops.sign)
    det = staticmethod(ops.det)

    def __init__(self, dtype):
        self.dtype = dtype

    @staticmethod
    def svd(x):
        return ops.svd(x, full_matrices=False)

    def asarray(self, x):
        x = ops.convert_to_tensor(x)
        return x if x.dtype == self.dtype else ops.cast(x, self.dtype)


def _namespace(*args):
    tensors = [a for a in args if _is_tensor(a)]
    if not tensors:
        return _NumpyNS
    return _KerasNS("float64" if any(t.dtype == "float64" for t in tensors) else "float32")


def _xy(point, xp, name):
    point = xp.asarray(point)
    if point.shape[-1] != 2:
        raise ValueError(f"`{name}` must be an (x, y) pair (..., 2). Received: {name}.shape={point.shape}")
    return point[..., 0], point[..., 1]


def _affine(xp, a, b, tx, c, d, ty):
    """Stacks broadcastable parameter arrays into (..., 3, 3) affine matrices."""
    entries = [xp.asarray(v) for v in (a, b, tx, c, d, ty)]
    common = entries[0] * 0.0
    for e in entries[1:]:
        common = common + e * 0.0
    a, b, tx, c, d, ty = (e + common for e in entries)
    zero, one = xp.zeros_like(a), xp.ones_like(a)
    return xp.stack(
        [xp.stack([a, b, tx], -1), xp.stack([c, d, ty], -1), xp.stack([zero, zero, one], -1)], -2
    )


def _about(xp, a, b, c, d, center, name="center"):
    """Linear part (a, b; c, d) applied about `center` -> (..., 3, 3)."""
    cx, cy = _xy(center, xp, name)
    return _affine(xp, a, b, cx - (a * cx + b * cy), c, d, cy - (c * cx + d * cy))


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def rotation_matrix(deg, center=(0.0, 0.0)):
    """Rotation by ``deg`` degrees about ``center`` (counter-clockwise as displayed, y down).

    Args:
        deg: float or array ``(...,)``. Angle in degrees.
        center: (x, y) or array ``(..., 2)``. Fixed point of the rotation. Defaults to the origin.

    Returns:
        ``(..., 3, 3)`` affine matrix.

    Example:

    >>> from synpose_keras.ops import apply_affine, rotation_matrix
    >>> apply_affine(rotation_matrix(90.0, (10.0, 10.0)), [[11.0, 10.0]]).round(6).tolist()
    [[10.0, 9.0]]
    """
    xp = _namespace(deg, center)
    rad = xp.asarray(deg) * (math.pi / 180.0)
    cos, sin = xp.cos(rad), xp.sin(rad)
    return _about(xp, cos, sin, -sin, cos, center)


def scale_matrix(scale, center=(0.0, 0.0), scale_y=None):
    """Scaling by ``scale`` (and ``scale_y`` vertically, when given) about ``center``.

    Args:
        scale: float or array ``(...,)``. Horizontal (and, by default, vertical) factor.
        center: (x, y) or array ``(..., 2)``. Fixed point. Defaults to the origin.
        scale_y: optional float or array ``(...,)``. Vertical factor. Defaults to ``scale``.

    Returns:
        ``(..., 3, 3)`` affine matrix.
    """
    xp = _namespace(scale, center, scale_y)
    sx = xp.asarray(scale)
    sy = sx if scale_y is None else xp.asarray(scale_y)
    zero = xp.zeros_like(sx * sy)
    return _about(xp, sx, zero, zero, sy, center)


def shear_matrix(deg, center=(0.0, 0.0), deg_y=0.0):
    """Shear: ``x' = x + tan(deg) (y - cy)`` (and ``y' = y + tan(deg_y) (x - cx)``).

    Args:
        deg: float or array ``(...,)``. Horizontal shear angle in degrees.
        center: (x, y) or array ``(..., 2)``. Fixed point. Defaults to the origin.
        deg_y: float or array ``(...,)``. Vertical shear angle in degrees. Defaults to 0.

    Returns:
        ``(..., 3, 3)`` affine matrix ``[[1, tan(deg), ·], [tan(deg_y), 1, ·], [0, 0, 1]]``.
    """
    xp = _namespace(deg, center, deg_y)
    shx = xp.tan(xp.asarray(deg) * (math.pi / 180.0))
    shy = xp.tan(xp.asarray(deg_y) * (math.pi / 180.0))
    one = xp.ones_like(shx * shy)
    return _about(xp, one, shx, shy, one, center)


def translation_matrix(tx, ty):
    """Translation by (tx, ty) pixels. Args may be floats or arrays ``(...,)``."""
    xp = _namespace(tx, ty)
    tx, ty = xp.asarray(tx), xp.asarray(ty)
    one, zero = xp.ones_like(tx * ty), xp.zeros_like(tx * ty)
    return _affine(xp, one, zero, tx, zero, one, ty)


def hflip_matrix(width):
    """Horizontal flip of an image ``width`` pixels wide: ``x' = width - 1 - x``.

    The geometric flip only; the caller also swaps left/right keypoints
    (``Skeleton.flip_index``).
    """
    xp = _namespace(width)
    width = xp.asarray(width)
    one, zero = xp.ones_like(width), xp.zeros_like(width)
    return _affine(xp, -one, zero, width - 1.0, zero, one, zero)


def crop_matrix(center, side, output_size):
    """Maps a square crop of the image onto an ``output_size × output_size`` image.

    The crop covers ``[cx - side/2, cx + side/2] × [cy - side/2, cy + side/2]`` in input pixel
    coordinates (pixel centres at integers), and the output spans ``[-0.5, output_size - 0.5]``:
    ``x_out = (x - cx) · output_size / side + (output_size - 1) / 2``. The crop centre lands on the
    output centre ``((S - 1) / 2, (S - 1) / 2)``; with ``side == output_size`` the map is a pure
    translation (no resampling).

    Args:
        center: (x, y) or array ``(..., 2)``. Crop centre in input pixels.
        side: float or array ``(...,)``. Side of the square crop in input pixels.
        output_size: int. Side of the output image in pixels.

    Returns:
        ``(..., 3, 3)`` affine matrix, input pixels -> output pixels.

    Example:

    >>> from synpose_keras.ops import apply_affine, crop_matrix
    >>> apply_affine(crop_matrix((100.0, 50.0), 200.0, 256), [[100.0, 50.0]]).tolist()
    [[127.5, 127.5]]
    """
    xp = _namespace(center, side)
    cx, cy = _xy(center, xp, "center")
    s = float(output_size) / xp.asarray(side)
    half = (float(output_size) - 1.0) / 2.0
    zero = s * 0.0
    return _affine(xp, s, zero, half - s * cx, zero, s, half - s * cy)


# --------------------------------------------------------------------------------------------
# Algebra
# --------------------------------------------------------------------------------------------


def compose(*matrices):
    """Matrix product ``m1 @ m2 @ ... @ mn``: the last matrix is applied first.

    ``compose(crop, rotation)`` rotates, then crops. Batched matrices broadcast.
    """
    if not matrices:
        raise ValueError("`compose` needs at least one matrix. Received: no arguments")
    xp = _namespace(*matrices)
    out = xp.asarray(matrices[0])
    for m in matrices[1:]:
        out = xp.matmul(out, xp.asarray(m))
    return out


def invert_affine(matrix):
    """Inverse of ``(..., 3, 3)`` affine matrices (closed form, no general matrix inverse)."""
    xp = _namespace(matrix)
    m = xp.asarray(matrix)
    if tuple(m.shape[-2:]) != (3, 3):
        raise ValueError(f"`matrix` must have shape (..., 3, 3). Received: matrix.shape={m.shape}")
    a, b, tx = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    c, d, ty = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return _affine(xp, ia, ib, -(ia * tx + ib * ty), ic, id_, -(ic * tx + id_ * ty))


def apply_affine(matrix, points):
    """Applies ``(..., 3, 3)`` affine matrices to ``(..., N, 2)`` points (a single (2,) point is
    fine too).

    Example:

    >>> from synpose_keras.ops import apply_affine, translation_matrix
    >>> apply_affine(translation_matrix(2.0, -1.0), [[0.0, 0.0], [1.0, 1.0]]).tolist()
    [[2.0, -1.0], [3.0, 0.0]]
    """
    xp = _namespace(matrix, points)
    m = xp.asarray(matrix)
    p = xp.asarray(points)
    if p.shape[-1] != 2:
        raise ValueError(f"`points` must have shape (..., 2). Received: points.shape={p.shape}")
    single = len(p.shape) == 1
    if single:
        p = p[None]
    x, y = p[..., 0], p[..., 1]

    def entry(i, j):
        return xp.expand_dims(m[..., i, j], -1)

    out = xp.stack(
        [
            entry(0, 0) * x + entry(0, 1) * y + entry(0, 2),
            entry(1, 0) * x + entry(1, 1) * y + entry(1, 2),
        ],
        -1,
    )
    return out[0] if single else out


def to_transform_params(matrix):
    """Input->output affine ``(..., 3, 3)`` -> the 8 parameters of
    ``keras.ops.image.affine_transform`` / ``ImageProjectiveTransformV3`` ``(..., 8)``.

    Those ops map each OUTPUT pixel to the INPUT pixel it reads, so the parameters are the first 8
    entries of the inverse matrix. Both use the integer pixel-centre convention of this module.
    """
    xp = _namespace(matrix)
    inv = invert_affine(matrix)
    return xp.stack(
        [inv[..., 0, 0], inv[..., 0, 1], inv[..., 0, 2], inv[..., 1, 0], inv[..., 1, 1],
         inv[..., 1, 2], inv[..., 2, 0], inv[..., 2, 1]],
        -1,
    )


# --------------------------------------------------------------------------------------------
# Cameras and fits
# --------------------------------------------------------------------------------------------


def project(points_3d, intrinsics):
    """Pinhole projection of camera-frame 3D points: ``(u, v) = (K X)[:2] / (K X)[2]``.

    Args:
        points_3d: ``(..., N, 3)`` points in camera coordinates (z > 0 in front of the camera).
        intrinsics: ``(..., 3, 3)`` camera matrix K.

    Returns:
        ``(..., N, 2)`` pixel coordinates.
    """
    xp = _namespace(points_3d, intrinsics)
    pts = xp.asarray(points_3d)
    k = xp.asarray(intrinsics)
    if pts.shape[-1] != 3:
        raise ValueError(f"`points_3d` must have shape (..., N, 3). Received: points_3d.shape={pts.shape}")
    uvw = xp.matmul(pts, xp.swapaxes(k, -1, -2))
    return uvw[..., :2] / uvw[..., 2:3]


def _weighted_centering(xp, src, dst, weights):
    if weights is None:
        weights = xp.ones_like(src[..., 0])
    w = xp.asarray(weights)
    w = xp.expand_dims(w, -1)  # (..., N, 1)
    total = xp.maximum(xp.sum(w, axis=-2), 1e-12)  # (..., 1)
    mu_s = xp.sum(w * src, axis=-2) / total  # (..., D)
    mu_d = xp.sum(w * dst, axis=-2) / total
    return w, total, mu_s, mu_d, src - xp.expand_dims(mu_s, -2), dst - xp.expand_dims(mu_d, -2)


def fit_scale_translation(src, dst, weights=None):
    """Weighted least squares ``min_{s, t} Σ_i w_i ||s · src_i + t - dst_i||²``.

    Used to place a lifted (and kinematically corrected) pose back onto the 2D prediction: ``src``
    is the projected 3D pose, ``dst`` the observed 2D keypoints, ``weights`` their confidences.

    Args:
        src: ``(..., N, D)`` points to fit.
        dst: ``(..., N, D)`` target points.
        weights: optional ``(..., N)`` non-negative weights. Defaults to all ones.

    Returns:
        ``(scale (...,), translation (..., D))``; ``s · src + t`` is the fit. A degenerate
        ``src`` (all weighted points equal) gives scale 0 and ``t`` = weighted mean of ``dst``.

    Example:

    >>> import numpy as np
    >>> from synpose_keras.ops import fit_scale_translation
    >>> src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    >>> s, t = fit_scale_translation(src, 3.0 * src + [5.0, -1.0])
    >>> round(float(s), 6), t.round(6).tolist()
    (3.0, [5.0, -1.0])
    """
    xp = _namespace(src, dst, weights)
    src, dst = xp.asarray(src), xp.asarray(dst)
    w, _, mu_s, mu_d, cs, cd = _weighted_centering(xp, src, dst, weights)
    num = xp.sum(w * cs * cd, axis=(-2, -1))
    den = xp.sum(w * cs * cs, axis=(-2, -1))
    scale = xp.where(den > 1e-12, num / xp.maximum(den, 1e-12), xp.zeros_like(num))
    translation = mu_d - xp.expand_dims(scale, -1) * mu_s
    return scale, translation


def procrustes(src, dst, weights=None, allow_reflection=False):
    """Similarity alignment (Umeyama): ``min Σ_i w_i ||s R src_i + t - dst_i||²``.

    Args:
        src: ``(..., N, D)`` points to align (D = 2 or 3).
        dst: ``(..., N, D)`` target points.
        weights: optional ``(..., N)`` non-negative weights. Defaults to all ones.
        allow_reflection: bool. Allow ``det R = -1``. Defaults to False (proper rotation).

    Returns:
        ``(scale (...,), rotation (..., D, D), translation (..., D))``; the aligned points are
        ``s · src @ R.T + t`` (see :func:`procrustes_align`).
    """
    xp = _namespace(src, dst, weights)
    src, dst = xp.asarray(src), xp.asarray(dst)
    w, total, mu_s, mu_d, cs, cd = _weighted_centering(xp, src, dst, weights)
    dim = src.shape[-1]
    total = xp.expand_dims(total, -1)  # (..., 1, 1)
    cov = xp.matmul(xp.swapaxes(w * cd, -1, -2), cs) / total  # (..., D, D) = Σ w d s^T
    u, sv, vt = xp.svd(cov)
    if allow_reflection:
        sign = xp.ones_like(sv[..., -1])
    else:
        sign = xp.sign(xp.det(u) * xp.det(vt))
        sign = xp.where(sign == 0, xp.ones_like(sign), sign)
    ones = [xp.ones_like(sign)] * (dim - 1)
    fix = xp.stack(ones + [sign], -1)  # (..., D)
    rotation = xp.matmul(u * xp.expand_dims(fix, -2), vt)
    var_s = xp.sum(w * cs * cs, axis=(-2, -1)) / total[..., 0, 0]
    scale = xp.sum(sv * fix, axis=-1) / xp.maximum(var_s, 1e-12)
    rotated_mu = xp.sum(rotation * xp.expand_dims(mu_s, -2), axis=-1)  # R @ mu_s
    translation = mu_d - xp.expand_dims(scale, -1) * rotated_mu
    return scale, rotation, translation


def procrustes_align(src, dst, weights=None, allow_reflection=False):
    """``src`` aligned onto ``dst`` by the best similarity (:func:`procrustes`): ``(..., N, D)``."""
    xp = _namespace(src, dst, weights)
    scale, rotation, translation = procrustes(src, dst, weights, allow_reflection)
    src = xp.asarray(src)
    aligned = xp.matmul(src, xp.swapaxes(rotation, -1, -2))
    return xp.expand_dims(xp.expand_dims(scale, -1), -1) * aligned + xp.expand_dims(translation, -2)
