"""Batch-level form of ``prepare_example``: the small-op work once per batch.

Measured in benchmarks/README.md, "Changes and findings" ("Where the rest of the pipeline time
goes", "One OpenCV call per batch, and processes that hang at exit").

``source_pipeline`` used to run :func:`~synpose_keras.datasets.pipeline.source.prepare_example`
on every element: decode, the protocol crop, the augmentation draw and its 3x3 matrix algebra,
the warp's slice/antialias bookkeeping, the keypoint transform, the flip relabelling and the
heatmap codec, a few hundred tiny ops per sample. It now runs the same computation in stages:

1. per element, :func:`draw`: the image size from the PNG/JPEG header and the augmentation's
   9 stateless uniforms (same ``element_seed``) with their cos/sin/tan;
2. per batch of records (images still encoded), :func:`plan_batch`: crops, augmentation
   matrices, keypoints/flips/3D, inverse matrices and the warp's slice bounds, antialias decision
   and transform parameters, on (B, ...) tensors;
3. per element again, :func:`decode_warp`: decode, slice, colour jitter, optional antialiased
   shrink and one ``ImageProjectiveTransformV3``; the heatmaps are encoded per batch afterwards.
   With the OpenCV backend (the default), :func:`decode_warp_batch` does the same for the whole
   batch in one ``tf.numpy_function`` call: no ``unbatch``/``batch``, one Python call per
   batch instead of TensorFlow decode, slice and warp ops per element.

The formulas are those of ``transforms.keypoint_crop``, ``sample_augmentation``,
``transform_example`` and ``warp_image``, so the samples are the same, bit for bit (tested).
One detail keeps it so: TensorFlow's vectorised sin/cos differ from the scalar ones in the last
bit for some inputs, so the trigonometric functions are evaluated per element, on scalars, as
``sample_augmentation`` does.

Shape glossary:
    B: batch. K: keypoints. S: input size (square).
"""

from __future__ import annotations

import math

import tensorflow as tf

from synpose_keras.datasets import schema
from synpose_keras.datasets.pipeline import _inputs, opencv_kernels
from synpose_keras.datasets.pipeline.transforms import (
    adjust_color,
    affine_warp,
    element_seed,
    keypoint_crop,
    transform_labels,
)
from synpose_keras.ops import geometry

_F32 = tf.float32
#: Keys of :func:`plan_batch`'s output that :func:`decode_warp` consumes.
PLAN_KEYS = ("height", "width", "x0", "y0", "x1", "y1", "shrink", "nh", "nw", "params", "color")


def encoded_size(encoded):
    """``(height, width)`` int32 of encoded image bytes, read from the PNG/JPEG header.

    Other formats (GIF, BMP) are decoded to get their size.
    """
    def png():
        b = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.uint8), tf.int32)
        return tf.stack([((b[4] * 256 + b[5]) * 256 + b[6]) * 256 + b[7],
                         ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]])

    def other():
        return tf.cond(tf.strings.substr(encoded, 0, 2) == b"\xff\xd8",
                       lambda: tf.image.extract_jpeg_shape(encoded)[:2],
                       lambda: tf.shape(schema.decode_image(encoded))[:2])

    shape = tf.cond(tf.strings.substr(encoded, 0, 8) == b"\x89PNG\r\n\x1a\n", png, other)
    return shape[0], shape[1]


def draw(example: dict, index, config, seed: int) -> dict:
    """Stage 1 (per element): adds ``height``/``width`` and, when ``config``, the draws.

    ``u`` (9,) are ``sample_augmentation``'s uniforms for ``element_seed(seed, index)``;
    ``trig`` (3,) the cosine and sine of its rotation and the tangent of its shear.
    """
    ex = dict(example)
    ex["height"], ex["width"] = encoded_size(ex["image"])
    if config is not None:
        u = tf.random.stateless_uniform([9], seed=element_seed(seed, index), dtype=_F32)
        rad = ((2.0 * u[0] - 1.0) * config.rotation) * (math.pi / 180.0)
        shear = tf.tan(((2.0 * u[1] - 1.0) * config.shear) * (math.pi / 180.0))
        ex["u"] = u
        ex["trig"] = tf.stack([tf.cos(rad), tf.sin(rad), shear])
    return ex


def keypoint_crop_batch(keypoints, visible, height, width, crop_scale: float = 1.5):
    """``transforms.keypoint_crop`` for (B, K, 2) keypoints and (B,) sizes -> (B, 2), (B,)."""
    return keypoint_crop(keypoints, visible, height, width, crop_scale)


