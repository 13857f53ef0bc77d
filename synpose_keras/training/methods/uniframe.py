"""UniFrame's building blocks (keras.ops): AdaIN restyling with drawn probabilities and
strengths, keypoint-guided occlusion, and the per-batch random draws.

Shapes: B batch, S input side, K keypoints. Images are RGB in [0, 255].

Every random choice of a UniFrame iteration (restyle or not, the AdaIN strength alpha, occlude or
not, which keypoint, where the pasted patch comes from) is drawn in the input pipeline,
statelessly from the run seed, the epoch and the batch index (:func:`add_uniframe_draws`), and
travels with the batch. The step is then a deterministic function of its batch: resuming
mid-epoch replays the same draws, and one device and N replicas train identically.

Reference:
    Kim, Wang, Sclaroff, Saenko, "A Unified Framework for Domain Adaptive Pose Estimation",
    ECCV 2022 (public code ``VisionLearningGroup/UDA_PoseEstimation``, ``train_human.py``);
    docs/protocol.md, "Comparison methods".
"""

from __future__ import annotations

from keras import ops

# shared with PretrainStage; kept importable from here (uniframe_stage, benchmarks)
from synpose_keras.training.restyling import restyle  # noqa: F401

#: Keys of the draws dict: per source image, per target image.
SOURCE_DRAWS = ("source_restyle", "source_alpha")
TARGET_DRAWS = ("teacher_restyle", "teacher_alpha", "occlude", "occlude_choice", "patch_x",
                "patch_y")


def occlusion_half_size(occlusion_size, input_size):
    """Half side of the pasted patch: UniFrame's 20-pixel patch at 256, scaled to the input."""
    return max(1, int(round(occlusion_size * input_size / 512.0)))


def keypoint_guided_occlusion(images, keypoints, scores, draws, prob=0.5, threshold=0.9,
                              half_size=10):
    """UniFrame's keypoint-guided occlusion (``--occlude-rate 0.5 --occlude-thresh 0.9``).

    For each image with ``draws["occlude"] < prob`` and at least one keypoint whose teacher
    confidence is ``>= threshold``: one such keypoint is chosen (``occlude_choice``), the square
    ``[x - half, x + half) x [y - half, y + half)`` around it (clipped to the image) is replaced
    by a same-sized patch of the same image whose corner is drawn uniformly
    (``patch_x``, ``patch_y``).

    Args:
        images: (B, S, S, 3).
        keypoints: (B, K, 2) teacher keypoints in this image's pixels (x, y).
        scores: (B, K) teacher confidences.
        draws: dict of (B,) uniform [0, 1) tensors: ``occlude``, ``occlude_choice``, ``patch_x``,
            ``patch_y``.
        prob: float. Occlusion probability. Defaults to 0.5.
        threshold: float. Confidence needed. Defaults to 0.9.
        half_size: int. Half side of the patch. Defaults to 10 (a 20 x 20 patch).

    Returns:
        (B, S, S, 3) images.
    """
    images = ops.cast(images, "float32")
    size = images.shape[1] if images.shape[1] is not None else ops.shape(images)[1]
    batch = ops.shape(images)[0]
    confident = ops.cast(ops.cast(scores, "float32") >= threshold, "float32")  # (B, K)
    count = ops.sum(confident, axis=1)
    apply = ops.logical_and(ops.cast(draws["occlude"], "float32") < prob, count > 0)
    choice = ops.floor(ops.cast(draws["occlude_choice"], "float32") * count)
    choice = ops.minimum(choice, ops.maximum(count - 1.0, 0.0))
    rank = ops.cumsum(confident, axis=1) - 1.0
    pick = confident * ops.cast(ops.equal(rank, choice[:, None]), "float32")  # one-hot (B, K)
    position = ops.sum(ops.cast(keypoints, "float32") * pick[..., None], axis=1)  # (B, 2)
    position = ops.floor(position)
    s = float(size)
    lo = ops.clip(position - half_size, 0.0, s)
    hi = ops.clip(position + half_size, 0.0, s)
    extent = hi - lo  # (B, 2) width, height
    corner_x = ops.floor(ops.cast(draws["patch_x"], "float32") * (s - extent[:, 0] + 1.0))
    corner_y = ops.floor(ops.cast(draws["patch_y"], "float32") * (s - extent[:, 1] + 1.0))
    grid = ops.cast(ops.arange(size), "float32")
    xs = grid[None, None, :]  # (1, 1, S)
    ys = grid[None, :, None]  # (1, S, 1)
    inside_x = ops.logical_and(xs >= lo[:, 0, None, None], xs < hi[:, 0, None, None])
    inside_y = ops.logical_and(ys >= lo[:, 1, None, None], ys < hi[:, 1, None, None])
    inside = ops.logical_and(ops.logical_and(inside_x, inside_y), apply[:, None, None])
    src_x = ops.clip(xs - lo[:, 0, None, None] + corner_x[:, None, None], 0.0, s - 1.0)
    src_y = ops.clip(ys - lo[:, 1, None, None] + corner_y[:, None, None], 0.0, s - 1.0)
    flat_index = ops.cast(src_y * s + src_x, "int32")  # (B, S, S)
    flat = ops.reshape(images, (batch, -1, 3))
    gathered = ops.take_along_axis(flat, ops.reshape(flat_index, (batch, -1, 1)), axis=1)
    shifted = ops.reshape(gathered, ops.shape(images))
    return ops.where(inside[..., None], shifted, images)


def make_draws(seed, source_batch, target_batch):
    """Stateless uniform draws of one batch (tf; for ``tf.data``).

    Args:
        seed: (2,) int seed.
        source_batch, target_batch: int or scalar tensors.

    Returns:
        dict name -> (B,) float32 in [0, 1), see :data:`SOURCE_DRAWS` / :data:`TARGET_DRAWS`.
    """
    import tensorflow as tf

    out = {}
    for i, name in enumerate(SOURCE_DRAWS + TARGET_DRAWS):
        n = source_batch if name in SOURCE_DRAWS else target_batch
        out[name] = tf.random.stateless_uniform(tf.reshape(n, [1]), seed=seed + [0, 7919 * (i + 1)])
    return out


def add_uniframe_draws(dataset, seed):
    """Adds ``draws`` (:func:`make_draws`) to every batch of an ``adapt`` dataset."""
    import tensorflow as tf

    def add(index, batch):
        key = tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)])
        draws = make_draws(key, tf.shape(batch["source"]["image"])[0],
                           tf.shape(batch["target"]["student_image"])[0])
        return {**batch, "draws": draws}

    return dataset.enumerate().map(add, num_parallel_calls=tf.data.AUTOTUNE)
