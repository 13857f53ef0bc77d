"""Per-example image/keypoint transforms of the tf.data pipelines (TensorFlow ops, graph-safe).

Every function here takes and returns TensorFlow tensors for ONE example and behaves the same
eagerly and inside ``tf.data.Dataset.map`` (tested both ways). Randomness is stateless: a
``(2,)`` integer seed in, the same draw out.

Conventions: (x, y) pixel coordinates with pixel centres at integers, 3x3 affine matrices acting
on column vectors (``synpose_keras.ops.geometry``); a matrix named ``M`` maps *stored-image*
pixels to *input* (network) pixels.

Shape glossary:
    K: keypoints. H, W: stored image size. S: input size (square).
"""

from __future__ import annotations

import os

import tensorflow as tf

from synpose_keras.datasets import schema
from synpose_keras.datasets.pipeline import opencv_kernels
from synpose_keras.ops import geometry

_F32 = tf.float32

#: The kernels that run the pipelines' final affine warp (bilinear, zero fill).
WARP_BACKENDS = ("opencv", "tensorflow")
_warp_backend = os.environ.get("SYNPOSE_WARP_BACKEND", "opencv")


def set_warp_backend(name: str) -> str:
    """Chooses the kernels of the pipelines' image work; returns the previous choice.

    ``"opencv"`` (default): the images are warped with ``cv2.warpAffine`` (float32, bilinear,
    constant 0 border) through ``tf.numpy_function``, ~14x faster than TensorFlow's kernel for a
    256² output on one core (benchmarks/README.md, "Changes and findings"); on encoded records ``source_pipeline`` /
    ``eval_pipeline`` decode, colour-jitter, shrink and warp a whole batch in one call
    (:mod:`~synpose_keras.datasets.pipeline.opencv_kernels`). ``"tensorflow"``:
    ``ImageProjectiveTransformV3`` and TensorFlow's decode/resize, pure graph (e.g. to serialise
    a pipeline, or where OpenCV is unavailable). Both read the same coordinates (output pixel ->
    input point, pixel centres at integers) and the same decoded pixels; their outputs agree
    within 0.02 of 255 (tested). The choice applies to pipelines built afterwards (it is read
    when a pipeline's functions are traced); the environment variable
    ``SYNPOSE_WARP_BACKEND`` sets the initial one. The OpenCV backend sets
    ``cv2.setNumThreads(1)`` (tf.data already runs one call per core).
    """
    global _warp_backend
    if name not in WARP_BACKENDS:
        raise ValueError(f"warp backend must be one of {list(WARP_BACKENDS)}. Received: {name!r}")
    previous, _warp_backend = _warp_backend, name
    return previous


def warp_backend() -> str:
    """The current warp backend (see :func:`set_warp_backend`)."""
    if _warp_backend not in WARP_BACKENDS:
        raise ValueError(f"SYNPOSE_WARP_BACKEND must be one of {list(WARP_BACKENDS)}. "
                         f"Received: {_warp_backend!r}")
    return _warp_backend


def affine_warp(image, params, output_size: int, color=None):
    """Bilinear warp of one float32 ``(h, w, C)`` image into ``(S, S, C)``, zero outside.

    Args:
        image: (h, w, C) float32 tensor.
        params: (8,) float32 ``ImageProjectiveTransformV3`` parameters (output pixel -> input
            point).
        output_size: int. S.
        color: optional (3,) factors: :func:`adjust_color` on ``image`` first (C = 3); with the
            OpenCV backend both run in one call.

    Returns:
        float32 (S, S, C), not clipped. The kernel is :func:`warp_backend`'s.
    """
    size = int(output_size)
    image = tf.cast(image, _F32)
    if warp_backend() == "opencv":
        opencv_kernels.cv2_module()  # import and configure OpenCV now, in the building thread
        if color is None:
            out = tf.numpy_function(lambda img, p: opencv_kernels.warp(img, p, size),
                                    [image, tf.cast(params, _F32)], _F32, stateful=False)
        else:
            out = tf.numpy_function(lambda img, p, col: opencv_kernels.warp(img, p, size, col),
                                    [image, tf.cast(params, _F32), tf.cast(color, _F32)], _F32,
                                    stateful=False)
        return tf.reshape(out, [size, size, tf.shape(image)[-1]])
    if color is not None:
        image = adjust_color(image, color)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, _F32)[None], transforms=tf.cast(params, _F32)[None],
        output_shape=tf.constant([size, size], tf.int32), fill_value=tf.constant(0.0, _F32),
        interpolation="BILINEAR", fill_mode="CONSTANT")[0]


