"""Heatmap codec: keypoints <-> Gaussian heatmaps, argmax and soft-argmax decoding.

This is the one place where keypoints become heatmaps and heatmaps become keypoints; the data
pipeline, the models, the losses and the metrics all go through it, so encoding and decoding cannot
disagree. Everything here uses ``keras.ops`` only, so it runs under any Keras backend and, with the
TensorFlow backend, inside ``tf.data.Dataset.map``.

Protocol (REFERENCE §1, the TLlib/UniFrame convention used by every number we compare with):

- ``stride = input_size / heatmap_size`` per axis (256 / 64 = 4).
- Heatmap centre = ``floor(kp / stride + 0.5)``: the keypoint rounded half up to an integer
  heatmap pixel.
- ``exp(-d² / (2σ²))`` centred on that integer pixel (peak exactly 1), drawn only inside the
  window ``|dx|, |dy| <= floor(3σ)`` (13×13 for σ = 2), zero elsewhere.
- Invisible joints, and joints whose rounded centre falls outside ``[0, Wh) × [0, Hh)``, get an
  all-zero map and weight 0.
- Heatmap pixel -> input pixel: ``x_in = x_hm * stride`` (the convention of the PCK protocol).

Shape glossary:
    ``...``: any leading batch dimensions (none, ``B``, ``B, V``...).
    ``K``: number of keypoints.
    ``Hh, Wh``: heatmap height and width.

Reference:
    Lin et al., "Synthetic-to-Real Pose Estimation with Geometric Reconstruction", NeurIPS 2023,
    supplementary A (f_kp); Xiao et al., "Simple Baselines for Human Pose Estimation", ECCV 2018.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

#: Default inverse temperature of :func:`soft_argmax`. On a protocol heatmap (σ = 2, peak 1, 64×64)
#: the soft-argmax is within 1e-3 px of the argmax away from the border and within 0.06 px when the
#: peak sits on the border (where the truncated Gaussian is one-sided); at ``beta = 20`` the border
#: error is 0.09 px, at 15 it is 0.18 px. The effective temperature scales with the peak value, so a
#: predicted heatmap with peak 0.5 behaves like ``beta / 2``.
SOFT_ARGMAX_BETA = 25.0


def _size_wh(size, name):
    """Parses an int or a (w, h) pair into a (w, h) tuple of Python ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        w = h = int(size)
    else:
        try:
            w, h = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(
                f"`{name}` must be an int or a (width, height) pair of ints. Received: {name}={size!r}"
            ) from None
    if w <= 0 or h <= 0:
        raise ValueError(f"`{name}` must be positive. Received: {name}={size!r}")
    return w, h


def _float(x):
    x = ops.convert_to_tensor(x)
    if x.dtype != "float32":
        x = ops.cast(x, "float32")
    return x


def encode_heatmaps(keypoints, visible, input_size, heatmap_size, sigma=2.0):
    """Renders keypoints as protocol Gaussian heatmaps (see the module docstring).

    Args:
        keypoints: float tensor of shape ``(..., K, 2)``. (x, y) in INPUT pixels.
        visible: tensor of shape ``(..., K)``, bool or float; a joint is visible when > 0.
        input_size: int or (width, height). Size of the input image in pixels.
        heatmap_size: int or (width, height). Size of the heatmap in pixels.
        sigma: float. Gaussian standard deviation in heatmap pixels. Defaults to 2.0.

    Returns:
        ``(heatmaps, weights)``: float32 ``(..., Hh, Wh, K)`` maps with peak 1 and float32
        ``(..., K)`` weights (1 for an encoded joint, 0 for an invisible or out-of-map one).

    Example:

    >>> import numpy as np
    >>> from synpose_keras.ops import encode_heatmaps
    >>> hm, w = encode_heatmaps(np.array([[10.0, 20.0]]), np.array([1.0]), 256, 64)
    >>> tuple(hm.shape), float(hm[5, 3, 0]), float(w[0])  # centre = round(10/4, 20/4) = (3, 5)
    ((64, 64, 1), 1.0, 1.0)
    """
    in_w, in_h = _size_wh(input_size, "input_size")
    hm_w, hm_h = _size_wh(heatmap_size, "heatmap_size")
    if not sigma > 0:
        raise ValueError(f"`sigma` must be positive. Received: sigma={sigma!r}")
    radius = float(math.floor(3.0 * sigma))

    keypoints = _float(keypoints)
    visible = ops.convert_to_tensor(visible)
    if keypoints.shape[-1] is not None and keypoints.shape[-1] != 2:
        raise ValueError(
            f"`keypoints` must have shape (..., K, 2). Received: keypoints.shape={keypoints.shape}"
        )
    visible = ops.cast(visible, "float32") > 0

    stride = ops.convert_to_tensor([in_w / hm_w, in_h / hm_h], dtype="float32")
    centre = ops.floor(keypoints / stride + 0.5)  # (..., K, 2), integer-valued
    cx, cy = centre[..., 0], centre[..., 1]
    valid = visible & (cx >= 0) & (cx < hm_w) & (cy >= 0) & (cy < hm_h)
    weights = ops.cast(valid, "float32")

    def profile(c, n):
        # (..., K) centre -> (..., n, K) 1-D Gaussian profile, zero outside the window.
        d = ops.arange(n, dtype="float32")[:, None] - ops.expand_dims(c, -2)
        g = ops.exp(-ops.square(d) / (2.0 * sigma * sigma))
        return ops.where(ops.abs(d) <= radius, g, ops.zeros_like(g))

    gx = profile(cx, hm_w)  # (..., Wh, K)
    gy = profile(cy, hm_h) * ops.expand_dims(weights, -2)  # (..., Hh, K)
    heatmaps = ops.expand_dims(gy, -2) * ops.expand_dims(gx, -3)  # (..., Hh, Wh, K)
    return heatmaps, weights