def _about(a, b, c, d, centre):
    """Linear part (a, b; c, d) of (B,) entries about a constant centre -> (B, 3, 3)."""
    cx, cy = centre
    zero, one = tf.zeros_like(a), tf.ones_like(a)
    return tf.stack([tf.stack([a, b, cx - (a * cx + b * cy)], -1),
                     tf.stack([c, d, cy - (c * cx + d * cy)], -1),
                     tf.stack([zero, zero, one], -1)], -2)


def augmentation_batch(u, trig, input_size: int, config):
    """``transforms.sample_augmentation`` from the draws of :func:`draw`.

    Args:
        u: (B, 9) float32 uniforms. trig: (B, 3) float32 (cos, sin of the rotation, tan of the
            shear). input_size: int. S. config: resolved AugmentConfig.

    Returns:
        ``(matrix (B, 3, 3), flip (B,) bool, color (B, 3))``.
    """
    s = float(input_size)
    centre = ((s - 1.0) / 2.0, (s - 1.0) / 2.0)
    cos, sin, shx = trig[:, 0], trig[:, 1], trig[:, 2]
    tx = (2.0 * u[:, 2] - 1.0) * config.translate * s
    ty = (2.0 * u[:, 3] - 1.0) * config.translate * s
    lo, hi = config.scale
    zoom = lo + u[:, 4] * (hi - lo)
    flip = u[:, 5] < config.flip_prob
    flip_m = tf.where(flip[:, None, None], tf.cast(geometry.hflip_matrix(s), _F32),
                      tf.eye(3, dtype=_F32))
    one, zero = tf.ones_like(shx), tf.zeros_like(zoom)
    matrix = geometry.compose(
        geometry.translation_matrix(tx, ty),
        _about(cos, sin, -sin, cos, centre),
        _about(one, shx, zero, one, centre),
        _about(zoom, zero, zero, zoom, centre),
        flip_m,
    )
    color = 1.0 + (2.0 * u[:, 6:9] - 1.0) * config.color_jitter
    return tf.cast(matrix, _F32), flip, color


def warp_plan(matrix, height, width, output_size: int, antialias: bool = True) -> dict:
    """The matrix-only part of ``transforms.warp_image`` for (B, 3, 3) matrices.

    Returns:
        dict of (B,) ``x0``, ``y0``, ``x1``, ``y1`` (the slice read), ``shrink`` (antialiased
        downscale first), ``nh``, ``nw`` (its size) and (B, 8) ``params`` of the transform.
    """
    h = tf.cast(height, tf.int32)
    w = tf.cast(width, tf.int32)
    m = tf.cast(matrix, _F32)
    inv = geometry.invert_affine(m)
    edge = float(output_size) - 0.5
    corners = tf.constant([[-0.5, -0.5], [edge, -0.5], [-0.5, edge], [edge, edge]], _F32)
    pts = geometry.apply_affine(inv, corners)  # (B, 4, 2)
    x0 = tf.clip_by_value(tf.cast(tf.floor(tf.reduce_min(pts[..., 0], -1)), tf.int32) - 2, 0, w - 1)
    y0 = tf.clip_by_value(tf.cast(tf.floor(tf.reduce_min(pts[..., 1], -1)), tf.int32) - 2, 0, h - 1)
    x1 = tf.clip_by_value(tf.cast(tf.math.ceil(tf.reduce_max(pts[..., 0], -1)), tf.int32) + 3, x0 + 1, w)
    y1 = tf.clip_by_value(tf.cast(tf.math.ceil(tf.reduce_max(pts[..., 1], -1)), tf.int32) + 3, y0 + 1, h)
    m = tf.matmul(m, tf.cast(geometry.translation_matrix(tf.cast(x0, _F32), tf.cast(y0, _F32)), _F32))
    plan = {"x0": x0, "y0": y0, "x1": x1, "y1": y1}
    if antialias:
        scale = tf.sqrt(tf.abs(m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]))
        hh = tf.cast(y1 - y0, _F32)
        ww = tf.cast(x1 - x0, _F32)
        nh = tf.maximum(tf.round(hh * scale), 1.0)
        nw = tf.maximum(tf.round(ww * scale), 1.0)
        sx, sy = nw / ww, nh / hh
        zero, one = tf.zeros_like(sx), tf.ones_like(sx)
        resize_m = tf.stack([tf.stack([sx, zero, 0.5 * sx - 0.5], -1),
                             tf.stack([zero, sy, 0.5 * sy - 0.5], -1),
                             tf.stack([zero, zero, one], -1)], -2)
        shrink = scale < 0.9
        m = tf.where(shrink[:, None, None], tf.matmul(m, geometry.invert_affine(resize_m)), m)
        plan.update(shrink=shrink, nh=tf.cast(nh, tf.int32), nw=tf.cast(nw, tf.int32))
    else:
        plan.update(shrink=tf.zeros_like(x0, tf.bool), nh=y1 - y0, nw=x1 - x0)
    plan["params"] = tf.cast(geometry.to_transform_params(m), _F32)
    return plan


