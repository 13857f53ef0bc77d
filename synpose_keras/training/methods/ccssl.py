"""CC-SSL's building blocks (keras.ops): the consistency transforms, the consensus of the
teacher's back-warped heatmaps, the temporal rule, the curriculum, and the target pipeline.

Shapes: B batch, T consistency passes (identity + T - 1 random), S input side, h = S / stride
heatmap side, K keypoints. Images RGB in [0, 255]; matrices are 3 x 3 affines acting on (x, y)
input pixels.

What the public code does (``JitengMu/Learning-from-Synthetic-Animals``, ``CCSSL/CCSSL.py`` and
``CCSSL/scripts/consistency.py``) and how it maps here:

- **Equivariance.** The model predicts on the image and on 4 random transforms of it (scale
  ``clamp(1 + 0.25 n, 0.75, 1.25)``, rotation ``clamp(30 n, -60, 60)`` degrees, n ~ N(0, 1)); each
  score map is warped back and the 5 maps are averaged. The pseudo-label is the argmax of the
  average and its confidence the average's maximum: a keypoint the passes disagree on gets a
  low peak and is dropped by the curriculum. Same here (:func:`consensus`).
- **Invariance.** The code realises it by training the student on appearance-augmented copies of
  the pseudo-labelled images (per-channel gains U(0.8, 1.2)). We do that (the student view carries
  the harness's colour jitter) *and* put appearance changes into the consensus: each random pass
  also multiplies the channels by gains U(1 - 0.2, 1 + 0.2), so a keypoint is kept only where the
  predictions agree under appearance and geometric changes together (the paper's wording).
- **Temporal consistency.** The code propagates the previous frame's label by pyramidal
  Lucas-Kanade optical flow; a flow moving a point more than 15 px is discarded; when
  ``conf / conf_prev < 0.9`` the label becomes the flowed point with confidence
  ``0.9 conf_prev``. The harness has no optical flow: we use the neighbouring frame's consensus
  label under the *same crop* as the propagated point (zero motion), accepted only when it lies
  within 15 px (at 256; scaled with the input) of the current label, and apply the same 0.9
  rule (:func:`temporal_update`). It helps where motion between adjacent frames is small and is
  switched off (``has_neighbor`` false) where the target has no sequences.
- **Curriculum.** Labels are regenerated every 10 epochs by the current model; the threshold is
  the ``p = 1 - 0.02 (epoch + 10)`` quantile of all confidences (floor 0.2): 20%, 40%, 60%, then
  80% of keypoint labels are kept. Here a round lasts ``round_epochs`` epochs, the round's labels
  come from a frozen copy of the model taken at its start, and the kept fraction rises the same
  way (:func:`curriculum_fraction`); the quantile is taken over the global batch, not the whole
  target set.
- **Loss.** ``L_src + gamma * JointsMSE(student(x_t), labels; kept)``, gamma 10, RMSprop 2.5e-4.
  Labels are sigma = 2 Gaussians like every method of the harness (CC-SSL draws sigma = 1).

Reference:
    Mu, Qiu, Hager, Yuille, "Learning from Synthetic Animals", CVPR 2020, Sec. 3.2-3.3.
"""

from __future__ import annotations

from keras import ops

from synpose_keras.ops.geometry import apply_affine
from synpose_keras.ops.heatmaps import decode_heatmaps
from synpose_keras.ops.warp import grid_sample, normalize_keypoints


def curriculum_fraction(round_index, start=0.2, step=0.2, maximum=0.8):
    """Fraction of keypoint labels kept in self-training round ``round_index`` (0-based)."""
    return float(min(start + step * int(round_index), maximum))


def transform_matrices(scale_noise, rotation_noise, size, scale_factor=0.25,
                       rotation_factor=30.0):
    """CC-SSL's random similarity transforms about the image centre.

    Args:
        scale_noise, rotation_noise: (...,) standard normal draws.
        size: int. S.
        scale_factor: float. Scale ``clamp(1 + sf n, 1 - sf, 1 + sf)``.
        rotation_factor: float. Degrees ``clamp(rf n, -2 rf, 2 rf)``.

    Returns:
        (..., 3, 3) float32: input pixels -> transformed input pixels.
    """
    s = ops.clip(1.0 + scale_factor * ops.cast(scale_noise, "float32"),
                 1.0 - scale_factor, 1.0 + scale_factor)
    deg = ops.clip(rotation_factor * ops.cast(rotation_noise, "float32"),
                   -2.0 * rotation_factor, 2.0 * rotation_factor)
    rad = deg * (3.141592653589793 / 180.0)
    c = (float(size) - 1.0) / 2.0
    a, b = s * ops.cos(rad), -s * ops.sin(rad)
    d, e = s * ops.sin(rad), s * ops.cos(rad)
    tx = c - (a * c + b * c)
    ty = c - (d * c + e * c)
    zeros, ones = ops.zeros_like(a), ops.ones_like(a)
    rows = [ops.stack([a, b, tx], -1), ops.stack([d, e, ty], -1),
            ops.stack([zeros, zeros, ones], -1)]
    return ops.stack(rows, axis=-2)