def materialize(example: dict) -> dict:
    """Returns ``example`` with a decoded uint8 ``image``.

    The pipelines shuffle records with their images still encoded (a shuffle buffer of encoded
    images is ~10x smaller); this decodes a PNG/JPEG string ``image``, or un-pads a padded one
    (``height``/``width`` fields, as produced by ``padded_batch``), and drops those size fields.
    """
    ex = dict(example)
    image = ex["image"]
    if image.dtype == tf.string:
        ex["image"] = schema.decode_image(image)
    elif "height" in ex and "width" in ex:
        ex["image"] = image[: tf.cast(ex["height"], tf.int32), : tf.cast(ex["width"], tf.int32)]
    ex.pop("height", None)
    ex.pop("width", None)
    return ex


def keypoint_crop(keypoints, visible, height, width, crop_scale: float = 1.5):
    """Square crop around the visible keypoints (docs/protocol.md, "Evaluation protocol").

    Side = ``crop_scale`` x the longer side of the visible keypoints' box, centred on the box,
    then shifted (not padded) to stay inside the image (first left/top, then right/bottom, as
    TLlib). With no visible keypoint (or a box under 2 px) the crop is the whole image: a square
    of side ``max(H, W)`` centred on it (the shorter axis is padded).

    Leading batch axes are allowed: (..., K, 2) keypoints, (..., K) visibility and (...) sizes
    give (..., 2) centres and (...) sides (the batched pipeline uses it on whole batches).

    Args:
        keypoints: (K, 2) float. Stored-image pixels.
        visible: (K,) float.
        height, width: int scalars. Stored image size.
        crop_scale: float. Defaults to 1.5.

    Returns:
        ``(center (2,), side ())`` float32: the crop square in stored-image pixels.
    """
    kp = tf.cast(keypoints, _F32)
    vis = tf.cast(visible, _F32) > 0
    h = tf.cast(height, _F32)
    w = tf.cast(width, _F32)
    big = tf.constant(1e9, _F32)
    xs, ys = kp[..., 0], kp[..., 1]
    x0 = tf.reduce_min(tf.where(vis, xs, big), -1)
    x1 = tf.reduce_max(tf.where(vis, xs, -big), -1)
    y0 = tf.reduce_min(tf.where(vis, ys, big), -1)
    y1 = tf.reduce_max(tf.where(vis, ys, -big), -1)
    side = crop_scale * tf.maximum(x1 - x0, y1 - y0)
    has_box = tf.reduce_any(vis, -1) & (side >= 2.0)
    side = tf.where(has_box, side, tf.maximum(h, w))

    def shifted(lo, hi, extent):
        centre = tf.where(has_box, (lo + hi) / 2.0, (extent - 1.0) / 2.0)
        start = centre - side / 2.0
        start = tf.where(has_box & (start < -0.5), -0.5 * tf.ones_like(start), start)
        start = tf.where(has_box & (start + side > extent - 0.5), extent - 0.5 - side, start)
        return start + side / 2.0

    center = tf.stack([shifted(x0, x1, w), shifted(y0, y1, h)], -1)
    return center, side