def plan_batch(batch: dict, skeleton, input_size: int, config, crop_scale: float = 1.5) -> dict:
    """Stage 2 (per batch of :func:`draw` outputs): everything but the pixels.

    Returns:
        dict: the encoded ``image`` (B,), ``matrix``/``inverse_matrix`` (B, 3, 3), ``keypoints``
        (B, K, 2) input pixels, ``visible`` (B, K), ``keypoints_3d``/``intrinsics`` when present,
        the passthrough fields, and the :data:`PLAN_KEYS` for :func:`decode_warp`.
    """
    center, side = keypoint_crop_batch(batch["keypoints"], batch["visible"], batch["height"],
                                       batch["width"], crop_scale)
    m = tf.cast(geometry.crop_matrix(center, side, input_size), _F32)
    flip = None
    out = {"image": batch["image"]}
    if config is not None:
        aug, flip, color = augmentation_batch(batch["u"], batch["trig"], input_size, config)
        m = tf.matmul(aug, m)
        if config.color_jitter != 0:
            out["color"] = color
    out["matrix"] = m
    out.update(transform_labels(batch, m, flip, skeleton.flip_index))
    out["inverse_matrix"] = tf.cast(geometry.invert_affine(m), _F32)
    out.update(warp_plan(m, batch["height"], batch["width"], input_size))
    for key in _inputs.PASSTHROUGH:
        if key in batch:
            out[key] = batch[key]
    return out


def decode_warp(example: dict, output_size: int) -> dict:
    """Stage 3 (per element of :func:`plan_batch`'s output): decode and warp the image.

    Returns the example without the :data:`PLAN_KEYS`, ``image`` float32 (S, S, 3) in [0, 255].
    """
    ex = example
    out = {k: v for k, v in ex.items() if k not in PLAN_KEYS}
    img = tf.cast(schema.decode_image(ex["image"]), _F32)[ex["y0"]:ex["y1"], ex["x0"]:ex["x1"]]
    color = ex.get("color")

    def shrunk():  # colour, antialiased shrink, warp
        small = img if color is None else adjust_color(img, color)
        small = tf.image.resize(small, tf.stack([ex["nh"], ex["nw"]]), method="bilinear",
                                antialias=True)
        return affine_warp(small, ex["params"], output_size)

    # without a shrink, colour and warp are one kernel call (OpenCV backend)
    warped = tf.cond(ex["shrink"], shrunk,
                     lambda: affine_warp(img, ex["params"], output_size, color=color))
    out["image"] = tf.ensure_shape(tf.clip_by_value(warped, 0.0, 255.0),
                                   [output_size, output_size, 3])
    return out


def decode_warp_batch(batch: dict, output_size: int) -> dict:
    """Stage 3 for a whole batch of :func:`plan_batch`'s output, on OpenCV (one call).

    The same images as :func:`decode_warp` on each element
    (:func:`~synpose_keras.datasets.pipeline.opencv_kernels.decode_warp_batch`: same decoded
    pixels, TensorFlow's antialiasing filter, the warp's coordinates; equal within float
    round-off, tested).

    Returns the batch without the :data:`PLAN_KEYS`, ``image`` float32 (B, S, S, 3) in [0, 255].
    """
    size = int(output_size)
    out = {k: v for k, v in batch.items() if k not in PLAN_KEYS}
    opencv_kernels.cv2_module()  # import and configure OpenCV in the thread that builds
    keys = ("image", "y0", "y1", "x0", "x1", "shrink", "nh", "nw", "params")
    optional = {"color": batch.get("color"), "names": batch.get("source_id")}
    optional = {k: v for k, v in optional.items() if v is not None}

    def run(*a):
        return opencv_kernels.decode_warp_batch(*a[:len(keys)], size=size,
                                                **dict(zip(optional, a[len(keys):])))

    images = tf.numpy_function(run, [batch[k] for k in keys] + list(optional.values()), _F32,
                               stateful=False)
    out["image"] = tf.ensure_shape(images, [None, size, size, 3])
    return out