def _invert(m):
    a, b, tx = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, ty = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    itx = -(ia * tx + ib * ty)
    ity = -(id_ * tx + ie * ty)
    zeros, ones = ops.zeros_like(a), ops.ones_like(a)
    rows = [ops.stack([ia, ib, itx], -1), ops.stack([id_, ie, ity], -1),
            ops.stack([zeros, zeros, ones], -1)]
    return ops.stack(rows, axis=-2)


def _pixel_grid(height, width):
    xs = ops.cast(ops.arange(width), "float32")
    ys = ops.cast(ops.arange(height), "float32")
    gx = ops.broadcast_to(xs[None, :], (height, width))
    gy = ops.broadcast_to(ys[:, None], (height, width))
    return ops.reshape(ops.stack([gx, gy], -1), (1, height * width, 2))


def warp_by(images, matrix):
    """Warps (B, H, W, C) so that output pixel q shows input pixel ``matrix^-1 q`` (bilinear,
    zero outside). ``matrix`` (B, 3, 3) maps input pixels to output pixels."""
    height, width = images.shape[1], images.shape[2]
    points = apply_affine(_invert(ops.cast(matrix, "float32")),
                          ops.broadcast_to(_pixel_grid(height, width),
                                           (ops.shape(images)[0], height * width, 2)))
    grid = normalize_keypoints(points, (width, height))
    grid = ops.reshape(grid, (-1, height, width, 2))
    return grid_sample(ops.cast(images, "float32"), grid)


def heatmap_matrix(matrix, stride):
    """The input-pixel affine ``matrix`` expressed on heatmap pixels (x_in = stride * x_hm)."""
    m = ops.cast(matrix, "float32")
    stride = float(stride)
    linear = m[..., :2, :2]
    shift = m[..., :2, 2:] / stride
    top = ops.concatenate([linear, shift], axis=-1)
    bottom = ops.broadcast_to(ops.convert_to_tensor([[0.0, 0.0, 1.0]]), ops.shape(m[..., 2:, :]))
    return ops.concatenate([top, bottom], axis=-2)


def warp_back(heatmaps, matrix, stride):
    """Heatmaps predicted on ``warp_by(image, matrix)`` brought back to the image's frame."""
    return warp_by(heatmaps, _invert(heatmap_matrix(matrix, stride)))


def consensus(maps):
    """CC-SSL's label from T heatmaps already in one frame: argmax and maximum of their mean.

    Args:
        maps: (T, B, h, w, K) or a list of T (B, h, w, K).

    Returns:
        ``(keypoints, confidence)``: (B, K, 2) heatmap pixels, (B, K).
    """
    if isinstance(maps, (list, tuple)):
        maps = ops.stack(maps, axis=0)
    mean = ops.mean(ops.cast(maps, "float32"), axis=0)
    return decode_heatmaps(mean)


def temporal_update(keypoints, confidence, neighbor_keypoints, neighbor_confidence, has_neighbor,
                    ratio=0.9, max_motion=15.0):
    """CC-SSL's temporal rule with a zero-motion propagation (see the module docstring).

    Where the neighbour frame's label is within ``max_motion`` of the current one, and
    ``confidence / neighbor_confidence < ratio``, the label becomes the neighbour's with
    confidence ``ratio * neighbor_confidence``.

    Args:
        keypoints, neighbor_keypoints: (B, K, 2), same units as ``max_motion``.
        confidence, neighbor_confidence: (B, K).
        has_neighbor: (B,) bool or {0, 1}.
        ratio: float. CC-SSL ``lambda_decay``. Defaults to 0.9.
        max_motion: float. Largest accepted displacement. Defaults to 15.

    Returns:
        ``(keypoints, confidence)`` updated.
    """
    conf = ops.cast(confidence, "float32")
    conf_n = ops.cast(neighbor_confidence, "float32")
    distance = ops.sqrt(ops.sum(ops.square(ops.cast(keypoints, "float32")
                                           - ops.cast(neighbor_keypoints, "float32")), axis=-1))
    has = ops.cast(has_neighbor, "float32")[:, None] > 0
    replace = ops.logical_and(has, ops.logical_and(conf_n > 0, distance <= max_motion))
    replace = ops.logical_and(replace, conf < ratio * conf_n)
    new_kp = ops.where(replace[..., None], ops.cast(neighbor_keypoints, "float32"),
                       ops.cast(keypoints, "float32"))
    new_conf = ops.where(replace, ratio * conf_n, conf)
    return new_kp, new_conf