def _check_heatmaps(heatmaps):
    heatmaps = ops.convert_to_tensor(heatmaps)
    if len(heatmaps.shape) < 3:
        raise ValueError(
            "`heatmaps` must have shape (..., Hh, Wh, K). "
            f"Received: heatmaps.shape={heatmaps.shape}"
        )
    return heatmaps


def decode_heatmaps(heatmaps):
    """Argmax decoding: the integer heatmap pixel of each map's maximum.

    Ties resolve to the first maximum in row-major order (smallest y, then smallest x), like
    ``numpy.argmax`` on the flattened map.

    Args:
        heatmaps: tensor of shape ``(..., Hh, Wh, K)``.

    Returns:
        ``(keypoints, scores)``: float32 ``(..., K, 2)`` (x, y) in HEATMAP pixels and
        ``(..., K)`` maxima.

    Example:

    >>> import numpy as np
    >>> from synpose_keras.ops import decode_heatmaps
    >>> hm = np.zeros((64, 64, 1), "float32"); hm[5, 3, 0] = 0.9
    >>> kp, score = decode_heatmaps(hm)
    >>> kp.numpy().tolist(), round(float(score[0]), 2)
    ([[3.0, 5.0]], 0.9)
    """
    heatmaps = _check_heatmaps(heatmaps)
    height = heatmaps.shape[-3] if heatmaps.shape[-3] is not None else ops.shape(heatmaps)[-3]
    row_max = ops.max(heatmaps, axis=-2)  # (..., Hh, K)
    y = ops.argmax(row_max, axis=-2)  # (..., K): first row holding the global maximum
    row_mask = ops.moveaxis(ops.one_hot(y, height, dtype=heatmaps.dtype), -1, -2)  # (..., Hh, K)
    row = ops.sum(heatmaps * ops.expand_dims(row_mask, -2), axis=-3)  # (..., Wh, K)
    x = ops.argmax(row, axis=-2)
    keypoints = ops.stack([ops.cast(x, "float32"), ops.cast(y, "float32")], axis=-1)
    scores = ops.cast(ops.max(row_max, axis=-2), "float32")
    return keypoints, scores


def soft_argmax(heatmaps, beta=SOFT_ARGMAX_BETA):
    """Differentiable decoding: expected pixel under ``softmax(beta * heatmap)`` over each map.

    Args:
        heatmaps: float tensor of shape ``(..., Hh, Wh, K)``.
        beta: float. Inverse temperature, in units of heatmap value. Defaults to
            ``SOFT_ARGMAX_BETA`` (25), which matches the argmax within 0.06 px on protocol
            heatmaps (σ = 2, peak 1), including peaks on the border.

    Returns:
        float32 tensor of shape ``(..., K, 2)``: (x, y) in HEATMAP pixels.

    Example:

    >>> from synpose_keras.ops import encode_heatmaps, soft_argmax
    >>> hm, _ = encode_heatmaps([[40.0, 80.0]], [1.0], 256, 64)
    >>> [round(v, 3) for v in soft_argmax(hm).numpy()[0].tolist()]
    [10.0, 20.0]

    Reference:
        Sun et al., "Integral Human Pose Regression", ECCV 2018.
    """
    heatmaps = _float(_check_heatmaps(heatmaps))
    height = ops.shape(heatmaps)[-3]
    width = ops.shape(heatmaps)[-2]
    logits = beta * heatmaps
    logits = logits - ops.stop_gradient(ops.max(logits, axis=(-3, -2), keepdims=True))
    p = ops.exp(logits)
    p = p / ops.sum(p, axis=(-3, -2), keepdims=True)  # (..., Hh, Wh, K)
    xs = ops.cast(ops.arange(width), "float32")[:, None]  # (Wh, 1)
    ys = ops.cast(ops.arange(height), "float32")[:, None]  # (Hh, 1)
    x = ops.sum(ops.sum(p, axis=-3) * xs, axis=-2)  # marginal over rows, (..., K)
    y = ops.sum(ops.sum(p, axis=-2) * ys, axis=-2)
    return ops.stack([x, y], axis=-1)


