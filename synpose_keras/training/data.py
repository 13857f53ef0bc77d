"""The input of each stage, built from the shared tf.data pipelines.

Every stage dataset is *per epoch*: its seed is derived from the run seed, the stage and the
epoch, so an epoch's batches are the same whether the run went straight through or was resumed
(resuming mid-epoch skips the batches already consumed).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from synpose_keras.datasets.pipeline import (
    AugmentConfig,
    pairs_pipeline,
    source_pipeline,
    target_views_pipeline,
)

_STAGE_SALT = {"style": 1, "pretrain": 2, "generator": 3, "adapt": 4}


def epoch_seed(seed: int, stage: str, epoch: int) -> int:
    """Deterministic seed of one stage epoch."""
    return int(seed) * 100_003 + _STAGE_SALT[stage] * 1_009 + int(epoch)


def _source(config, data, batch, seed):
    return source_pipeline(data, input_size=config.model.input_size,
                           heatmap_size=config.model.heatmap_size, batch_size=batch, seed=seed,
                           augment=config.augment.to_augment_config())


def _views(config, data, batch, seed, student_augment=None):
    # Target crops never use the stored keypoints: real target footage is unlabelled, and the
    # embedded benchmark's target labels are for analysis only.
    return target_views_pipeline(data, input_size=config.model.input_size, batch_size=batch,
                                 seed=seed, crop_from_keypoints=False,
                                 student_augment=(student_augment if student_augment is not None
                                                  else config.augment.to_augment_config()))


def pair_options(config) -> dict:
    """The pairing options of ``config.adapt`` as ``pairs_pipeline`` keyword arguments
    (``pair_mode``, ``max_frame_gap``, ``fallback``)."""
    a = config.adapt
    return {"pair_mode": a.pair_mode, "max_frame_gap": a.pair_max_frame_gap,
            "fallback": a.pair_fallback}


def target_pairs(config, data, batch, seed):
    """The base/driving pairs of stages ``generator`` and ``adapt`` (whole-frame crops, the
    run's pairing options)."""
    return pairs_pipeline(data, input_size=config.model.input_size, batch_size=batch, seed=seed,
                          crop_from_keypoints=False, **pair_options(config))


def style_dataset(config, source_dir, target_dir, epoch):
    s = epoch_seed(config.seed, "style", epoch)
    b = config.style.batch_size
    src = source_pipeline(source_dir, input_size=config.model.input_size,
                          heatmap_size=config.model.heatmap_size, batch_size=b, seed=s,
                          augment=AugmentConfig.none())
    tgt = _views(config, target_dir, b, s + 1, student_augment=AugmentConfig.none())
    return tf.data.Dataset.zip(src, tgt).map(
        lambda a, t: {"source": a["image"], "target": t["teacher_image"]})


def pretrain_dataset(config, source_dir, target_dir, epoch, restyle: bool):
    s = epoch_seed(config.seed, "pretrain", epoch)
    b = config.pretrain.batch_size
    src = _source(config, source_dir, b, s)
    if not restyle:
        return src.map(lambda a: {"source": _supervised(a)})
    tgt = _views(config, target_dir, b, s + 1, student_augment=AugmentConfig.none())
    return tf.data.Dataset.zip(src, tgt).map(
        lambda a, t: {"source": _supervised(a), "style": t["teacher_image"]})


def generator_dataset(config, target_dir, epoch):
    s = epoch_seed(config.seed, "generator", epoch)
    pairs = target_pairs(config, target_dir, config.generator.batch_size, s)
    return pairs.map(lambda p: {"base": p["base_image"], "driving": p["driving_image"]})


def adapt_dataset(config, source_dir, target_dir, epoch, with_pairs: bool):
    s = epoch_seed(config.seed, "adapt", epoch)
    a = config.adapt
    src = _source(config, source_dir, a.batch_size, s)
    tgt = _views(config, target_dir, a.target_batch_size, s + 1)
    parts = [src, tgt]
    if with_pairs:
        parts.append(target_pairs(config, target_dir, a.target_batch_size, s + 2))

    def assemble(*batches):
        out = {"source": _supervised(batches[0]),
               "target": {"teacher_image": batches[1]["teacher_image"],
                          "student_image": batches[1]["student_image"],
                          "affine": batches[1]["teacher_to_student"],
                          "teacher_index": batches[1]["teacher_index"]}}
        if a.oracle_labels:  # analysis only: the stored labels replace the teacher's peaks
            out["target"]["oracle_keypoints"] = batches[1]["teacher_keypoints"]
            out["target"]["oracle_visible"] = batches[1]["teacher_visible"]
        if with_pairs:
            out["pairs"] = {"base": batches[2]["base_image"], "driving": batches[2]["driving_image"]}
        return out

    return tf.data.Dataset.zip(*parts).map(assemble, num_parallel_calls=tf.data.AUTOTUNE)


def source_reference_dataset(config, source_dir, epoch):
    """Batches of the source-only reference of ``adapt``: the same source batches as
    :func:`adapt_dataset` of that epoch (same seed), and no target."""
    s = epoch_seed(config.seed, "adapt", epoch)
    src = _source(config, source_dir, config.adapt.batch_size, s)
    return src.map(lambda b: {"source": _supervised(b)}, num_parallel_calls=tf.data.AUTOTUNE)


def _supervised(batch):
    return {"image": batch["image"], "heatmaps": batch["heatmaps"], "weights": batch["weights"]}


def source_3d_labels(source_dir: str, limit: int = 20000):
    """Stored 2D keypoints, 3D keypoints and visibility of the source's train split (numpy)."""
    from synpose_keras.datasets import load_records

    kp2, kp3, vis = [], [], []
    for record in load_records(source_dir, "train").take(limit).batch(512):
        kp2.append(record["keypoints"].numpy())
        kp3.append(record["keypoints_3d"].numpy())
        vis.append(record["visible"].numpy())
    if not kp2:
        raise ValueError(f"No record in {source_dir} split 'train'.")
    return np.concatenate(kp2), np.concatenate(kp3), np.concatenate(vis)
