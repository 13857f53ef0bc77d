"""Labelled pipelines: ``source_pipeline`` (training targets) and ``eval_pipeline``."""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

from synpose_keras.datasets.pipeline import _inputs, batch_transforms
from synpose_keras.datasets.pipeline.augment_config import AugmentConfig
from synpose_keras.datasets.pipeline.transforms import (
    crop_to_input,
    element_seed,
    keypoint_crop,
    materialize,
    sample_augmentation,
    transform_example,
    warp_backend,
)
from synpose_keras.ops import geometry
from synpose_keras.ops.heatmaps import HeatmapCodec


def prepare_example(example: dict, index, skeleton, input_size: int, codec: Optional[HeatmapCodec],
                    config: Optional[AugmentConfig], seed: int, crop_scale: float = 1.5) -> dict:
    """One record -> one network example (crop, optional augmentation, heatmap targets).

    Runs eagerly or inside ``Dataset.map``; deterministic given ``(seed, index)``.

    Args:
        example: record dict (``load_records`` format).
        index: int64 scalar. Element index (keys the stateless randomness).
        skeleton: Skeleton. Provides ``flip_index``.
        input_size: int. S.
        codec: optional HeatmapCodec. When given, adds ``heatmaps`` and ``weights``.
        config: optional resolved AugmentConfig; None = no augmentation.
        seed: int. Pipeline seed.
        crop_scale: float. Crop side / keypoint box side. Defaults to 1.5.

    Returns:
        dict: ``image`` float32 (S, S, 3) in [0, 255], ``keypoints`` (K, 2) input pixels,
        ``visible`` (K,), ``matrix`` (3, 3) stored -> input pixels, ``inverse_matrix``,
        ``heatmaps`` (Hh, Wh, K) and ``weights`` (K,) (when ``codec``), ``keypoints_3d`` and
        ``intrinsics`` (when the record has them), and the record's ``sequence``, ``frame``,
        ``view``, ``source_id``.
    """
    example = materialize(example)
    shape = tf.shape(example["image"])
    center, side = keypoint_crop(example["keypoints"], example["visible"], shape[0], shape[1], crop_scale)
    matrix = crop_to_input(center, side, input_size)
    flip = color = None
    if config is not None:
        aug, flip, color = sample_augmentation(element_seed(seed, index), input_size, config)
        matrix = tf.matmul(aug, matrix)
        if config.color_jitter == 0:
            color = None
    out = transform_example(example, matrix, input_size, flip=flip, flip_index=skeleton.flip_index,
                            color=color)
    out["inverse_matrix"] = tf.cast(geometry.invert_affine(out["matrix"]), tf.float32)
    if codec is not None:
        out["heatmaps"], out["weights"] = codec.encode(out["keypoints"], out["visible"])
    for key in _inputs.PASSTHROUGH:
        if key in example:
            out[key] = example[key]
    return out


def source_pipeline(
    data,
    skeleton=None,
    input_size: int = 256,
    heatmap_size: int = 64,
    batch_size: int = 32,
    split: str = "train",
    augment: Optional[AugmentConfig] = None,
    seed: Optional[int] = None,
    training: bool = True,
    sigma: float = 2.0,
    crop_scale: float = 1.5,
    shuffle_buffer: int = 1000,
    repeat: Optional[bool] = None,
    drop_remainder: Optional[bool] = None,
) -> tf.data.Dataset:
    """Labelled training batches: crop, augment, heatmap targets.

    Shapes: B batch, S ``input_size``, Hh = Wh ``heatmap_size``, K keypoints.

    Per record: the square crop of docs/protocol.md (1.5 x the keypoint box, shifted, not padded),
    then (``training``) one random affine (``augment``) and colour jitter, applied in ONE
    bilinear warp to the image and exactly to the keypoints; a flip relabels left/right joints.
    Heatmaps come from :class:`~synpose_keras.ops.HeatmapCodec` (joints that leave the input get
    weight 0). With encoded records (a dataset folder) the work is staged: the matrix algebra,
    labels and heatmaps run per batch (``batch_transforms``), and decode + warp run for the whole
    batch in one OpenCV call (the default warp backend) or per element (TensorFlow's kernels,
    ``set_warp_backend("tensorflow")``); the samples are those of :func:`prepare_example`
    (labels bit for bit, images within float round-off).

    Args:
        data: str or tf.data.Dataset. A converted dataset folder, or a dataset of records in the
            ``load_records`` format.
        skeleton: optional Skeleton or name. Defaults to the dataset's (``meta.json``).
        input_size: int. S. Defaults to 256.
        heatmap_size: int. Defaults to 64.
        batch_size: int. Defaults to 32.
        split: str. Split to read when ``data`` is a folder. Defaults to ``"train"``.
        augment: optional AugmentConfig. Defaults to ``AugmentConfig()`` (UniFrame's ranges) when
            ``training``; ignored otherwise.
        seed: optional int. Makes shuffling and augmentation deterministic.
        training: bool. Shuffle, repeat, augment and drop the last partial batch. Defaults to True.
        sigma: float. Heatmap Gaussian sigma. Defaults to 2.0.
        crop_scale: float. Defaults to 1.5.
        shuffle_buffer: int. Defaults to 1000.
        repeat: optional bool. Repeat forever; defaults to ``training``.
        drop_remainder: optional bool. Defaults to ``training``.

    Returns:
        tf.data.Dataset of dicts: ``image`` float32 (B, S, S, 3) in [0, 255], ``heatmaps``
        (B, Hh, Wh, K), ``weights`` (B, K), ``keypoints`` (B, K, 2) input pixels, ``visible``
        (B, K), ``matrix``/``inverse_matrix`` (B, 3, 3), ``keypoints_3d`` (B, K, 3) and
        ``intrinsics`` (B, 3, 3) when present, ``sequence``/``frame``/``view``/``source_id``.

    Example:

    ```python
    from synpose_keras.datasets import source_pipeline
    ds = source_pipeline("data/rhd", input_size=256, heatmap_size=64, batch_size=32, seed=0)
    batch = next(iter(ds))
    ```
    """
    _inputs.check_sizes(input_size, heatmap_size)
    records, skeleton, _ = _inputs.resolve_input(data, split, skeleton, training, seed)
    codec = HeatmapCodec(input_size, heatmap_size, sigma=sigma)
    config = None
    if training:
        config = (augment if augment is not None else AugmentConfig()).resolve(skeleton)
    s = _inputs.base_seed(seed)
    ds = _inputs.shuffle_repeat_enumerate(records, training, seed, shuffle_buffer, repeat)
    if records.element_spec["image"].dtype != tf.string:
        # decoded images of different sizes cannot be batched before the warp: per example
        ds = ds.map(
            lambda i, ex: prepare_example(ex, i, skeleton, input_size, codec, config, s, crop_scale),
            num_parallel_calls=_inputs.AUTOTUNE,
            deterministic=True,
        )
        return _inputs.finish(ds, batch_size, training, drop_remainder)
    return _batched(ds, skeleton, input_size, codec, config, s, crop_scale, batch_size, training,
                    drop_remainder)


