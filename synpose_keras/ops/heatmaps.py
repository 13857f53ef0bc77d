"""Heatmap codec: keypoints <-> Gaussian heatmaps, argmax, DARK and soft-argmax decoding.

This is the one place where keypoints become heatmaps and heatmaps become keypoints; the data
pipeline, the models, the losses and the metrics all go through it, so encoding and decoding cannot
disagree. Everything here uses ``keras.ops`` only, so it runs under any Keras backend and, with the
TensorFlow backend, inside ``tf.data.Dataset.map``.

Protocol (docs/protocol.md, "Evaluation protocol": the TLlib/UniFrame convention used by every
number we compare with):

- ``stride = input_size / heatmap_size`` per axis (256 / 64 = 4).
- Heatmap centre = ``floor(kp / stride + 0.5)``: the keypoint rounded half up to an integer
  heatmap pixel.
- ``exp(-d² / (2σ²))`` centred on that integer pixel (peak exactly 1), drawn only inside the
  window ``|dx|, |dy| <= floor(3σ)`` (13×13 for σ = 2), zero elsewhere.
- Invisible joints, and joints whose rounded centre falls outside ``[0, Wh) × [0, Hh)``, get an
  all-zero map and weight 0.
- Heatmap pixel -> input pixel: ``x_in = x_hm * stride`` (the convention of the PCK protocol).

Decodings (``DECODINGS``): ``"argmax"`` is the protocol's (integer heatmap pixels; PCK and every
training-time use); ``"dark"`` refines the argmax to sub-pixel precision with one Newton step on
the log-heatmap (Zhang et al., CVPR 2020, :func:`dark_refine`), the default of user-facing
prediction (``PosePredictor.predict_keypoints``, ``synpose predict``).

Differentiable readouts (``READOUTS``, :meth:`HeatmapCodec.soft_decode`), for the losses whose
gradient must reach the heatmaps through the keypoints (the reconstruction loss):
``"local"`` (the default, :func:`local_soft_argmax`) is a soft-argmax restricted to a small window
around the argmax, with the temperature normalised by the map's peak, so it agrees with the argmax
on weak maps as on strong ones; ``"global"`` (:func:`soft_argmax`) is the expectation over the
whole map with a fixed temperature, which a weak predicted map pulls towards the map's centre.

Shape glossary:
    ``...``: any leading batch dimensions (none, ``B``, ``B, V``...).
    ``K``: number of keypoints.
    ``Hh, Wh``: heatmap height and width.

Reference:
    Lin et al., "Synthetic-to-Real Pose Estimation with Geometric Reconstruction", NeurIPS 2023,
    supplementary A (f_kp); Xiao et al., "Simple Baselines for Human Pose Estimation", ECCV 2018;
    Zhang et al., "Distribution-Aware Coordinate Representation for Human Pose Estimation",
    CVPR 2020 (DARK).
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

#: Half-width of the window of :func:`local_soft_argmax`, in heatmap pixels (2: a 5 × 5 window).
LOCAL_SOFT_ARGMAX_WINDOW = 2

#: Default inverse temperature of :func:`local_soft_argmax`, relative to each map's peak. Measured
#: on the target test predictions of two demo pre-trained predictors (32 × 32 heatmaps, median
#: peaks 0.41 and 0.55; window 2): the median distance to the argmax is 0.38 / 0.35 heatmap px at
#: 25, 0.28 / 0.26 at 40 and 0.22 / 0.21 at 50, while the gradient with respect to the heatmap
#: (L1 norm times the peak) stays within 10% of its value at 25, and PCK@0.05 against the labels
#: is unchanged (23.1 vs 23.4, 35.4 vs 36.0). On a σ = 2 Gaussian the pixels next to the peak
#: weigh 0.003 of the peak's.
LOCAL_SOFT_ARGMAX_BETA = 50.0

#: Differentiable readouts of :meth:`HeatmapCodec.soft_decode`: ``"local"``
#: (:func:`local_soft_argmax`, the default) and ``"global"`` (:func:`soft_argmax`).
READOUTS = ("local", "global")

#: Floor of ``|peak|`` in the temperature of :func:`local_soft_argmax`: maps whose peak is below it
#: (untrained or empty maps) are read with a softer softmax instead of an unbounded gradient.
_PEAK_FLOOR = 1e-2

#: Gaussian σ of the training targets, in heatmap pixels (the protocol's), and of DARK's smoothing.
DEFAULT_SIGMA = 2.0

#: Heatmap decodings: ``"argmax"`` (the PCK protocol) and ``"dark"`` (sub-pixel refinement).
DECODINGS = ("argmax", "dark")

#: Floor of the (blurred) heatmap relative to its value at the argmax before the log of
#: :func:`dark_refine`, so that zero or negative pixels give finite log values.
_DARK_FLOOR = 1e-6


def check_readout(readout):
    """Returns ``readout`` if it is one of ``READOUTS``; raises ValueError naming it otherwise."""
    if readout not in READOUTS:
        raise ValueError(
            f"`readout` must be one of {list(READOUTS)}. Received: readout={readout!r}"
        )
    return readout


def check_window(window):
    """Returns ``window`` as an int if it is a positive int; raises ValueError otherwise."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(
            f"`window` must be a positive int (heatmap pixels). Received: window={window!r}"
        )
    return int(window)