def crop_to_input(center, side, input_size: int):
    """Matrix mapping the crop square (stored pixels) onto the ``S x S`` input."""
    return tf.cast(geometry.crop_matrix(center, side, input_size), _F32)


def sample_augmentation(seed, input_size: int, config):
    """Draws one augmentation (stateless).

    Args:
        seed: (2,) int tensor. Stateless seed.
        input_size: int. S.
        config: AugmentConfig, already resolved (``config.resolve(skeleton)``).

    Returns:
        ``(matrix (3, 3) float32, flip () bool, color (3,) float32)``: the input->input affine
        (composed about the input centre: translate . rotate . shear . scale . flip), whether it
        flips, and the (brightness, contrast, saturation) factors.
    """
    if config.rotation is None or config.flip_prob is None:
        raise ValueError("AugmentConfig must be resolved for a skeleton first "
                         f"(config.resolve(skeleton)). Received: config={config}")
    u = tf.random.stateless_uniform([9], seed=tf.cast(seed, tf.int64), dtype=_F32)
    s = float(input_size)
    centre = ((s - 1.0) / 2.0, (s - 1.0) / 2.0)
    rot = (2.0 * u[0] - 1.0) * config.rotation
    shear = (2.0 * u[1] - 1.0) * config.shear
    tx = (2.0 * u[2] - 1.0) * config.translate * s
    ty = (2.0 * u[3] - 1.0) * config.translate * s
    lo, hi = config.scale
    zoom = lo + u[4] * (hi - lo)
    flip = u[5] < config.flip_prob
    flip_m = tf.where(flip, tf.cast(geometry.hflip_matrix(s), _F32), tf.eye(3, dtype=_F32))
    matrix = geometry.compose(
        geometry.translation_matrix(tx, ty),
        geometry.rotation_matrix(rot, centre),
        geometry.shear_matrix(shear, centre),
        geometry.scale_matrix(zoom, centre),
        flip_m,
    )
    color = 1.0 + (2.0 * u[6:9] - 1.0) * config.color_jitter
    return tf.cast(matrix, _F32), flip, color


def adjust_color(image, color):
    """Brightness, contrast, saturation factors ``color (3,)`` on a float [0, 255] image.

    The three adjustments, applied in that order (brightness scales; contrast moves the pixels
    towards or away from the mean grey level; saturation towards or away from each pixel's grey
    level, ``tf.image.rgb_to_grayscale`` weights ``w``), are linear and clipped once at the end,
    so they compose into one colour matrix and one offset, applied in one pass:
    ``out = clip(img @ M + t, 0, 255)`` with ``M = s c b I + (1 - s) c b w 1^T`` and
    ``t = (1 - c) b mu (s + (1 - s) sum(w))``, ``mu`` the image's mean grey level.

    Args:
        image: (H, W, 3) uint8 or float tensor in [0, 255].
        color: (3,) float. Brightness ``b``, contrast ``c`` and saturation ``s`` factors.

    Returns:
        float32 (H, W, 3) image in [0, 255].
    """
    img = tf.cast(image, _F32)
    color = tf.cast(color, _F32)
    b, c, s = color[0], color[1], color[2]
    w = tf.constant(opencv_kernels.GREY_WEIGHTS, _F32)
    mu = tf.reduce_sum(tf.reduce_mean(img, axis=[0, 1]) * w)
    matrix = s * c * b * tf.eye(3, dtype=_F32) + (1.0 - s) * c * b * w[:, None] * tf.ones([1, 3])
    offset = (1.0 - c) * b * mu * (s + (1.0 - s) * tf.reduce_sum(w))
    return tf.clip_by_value(tf.tensordot(img, matrix, 1) + offset, 0.0, 255.0)