# =============================================================================== input pipeline
def make_consensus_draws(seed, batch, passes):
    """Stateless draws for the T - 1 random passes of one batch (tf; for ``tf.data``).

    Returns:
        dict: ``scale`` and ``rotation`` (B, T - 1) standard normal, ``gains`` (B, T - 1, 3)
        uniform [0, 1) (mapped to ``1 +- color_factor`` in the step).
    """
    import tensorflow as tf

    passes = int(passes)
    shape = tf.stack([batch, passes])
    return {  # static pass count: the step unrolls one teacher call per pass
        "scale": tf.reshape(tf.random.stateless_normal(shape, seed=seed + [0, 1]), [-1, passes]),
        "rotation": tf.reshape(tf.random.stateless_normal(shape, seed=seed + [0, 2]),
                               [-1, passes]),
        "gains": tf.reshape(tf.random.stateless_uniform(tf.concat([shape, [3]], 0),
                                                        seed=seed + [0, 3]), [-1, passes, 3]),
    }


def ccssl_dataset(config, source_dir, target_dir, epoch, temporal=True):
    """Source batches + target batches with a neighbouring frame, for ``CCSSLStage``.

    Target elements: ``teacher_image`` (the un-augmented crop, the frame to label),
    ``neighbor_image`` (an adjacent frame of the same camera under the same crop),
    ``has_neighbor`` (float 1/0), ``student_image`` (a fully augmented copy of the teacher
    image), ``affine`` (teacher -> student pixels) and ``teacher_index``. The student view
    resamples the cropped teacher image (two bilinear resamplings instead of the views
    pipeline's one). Without sequences, or with ``temporal``
    False, the neighbour is the image itself and ``has_neighbor`` is False.
    """
    import tensorflow as tf

    from synpose_keras.datasets import load_records, read_meta
    from synpose_keras.datasets.pipeline import (
        pairs_pipeline,
        source_pipeline,
        target_views_pipeline,
    )
    from synpose_keras.datasets.pipeline.transforms import (
        element_seed,
        flip_permutation,
        sample_augmentation,
        transform_example,
    )
    from synpose_keras.skeletons import get_skeleton
    from synpose_keras.training.data import _supervised, epoch_seed

    s = epoch_seed(config.seed, "adapt", epoch)
    a = config.adapt
    size = config.model.input_size
    passes = max(int(config.ccssl.num_transforms) - 1, 0)
    meta = read_meta(target_dir)
    skeleton = get_skeleton(meta["skeleton"])
    src = source_pipeline(source_dir, input_size=size, heatmap_size=config.model.heatmap_size,
                          batch_size=a.batch_size, seed=s,
                          augment=config.augment.to_augment_config())
    sequences = int(meta.get("num_sequences", {}).get("train", 0)) > 0
    if temporal and sequences:
        records = load_records(target_dir, "train").map(
            lambda r: {**r, "sequence": tf.strings.join([r["sequence"], r["view"]], "/")})
        pairs = pairs_pipeline(records, skeleton=skeleton, input_size=size,
                               batch_size=a.target_batch_size, max_frame_gap=1, fallback=None, has_sequences=True, seed=s + 1,
                               crop_from_keypoints=False)
        student_config = config.augment.to_augment_config().resolve(skeleton)
        k = skeleton.num_keypoints

        def student_view(index, pair):
            aug, flip, color = sample_augmentation(element_seed(s + 5, index, 3), size,
                                                   student_config)
            view = transform_example({"image": pair["base_image"],
                                      "keypoints": tf.zeros((k, 2), tf.float32),
                                      "visible": tf.zeros((k,), tf.float32)},
                                     aug, size, flip=flip, flip_index=skeleton.flip_index,
                                     color=color)
            return {"teacher_image": pair["base_image"], "neighbor_image": pair["driving_image"],
                    "has_neighbor": 1.0 - tf.cast(pair["is_affine"], tf.float32),
                    "student_image": view["image"], "affine": tf.cast(aug, tf.float32),
                    "teacher_index": flip_permutation(flip, skeleton.flip_index)}

        tgt = (pairs.unbatch().enumerate()
               .map(student_view, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .batch(a.target_batch_size, drop_remainder=True))
    else:
        views = target_views_pipeline(target_dir, input_size=size, batch_size=a.target_batch_size,
                                      seed=s + 1, crop_from_keypoints=False,
                                      student_augment=config.augment.to_augment_config())
        tgt = views.map(lambda t: {
            "teacher_image": t["teacher_image"], "neighbor_image": t["teacher_image"],
            "has_neighbor": tf.zeros_like(t["teacher_index"][:, 0], tf.float32),
            "student_image": t["student_image"], "affine": t["teacher_to_student"],
            "teacher_index": t["teacher_index"]})

    def assemble(index, batches):
        source, target = batches
        key = tf.stack([tf.cast(s + 7, tf.int64), tf.cast(index, tf.int64)])
        draws = make_consensus_draws(key, tf.shape(target["teacher_image"])[0], passes)
        return {"source": _supervised(source), "target": target, "draws": draws}

    return (tf.data.Dataset.zip(src, tgt).enumerate()
            .map(assemble, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