def check_decoding(decoding):
    """Returns ``decoding`` if it is one of ``DECODINGS``; raises ValueError naming it otherwise."""
    if decoding not in DECODINGS:
        raise ValueError(
            f"`decoding` must be one of {list(DECODINGS)}. Received: decoding={decoding!r}"
        )
    return decoding


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


def encode_heatmaps(keypoints, visible, input_size, heatmap_size, sigma=DEFAULT_SIGMA,
                    subpixel=False):
    """Renders keypoints as protocol Gaussian heatmaps (see the module docstring).

    Args:
        keypoints: float tensor of shape ``(..., K, 2)``. (x, y) in INPUT pixels.
        visible: tensor of shape ``(..., K)``, bool or float; a joint is visible when > 0.
        input_size: int or (width, height). Size of the input image in pixels.
        heatmap_size: int or (width, height). Size of the heatmap in pixels.
        sigma: float. Gaussian standard deviation in heatmap pixels. Defaults to 2.0.
        subpixel: bool. False (the protocol): the Gaussian is centred on the rounded heatmap
            pixel. True: it is centred on the exact sub-pixel position ``kp / stride`` (DARK's
            unbiased encoding, Zhang et al., CVPR 2020; the peak is then <= 1), with the same
            window (around the rounded pixel) and the same weights. Not the protocol; used to
            test sub-pixel decoding. Defaults to False.

    Returns:
        ``(heatmaps, weights)``: float32 ``(..., Hh, Wh, K)`` maps with peak 1 (without
        ``subpixel``) and float32 ``(..., K)`` weights (1 for an encoded joint, 0 for an
        invisible or out-of-map one).

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
    exact = keypoints / stride  # (..., K, 2), continuous heatmap pixels
    centre = ops.floor(exact + 0.5)  # (..., K, 2), integer-valued
    mean = exact if subpixel else centre
    cx, cy = centre[..., 0], centre[..., 1]
    valid = visible & (cx >= 0) & (cx < hm_w) & (cy >= 0) & (cy < hm_h)
    weights = ops.cast(valid, "float32")

    def profile(c, mu, n):
        # (..., K) window centre c and mean mu -> (..., n, K) 1-D Gaussian profile, zero outside
        # the window |pixel - c| <= radius.
        pixels = ops.arange(n, dtype="float32")[:, None]
        d = pixels - ops.expand_dims(mu, -2)
        g = ops.exp(-ops.square(d) / (2.0 * sigma * sigma))
        inside = ops.abs(pixels - ops.expand_dims(c, -2)) <= radius
        return ops.where(inside, g, ops.zeros_like(g))

    gx = profile(cx, mean[..., 0], hm_w)  # (..., Wh, K)
    gy = profile(cy, mean[..., 1], hm_h) * ops.expand_dims(weights, -2)  # (..., Hh, K)
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


def _static_or_dynamic(heatmaps, axis):
    size = heatmaps.shape[axis]
    return size if size is not None else ops.shape(heatmaps)[axis]


def decode_heatmaps(heatmaps, decoding="argmax", sigma=DEFAULT_SIGMA, blur=True):
    """Argmax decoding, optionally refined to sub-pixel precision with DARK.

    ``decoding="argmax"`` (the default, the PCK protocol's): the integer heatmap pixel of each
    map's maximum. Ties resolve to the first maximum in row-major order (smallest y, then
    smallest x), like ``numpy.argmax`` on the flattened map. ``decoding="dark"``: that pixel
    refined by :func:`dark_refine` (at most 1 px away from it); the scores stay the maxima.

    Args:
        heatmaps: tensor of shape ``(..., Hh, Wh, K)``.
        decoding: str. "argmax" or "dark" (``DECODINGS``). Defaults to "argmax".
        sigma: float. With "dark": σ of the smoothing Gaussian, in heatmap pixels (the σ the
            heatmaps were trained with). Defaults to 2.0.
        blur: bool. With "dark": smooth the heatmap before the log. Defaults to True.

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
    check_decoding(decoding)
    heatmaps = _check_heatmaps(heatmaps)
    height = _static_or_dynamic(heatmaps, -3)
    row_max = ops.max(heatmaps, axis=-2)  # (..., Hh, K)
    y = ops.argmax(row_max, axis=-2)  # (..., K): first row holding the global maximum
    row_mask = ops.moveaxis(ops.one_hot(y, height, dtype=heatmaps.dtype), -1, -2)  # (..., Hh, K)
    row = ops.sum(heatmaps * ops.expand_dims(row_mask, -2), axis=-3)  # (..., Wh, K)
    x = ops.argmax(row, axis=-2)
    keypoints = ops.stack([ops.cast(x, "float32"), ops.cast(y, "float32")], axis=-1)
    scores = ops.cast(ops.max(row_max, axis=-2), "float32")
    if decoding == "dark":
        keypoints = dark_refine(heatmaps, keypoints, sigma=sigma, blur=blur)
    return keypoints, scores