def warp_image(image, matrix, output_size: int, color=None, antialias: bool = True):
    """Warps ``image`` by ``matrix`` (image pixels -> output pixels) into ``S x S`` (bilinear).

    Only the part of the image that the output reads is processed: it is sliced out, optionally
    colour-jittered (so the zero padding stays black), and, when the warp shrinks it (scale < 1),
    first downscaled with an antialiasing filter, so strong downscaling does not alias.

    Args:
        image: (H, W, 3) uint8 or float tensor, values in [0, 255].
        matrix: (3, 3) float. Image pixels -> output pixels.
        output_size: int. S.
        color: optional (3,) float. Factors for :func:`adjust_color`.
        antialias: bool. Prefilter when downscaling. Defaults to True.

    Returns:
        float32 (S, S, 3) image in [0, 255]; pixels reading outside the image are 0.
    """
    img = tf.cast(image, _F32)
    m = tf.cast(matrix, _F32)
    size = int(output_size)
    shape = tf.shape(img)
    h, w = shape[0], shape[1]

    # slice the input region read by the output square (plus a margin for the filters)
    inv = geometry.invert_affine(m)
    edge = float(size) - 0.5
    corners = tf.constant([[-0.5, -0.5], [edge, -0.5], [-0.5, edge], [edge, edge]], _F32)
    pts = geometry.apply_affine(inv, corners)
    x0 = tf.clip_by_value(tf.cast(tf.floor(tf.reduce_min(pts[:, 0])), tf.int32) - 2, 0, w - 1)
    y0 = tf.clip_by_value(tf.cast(tf.floor(tf.reduce_min(pts[:, 1])), tf.int32) - 2, 0, h - 1)
    x1 = tf.clip_by_value(tf.cast(tf.math.ceil(tf.reduce_max(pts[:, 0])), tf.int32) + 3, x0 + 1, w)
    y1 = tf.clip_by_value(tf.cast(tf.math.ceil(tf.reduce_max(pts[:, 1])), tf.int32) + 3, y0 + 1, h)
    img = img[y0:y1, x0:x1]
    m = tf.matmul(m, tf.cast(geometry.translation_matrix(tf.cast(x0, _F32), tf.cast(y0, _F32)), _F32))
    direct = lambda: affine_warp(img, geometry.to_transform_params(m), size, color=color)  # noqa: E731
    if not antialias:
        out = direct()
    else:
        scale = tf.sqrt(tf.abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]))

        def shrunk():
            small = img if color is None else adjust_color(img, color)
            small, m_small = shrink(small)
            return affine_warp(small, geometry.to_transform_params(m_small), size)

        def shrink(img):
            hh = tf.cast(tf.shape(img)[0], _F32)
            ww = tf.cast(tf.shape(img)[1], _F32)
            nh = tf.maximum(tf.round(hh * scale), 1.0)
            nw = tf.maximum(tf.round(ww * scale), 1.0)
            small = tf.image.resize(img, tf.cast(tf.stack([nh, nw]), tf.int32), method="bilinear",
                                    antialias=True)
            sx, sy = nw / ww, nh / hh
            zero = tf.zeros([], _F32)
            resize_m = tf.stack([
                tf.stack([sx, zero, 0.5 * sx - 0.5]),
                tf.stack([zero, sy, 0.5 * sy - 0.5]),
                tf.constant([0.0, 0.0, 1.0], _F32),
            ])
            return small, tf.matmul(m, geometry.invert_affine(resize_m))

        # colour first, then the antialiased shrink; without a shrink colour and warp are one
        # kernel call (OpenCV backend)
        out = tf.cond(scale < 0.9, shrunk, direct)
    return tf.ensure_shape(tf.clip_by_value(out, 0.0, 255.0), [size, size, 3])


