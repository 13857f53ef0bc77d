"""The shared writer: converter items -> validated records -> sharded TFRecords + ``meta.json``.

Guarantees (tested in ``tests/datasets/test_writer.py``):

- **Streaming.** Items are loaded one at a time; memory does not grow with the split.
- **Atomic shards.** Each shard is written to ``<shard>.incomplete`` and renamed to its final name
  ``<split>-00000-of-00004.tfrecord`` only once complete. ``meta.json`` is written last (temporary
  file + rename), only when every split is complete; a folder without ``meta.json`` is not a
  dataset, and the reader says so.
- **Resume.** ``.progress.json`` records, per finished shard, a hash of its *plan* (schema version,
  converter name and options, the source release (its path and :func:`source_fingerprint`: the
  size and modification time of every file under it), writer options, split, shard index and
  count, and the ids of the items it holds). Re-running the same conversion keeps the finished
  shards whose plan is unchanged and writes only the missing ones; shards whose plan changed
  (other options, or a different or corrected release) are rewritten and stale shard files are
  deleted.
- **A finished dataset is never lost** (tested in ``tests/reliability/test_conversion.py``). A
  re-conversion into a folder holding a finished dataset writes into the hidden sibling
  ``.NAME.synpose-staging`` and replaces the folder only when the new dataset is complete
  (two renames); a failure leaves the previous dataset exactly as it was, and re-running resumes
  from the staging folder. A dataset of another kind or source folder is replaced only with
  ``overwrite=True`` (``--overwrite``). One process at a time converts into a folder: the lock
  file ``.NAME.synpose-lock`` names the holder (pid and host); a stale lock of a dead process on
  the same host is taken over (:mod:`synpose_keras.locking`).
- **Bad samples.** ``Item.load`` errors (:class:`BadSampleError`, unreadable or truncated images)
  and failed validation either stop the conversion with a message naming the split and sample
  (and suggesting ``--skip-bad``), or, with ``skip_bad=True``, are listed with their reason in
  ``meta["skipped"][split]``.

Reference:
    Square crop around the subject: docs/protocol.md, "Evaluation protocol" (side 1.5 x the
    longer side of the keypoint box, capped at the image's shorter side, shifted, not padded, to
    stay inside the image: TLlib's ``scale_box``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import posixpath
from typing import Any, Optional, Sequence

import numpy as np
import tensorflow as tf

from synpose_keras.datasets import schema
from synpose_keras.datasets.converters.base import (
    BadSampleError,
    Converter,
    DatasetLayoutError,
    Record,
    check_keypoints,
)
from synpose_keras.locking import folder_lock
from synpose_keras.skeletons import get_skeleton

PROGRESS_FILE = ".progress.json"
MAX_CROP_FACTOR = 8  # crop side <= this x the image's longer side (validated keypoints: <= 4.5)
INCOMPLETE_SUFFIX = ".incomplete"


class DatasetExistsError(ValueError):
    """``--out`` holds a finished dataset of another kind or source (pass ``overwrite``)."""


class OutputFolderError(ValueError):
    """``--out`` cannot be a folder, or cannot be written."""


# ---------------------------------------------------------------------------------------------
# Validation and the generic crop
# ---------------------------------------------------------------------------------------------


def validate_record(record: Record, num_keypoints: int, has_3d: bool, where: str) -> Record:
    """Checks shapes, dtypes and finiteness of a record; returns a normalised copy.

    Raises:
        BadSampleError: naming ``where`` and what was expected.
    """
    if not isinstance(record, Record):
        raise BadSampleError(f"{where}: Item.load() must return a Record, got {type(record).__name__}")
    image = np.asarray(record.image)
    if image.dtype != np.uint8:
        raise BadSampleError(f"{where}: expected a uint8 image, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise BadSampleError(f"{where}: expected an RGB image of shape (H, W, 3), got {image.shape}")
    keypoints = check_keypoints(record.keypoints, num_keypoints, where)
    visible = np.asarray(record.visible, dtype=np.float32)
    if visible.shape != (num_keypoints,):
        raise BadSampleError(f"{where}: expected visible of shape ({num_keypoints},), got {visible.shape}")
    if not np.all(np.isfinite(visible)):
        raise BadSampleError(f"{where}: visible contains NaN or inf")
    h, w = image.shape[:2]
    margin = max(h, w)  # a labelled keypoint may lie outside the image, but not this far
    far = (visible > 0) & ((keypoints[:, 0] < -margin) | (keypoints[:, 0] > w + margin)
                           | (keypoints[:, 1] < -margin) | (keypoints[:, 1] > h + margin))
    if np.any(far):
        j = int(np.argmax(far))
        raise BadSampleError(
            f"{where}: visible keypoint {j} at ({keypoints[j, 0]:g}, {keypoints[j, 1]:g}) is "
            f"more than one image size outside the {w}x{h} image ({int(far.sum())} such "
            "keypoint(s)); expected pixel coordinates of this image")
    kp3d = intrinsics = None
    if has_3d:
        if record.keypoints_3d is None or record.intrinsics is None:
            raise BadSampleError(f"{where}: the dataset has 3D labels but this record lacks "
                                 "keypoints_3d or intrinsics")
        kp3d = np.asarray(record.keypoints_3d, dtype=np.float32)
        intrinsics = np.asarray(record.intrinsics, dtype=np.float32)
        if kp3d.shape != (num_keypoints, 3):
            raise BadSampleError(f"{where}: expected keypoints_3d of shape ({num_keypoints}, 3), got {kp3d.shape}")
        if intrinsics.shape != (3, 3):
            raise BadSampleError(f"{where}: expected intrinsics of shape (3, 3), got {intrinsics.shape}")
        if not (np.all(np.isfinite(kp3d)) and np.all(np.isfinite(intrinsics))):
            raise BadSampleError(f"{where}: keypoints_3d or intrinsics contain NaN or inf")
    return Record(
        image=image,
        keypoints=keypoints,
        visible=visible,
        sequence=str(record.sequence),
        frame=int(record.frame),
        source_id=str(record.source_id),
        view=str(record.view),
        keypoints_3d=kp3d,
        intrinsics=intrinsics,
    )


CROP_POLICIES = ("tllib", "pad")


def crop_box(keypoints: np.ndarray, visible: np.ndarray, width: int, height: int,
             crop_scale: float = 1.5, policy: str = "tllib") -> Optional[tuple]:
    """Integer square crop box ``(left, top, side)`` around the visible keypoints.

    Side = ``crop_scale`` x the longer side of the visible keypoints' bounding box, centred on the
    box, then shifted (not padded) to stay inside the image. Returns None when no visible
    keypoint or a degenerate box (side < 2 px) leaves nothing to crop around.

    Args:
        keypoints: (K, 2) pixels. visible: (K,).
        width, height: int. Image size.
        crop_scale: float. Side / longer side of the keypoint box. Defaults to 1.5.
        policy: str. ``"tllib"`` (default): as TLlib's ``scale_box``, the side is capped at the
            image's shorter side, so the crop always lies inside the image (keypoints beyond a
            capped crop fall outside it). ``"pad"``: the side is never capped; where it exceeds
            the image the crop overhangs on the right/bottom (after the shift to the left/top
            edge) and the overhang is padded with zeros.

    Reference: TLlib ``scale_box``; docs/protocol.md, "Evaluation protocol".
    """
    if policy not in CROP_POLICIES:
        raise ValueError(f"crop policy must be one of {list(CROP_POLICIES)}. "
                         f"Received: policy={policy!r}")
    vis = np.asarray(visible) > 0
    if not np.any(vis):
        return None
    pts = np.asarray(keypoints, np.float64)[vis]
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    side = crop_scale * max(x1 - x0, y1 - y0)
    if side < 2:
        return None
    side_i = int(round(side))
    if policy == "tllib":
        side_i = min(side_i, int(width), int(height))
    left = int(round((x0 + x1) / 2 - side_i / 2))
    top = int(round((y0 + y1) / 2 - side_i / 2))
    if left < 0:
        left = 0
    if left + side_i > width:
        left = width - side_i
    if top < 0:
        top = 0
    if top + side_i > height:
        top = height - side_i
    return left, top, side_i


def _crop_pixels(image: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    out = np.zeros((side, side, 3), np.uint8)
    sx0, sy0 = max(left, 0), max(top, 0)
    sx1, sy1 = min(left + side, w), min(top + side, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = image[sy0:sy1, sx0:sx1]
    return out


def _apply_affine(record: Record, a: np.ndarray, image: np.ndarray) -> Record:
    kp = record.keypoints.astype(np.float64) @ a[:2, :2].T + a[:2, 2]
    intrinsics = None
    if record.intrinsics is not None:
        intrinsics = (a @ record.intrinsics.astype(np.float64)).astype(np.float32)
    return Record(image=image, keypoints=kp.astype(np.float32), visible=record.visible,
                  sequence=record.sequence, frame=record.frame, source_id=record.source_id,
                  view=record.view, keypoints_3d=record.keypoints_3d, intrinsics=intrinsics)


def transform_record(record: Record, crop: bool = False, crop_scale: float = 1.5,
                     max_side: Optional[int] = None, crop_policy: str = "tllib") -> Record:
    """The writer's generic geometry: optional square crop, then optional downscale.

    Keypoints and intrinsics follow the pixels (``K' = A @ K`` where A is the pixel affine, with
    the pixel-centre convention of :mod:`~synpose_keras.datasets.schema`); ``keypoints_3d`` is
    unchanged. Downscaling uses Pillow's Lanczos filter (antialiased); images are never upscaled.

    Args:
        record: Record. A validated record.
        crop: bool. Crop the square of :func:`crop_box`. Records with no visible keypoint
            are kept whole. Defaults to False.
        crop_scale: float. Crop side / longer side of the keypoint box. Defaults to 1.5.
        max_side: optional int. Downscale so the longer side is at most this. Defaults to None.
        crop_policy: str. ``"tllib"`` (side capped at the image's shorter side, never padded)
            or ``"pad"`` (zero-padded overhang); see :func:`crop_box`. Defaults to "tllib".
    """
    if crop:
        h, w = record.image.shape[:2]
        box = crop_box(record.keypoints, record.visible, w, h, crop_scale, crop_policy)
        if box is not None:
            left, top, side = box
            if side > MAX_CROP_FACTOR * max(h, w):
                raise BadSampleError(
                    f"sample {record.source_id!r}: the crop around its visible keypoints would "
                    f"be {side} px wide, more than {MAX_CROP_FACTOR} x the {w}x{h} image; "
                    "expected keypoints in this image's pixel coordinates")
            a = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]])
            record = _apply_affine(record, a, _crop_pixels(record.image, left, top, side))
    if max_side is not None:
        h, w = record.image.shape[:2]
        if max(h, w) > max_side:
            from PIL import Image

            scale = max_side / max(h, w)
            new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
            sx, sy = new_w / w, new_h / h
            pil = Image.fromarray(record.image).resize((new_w, new_h), Image.Resampling.LANCZOS)
            # pixel-centre convention: x' = (x + 0.5) * s - 0.5
            a = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
            record = _apply_affine(record, a, np.asarray(pil, dtype=np.uint8))
    return record


# ---------------------------------------------------------------------------------------------
# gfile helpers
# ---------------------------------------------------------------------------------------------


def _join(*parts: str) -> str:
    return posixpath.join(*parts) if "://" in parts[0] else os.path.join(*parts)


def _write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _remove(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()


_SKIPPABLE = (BadSampleError, OSError, SyntaxError, EOFError)


def _is_skippable(err: BaseException) -> bool:
    if isinstance(err, DatasetLayoutError):
        return False
    if isinstance(err, _SKIPPABLE):
        return True
    try:
        from PIL import Image

        return isinstance(err, Image.DecompressionBombError)
    except ImportError:  # pragma: no cover
        return False


# ---------------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------------


def convert(
    converter: Converter,
    out_dir: str,
    splits: Optional[Sequence[str]] = None,
    limit: Optional[int] = None,
    skip_bad: bool = False,
    crop: bool = False,
    crop_scale: float = 1.5,
    max_side: Optional[int] = None,
    num_shards: Optional[int] = None,
    records_per_shard: int = 1000,
    image_format: str = "jpeg",
    jpeg_quality: int = 95,
    progress: bool = True,
    command: Optional[str] = None,
    overwrite: bool = False,
    crop_policy: str = "tllib",
) -> dict:
    """Converts every split of ``converter`` into ``out_dir`` (TFRecord shards + ``meta.json``).

    Args:
        converter: Converter. A constructed dataset converter.
        out_dir: str. Output folder (local path or any ``tf.io.gfile`` URL); created if needed.
        splits: optional list of str. Splits to convert; defaults to ``converter.splits``.
        limit: optional int. At most this many items per split (the first ones).
        skip_bad: bool. Skip bad samples and list them in ``meta["skipped"]`` instead of
            stopping. Defaults to False.
        crop: bool. Store the square crop around the visible keypoints (see
            :func:`transform_record`). Defaults to False.
        crop_scale: float. Crop side / longer side of the keypoint box. Defaults to 1.5.
        max_side: optional int. Downscale stored images to this longest side. Defaults to None.
        num_shards: optional int. Shards per split; defaults to
            ``ceil(n / records_per_shard)`` (never more shards than items, at least one).
        records_per_shard: int. Target shard size when ``num_shards`` is None. Defaults to 1000.
        image_format: str. ``"jpeg"`` (small) or ``"png"`` (lossless). Defaults to ``"jpeg"``.
        jpeg_quality: int. JPEG quality. Defaults to 95.
        progress: bool. Show a tqdm bar per split. Defaults to True.
        command: optional str. The command line that made the dataset (stored in meta).
        overwrite: bool. Replace a finished dataset of another kind or from another source
            folder in ``out_dir`` (refused otherwise). Defaults to False.
        crop_policy: str. With ``crop``: ``"tllib"`` (the side is capped at the image's shorter
            side, as TLlib's ``scale_box``) or ``"pad"`` (never capped; the overhang is padded
            with zeros). Defaults to "tllib".

    Returns:
        dict: the content of ``meta.json``.

    Raises:
        DatasetExistsError: ``out_dir`` holds a dataset of another kind or source (see
            ``overwrite``).
        OutputFolderError: ``out_dir`` cannot be created or written.
        FolderLockedError: another process is converting into ``out_dir``.
        BadSampleError: a bad sample without ``skip_bad``, or every sample of a split bad.

    Example:

    ```python
    from synpose_keras.datasets import convert
    from synpose_keras.datasets.converters.frames import FramesConverter
    meta = convert(FramesConverter("clips/", task="hand"), "data/clips", image_format="png")
    ```
    """
    skeleton = get_skeleton(converter.skeleton)
    k = skeleton.num_keypoints
    has_3d = bool(converter.has_3d)
    splits = list(converter.splits if splits is None else splits)
    unknown = [s for s in splits if s not in converter.splits]
    if unknown:
        raise ValueError(f"Unknown split(s) {unknown} for dataset {converter.name!r}; available: "
                         f"{list(converter.splits)}. Received: splits={splits}")
    if image_format not in schema.IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {schema.IMAGE_FORMATS}. "
                         f"Received: image_format={image_format!r}")
    if num_shards is not None and num_shards < 1:
        raise ValueError(f"num_shards must be >= 1. Received: num_shards={num_shards}")
    if records_per_shard < 1:
        raise ValueError(f"records_per_shard must be >= 1. Received: records_per_shard={records_per_shard}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0. Received: limit={limit}")
    if crop_scale <= 0:
        raise ValueError(f"crop_scale must be > 0. Received: crop_scale={crop_scale}")
    if crop_policy not in CROP_POLICIES:
        raise ValueError(f"crop_policy must be one of {list(CROP_POLICIES)}. "
                         f"Received: crop_policy={crop_policy!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1. Received: max_side={max_side}")

    out_dir = str(out_dir)
    if "://" not in out_dir:
        out_dir = os.path.normpath(out_dir)
    siblings = _siblings(out_dir)
    _check_writable(out_dir, siblings["staging"])
    if "://" not in out_dir:
        os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
    source = source_fingerprint(converter.src, exclude=[out_dir, *siblings.values()])
    lock_path = None if "://" in out_dir else siblings["lock"]
    with folder_lock(lock_path, command or f"converting {converter.name} into {out_dir}"):
        return _convert_locked(
            converter, out_dir, siblings, source, splits, limit, skip_bad, crop, crop_scale,
            max_side, num_shards, records_per_shard, image_format, jpeg_quality, progress,
            command, overwrite, crop_policy)


def _siblings(out_dir: str) -> dict:
    """The lock file, the staging folder of a re-conversion and the folder being replaced:
    hidden siblings of ``out_dir`` (``.NAME.synpose-lock``, ...)."""
    if "://" in out_dir:
        return {"lock": out_dir + ".synpose-lock", "staging": out_dir + ".synpose-staging",
                "old": out_dir + ".synpose-old"}
    parent, name = os.path.split(os.path.abspath(out_dir))
    return {kind: os.path.join(parent, f".{name}.synpose-{kind}")
            for kind in ("lock", "staging", "old")}


def _check_writable(out_dir: str, staging: str) -> None:
    """Refuses an ``out_dir`` that cannot be a folder or cannot be written (one line)."""
    if "://" in out_dir:
        return
    path = os.path.abspath(out_dir)
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if os.path.exists(probe) and not os.path.isdir(probe):
        raise OutputFolderError(
            f"Cannot write the dataset to {out_dir}: {probe} is a file. Expected --out to be a "
            "folder (new, or a dataset to update).")
    folder = path if os.path.isdir(path) else probe
    parent = os.path.dirname(path)
    for where in (folder, parent if os.path.isdir(parent) else folder):
        if not os.access(where, os.W_OK | os.X_OK):
            raise OutputFolderError(
                f"Cannot write the dataset to {out_dir}: {where} is not writable (permission "
                "denied). Expected a folder this user can write, and its parent (it holds the "
                "lock and the staging folder).")


def source_fingerprint(src: str, exclude: Sequence[str] = ()) -> dict:
    """A cheap identity of a source release: its absolute path, and a hash of the relative
    path, size and modification time of every file under it (no file is read).

    Part of every shard's resume key: a different or corrected release (a file replaced,
    added or removed) is converted again instead of being served from the old shards.
    """
    if not src or "://" in str(src):
        return {"path": str(src), "files": None, "digest": None}
    root = os.path.abspath(str(src))
    skip = {os.path.abspath(e) for e in exclude if "://" not in str(e)}
    entries = []
    if os.path.isfile(root):
        st = os.stat(root)
        entries.append((os.path.basename(root), st.st_size, st.st_mtime_ns))
    elif os.path.isdir(root):
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if os.path.join(folder, d) not in skip)
            for name in sorted(files):
                path = os.path.join(folder, name)
                if path in skip:
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                entries.append((os.path.relpath(path, root), st.st_size, st.st_mtime_ns))
    return {"path": root, "files": len(entries), "digest": _hash(entries)}


def _read_progress(path: str) -> dict:
    state = {"shards": {}}
    if tf.io.gfile.exists(path):
        try:
            with tf.io.gfile.GFile(path, "r") as f:
                state = json.load(f)
        except (ValueError, OSError):
            state = {"shards": {}}
        if not isinstance(state, dict) or not isinstance(state.get("shards"), dict):
            state = {"shards": {}}
    return state


def _read_finished_meta(meta_path: str) -> Optional[dict]:
    if not tf.io.gfile.exists(meta_path):
        return None
    try:
        with tf.io.gfile.GFile(meta_path, "r") as f:
            meta = json.load(f)
    except (ValueError, OSError):
        return None
    return meta if isinstance(meta, dict) else None


def _reusable(state: dict, folder: str, fname: str, plan: str, skip_bad: bool) -> bool:
    entry = state["shards"].get(fname)
    return (entry is not None and entry.get("plan") == plan
            and tf.io.gfile.exists(_join(folder, fname))
            and (skip_bad or not entry.get("skipped")))


def _link_or_copy(src: str, dst: str) -> None:
    """A finished shard into the staging folder: a hard link on a local file system (shards
    are never modified in place), else a copy."""
    _remove(dst)
    if "://" not in src:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    tf.io.gfile.copy(src, dst, overwrite=True)


def _rmtree(path: str) -> None:
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)


def _swap(out_dir: str, staging: str, old: str) -> None:
    """Replaces ``out_dir`` by the finished ``staging`` folder: two renames on a local file
    system (a crash between them is repaired by the next run, see ``_recover``)."""
    if "://" in out_dir:  # object stores have no folder rename: files, meta.json last
        for path in tf.io.gfile.glob(_join(out_dir, "*.tfrecord")):
            tf.io.gfile.remove(path)
        for name in tf.io.gfile.listdir(staging):
            if name != schema.META_FILE:
                tf.io.gfile.rename(_join(staging, name), _join(out_dir, name), overwrite=True)
        tf.io.gfile.rename(_join(staging, schema.META_FILE), _join(out_dir, schema.META_FILE),
                           overwrite=True)
        _rmtree(staging)
        return
    _rmtree(old)
    os.rename(out_dir, old)
    os.rename(staging, out_dir)
    _rmtree(old)


def _recover(out_dir: str, siblings: dict) -> None:
    """After a crash between the two renames of ``_swap``: the finished staging folder (it holds
    meta.json) becomes ``out_dir``, else the previous dataset is put back."""
    if "://" in out_dir or not os.path.exists(siblings["old"]):
        return
    if os.path.exists(out_dir):  # the swap finished but the old folder was not deleted yet
        _rmtree(siblings["old"])
        return
    if os.path.exists(os.path.join(siblings["staging"], schema.META_FILE)):
        os.rename(siblings["staging"], out_dir)
        _rmtree(siblings["old"])
    else:
        os.rename(siblings["old"], out_dir)


def _convert_locked(converter, out_dir, siblings, source, splits, limit, skip_bad, crop,
                    crop_scale, max_side, num_shards, records_per_shard, image_format,
                    jpeg_quality, progress, command, overwrite, crop_policy="tllib") -> dict:
    skeleton = get_skeleton(converter.skeleton)
    k = skeleton.num_keypoints
    has_3d = bool(converter.has_3d)
    _recover(out_dir, siblings)
    tf.io.gfile.makedirs(out_dir)
    meta_path = _join(out_dir, schema.META_FILE)
    previous = _read_finished_meta(meta_path)
    if previous is not None and not overwrite:
        old_source = (previous.get("source") or {}).get("path")
        if previous.get("dataset") != converter.name or (old_source not in (None, source["path"])):
            raise DatasetExistsError(
                f"{out_dir} already holds a {previous.get('dataset')!r} dataset"
                + (f" converted from {old_source}" if old_source else "")
                + f"; converting {converter.name!r} from {source['path']} would replace it. "
                "Pass --overwrite (overwrite=True) to replace it, or choose another --out."
            )

    options = {
        "splits": splits,
        "limit": limit,
        "skip_bad": skip_bad,
        "crop": crop,
        "crop_scale": crop_scale,
        "max_side": max_side,
        "num_shards": num_shards,
        "records_per_shard": records_per_shard,
        "image_format": image_format,
        "jpeg_quality": jpeg_quality,
    }
    plan_base = {
        "schema_version": schema.SCHEMA_VERSION,
        "dataset": converter.name,
        "converter_options": _jsonable(converter.options),
        "source": source,
        "skeleton": skeleton.name,
        "has_3d": has_3d,
        "crop": crop,
        "crop_scale": crop_scale,
        "max_side": max_side,
        "image_format": image_format,
        "jpeg_quality": jpeg_quality if image_format == "jpeg" else None,
    }
    if crop:  # recorded (and part of the resume key) only for cropped datasets
        options["crop_policy"] = plan_base["crop_policy"] = crop_policy

    plans = {}  # split -> [(shard file name, items, plan hash)]
    for split in splits:
        items = list(converter.items(split))
        if limit is not None:
            items = items[:limit]
        n = len(items)
        s_count = num_shards if num_shards is not None else math.ceil(n / records_per_shard)
        s_count = max(1, min(s_count, n)) if n else 1
        plans[split] = []
        for index in range(s_count):
            shard_items = items[index * n // s_count:(index + 1) * n // s_count]
            plan = _hash({**plan_base, "split": split, "index": index, "num_shards": s_count,
                          "ids": [it.source_id for it in shard_items]})
            plans[split].append((schema.shard_name(split, index, s_count), shard_items, plan))

    out_state = _read_progress(_join(out_dir, PROGRESS_FILE))
    all_reusable = all(_reusable(out_state, out_dir, fname, plan, skip_bad)
                       for split in splits for fname, _, plan in plans[split])
    if previous is None or all_reusable:
        # a new or unfinished folder (nothing finished to lose), or nothing to rewrite: in place
        work, state = out_dir, out_state
        if previous is None:
            _remove(meta_path)
            _remove(meta_path + ".tmp")
    else:
        # a finished dataset stays untouched until the new one is complete
        work = siblings["staging"]
        tf.io.gfile.makedirs(work)
        state = _read_progress(_join(work, PROGRESS_FILE))
        for split in splits:
            for fname, _, plan in plans[split]:
                if (_reusable(out_state, out_dir, fname, plan, skip_bad)
                        and not _reusable(state, work, fname, plan, skip_bad)):
                    _link_or_copy(_join(out_dir, fname), _join(work, fname))
                    state["shards"][fname] = out_state["shards"][fname]
    progress_path = _join(work, PROGRESS_FILE)

    counts, shards_meta, skipped_meta, sequences_meta = {}, {}, {}, {}
    for split in splits:
        planned = [fname for fname, _, _ in plans[split]]
        n = sum(len(shard_items) for _, shard_items, _ in plans[split])
        _remove_stale(work, split, planned, state)

        bar = _progress_bar(n, f"{converter.name}/{split}", progress)
        count, skipped, sequences = 0, [], set()
        try:
            for fname, shard_items, plan in plans[split]:
                path = _join(work, fname)
                if not _reusable(state, work, fname, plan, skip_bad):
                    state["shards"].pop(fname, None)
                    entry = _write_shard(path, shard_items, split, k, has_3d, skip_bad, crop,
                                         crop_scale, max_side, image_format, jpeg_quality, bar,
                                         crop_policy)
                    entry["plan"] = plan
                    state["shards"][fname] = entry
                    _write_atomic(progress_path, json.dumps(state, sort_keys=True))
                else:
                    entry = state["shards"][fname]
                    bar.update(len(shard_items))
                count += entry["count"]
                skipped.extend(entry["skipped"])
                sequences.update(entry["sequences"])
        finally:
            bar.close()
        if count == 0 and skipped:
            reasons = "; ".join(f"{s['source_id']!r}: {s['reason']}" for s in skipped[:3])
            raise BadSampleError(
                f"Every sample of split {split!r} of {converter.src} was bad ({len(skipped)} "
                f"skipped, e.g. {reasons}); a dataset with no record would be useless, so none "
                f"was written" + (" and the previous dataset in " + out_dir + " is unchanged"
                                  if previous is not None else "") + "."
            )
        counts[split] = count
        shards_meta[split] = planned
        skipped_meta[split] = skipped
        sequences_meta[split] = len(sequences)

    if command is None:
        args = ", ".join(f"{key}={value!r}" for key, value in options.items())
        command = f"synpose_keras.datasets.convert({type(converter).__name__}({converter.src!r}), {out_dir!r}, {args})"
    meta = {
        "schema_version": schema.SCHEMA_VERSION,
        "dataset": converter.name,
        "skeleton": skeleton.name,
        "num_keypoints": k,
        "keypoint_names": list(skeleton.keypoint_names),
        "has_3d": has_3d,
        "splits": splits,
        "counts": counts,
        "shards": shards_meta,
        "num_sequences": sequences_meta,
        "skipped": skipped_meta,
        "converter": _jsonable(converter.describe()),
        "source": source,
        "options": options,
        "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_atomic(_join(work, schema.META_FILE), json.dumps(meta, indent=2, sort_keys=False,
                                                          default=str))
    if work != out_dir:
        _swap(out_dir, work, siblings["old"])
    else:  # an abandoned staging folder (a failed re-conversion, then the original command)
        _rmtree(siblings["staging"])
    return meta


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, leave=True)


def _remove_stale(out_dir: str, split: str, planned: list, state: dict) -> None:
    """Deletes shard files of ``split`` that the current plan does not produce, and leftovers."""
    pattern = _join(out_dir, schema.shard_pattern(split))
    for path in tf.io.gfile.glob(pattern):
        name = posixpath.basename(path.replace("\\", "/"))
        if name not in planned:
            tf.io.gfile.remove(path)
            state["shards"].pop(name, None)
    for path in tf.io.gfile.glob(pattern + INCOMPLETE_SUFFIX):
        tf.io.gfile.remove(path)


def _write_shard(path, items, split, k, has_3d, skip_bad, crop, crop_scale, max_side,
                 image_format, jpeg_quality, bar, crop_policy="tllib") -> dict:
    tmp = path + INCOMPLETE_SUFFIX
    count, skipped, sequences = 0, [], set()
    writer = tf.io.TFRecordWriter(tmp)
    try:
        for item in items:
            where = f"{split} sample {item.source_id!r}"
            try:
                record = item.load()
                record = validate_record(record, k, has_3d, where)
                record = transform_record(record, crop=crop, crop_scale=crop_scale,
                                          max_side=max_side, crop_policy=crop_policy)
            except Exception as err:  # noqa: BLE001 - filtered by _is_skippable
                if not _is_skippable(err):
                    raise
                reason = f"{type(err).__name__}: {err}"
                if not skip_bad:
                    raise BadSampleError(
                        f"Bad sample in split {split!r}: {item.source_id!r} ({reason}). Fix or remove "
                        "it, or pass --skip-bad (skip_bad=True) to skip bad samples and list them in "
                        "meta.json."
                    ) from err
                skipped.append({"source_id": item.source_id, "reason": reason})
                bar.update(1)
                continue
            writer.write(schema.serialize_record(record, image_format, jpeg_quality))
            count += 1
            if record.sequence:
                sequences.add(record.sequence)
            bar.update(1)
        writer.close()
    except BaseException:
        writer.close()
        _remove(tmp)
        raise
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return {"count": count, "skipped": skipped, "sequences": sorted(sequences)}