def dark_refine(heatmaps, keypoints, sigma=DEFAULT_SIGMA, blur=True):
    """DARK sub-pixel refinement of integer peaks: one Newton step on the log-heatmap.

    At each peak ``m`` (normally the argmax), the heatmap is (optionally) smoothed with a
    Gaussian of standard deviation ``sigma`` (window ``|d| <= floor(3σ)``, shrunk symmetrically
    near the border so that it never reaches past it: no padding, hence no bias), its log is
    taken, and the gradient ``g`` and Hessian ``H`` of the log-heatmap are estimated by
    central finite differences on the 3 × 3 neighbourhood of ``m``. The refined location is
    ``m - H⁻¹ g``, exact when the heatmap is a Gaussian (its log is quadratic). Each component
    of the offset is clamped to ``[-1, 1]`` heatmap px. The peak is left unchanged where the
    step is not defined: ``m`` on the border of the map (a neighbour is missing), a (smoothed)
    value at ``m`` that is <= 0, or a Hessian that is not negative definite (flat maps, saddles).
    Values are floored at 1e-6 times the value at ``m`` before the log, so zero or negative
    pixels never give NaN. Not differentiable in a useful way (use :func:`soft_argmax` in losses).

    Accuracy on Gaussian heatmaps of σ = 2 centred on sub-pixel positions (``encode_heatmaps(...,
    subpixel=True)``, 32 × 32 and 64 × 64): wherever the argmax is not on the border, the error is
    below 1e-3 px with ``blur`` and at float32 round-off without it (the argmax: up to 0.5 px).
    On predicted heatmaps the smoothing lowers the error further (it averages out the noise
    around the peak), so it is the default.

    Args:
        heatmaps: tensor of shape ``(..., Hh, Wh, K)``.
        keypoints: tensor of shape ``(..., K, 2)``: integer (x, y) peaks in HEATMAP pixels, e.g.
            the output of :func:`decode_heatmaps` with ``decoding="argmax"``.
        sigma: float. σ of the smoothing Gaussian in heatmap pixels (the σ of the training
            targets). Defaults to 2.0.
        blur: bool. Smooth before the log, as DARK does for predicted heatmaps (which are not
            exactly Gaussian); protocol-like maps are already Gaussian-shaped, so the step is
            also meaningful without it. Defaults to True.

    Returns:
        float32 tensor of shape ``(..., K, 2)``: refined (x, y) in HEATMAP pixels, within 1 px
        of ``keypoints`` on each axis.

    Example:

    >>> from synpose_keras.ops import encode_heatmaps
    >>> from synpose_keras.ops.heatmaps import decode_heatmaps
    >>> hm, _ = encode_heatmaps([[41.0, 82.6]], [1.0], 256, 64, subpixel=True)  # (10.25, 20.65)
    >>> kp, _ = decode_heatmaps(hm, decoding="dark")
    >>> [round(v, 2) for v in kp.numpy()[0].tolist()]
    [10.25, 20.65]

    Reference:
        Zhang, Zhu, Dai, Ye, Zhu, "Distribution-Aware Coordinate Representation for Human Pose
        Estimation", CVPR 2020.
    """
    if not sigma > 0:
        raise ValueError(f"`sigma` must be positive. Received: sigma={sigma!r}")
    heatmaps = _float(_check_heatmaps(heatmaps))
    keypoints = _float(keypoints)
    height = _static_or_dynamic(heatmaps, -3)
    width = _static_or_dynamic(heatmaps, -2)
    radius = float(math.floor(3.0 * sigma))
    x, y = keypoints[..., 0], keypoints[..., 1]  # (..., K)

    steps = ops.convert_to_tensor([-1.0, 0.0, 1.0], dtype="float32")[:, None]  # (3, 1)

    def taps(c, n):
        # (..., K) peak -> (..., 3, n, K) weights whose dot product with a column (row) of the map
        # is the (smoothed) value at c - 1, c, c + 1: a truncated Gaussian, or a one-hot without
        # blur. The window shrinks near the border so that it never reaches past it (no padding).
        centres = ops.expand_dims(ops.expand_dims(c, -2) + steps, -2)  # (..., 3, 1, K)
        dist = ops.arange(n, dtype="float32")[:, None] - centres  # (..., 3, n, K)
        if not blur:
            return ops.cast(ops.abs(dist) < 0.5, "float32")
        last = ops.cast(n, "float32") - 1.0
        fit = ops.maximum(ops.minimum(c - 1.0, last - 1.0 - c), 0.0)  # (..., K)
        window = ops.expand_dims(ops.expand_dims(ops.minimum(fit, radius), -2), -2)
        g = ops.exp(-ops.square(dist) / (2.0 * sigma * sigma))
        return ops.where(ops.abs(dist) <= window, g, ops.zeros_like(g))

    # values[..., 1 + dy, 1 + dx, :]: the smoothed map at (y + dy, x + dx), (..., 3, 3, K).
    # One (..., Hh, Wh, K) product per row offset (no 3x larger temporary), then the columns.
    y_taps = taps(y, height)  # (..., 3, Hh, K)
    rows = ops.stack([ops.sum(heatmaps * ops.expand_dims(y_taps[..., i, :, :], -2), axis=-3)
                      for i in range(3)], axis=-3)  # (..., 3, Wh, K)
    values = ops.sum(ops.expand_dims(rows, -3) * ops.expand_dims(taps(x, width), -4),
                     axis=-2)  # (..., 3, 3, K)
    centre = values[..., 1, 1, :]
    positive = centre > 0
    safe_centre = ops.where(positive, centre, ops.ones_like(centre))
    log = ops.log(ops.maximum(values / ops.expand_dims(ops.expand_dims(safe_centre, -2), -2),
                              _DARK_FLOOR))

    def at(dy, dx):
        return log[..., 1 + dy, 1 + dx, :]

    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2.0 * at(0, 0) + at(0, -1)
    dyy = at(1, 0) - 2.0 * at(0, 0) + at(-1, 0)
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy * dxy
    w_last = ops.cast(width, "float32") - 1.0
    h_last = ops.cast(height, "float32") - 1.0
    valid = (positive & (dxx < 0) & (det > 1e-12)
             & (x >= 1) & (x <= w_last - 1) & (y >= 1) & (y <= h_last - 1))
    safe_det = ops.where(valid, det, ops.ones_like(det))
    # x* = m - H^-1 g with H^-1 = [[dyy, -dxy], [-dxy, dxx]] / det
    ox = -(dyy * gx - dxy * gy) / safe_det
    oy = -(dxx * gy - dxy * gx) / safe_det
    offset = ops.clip(ops.stack([ox, oy], axis=-1), -1.0, 1.0)
    offset = ops.where(ops.expand_dims(valid, -1), offset, ops.zeros_like(offset))
    return keypoints + offset


