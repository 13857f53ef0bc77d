"""Base/driving pairs for the geometric reconstruction branch.

Design (streaming, constant memory, no random access into TFRecords):

1. Records are read shard by shard in stored order with their images still *encoded*; converters
   emit each sequence's records together (frames in time order, views of one capture together),
   so records that can pair sit next to each other.
2. Consecutive records are grouped into windows of ``window`` records (per shard). Inside a
   window, record ``i`` is paired with a random record ``j`` sharing its non-empty ``sequence``
   and, with ``pair_mode="same-view"`` (the default), its ``view``, in another ``frame``; with
   ``pair_mode="any"``, differing in ``frame`` or ``view`` (so most pairs of a multi-view capture
   are two cameras: another viewpoint and another background, which a generator driven by
   keypoints cannot reconstruct). Optionally ``|frame_i - frame_j| <= max_frame_gap`` (``frame``
   numbers the source's frames). Records whose ``view`` is empty count as one view. Records
   without a partner in their window are dropped. A window costs ``window`` encoded images in
   memory, whatever the dataset size; pairs never cross a window boundary, so the largest usable
   frame gap is ``window - 1``.
3. Only then are the two chosen images decoded and cropped with the SAME square crop (the
   protocol's 1.5x box, docs/protocol.md, around the union of both records' visible keypoints, or
   the whole base image for unlabelled footage), optionally augmented by one shared random affine.

Datasets without sequences (every ``sequence`` empty, e.g. LSP) cannot pair frames: with
``fallback="affine"`` the driving image is a random affine of the base image (keypoints
transformed accordingly); with ``fallback=None`` building the pipeline raises ``ValueError``.

Same-view pairs of a dataset folder are checked when the pipeline is built: the keys (sequence,
view, frame) of its first ``PROBE_RECORDS`` records are paired as the pipeline would. When no
record has a same-view partner because every sequence holds a single frame per view (still
multi-view captures), the dataset is treated like one without sequences: affine pairs with a
warning under ``fallback="affine"``, a ``ValueError`` naming the folder otherwise. When records
of one view exist but are farther apart than ``max_frame_gap`` (videos sampled every n-th frame),
building the pipeline raises a ``ValueError`` giving the smallest gap found.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import tensorflow as tf

from synpose_keras.datasets import schema
from synpose_keras.datasets.pipeline import _inputs
from synpose_keras.datasets.pipeline.augment_config import AugmentConfig
from synpose_keras.datasets.pipeline.transforms import (
    crop_to_input,
    element_seed,
    keypoint_crop,
    materialize,
    sample_augmentation,
    transform_example,
)
from synpose_keras.datasets.reader import list_shards

_F32 = tf.float32
FALLBACKS = ("affine", None)
#: Partner rules: ``"same-view"`` (same sequence and view, another frame; the default) and
#: ``"any"`` (same sequence, another frame or another view).
PAIR_MODES = ("same-view", "any")
#: Records whose keys are read when a same-view pipeline is built on a folder (see the module
#: docstring).
PROBE_RECORDS = 512
#: Default random affine turning a base image into a driving image when there are no sequences.
DEFAULT_FALLBACK_AUGMENT = AugmentConfig(rotation=15.0, shear=5.0, translate=0.05, scale=(0.9, 1.1),
                                         color_jitter=0.0, flip_prob=0.0)


def check_pair_options(pair_mode: str, max_frame_gap: Optional[int]) -> None:
    """Raises ValueError unless ``pair_mode`` is in ``PAIR_MODES`` and ``max_frame_gap`` is None or
    a positive int."""
    if pair_mode not in PAIR_MODES:
        raise ValueError(f"pair_mode must be one of {list(PAIR_MODES)}. "
                         f"Received: pair_mode={pair_mode!r}")
    if max_frame_gap is not None and (isinstance(max_frame_gap, bool)
                                      or not isinstance(max_frame_gap, (int, np.integer))
                                      or max_frame_gap < 1):
        raise ValueError("max_frame_gap must be None or a positive int (frames). "
                         f"Received: max_frame_gap={max_frame_gap!r}")


def pair_indices(window: dict, seed, max_frame_gap: Optional[int] = None,
                 pair_mode: str = "same-view"):
    """Chooses partners inside one window of records.

    Args:
        window: dict of batched record fields; uses ``sequence`` (n,), ``frame`` (n,), ``view`` (n,).
        seed: (2,) int stateless seed.
        max_frame_gap: optional int. Largest allowed ``|frame_i - frame_j|``.
        pair_mode: str. "same-view": partners share the sequence and the view and differ in
            frame; "any": they share the sequence and differ in frame or view. Defaults to
            "same-view".

    Returns:
        ``(base, driving)`` int32 (m,) indices: for every record with at least one valid partner,
        itself and one partner drawn uniformly among the valid ones.
    """
    seq = window["sequence"]
    frame = tf.cast(window["frame"], tf.int64)
    view = window["view"]
    n = tf.shape(seq)[0]
    same = tf.equal(seq[:, None], seq[None, :]) & tf.not_equal(seq, "")[:, None]
    other_frame = tf.not_equal(frame[:, None], frame[None, :])
    same_view = tf.equal(view[:, None], view[None, :])
    if pair_mode == "same-view":
        ok = same & same_view & other_frame
    elif pair_mode == "any":
        ok = same & (other_frame | ~same_view)
    else:
        raise ValueError(f"pair_mode must be one of {list(PAIR_MODES)}. "
                         f"Received: pair_mode={pair_mode!r}")
    if max_frame_gap is not None:
        ok &= tf.abs(frame[:, None] - frame[None, :]) <= int(max_frame_gap)
    u = tf.random.stateless_uniform(tf.stack([n, n]), seed=tf.cast(seed, tf.int64), dtype=_F32)
    partner = tf.argmax(tf.where(ok, u, -tf.ones_like(u)), axis=1, output_type=tf.int32)
    base = tf.cast(tf.where(tf.reduce_any(ok, axis=1))[:, 0], tf.int32)
    return base, tf.gather(partner, base)


def _union_crop(examples, input_size, crop_scale, crop_from_keypoints):
    kp = tf.concat([tf.cast(e["keypoints"], _F32) for e in examples], 0)
    vis = tf.concat([tf.cast(e["visible"], _F32) for e in examples], 0)
    if not crop_from_keypoints:
        vis = tf.zeros_like(vis)
    shape = tf.shape(examples[0]["image"])
    center, side = keypoint_crop(kp, vis, shape[0], shape[1], crop_scale)
    return crop_to_input(center, side, input_size)


def _views(base, driving, m_base, m_driving, input_size, skeleton, flip, color, is_affine):
    out = {"is_affine": tf.constant(is_affine)}
    for name, ex, m in (("base", base, m_base), ("driving", driving, m_driving)):
        t = transform_example(ex, m, input_size, flip=flip, flip_index=skeleton.flip_index, color=color)
        for key, value in t.items():
            out[f"{name}_{key}"] = value
        for key in _inputs.PASSTHROUGH:
            if key in ex:
                out[f"{name}_{key}"] = ex[key]
    return out


def _shared_augment(config, seed, index, input_size):
    if config is None:
        return tf.eye(3, dtype=_F32), None, None
    aug, flip, color = sample_augmentation(element_seed(seed, index, 0), input_size, config)
    return aug, flip, (None if config.color_jitter == 0 else color)


def prepare_pair(base: dict, driving: dict, index, skeleton, input_size: int, seed: int,
                 augment: Optional[AugmentConfig] = None, crop_scale: float = 1.5,
                 crop_from_keypoints: bool = True) -> dict:
    """Two records of one sequence -> base and driving views under ONE shared crop (+ augment).

    Returns:
        dict with ``base_*`` and ``driving_*`` entries (``image`` float32 (S, S, 3) in [0, 255],
        ``keypoints``, ``visible``, ``matrix``, the record fields), and ``is_affine`` False.
    """
    base, driving = materialize(base), materialize(driving)
    crop = _union_crop([base, driving], input_size, crop_scale, crop_from_keypoints)
    aug, flip, color = _shared_augment(augment, seed, index, input_size)
    m = tf.matmul(aug, crop)
    return _views(base, driving, m, m, input_size, skeleton, flip, color, False)


def prepare_affine_pair(example: dict, index, skeleton, input_size: int, seed: int,
                        fallback_augment: AugmentConfig, augment: Optional[AugmentConfig] = None,
                        crop_scale: float = 1.5, crop_from_keypoints: bool = True) -> dict:
    """One record -> (base, driving = random affine of base), for datasets without sequences.

    Returns:
        as :func:`prepare_pair`, with ``is_affine`` True; ``driving_matrix @ inv(base_matrix)``
        is the base -> driving affine.
    """
    example = materialize(example)
    crop = _union_crop([example], input_size, crop_scale, crop_from_keypoints)
    aug, flip, color = _shared_augment(augment, seed, index, input_size)
    m_base = tf.matmul(aug, crop)
    drive, _, _ = sample_augmentation(element_seed(seed, index, 1), input_size, fallback_augment)
    return _views(example, example, m_base, tf.matmul(drive, m_base), input_size, skeleton, flip,
                  color, True)


def _light_shard(path, has_3d, k):
    return tf.data.TFRecordDataset(path).map(
        lambda s: schema.parse_example(s, has_3d=has_3d, num_keypoints=k, decode=False))


def probe_same_view_pairs(files, has_3d: bool, num_keypoints: Optional[int], window: int,
                          max_frame_gap: Optional[int], limit: int = PROBE_RECORDS) -> dict:
    """Pairs the keys of the first ``limit`` records of ``files`` as a same-view pipeline would.

    The records are read in order (shard after shard, images left encoded) and grouped into
    windows of ``window``; each window is paired by :func:`pair_indices` with
    ``pair_mode="same-view"``.

    Returns:
        dict: ``records`` (read), ``sequences`` (distinct non-empty sequences among them),
        ``paired`` (records with a same-view partner within ``max_frame_gap``),
        ``paired_any_gap`` (records with a same-view partner at any gap inside their window) and
        ``min_gap`` (smallest ``|frame difference|`` between two records of one view of one
        sequence in a window; None when there is none).
    """
    keys = tf.data.TFRecordDataset(list(files)).map(
        lambda s: schema.parse_example(s, has_3d=has_3d, num_keypoints=num_keypoints, decode=False))
    keys = keys.map(lambda ex: {key: ex[key] for key in ("sequence", "view", "frame")})
    out = {"records": 0, "sequences": 0, "paired": 0, "paired_any_gap": 0, "min_gap": None}
    sequences = set()
    seed = tf.constant([0, 0], tf.int64)
    for w in keys.take(limit).batch(window):
        seq, view = w["sequence"].numpy(), w["view"].numpy()
        frame = w["frame"].numpy().astype(np.int64)
        out["records"] += len(seq)
        sequences.update(x for x in seq.tolist() if x)
        out["paired"] += int(tf.size(pair_indices(w, seed, max_frame_gap, "same-view")[0]))
        out["paired_any_gap"] += int(tf.size(pair_indices(w, seed, None, "same-view")[0]))
        one_view = ((seq[:, None] == seq[None, :]) & (seq != b"")[:, None]
                    & (view[:, None] == view[None, :]) & (frame[:, None] != frame[None, :]))
        if one_view.any():
            gap = int(np.abs(frame[:, None] - frame[None, :])[one_view].min())
            out["min_gap"] = gap if out["min_gap"] is None else min(out["min_gap"], gap)
    out["sequences"] = len(sequences)
    return out


def _check_same_view_probe(probe: dict, where: str, max_frame_gap, fallback) -> bool:
    """Reads :func:`probe_same_view_pairs`: True when the pipeline must fall back to affine pairs;
    raises ValueError when it can neither pair nor fall back (see the module docstring)."""
    if probe["paired"] > 0:
        return False
    if probe["paired_any_gap"] > 0:
        gap = probe["min_gap"]
        raise ValueError(
            f"{where}: records of one view of a sequence are at least {gap} frames apart (the "
            f"`frame` numbers of the source), more than max_frame_gap={max_frame_gap}, so no "
            f"same-view base/driving pair can be formed (read the first {probe['records']} "
            f"records). Pass max_frame_gap >= {gap} (training: --set "
            f"adapt.pair_max_frame_gap={gap}). Received: max_frame_gap={max_frame_gap!r}"
        )
    message = (
        f"{where}: no sequence has two frames of one view (the first {probe['records']} records, "
        f"{probe['sequences']} sequences, hold a single frame per view), so base/driving pairs of "
        "one view cannot be formed"
    )
    if fallback is None:
        raise ValueError(
            f"{message}. Pass fallback='affine' (training: --set adapt.pair_fallback=affine) to "
            "pair each image with a random affine of itself, or pair_mode='any' (training: --set "
            "adapt.pair_mode=any) for pairs across views (another viewpoint and background, which "
            "the generator cannot reconstruct well). Received: fallback=None"
        )
    warnings.warn(f"{message}; using affine pairs instead (fallback='affine'): each image with a "
                  "random affine of itself.", stacklevel=3)
    return True


def _with_size(example):
    ex = dict(example)
    shape = tf.shape(ex["image"])
    ex["height"], ex["width"] = shape[0], shape[1]
    return ex


def pairs_pipeline(
    data,
    skeleton=None,
    input_size: int = 256,
    batch_size: int = 8,
    split: str = "train",
    window: int = 64,
    max_frame_gap: Optional[int] = None,
    fallback: Optional[str] = "affine",
    pair_mode: str = "same-view",
    has_sequences: Optional[bool] = None,
    augment: Optional[AugmentConfig] = None,
    fallback_augment: Optional[AugmentConfig] = None,
    seed: Optional[int] = None,
    training: bool = True,
    crop_scale: float = 1.5,
    crop_from_keypoints: bool = True,
    shuffle_buffer: int = 256,
    repeat: Optional[bool] = None,
    drop_remainder: Optional[bool] = None,
) -> tf.data.Dataset:
    """Base/driving image pairs of one subject: two frames of one camera (by default), or of any
    two cameras.

    Shapes: B batch, S ``input_size``, K keypoints. See the module docstring for the design.

    Args:
        data: str or tf.data.Dataset. Dataset folder, or records in ``load_records`` format.
        skeleton: optional Skeleton or name. Defaults to the dataset's.
        input_size: int. S. Defaults to 256.
        batch_size: int. Defaults to 8.
        split: str. Defaults to ``"train"``.
        window: int. Consecutive records among which partners are drawn. Defaults to 64.
        max_frame_gap: optional int. Largest ``|frame_base - frame_driving|`` (in the units of
            the records' ``frame``: the source's frame numbers). Defaults to None (anything
            inside the window).
        fallback: ``"affine"`` or None. What to do when the dataset has no sequences, or (same
            view) when its sequences hold a single frame per view. Defaults to ``"affine"``.
        pair_mode: str. "same-view": base and driving share the sequence and the ``view`` (an
            empty ``view`` counts as one view) and differ in frame. "any": they share the
            sequence and differ in frame or view (cross-view pairs included). Defaults to
            "same-view".
        has_sequences: optional bool. Whether any record has a non-empty ``sequence``; read from
            ``meta.json`` for a folder, required for a ``tf.data.Dataset``.
        augment: optional AugmentConfig. One random affine shared by base and driving (None: no
            augmentation). Defaults to None.
        fallback_augment: optional AugmentConfig. The base -> driving random affine of the
            fallback. Defaults to ``DEFAULT_FALLBACK_AUGMENT`` (±15°, scale 0.9-1.1, 5% shift).
        seed: optional int. Deterministic pairing, shuffling and augmentation.
        training: bool. Shuffle, repeat and drop the last partial batch. Defaults to True.
        crop_scale: float. Defaults to 1.5.
        crop_from_keypoints: bool. Crop around the stored keypoints (else the whole image).
            Defaults to True.
        shuffle_buffer: int. Pair shuffle buffer. Defaults to 256.
        repeat: optional bool. Defaults to ``training``.
        drop_remainder: optional bool. Defaults to ``training``.

    Returns:
        tf.data.Dataset of dicts: ``base_image``/``driving_image`` float32 (B, S, S, 3) in
        [0, 255], ``base_keypoints``/``driving_keypoints`` (B, K, 2) stored labels in input pixels
        (for analysis; unlabelled footage has zero visibility), ``base_visible``/
        ``driving_visible``, ``base_matrix``/``driving_matrix`` (B, 3, 3) stored -> input,
        ``base_sequence``, ``base_frame``, ``base_view``, ``base_source_id`` (and ``driving_*``),
        ``is_affine`` (B,) bool.

    Raises:
        ValueError: when the dataset has no sequences (or, same view, a single frame per view)
            and ``fallback`` is None; when records of one view are all farther apart than
            ``max_frame_gap``; for unknown options.

    Example:

    ```python
    from synpose_keras.datasets import pairs_pipeline
    batch = next(iter(pairs_pipeline("data/h3d", input_size=256, batch_size=8, seed=0)))
    ```
    """
    _inputs.check_sizes(input_size)
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}. Received: fallback={fallback!r}")
    if window < 2:
        raise ValueError(f"window must be >= 2. Received: window={window}")
    check_pair_options(pair_mode, max_frame_gap)
    is_dataset = isinstance(data, tf.data.Dataset)
    meta = None
    if not is_dataset:
        from synpose_keras.datasets.reader import read_meta

        meta = read_meta(str(data))
        if has_sequences is None:
            has_sequences = int(meta.get("num_sequences", {}).get(split, 1)) > 0
    elif has_sequences is None:
        raise ValueError("has_sequences is required when data is a tf.data.Dataset (True when "
                         "records share `sequence` ids). Received: has_sequences=None")
    skeleton = _inputs.resolve_skeleton(skeleton, meta, data)
    s = _inputs.base_seed(seed)
    if augment is not None:
        augment = augment.resolve(skeleton)

    files = None
    use_affine = not has_sequences
    if has_sequences and pair_mode == "same-view" and not is_dataset:
        files = list_shards(str(data), split, meta)
        probe = probe_same_view_pairs(files, bool(meta.get("has_3d")), meta.get("num_keypoints"),
                                      window, max_frame_gap)
        use_affine = _check_same_view_probe(probe, f"{data} (split {split!r})", max_frame_gap,
                                            fallback)

    if use_affine:
        if not has_sequences and fallback is None:
            where = f"{data} (split {split!r})" if meta is not None else "the given dataset"
            raise ValueError(
                f"{where} has no sequences: every record's `sequence` is empty, so base/driving "
                "pairs cannot come from video frames or camera views. Pass fallback='affine' to "
                "pair each image with a random affine of itself (as for LSP), or use a dataset "
                "with sequences. Received: fallback=None"
            )
        records, skeleton, _ = _inputs.resolve_input(data, split, skeleton, training, seed)
        drive_cfg = (fallback_augment or DEFAULT_FALLBACK_AUGMENT).resolve(skeleton)
        ds = _inputs.shuffle_repeat_enumerate(records, training, seed, shuffle_buffer, repeat)
        ds = ds.map(
            lambda i, ex: prepare_affine_pair(ex, i, skeleton, input_size, s, drive_cfg, augment,
                                              crop_scale, crop_from_keypoints),
            num_parallel_calls=_inputs.AUTOTUNE, deterministic=True)
        return _inputs.finish(ds, batch_size, training, drop_remainder)

    do_repeat = training if repeat is None else repeat
    if is_dataset:
        records = data.map(_with_size)
        if do_repeat:
            records = records.repeat()
        windows = records.padded_batch(window)
    else:
        files = files or list_shards(str(data), split, meta)
        has_3d, k = bool(meta.get("has_3d")), meta.get("num_keypoints")
        file_ds = tf.data.Dataset.from_tensor_slices(files)
        if training:
            file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        if do_repeat:
            file_ds = file_ds.repeat()
        windows = file_ds.interleave(
            lambda f: _light_shard(f, has_3d, k).batch(window),
            cycle_length=min(len(files), 8), block_length=1,
            num_parallel_calls=_inputs.AUTOTUNE, deterministic=True)

    def to_pairs(i, w):
        base_idx, drv_idx = pair_indices(w, element_seed(s, i, 2), max_frame_gap, pair_mode)
        pick = lambda idx: {key: tf.gather(value, idx) for key, value in w.items()}  # noqa: E731
        return tf.data.Dataset.from_tensor_slices((pick(base_idx), pick(drv_idx)))

    pairs = windows.enumerate().flat_map(to_pairs)
    if training and shuffle_buffer and shuffle_buffer > 1:
        pairs = pairs.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    pairs = pairs.enumerate().map(
        lambda i, bd: prepare_pair(bd[0], bd[1], i, skeleton, input_size, s, augment, crop_scale,
                                   crop_from_keypoints),
        num_parallel_calls=_inputs.AUTOTUNE, deterministic=True)
    return _inputs.finish(pairs, batch_size, training, drop_remainder)
