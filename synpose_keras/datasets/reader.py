"""Reading converted datasets: ``read_meta`` and ``load_records`` (the public contract).

A converted dataset is a folder (local or any ``tf.io.gfile`` URL) with ``meta.json`` and shards
``<split>-NNNNN-of-NNNNN.tfrecord`` written by :func:`synpose_keras.datasets.convert`.

Multi-worker training: the dataset is built from the list of shard files
(``Dataset.from_tensor_slices(files).interleave(TFRecordDataset)``), so ``tf.distribute``'s
auto-sharding can split it *by file* across workers. ``load_records`` leaves the policy to the
caller (the default ``AUTO`` tries ``FILE`` first, then falls back to ``DATA``); pass
``auto_shard_policy=tf.data.experimental.AutoShardPolicy.FILE`` to insist on file sharding
(then every worker needs at least one shard: convert with ``num_shards`` >= number of workers).
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Optional

import tensorflow as tf

from synpose_keras.datasets import schema

AUTOTUNE = tf.data.AUTOTUNE
_MAX_AUTO_CYCLE = 8


def _join(a: str, b: str) -> str:
    return posixpath.join(a, b) if "://" in a else os.path.join(a, b)


def read_meta(data_dir: str) -> dict:
    """Reads ``DIR/meta.json`` of a converted dataset.

    Args:
        data_dir: str. Dataset folder written by ``synpose convert``.

    Returns:
        dict: dataset name, skeleton, ``has_3d``, ``counts``/``shards``/``skipped`` per split,
        converter description, options, command and creation time.

    Raises:
        FileNotFoundError: when ``DIR/meta.json`` is missing (not a converted dataset, or its
            conversion did not finish).
    """
    data_dir = str(data_dir)
    path = _join(data_dir, schema.META_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{path} not found: {data_dir} is not a converted dataset (or its conversion did not "
            f"finish). Run `synpose convert <dataset> SRC --out {data_dir}` first (re-running the "
            "same command resumes an interrupted conversion)."
        )
    with tf.io.gfile.GFile(path, "r") as f:
        try:
            meta = json.load(f)
        except ValueError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); re-run the conversion.") from err
    version = meta.get("schema_version")
    if version != schema.SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {version!r} is not supported (expected "
                         f"{schema.SCHEMA_VERSION}); re-convert the dataset with this version.")
    return meta


def list_shards(data_dir: str, split: str, meta: Optional[dict] = None) -> list:
    """Sorted shard paths of ``split``; checks them against ``meta.json``."""
    data_dir = str(data_dir)
    meta = read_meta(data_dir) if meta is None else meta
    available = list(meta.get("shards", {}))
    if split not in meta.get("shards", {}):
        raise ValueError(f"Unknown split for dataset {data_dir}; available splits: {available}. "
                         f"Received: split={split!r}")
    files = sorted(tf.io.gfile.glob(_join(data_dir, schema.shard_pattern(split))))
    names = [posixpath.basename(p.replace("\\", "/")) for p in files]
    expected = list(meta["shards"][split])
    if names != expected:
        missing = sorted(set(expected) - set(names))
        raise FileNotFoundError(
            f"{data_dir}: shards of split {split!r} do not match meta.json (missing: {missing}, "
            f"found: {names}); re-run the conversion to repair the dataset."
        )
    return files


def load_records(
    data_dir: str,
    split: str,
    shuffle_files: bool = False,
    num_parallel_reads: Optional[int] = AUTOTUNE,
    deterministic: bool = True,
    seed: Optional[int] = None,
    decode_image: bool = True,
    auto_shard_policy=None,
) -> tf.data.Dataset:
    """Reads one split of a converted dataset as a ``tf.data.Dataset`` of record dicts.

    Shapes: K keypoints; H, W the stored image size (varies per record).

    Each element is a dict with:

    - ``image``: uint8 (H, W, 3) RGB (the encoded bytes, a string scalar, when
      ``decode_image=False``);
    - ``keypoints``: float32 (K, 2), (x, y) in pixels of ``image`` (centre of the top-left pixel is
      (0, 0)), canonical skeleton order;
    - ``visible``: float32 (K,);
    - ``keypoints_3d``: float32 (K, 3) and ``intrinsics``: float32 (3, 3), only when
      ``meta["has_3d"]``;
    - ``sequence``, ``view``, ``source_id``: string scalars; ``frame``: int64 scalar.

    Args:
        data_dir: str. Dataset folder (``meta.json`` + shards).
        split: str. One of ``meta["splits"]``.
        shuffle_files: bool. Shuffle the shard order (each iteration). Defaults to False.
        num_parallel_reads: optional int. Shards read concurrently (interleaved record by record,
            deterministic order when ``deterministic``). ``AUTOTUNE`` means
            ``min(num_shards, 8)`` (fixed, so the order does not depend on the machine);
            ``None`` or 1 reads the shards one after another, in written order.
            Defaults to ``AUTOTUNE``.
        deterministic: bool. Keep a deterministic element order. Defaults to True.
        seed: optional int. Seed of the shard shuffle.
        decode_image: bool. Decode images. Defaults to True.
        auto_shard_policy: optional ``tf.data.experimental.AutoShardPolicy`` set on the dataset
            for ``tf.distribute`` (see the module docstring). Defaults to None (TF's AUTO).

    Returns:
        tf.data.Dataset of dicts.

    Example:

    ```python
    from synpose_keras.datasets import load_records
    for record in load_records("data/rhd", "test").take(1):
        print(record["image"].shape, record["keypoints"].shape)
    ```
    """
    data_dir = str(data_dir)
    meta = read_meta(data_dir)
    files = list_shards(data_dir, split, meta)
    has_3d = bool(meta.get("has_3d", False))
    k = meta.get("num_keypoints")

    cycle = 1 if num_parallel_reads is None else int(num_parallel_reads)
    if num_parallel_reads == AUTOTUNE:
        cycle = min(len(files), _MAX_AUTO_CYCLE)
    cycle = max(1, min(cycle, len(files)))

    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if cycle == 1:
        ds = ds.flat_map(tf.data.TFRecordDataset)
    else:
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=cycle, block_length=1,
                           num_parallel_calls=AUTOTUNE, deterministic=deterministic)

    def parse(serialized):
        out = schema.parse_example(serialized, has_3d=has_3d, num_keypoints=k, decode=decode_image)
        out.pop(schema.HEIGHT)
        out.pop(schema.WIDTH)
        return out

    ds = ds.map(parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if auto_shard_policy is not None:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = auto_shard_policy
        ds = ds.with_options(options)
    return ds
