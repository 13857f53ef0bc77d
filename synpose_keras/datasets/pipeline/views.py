"""Target pipeline of the mean teacher: a teacher view and a student view of every image."""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from synpose_keras.datasets.pipeline import _inputs
from synpose_keras.datasets.pipeline.augment_config import AugmentConfig
from synpose_keras.datasets.pipeline.transforms import (
    crop_to_input,
    element_seed,
    flip_permutation,
    keypoint_crop,
    materialize,
    sample_augmentation,
    transform_example,
)
from synpose_keras.ops import geometry

_F32 = tf.float32


def _crop_visible(example, crop_from_keypoints):
    vis = example["visible"]
    return vis if crop_from_keypoints else tf.zeros_like(tf.cast(vis, _F32))


def prepare_views(example: dict, index, skeleton, input_size: int, teacher_config: AugmentConfig,
                  student_config: AugmentConfig, seed: int, crop_scale: float = 1.5,
                  crop_from_keypoints: bool = True) -> dict:
    """One record -> a teacher view and a student view, plus the affine between them.

    Both views start from the same square crop (``crop_from_keypoints``: the protocol's box of the
    stored keypoints, as the TLlib protocol does for target images; otherwise the whole image),
    then get independent augmentations (resolved configs) drawn from ``(seed, index)``.

    Returns:
        dict with ``teacher_image``/``student_image`` float32 (S, S, 3) in [0, 255];
        ``teacher_to_student`` (3, 3): teacher-view pixels -> student-view pixels, and
        ``student_to_teacher`` its inverse; ``teacher_index`` (K,) int32: student keypoint ``i``
        is teacher keypoint ``teacher_index[i]`` (differs from the identity when exactly one
        view is flipped), so teacher predictions map into the student view as
        ``apply_affine(teacher_to_student, kp_teacher)[teacher_index]``;
        ``teacher_matrix``/``student_matrix`` (3, 3) stored -> view pixels; the stored labels
        in each view (``teacher_keypoints``, ``teacher_visible``, ``student_keypoints``,
        ``student_visible``; all-zero visibility for unlabelled footage), and the record's
        ``sequence``, ``frame``, ``view``, ``source_id``.
    """
    example = materialize(example)
    shape = tf.shape(example["image"])
    center, side = keypoint_crop(example["keypoints"], _crop_visible(example, crop_from_keypoints),
                                 shape[0], shape[1], crop_scale)
    crop = crop_to_input(center, side, input_size)
    views = {}
    perms = {}
    for salt, (name, config) in enumerate((("teacher", teacher_config), ("student", student_config))):
        aug, flip, color = sample_augmentation(element_seed(seed, index, salt), input_size, config)
        if config.color_jitter == 0:
            color = None
        labels = {k: example[k] for k in ("image", "keypoints", "visible")}
        out = transform_example(labels, tf.matmul(aug, crop), input_size, flip=flip,
                                flip_index=skeleton.flip_index, color=color)
        views[name] = out
        perms[name] = flip_permutation(flip, skeleton.flip_index)
    t2s = tf.matmul(views["student"]["matrix"], geometry.invert_affine(views["teacher"]["matrix"]))
    result = {
        "teacher_to_student": tf.cast(t2s, _F32),
        "student_to_teacher": tf.cast(geometry.invert_affine(t2s), _F32),
        "teacher_index": tf.gather(perms["teacher"], perms["student"]),
    }
    for name, out in views.items():
        result[f"{name}_image"] = out["image"]
        result[f"{name}_matrix"] = out["matrix"]
        result[f"{name}_keypoints"] = out["keypoints"]
        result[f"{name}_visible"] = out["visible"]
    for key in _inputs.PASSTHROUGH:
        if key in example:
            result[key] = example[key]
    return result


def target_views_pipeline(
    data,
    skeleton=None,
    input_size: int = 256,
    batch_size: int = 32,
    split: str = "train",
    teacher_augment: Optional[AugmentConfig] = None,
    student_augment: Optional[AugmentConfig] = None,
    seed: Optional[int] = None,
    training: bool = True,
    crop_scale: float = 1.5,
    crop_from_keypoints: bool = True,
    shuffle_buffer: int = 1000,
    repeat: Optional[bool] = None,
    drop_remainder: Optional[bool] = None,
) -> tf.data.Dataset:
    """Unlabelled target batches for the mean teacher: (teacher view, student view) pairs.

    Shapes: B batch, S ``input_size``, K keypoints.

    The teacher sees a lightly augmented view (none by default), the student a fully augmented
    one; ``teacher_to_student`` maps teacher-view pixels onto student-view pixels so the
    teacher's heatmap peaks can be re-rendered in the student frame (docs/training.md, stage
    ``adapt``).

    Args:
        data: str or tf.data.Dataset. Dataset folder, or records in ``load_records`` format.
        skeleton: optional Skeleton or name. Defaults to the dataset's.
        input_size: int. S. Defaults to 256.
        batch_size: int. Defaults to 32.
        split: str. Defaults to ``"train"``.
        teacher_augment: optional AugmentConfig. Defaults to ``AugmentConfig.none()``.
        student_augment: optional AugmentConfig. Defaults to ``AugmentConfig()``
            (UniFrame's ranges).
        seed: optional int. Deterministic shuffling and augmentation.
        training: bool. Shuffle, repeat and drop the last partial batch. Defaults to True.
        crop_scale: float. Defaults to 1.5.
        crop_from_keypoints: bool. Crop around the stored keypoints (protocol) or take the whole
            image. Defaults to True (unlabelled records fall back to the whole image anyway).
        shuffle_buffer: int. Defaults to 1000.
        repeat: optional bool. Defaults to ``training``.
        drop_remainder: optional bool. Defaults to ``training``.

    Returns:
        tf.data.Dataset of dicts, see :func:`prepare_views` (with a leading B axis).

    Example:

    ```python
    from synpose_keras.datasets import target_views_pipeline
    from synpose_keras.ops import apply_affine
    batch = next(iter(target_views_pipeline("data/h3d", batch_size=8, seed=0)))
    ```
    """
    _inputs.check_sizes(input_size)
    records, skeleton, _ = _inputs.resolve_input(data, split, skeleton, training, seed)
    teacher = (teacher_augment if teacher_augment is not None else AugmentConfig.none()).resolve(skeleton)
    student = (student_augment if student_augment is not None else AugmentConfig()).resolve(skeleton)
    s = _inputs.base_seed(seed)
    ds = _inputs.shuffle_repeat_enumerate(records, training, seed, shuffle_buffer, repeat)
    ds = ds.map(
        lambda i, ex: prepare_views(ex, i, skeleton, input_size, teacher, student, s, crop_scale,
                                    crop_from_keypoints),
        num_parallel_calls=_inputs.AUTOTUNE,
        deterministic=True,
    )
    return _inputs.finish(ds, batch_size, training, drop_remainder)