def _batched(ds, skeleton, input_size, codec, config, seed, crop_scale, batch_size, training,
             drop_remainder):
    """``prepare_example`` on encoded records, with the small-op work per batch (same samples;
    ``batch_transforms``): draw per element, plan per batch, then decode + warp per batch in one
    OpenCV call (the default backend) or per element (TensorFlow's kernels), heatmaps per batch."""
    if batch_size is None or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
    drop = training if drop_remainder is None else drop_remainder
    par = dict(num_parallel_calls=_inputs.AUTOTUNE, deterministic=True)
    ds = ds.map(lambda i, ex: batch_transforms.draw(ex, i, config, seed), **par)
    ds = ds.batch(batch_size, drop_remainder=drop)

    def heatmaps(batch):
        batch = dict(batch)
        batch["heatmaps"], batch["weights"] = codec.encode(batch["keypoints"], batch["visible"])
        return batch

    if warp_backend() == "opencv":
        def stage(batch):
            plan = batch_transforms.plan_batch(batch, skeleton, input_size, config, crop_scale)
            return heatmaps(batch_transforms.decode_warp_batch(plan, input_size))

        return ds.map(stage, **par).prefetch(_inputs.AUTOTUNE)
    ds = ds.map(lambda b: batch_transforms.plan_batch(b, skeleton, input_size, config, crop_scale),
                **par)
    ds = ds.unbatch()
    ds = ds.map(lambda ex: batch_transforms.decode_warp(ex, input_size), **par)
    ds = ds.batch(batch_size, drop_remainder=drop)
    return ds.map(heatmaps, **par).prefetch(_inputs.AUTOTUNE)


def eval_pipeline(
    data,
    skeleton=None,
    input_size: int = 256,
    heatmap_size: int = 64,
    batch_size: int = 32,
    split: str = "test",
    sigma: float = 2.0,
    crop_scale: float = 1.5,
) -> tf.data.Dataset:
    """Evaluation batches: the protocol crop, no augmentation, in stored order, every record.

    Same elements as :func:`source_pipeline` with ``training=False``; ``inverse_matrix`` maps
    input pixels back to stored-image pixels (``geometry.apply_affine(inverse_matrix, pred)``).

    Args:
        data: str or tf.data.Dataset. Dataset folder or records.
        skeleton: optional Skeleton or name. Defaults to the dataset's.
        input_size: int. Defaults to 256.
        heatmap_size: int. Defaults to 64.
        batch_size: int. Defaults to 32.
        split: str. Defaults to ``"test"``.
        sigma: float. Defaults to 2.0.
        crop_scale: float. Defaults to 1.5.

    Returns:
        tf.data.Dataset of dicts (see :func:`source_pipeline`), last batch possibly smaller.
    """
    if isinstance(data, tf.data.Dataset):
        records = data
    else:
        from synpose_keras.datasets.reader import load_records

        records = load_records(str(data), split, num_parallel_reads=None, decode_image=False)
    return source_pipeline(records, skeleton if skeleton is not None else _meta_skeleton(data),
                           input_size, heatmap_size, batch_size, split=split, seed=0,
                           training=False, sigma=sigma, crop_scale=crop_scale)


def _meta_skeleton(data):
    if isinstance(data, tf.data.Dataset):
        return None
    from synpose_keras.datasets.reader import read_meta

    return read_meta(str(data))["skeleton"]
