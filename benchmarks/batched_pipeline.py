"""Prototype of finding F6(1): ``source_pipeline`` with the small-op work done per batch.

The library's ``source_pipeline`` runs ``prepare_example`` on every element: decode, the protocol
crop, the augmentation draw and its 3x3 matrix algebra, the warp (with its own slice/antialias
bookkeeping), the keypoint transform, the flip relabelling and the heatmap codec - a few hundred
tiny ops per sample. Here the same computation is split in three stages:

1. per element (``_draw``): the 9 stateless uniforms of ``sample_augmentation`` (same
   ``element_seed(seed, index)``, so the same draws);
2. per batch of records, images still encoded (``_plan``): protocol crops, augmentation
   matrices, keypoints/flips/3D, inverse matrices, and the warp's slice bounds, antialias
   decision and final transform parameters - the same formulas as ``keypoint_crop``,
   ``sample_augmentation``, ``transform_example`` and ``warp_image``, on (B, ...) tensors;
3. per element again after ``unbatch`` (``_decode_warp``): decode, slice, colour jitter,
   optional antialiased shrink and ONE ``ImageProjectiveTransformV3``; then ``batch`` and the
   heatmap codec on the whole batch (``_heatmaps``).

Needs records whose ``image`` is still encoded (what ``load_records(..., decode_image=False)``
gives, i.e. a dataset folder); the image size comes from the PNG/JPEG header.

``python benchmarks/batched_pipeline.py --check`` compares its batches with the library's for the
same seed (max abs differences); ``data_pipeline.py --batched`` times it.
"""

from __future__ import annotations

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()

import tensorflow as tf  # noqa: E402

from synpose_keras.datasets import schema  # noqa: E402
from synpose_keras.datasets.pipeline import _inputs  # noqa: E402
from synpose_keras.datasets.pipeline.augment_config import AugmentConfig  # noqa: E402
from synpose_keras.datasets.pipeline.transforms import adjust_color, element_seed  # noqa: E402
from synpose_keras.ops import geometry  # noqa: E402
from synpose_keras.ops.heatmaps import HeatmapCodec  # noqa: E402

_F32 = tf.float32
_PLAN = ("x0", "y0", "x1", "y1", "shrink", "nh", "nw", "params", "color")


def _encoded_size(encoded):
    """(height, width) int32 of PNG/JPEG bytes from the header (no decode)."""
    def png():
        b = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.uint8), tf.int32)
        w = ((b[0] * 256 + b[1]) * 256 + b[2]) * 256 + b[3]
        h = ((b[4] * 256 + b[5]) * 256 + b[6]) * 256 + b[7]
        return tf.stack([h, w])

    shape = tf.cond(tf.strings.substr(encoded, 0, 4) == b"\x89PNG", png,
                    lambda: tf.image.extract_jpeg_shape(encoded)[:2])
    return shape[0], shape[1]


def _keypoint_crop(kp, vis, h, w, crop_scale):
    """``transforms.keypoint_crop`` on (B, K, 2) keypoints, (B,) sizes -> (B, 2), (B,)."""
    kp = tf.cast(kp, _F32)
    vis = tf.cast(vis, _F32) > 0
    h = tf.cast(h, _F32)
    w = tf.cast(w, _F32)
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

    return tf.stack([shifted(x0, x1, w), shifted(y0, y1, h)], -1), side


def _draw(seed, config):
    """Per element: ``sample_augmentation``'s 9 uniforms and its transcendental functions.

    cos/sin/tan are evaluated here on scalars, as ``sample_augmentation`` does: TensorFlow's
    vectorised sin/cos differ from the scalar ones in the last bit for some inputs, and the
    batched stage must reproduce the per-example matrices exactly.
    """
    u = tf.random.stateless_uniform([9], seed=tf.cast(seed, tf.int64), dtype=_F32)
    rad = ((2.0 * u[0] - 1.0) * config.rotation) * (math.pi / 180.0)
    shear = tf.tan(((2.0 * u[1] - 1.0) * config.shear) * (math.pi / 180.0))
    return {"u": u, "trig": tf.stack([tf.cos(rad), tf.sin(rad), shear])}


