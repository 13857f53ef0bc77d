"""Shared plumbing of the pipelines: input resolution, skeleton lookup, seeds, batching."""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from synpose_keras.datasets.reader import load_records, read_meta
from synpose_keras.skeletons import Skeleton, get_skeleton

AUTOTUNE = tf.data.AUTOTUNE
PASSTHROUGH = ("sequence", "frame", "view", "source_id")


def resolve_input(data, split: str, skeleton, training: bool, seed: Optional[int]):
    """``data`` (dataset folder or ``tf.data.Dataset`` of records) -> (records, skeleton, meta)."""
    meta = None
    if isinstance(data, tf.data.Dataset):
        records = data
    else:
        meta = read_meta(str(data))
        # images stay encoded through the shuffle buffer; the per-example functions decode them
        records = load_records(str(data), split, shuffle_files=training, seed=seed, decode_image=False)
    return records, resolve_skeleton(skeleton, meta, data), meta


def resolve_skeleton(skeleton, meta: Optional[dict], data=None) -> Skeleton:
    """``skeleton`` (Skeleton, name or None = the dataset's) -> Skeleton, checked against meta."""
    if skeleton is None:
        if meta is None:
            raise ValueError("skeleton is required when data is a tf.data.Dataset. Received: skeleton=None")
        skeleton = meta["skeleton"]
    if not isinstance(skeleton, Skeleton):
        skeleton = get_skeleton(skeleton)
    if meta is not None and meta.get("skeleton") not in (None, skeleton.name):
        raise ValueError(f"{data} holds {meta['skeleton']} keypoints but the pipeline was asked for "
                         f"{skeleton.name}. Received: skeleton={skeleton.name!r}")
    return skeleton


def base_seed(seed: Optional[int]) -> int:
    """The pipeline's integer seed (a fresh random one when ``seed`` is None)."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    return int(seed)


def check_sizes(input_size, heatmap_size=None):
    if not isinstance(input_size, (int, np.integer)) or input_size < 8:
        raise ValueError(f"input_size must be an int >= 8 (square inputs). Received: input_size={input_size!r}")
    if heatmap_size is not None and (not isinstance(heatmap_size, (int, np.integer)) or heatmap_size < 1):
        raise ValueError(f"heatmap_size must be a positive int. Received: heatmap_size={heatmap_size!r}")


def finish(ds: tf.data.Dataset, batch_size: int, training: bool, drop_remainder: Optional[bool]):
    if batch_size is None or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
    drop = training if drop_remainder is None else drop_remainder
    return ds.batch(batch_size, drop_remainder=drop).prefetch(AUTOTUNE)


def shuffle_repeat_enumerate(records: tf.data.Dataset, training: bool, seed: Optional[int],
                             shuffle_buffer: int, repeat: Optional[bool]) -> tf.data.Dataset:
    """Training: shuffle (seeded), repeat (infinite by default) then enumerate, so every element
    of the whole run gets its own index (and its own augmentation)."""
    if training and shuffle_buffer and shuffle_buffer > 1:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if training if repeat is None else repeat:
        records = records.repeat()
    return records.enumerate()