def transform_example(example: dict, matrix, input_size: int, flip=None, flip_index=None,
                      color=None, antialias: bool = True) -> dict:
    """Applies one affine (and an optional left/right flip relabelling) to image and labels.

    Args:
        example: dict with ``image`` (H, W, 3), ``keypoints`` (K, 2), ``visible`` (K,), and
            optionally ``keypoints_3d`` (K, 3), ``intrinsics`` (3, 3).
        matrix: (3, 3). Stored-image pixels -> input pixels (the flip, if any, included).
        input_size: int. S.
        flip: optional () bool tensor. Whether ``matrix`` mirrors the image; then joints are
            relabelled with ``flip_index`` and the 3D pose is mirrored (x -> -x) so that
            projecting ``keypoints_3d`` with ``intrinsics`` still gives ``keypoints``.
        flip_index: sequence of int (K,). ``Skeleton.flip_index``.
        color: optional (3,) jitter factors.
        antialias: bool. See :func:`warp_image`.

    Returns:
        dict with ``image`` float32 (S, S, 3), ``keypoints`` (K, 2) input pixels, ``visible``
        (K,), ``matrix`` (3, 3), and ``keypoints_3d``/``intrinsics`` when present
        (``intrinsics' = matrix @ intrinsics``, 3D points in the same camera frame).
    """
    m = tf.cast(matrix, _F32)
    out = {
        "image": warp_image(example["image"], m, input_size, color=color, antialias=antialias),
        "matrix": m,
    }
    out.update(transform_labels(example, m, flip, flip_index))
    return out


def transform_labels(labels: dict, matrix, flip=None, flip_index=None) -> dict:
    """The label part of :func:`transform_example`, for one example or a batch.

    Args:
        labels: dict with ``keypoints`` (..., K, 2), ``visible`` (..., K), and optionally
            ``keypoints_3d`` (..., K, 3) with ``intrinsics`` (..., 3, 3).
        matrix: (..., 3, 3) stored-image pixels -> input pixels.
        flip: optional (...) bool tensor (see :func:`transform_example`).
        flip_index: sequence of int (K,), required with ``flip``.

    Returns:
        dict with ``keypoints``, ``visible`` and, when given, ``keypoints_3d`` / ``intrinsics``.
    """
    m = tf.cast(matrix, _F32)
    kp = tf.cast(geometry.apply_affine(m, tf.cast(labels["keypoints"], _F32)), _F32)
    vis = tf.cast(labels["visible"], _F32)
    has_3d = "keypoints_3d" in labels and "intrinsics" in labels
    if has_3d:
        kp3 = tf.cast(labels["keypoints_3d"], _F32)
        intr = tf.matmul(m, tf.cast(labels["intrinsics"], _F32))
    if flip is not None:
        if flip_index is None:
            raise ValueError("flip_index is required when flip is given. Received: flip_index=None")
        perm = tf.constant(list(flip_index), tf.int32)
        flip = tf.convert_to_tensor(flip)
        per_joint, per_point = flip[..., None], flip[..., None, None]
        kp = tf.where(per_point, tf.gather(kp, perm, axis=-2), kp)
        vis = tf.where(per_joint, tf.gather(vis, perm, axis=-1), vis)
        if has_3d:
            mirror = tf.constant([-1.0, 1.0, 1.0], _F32)
            kp3 = tf.where(per_point, tf.gather(kp3, perm, axis=-2) * mirror, kp3)
            intr = tf.where(per_point, intr * mirror, intr)
    out = {"keypoints": kp, "visible": vis}
    if has_3d:
        out["keypoints_3d"] = kp3
        out["intrinsics"] = intr
    return out


def element_seed(seed, index, salt: int = 0):
    """(2,) int64 stateless seed for element ``index`` of a pipeline seeded with ``seed``."""
    index = tf.cast(index, tf.int64)
    return tf.stack([tf.cast(seed, tf.int64), index * 16 + salt])


def flip_permutation(flip, flip_index):
    """(K,) int32: ``flip_index`` when ``flip`` else the identity."""
    perm = tf.constant(list(flip_index), tf.int32)
    return tf.where(flip, perm, tf.range(tf.size(perm), dtype=tf.int32))