def _about(a, b, c, d, centre):
    """``geometry._about`` for (B,) entries and a constant centre -> (B, 3, 3)."""
    cx, cy = centre
    zero, one = tf.zeros_like(a), tf.ones_like(a)
    return tf.stack([tf.stack([a, b, cx - (a * cx + b * cy)], -1),
                     tf.stack([c, d, cy - (c * cx + d * cy)], -1),
                     tf.stack([zero, zero, one], -1)], -2)


def _augmentation(u, trig, input_size, config):
    """``transforms.sample_augmentation`` from its (B, 9) uniforms -> (B,3,3), (B,), (B,3)."""
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
    one = tf.ones_like(shx)
    zero = tf.zeros_like(zoom)
    matrix = geometry.compose(
        geometry.translation_matrix(tx, ty),
        _about(cos, sin, -sin, cos, centre),
        _about(one, shx, zero, one, centre),
        _about(zoom, zero, zero, zoom, centre),
        flip_m,
    )
    color = 1.0 + (2.0 * u[:, 6:9] - 1.0) * config.color_jitter
    return tf.cast(matrix, _F32), flip, color


def _warp_plan(m, h, w, size, antialias=True):
    """The per-matrix part of ``transforms.warp_image`` for (B, 3, 3) matrices."""
    h = tf.cast(h, tf.int32)
    w = tf.cast(w, tf.int32)
    inv = geometry.invert_affine(m)
    edge = float(size) - 0.5
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
        resize_m = tf.stack([
            tf.stack([sx, zero, 0.5 * sx - 0.5], -1),
            tf.stack([zero, sy, 0.5 * sy - 0.5], -1),
            tf.stack([zero, zero, one], -1),
        ], -2)
        shrink = scale < 0.9
        m = tf.where(shrink[:, None, None], tf.matmul(m, geometry.invert_affine(resize_m)), m)
        plan.update(shrink=shrink, nh=tf.cast(nh, tf.int32), nw=tf.cast(nw, tf.int32))
    else:
        plan.update(shrink=tf.zeros_like(x0, tf.bool), nh=y1 - y0, nw=x1 - x0)
    plan["params"] = tf.cast(geometry.to_transform_params(m), _F32)
    return plan


def _plan(batch, skeleton, input_size, config, crop_scale):
    """Stage 2: everything but the pixels, for a batch of records (images still encoded)."""
    center, side = _keypoint_crop(batch["keypoints"], batch["visible"], batch["height"],
                                  batch["width"], crop_scale)
    m = tf.cast(geometry.crop_matrix(center, side, input_size), _F32)
    flip = None
    out = {"image": batch["image"]}
    if config is not None:
        aug, flip, color = _augmentation(batch["u"], batch["trig"], input_size, config)
        m = tf.matmul(aug, m)
        if config.color_jitter != 0:
            out["color"] = color
    out["matrix"] = m
    kp = tf.cast(geometry.apply_affine(m, tf.cast(batch["keypoints"], _F32)), _F32)
    vis = tf.cast(batch["visible"], _F32)
    has_3d = "keypoints_3d" in batch and "intrinsics" in batch
    if has_3d:
        kp3 = tf.cast(batch["keypoints_3d"], _F32)
        intr = tf.matmul(m, tf.cast(batch["intrinsics"], _F32))
    if flip is not None:
        perm = tf.constant(list(skeleton.flip_index), tf.int32)
        f2 = flip[:, None]
        f3 = flip[:, None, None]
        kp = tf.where(f3, tf.gather(kp, perm, axis=1), kp)
        vis = tf.where(f2, tf.gather(vis, perm, axis=1), vis)
        if has_3d:
            mirror = tf.constant([-1.0, 1.0, 1.0], _F32)
            kp3 = tf.where(f3, tf.gather(kp3, perm, axis=1) * mirror, kp3)
            intr = tf.where(f3, intr * mirror[None, :], intr)
    out["keypoints"] = kp
    out["visible"] = vis
    if has_3d:
        out["keypoints_3d"] = kp3
        out["intrinsics"] = intr
    out["inverse_matrix"] = tf.cast(geometry.invert_affine(m), _F32)
    out.update(_warp_plan(m, batch["height"], batch["width"], input_size))
    for key in _inputs.PASSTHROUGH:
        if key in batch:
            out[key] = batch[key]
    return out