class HeatmapCodec:
    """Encodes keypoints as protocol heatmaps and decodes heatmaps back to input pixels.

    The data pipeline (targets), the pose predictor (``predict_keypoints``), the pseudo-labels and
    the metrics share one codec, so the keypoint <-> heatmap conventions are written once.

    Args:
        input_size: int or (width, height). Input image size in pixels.
        heatmap_size: int or (width, height). Heatmap size in pixels.
        sigma: float. Gaussian standard deviation in heatmap pixels. Defaults to 2.0.
        beta: float. Inverse temperature of :meth:`soft_decode`. Defaults to ``SOFT_ARGMAX_BETA``.

    Attributes:
        stride: float, input pixels per heatmap pixel (``input / heatmap``) when both axes share
            it; otherwise a float32 ``(2,)`` array (sx, sy), which broadcasts against
            ``(..., K, 2)`` keypoints all the same.
        stride_xy: (sx, sy) tuple of floats, always.

    Example:

    >>> import numpy as np
    >>> from synpose_keras.ops import HeatmapCodec
    >>> codec = HeatmapCodec(256, 64)
    >>> hm, w = codec.encode(np.array([[100.0, 37.0]]), np.array([1.0]))
    >>> kp, scores = codec.decode(hm)
    >>> kp.numpy().tolist(), codec.stride   # round(100/4)*4, round(37/4)*4
    ([[100.0, 36.0]], 4.0)

    Reference:
        REFERENCE §1 (the TLlib/UniFrame heatmap protocol).
    """

    def __init__(self, input_size, heatmap_size, sigma=2.0, beta=SOFT_ARGMAX_BETA):
        in_w, in_h = _size_wh(input_size, "input_size")
        hm_w, hm_h = _size_wh(heatmap_size, "heatmap_size")
        if not sigma > 0:
            raise ValueError(f"`sigma` must be positive. Received: sigma={sigma!r}")
        if not beta > 0:
            raise ValueError(f"`beta` must be positive. Received: beta={beta!r}")
        self.input_size = input_size
        self.heatmap_size = heatmap_size
        self.sigma = float(sigma)
        self.beta = float(beta)
        self.input_wh = (in_w, in_h)
        self.heatmap_wh = (hm_w, hm_h)
        self.stride_xy = (in_w / hm_w, in_h / hm_h)
        if self.stride_xy[0] == self.stride_xy[1]:
            self.stride = self.stride_xy[0]
        else:
            self.stride = np.asarray(self.stride_xy, dtype="float32")

    def encode(self, keypoints, visible):
        """``(..., K, 2)`` input-pixel keypoints -> ``(heatmaps (..., Hh, Wh, K), weights (..., K))``."""
        return encode_heatmaps(
            keypoints, visible, self.input_wh, self.heatmap_wh, sigma=self.sigma
        )

    def to_input(self, keypoints_hm):
        """Heatmap pixels -> input pixels: ``x_in = x_hm * stride``."""
        return _float(keypoints_hm) * ops.convert_to_tensor(self.stride_xy, dtype="float32")

    def to_heatmap(self, keypoints_in):
        """Input pixels -> (continuous) heatmap pixels: ``x_hm = x_in / stride``."""
        return _float(keypoints_in) / ops.convert_to_tensor(self.stride_xy, dtype="float32")

    def decode(self, heatmaps):
        """Argmax decoding -> ``(keypoints (..., K, 2) in input pixels, scores (..., K))``."""
        keypoints, scores = decode_heatmaps(heatmaps)
        return self.to_input(keypoints), scores

    def soft_decode(self, heatmaps):
        """Differentiable soft-argmax decoding -> ``(..., K, 2)`` keypoints in input pixels."""
        return self.to_input(soft_argmax(heatmaps, beta=self.beta))

    def get_config(self):
        return {
            "input_size": self.input_size,
            "heatmap_size": self.heatmap_size,
            "sigma": self.sigma,
            "beta": self.beta,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (
            f"HeatmapCodec(input_size={self.input_size!r}, heatmap_size={self.heatmap_size!r}, "
            f"sigma={self.sigma!r}, beta={self.beta!r})"
        )