def soft_argmax(heatmaps, beta=SOFT_ARGMAX_BETA):
    """Global differentiable decoding: expected pixel under ``softmax(beta * heatmap)`` of a map.

    The global variant (``readout="global"`` of :meth:`HeatmapCodec.soft_decode`). Its temperature
    is in units of heatmap value, so a predicted map with peak 0.1 is read with an effective
    ``beta / 10`` and every pixel of the map pulls the result towards the map's centre: on weak
    maps it can be pixels away from the argmax. The reconstruction path uses
    :func:`local_soft_argmax` instead.

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


def local_soft_argmax(heatmaps, window=LOCAL_SOFT_ARGMAX_WINDOW, beta=LOCAL_SOFT_ARGMAX_BETA):
    """Differentiable decoding that agrees with the argmax: a soft-argmax around the peak.

    For each map, with ``(x0, y0)`` its integer argmax (:func:`decode_heatmaps`, no gradient) and
    ``peak`` the heatmap value there::

        p = softmax(beta * (heatmap - peak) / max(|peak|, 0.01))   over the window W
        (x, y) = sum over W of p * (pixel x, pixel y)

    The window ``W`` is the rectangle ``|x - x0| <= rx``, ``|y - y0| <= ry`` with
    ``rx = min(window, x0, Wh - 1 - x0)`` (``ry`` likewise): it shrinks symmetrically at the
    border of the map, so that the readout of a map that is symmetric about its peak is exactly
    the peak, at the border too (an axis on which the peak sits on the border reads the argmax
    itself and has no gradient). Dividing by the peak makes the temperature relative: a map with
    peak 0.1 is read as sharply as the same map with peak 1 (the readout is invariant to scaling
    the map), and pixels outside the window cannot pull the result towards the map's centre. The
    result lies inside the window, hence within ``window`` heatmap pixels of the argmax on each
    axis (on a flat window: its centre, the argmax).

    Gradients: with respect to every pixel of the window (through ``p`` and, at the argmax,
    through ``peak``), zero outside it; the argmax itself is piecewise constant. Peaks with
    ``|peak| < 0.01`` (untrained or empty maps) use 0.01, which keeps the gradient bounded.

    Args:
        heatmaps: float tensor of shape ``(..., Hh, Wh, K)``.
        window: int. Half-width of the window in heatmap pixels (``2 * window + 1`` pixels a
            side away from the border). Defaults to ``LOCAL_SOFT_ARGMAX_WINDOW`` (2).
        beta: float. Inverse temperature relative to the peak. Defaults to
            ``LOCAL_SOFT_ARGMAX_BETA`` (50; its measurement is given with the constant).

    Returns:
        float32 tensor of shape ``(..., K, 2)``: (x, y) in HEATMAP pixels.

    Example:

    >>> from synpose_keras.ops import encode_heatmaps, local_soft_argmax, soft_argmax
    >>> hm, _ = encode_heatmaps([[8.0, 116.0]], [1.0], 128, 32)  # peak at (2, 29)
    >>> weak = 0.1 * hm  # a weak predicted map
    >>> [round(v, 3) for v in local_soft_argmax(weak).numpy()[0].tolist()]
    [2.0, 29.0]
    >>> [round(v, 1) for v in soft_argmax(weak).numpy()[0].tolist()]  # pulled to the centre
    [14.1, 16.9]

    Reference:
        Sun et al., "Integral Human Pose Regression", ECCV 2018 (the soft-argmax); Lin et al.,
        NeurIPS 2023, Sec. 3 (the keypoints that drive the reconstruction).
    """
    window = float(check_window(window))
    if not beta > 0:
        raise ValueError(f"`beta` must be positive. Received: beta={beta!r}")
    heatmaps = _float(_check_heatmaps(heatmaps))
    height = _static_or_dynamic(heatmaps, -3)
    width = _static_or_dynamic(heatmaps, -2)
    peak_xy, _ = decode_heatmaps(ops.stop_gradient(heatmaps))
    x0, y0 = peak_xy[..., 0], peak_xy[..., 1]  # (..., K)
    xs = ops.cast(ops.arange(width), "float32")[:, None]  # (Wh, 1)
    ys = ops.cast(ops.arange(height), "float32")[:, None]  # (Hh, 1)

    def axis_window(c, n, pixels):
        # (..., K) peak coordinate -> (..., n, K) bool: inside the symmetric window on this axis.
        last = ops.cast(n, "float32") - 1.0
        radius = ops.minimum(ops.minimum(c, last - c), window)
        return ops.abs(pixels - ops.expand_dims(c, -2)) <= ops.expand_dims(radius, -2)

    in_x = axis_window(x0, width, xs)  # (..., Wh, K)
    in_y = axis_window(y0, height, ys)  # (..., Hh, K)
    mask = ops.cast(ops.expand_dims(in_y, -2) & ops.expand_dims(in_x, -3), "float32")
    at_x = ops.cast(ops.abs(xs - ops.expand_dims(x0, -2)) < 0.5, "float32")  # (..., Wh, K)
    at_y = ops.cast(ops.abs(ys - ops.expand_dims(y0, -2)) < 0.5, "float32")  # (..., Hh, K)
    at_peak = ops.expand_dims(at_y, -2) * ops.expand_dims(at_x, -3)  # (..., Hh, Wh, K)
    # The value at the argmax pixel (the map's maximum), differentiable with respect to that
    # pixel only (ops.max would spread the gradient over tied pixels, outside the window too).
    peak = ops.sum(heatmaps * at_peak, axis=(-3, -2), keepdims=True)  # (..., 1, 1, K)
    scale = ops.maximum(ops.abs(peak), _PEAK_FLOOR)
    logits = beta * (heatmaps - peak) / scale  # <= 0: the peak is the map's maximum
    p = ops.exp(logits) * mask
    p = p / ops.sum(p, axis=(-3, -2), keepdims=True)  # (..., Hh, Wh, K); the peak term is 1
    x = ops.sum(ops.sum(p, axis=-3) * xs, axis=-2)  # (..., K)
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
        beta: float. Inverse temperature of the global readout (:func:`soft_argmax`, in units of
            heatmap value). Defaults to ``SOFT_ARGMAX_BETA`` (25).
        readout: str. Differentiable readout of :meth:`soft_decode`: "local"
            (:func:`local_soft_argmax`, agrees with the argmax) or "global"
            (:func:`soft_argmax` over the whole map). Defaults to "local".
        window: int. Half-width of the local readout's window in heatmap pixels. Defaults to
            ``LOCAL_SOFT_ARGMAX_WINDOW`` (2).
        local_beta: float. Inverse temperature of the local readout, relative to each map's
            peak. Defaults to ``LOCAL_SOFT_ARGMAX_BETA`` (50).

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
        docs/protocol.md, "Evaluation protocol" (the TLlib/UniFrame heatmap protocol).
    """

    def __init__(self, input_size, heatmap_size, sigma=DEFAULT_SIGMA, beta=SOFT_ARGMAX_BETA,
                 readout="local", window=LOCAL_SOFT_ARGMAX_WINDOW,
                 local_beta=LOCAL_SOFT_ARGMAX_BETA):
        in_w, in_h = _size_wh(input_size, "input_size")
        hm_w, hm_h = _size_wh(heatmap_size, "heatmap_size")
        if not sigma > 0:
            raise ValueError(f"`sigma` must be positive. Received: sigma={sigma!r}")
        if not beta > 0:
            raise ValueError(f"`beta` must be positive. Received: beta={beta!r}")
        if not local_beta > 0:
            raise ValueError(f"`local_beta` must be positive. Received: local_beta={local_beta!r}")
        check_readout(readout)
        window = check_window(window)
        self.input_size = input_size
        self.heatmap_size = heatmap_size
        self.sigma = float(sigma)
        self.beta = float(beta)
        self.readout = readout
        self.window = window
        self.local_beta = float(local_beta)
        self.input_wh = (in_w, in_h)
        self.heatmap_wh = (hm_w, hm_h)
        self.stride_xy = (in_w / hm_w, in_h / hm_h)
        if self.stride_xy[0] == self.stride_xy[1]:
            self.stride = self.stride_xy[0]
        else:
            self.stride = np.asarray(self.stride_xy, dtype="float32")

    def encode(self, keypoints, visible, subpixel=False):
        """``(..., K, 2)`` input-pixel keypoints -> ``(heatmaps (..., Hh, Wh, K), weights (..., K))``.

        ``subpixel=True`` centres each Gaussian on the exact position instead of the rounded
        pixel (not the protocol; see :func:`encode_heatmaps`).
        """
        return encode_heatmaps(
            keypoints, visible, self.input_wh, self.heatmap_wh, sigma=self.sigma,
            subpixel=subpixel,
        )

    def to_input(self, keypoints_hm):
        """Heatmap pixels -> input pixels: ``x_in = x_hm * stride``."""
        return _float(keypoints_hm) * ops.convert_to_tensor(self.stride_xy, dtype="float32")

    def to_heatmap(self, keypoints_in):
        """Input pixels -> (continuous) heatmap pixels: ``x_hm = x_in / stride``."""
        return _float(keypoints_in) / ops.convert_to_tensor(self.stride_xy, dtype="float32")

    def decode(self, heatmaps, decoding="argmax", blur=True):
        """Decodes heatmaps -> ``(keypoints (..., K, 2) in input pixels, scores (..., K))``.

        Args:
            heatmaps: tensor ``(..., Hh, Wh, K)``.
            decoding: str. "argmax" (the PCK protocol, the default) or "dark" (sub-pixel
                refinement of the argmax with the codec's ``sigma``, Zhang et al., CVPR 2020;
                see :func:`decode_heatmaps`).
            blur: bool. With "dark": smooth the heatmap first. Defaults to True.
        """
        keypoints, scores = decode_heatmaps(heatmaps, decoding=decoding, sigma=self.sigma,
                                            blur=blur)
        return self.to_input(keypoints), scores

    def soft_decode(self, heatmaps):
        """Differentiable decoding -> ``(..., K, 2)`` keypoints in input pixels.

        The codec's ``readout``: "local" (:func:`local_soft_argmax` with ``window`` and
        ``local_beta``, the default) or "global" (:func:`soft_argmax` with ``beta``). Every path
        that needs differentiable keypoints (``PosePredictor.soft_keypoints`` and ``keypoints``, the
        ``generator`` and ``adapt`` stages) reads them here.
        """
        if self.readout == "local":
            keypoints = local_soft_argmax(heatmaps, window=self.window, beta=self.local_beta)
        else:
            keypoints = soft_argmax(heatmaps, beta=self.beta)
        return self.to_input(keypoints)

    def get_config(self):
        return {
            "input_size": self.input_size,
            "heatmap_size": self.heatmap_size,
            "sigma": self.sigma,
            "beta": self.beta,
            "readout": self.readout,
            "window": self.window,
            "local_beta": self.local_beta,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (
            f"HeatmapCodec(input_size={self.input_size!r}, heatmap_size={self.heatmap_size!r}, "
            f"sigma={self.sigma!r}, beta={self.beta!r}, readout={self.readout!r}, "
            f"window={self.window!r}, local_beta={self.local_beta!r})"
        )