def _decode_warp(ex, size):
    """Stage 3: decode + the pixel part of ``warp_image`` (one transform)."""
    out = {k: v for k, v in ex.items() if k not in _PLAN}
    img = tf.cast(schema.decode_image(ex["image"]), _F32)[ex["y0"]:ex["y1"], ex["x0"]:ex["x1"]]
    if "color" in ex:
        img = adjust_color(img, ex["color"])
    img = tf.cond(
        ex["shrink"],
        lambda: tf.image.resize(img, tf.stack([ex["nh"], ex["nw"]]), method="bilinear", antialias=True),
        lambda: img)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=img[None], transforms=ex["params"][None],
        output_shape=tf.constant([size, size], tf.int32), fill_value=tf.constant(0.0, _F32),
        interpolation="BILINEAR", fill_mode="CONSTANT")[0]
    out["image"] = tf.ensure_shape(tf.clip_by_value(warped, 0.0, 255.0), [size, size, 3])
    return out


def batched_source_pipeline(data, skeleton=None, input_size=256, heatmap_size=64, batch_size=32,
                            split="train", augment=None, seed=None, training=True, sigma=2.0,
                            crop_scale=1.5, shuffle_buffer=1000, repeat=None, drop_remainder=None):
    """Same arguments and elements as ``source_pipeline`` (folder input)."""
    _inputs.check_sizes(input_size, heatmap_size)
    records, skeleton, _ = _inputs.resolve_input(data, split, skeleton, training, seed)
    codec = HeatmapCodec(input_size, heatmap_size, sigma=sigma)
    config = None
    if training:
        config = (augment if augment is not None else AugmentConfig()).resolve(skeleton)
    if config is not None and (config.rotation is None or config.flip_prob is None):
        raise ValueError(f"AugmentConfig must be resolved. Received: config={config}")
    s = _inputs.base_seed(seed)
    drop = training if drop_remainder is None else drop_remainder
    ds = _inputs.shuffle_repeat_enumerate(records, training, seed, shuffle_buffer, repeat)

    def draw(i, ex):
        ex = dict(ex)
        ex["height"], ex["width"] = _encoded_size(ex["image"])
        if config is not None:
            ex.update(_draw(element_seed(s, i), config))
        return ex

    ds = ds.map(draw, num_parallel_calls=_inputs.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop)
    ds = ds.map(lambda b: _plan(b, skeleton, input_size, config, crop_scale),
                num_parallel_calls=_inputs.AUTOTUNE, deterministic=True)
    ds = ds.unbatch()
    ds = ds.map(lambda ex: _decode_warp(ex, input_size), num_parallel_calls=_inputs.AUTOTUNE,
                deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop)

    def heatmaps(b):
        b = dict(b)
        b["heatmaps"], b["weights"] = codec.encode(b["keypoints"], b["visible"])
        return b

    ds = ds.map(heatmaps, num_parallel_calls=_inputs.AUTOTUNE, deterministic=True)
    return ds.prefetch(_inputs.AUTOTUNE)


def check(folder, input_size, heatmap_size, batch, batches=3, seed=0, training=True):
    """Max abs difference per key between the library's batches and the prototype's."""
    from synpose_keras.datasets.pipeline import source_pipeline

    kw = dict(input_size=input_size, heatmap_size=heatmap_size, batch_size=batch, seed=seed,
              training=training)
    a = iter(source_pipeline(folder, **kw))
    b = iter(batched_source_pipeline(folder, **kw))
    worst = {}
    for _ in range(batches):
        x, y = next(a), next(b)
        assert sorted(x) == sorted(y), (sorted(x), sorted(y))
        for k in x:
            if x[k].dtype == tf.string:
                assert (x[k].numpy() == y[k].numpy()).all(), k
                continue
            d = float(tf.reduce_max(tf.abs(tf.cast(x[k], tf.float64) - tf.cast(y[k], tf.float64))))
            worst[k] = max(worst.get(k, 0.0), d)
    return worst


if __name__ == "__main__":
    import argparse

    import data_pipeline

    p = argparse.ArgumentParser()
    p.add_argument("--check", action="store_true")
    p.add_argument("--image-size", type=int, default=320)
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--heatmap-size", type=int, default=64)
    args = p.parse_args()
    folder = data_pipeline.synthetic_dataset(
        os.path.join(data_pipeline.WORK, f"pipe-{args.image_size}"), args.image_size, 256)
    for training in (True, False):
        print("training" if training else "eval",
              check(folder, args.input_size, args.heatmap_size, 32, training=training))
