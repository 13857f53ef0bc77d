"""Rendered Hand Pose (RHD) converter: ``RHD_published_v2/{training,evaluation}`` -> Hand21 records.

Reference:
    datasets/rhd.md and docs/protocol.md, "Dataset conventions" (RHD layout, joint order, TLlib
    hand filter and right-hand flip); the RHD->H3D task of the paper (Table A).
"""

from __future__ import annotations

import functools
import os
import pickle
from typing import Optional

import numpy as np

from synpose_keras.datasets.converters._image import hflip, load_image
from synpose_keras.datasets.converters.base import (
    BadSampleError,
    Converter,
    DatasetLayoutError,
    Item,
    Option,
    Record,
    check_keypoints,
    register_converter,
)

#: RHD rows of one hand -> Hand21 (RHD orders every finger tip -> MCP). Add 21 for the right hand.
RHD_TO_HAND21 = (0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17)
#: Image side of the release (TLlib clamps its filter boxes to it).
RHD_IMAGE_SIZE = 320
#: TLlib's filter: 1.5x box, "size" (side - 1) > 64 px, > 16 visible, other hand covers < 30%.
FILTER_BOX_SCALE = 1.5
FILTER_MIN_SIZE = 64
FILTER_MIN_VISIBLE = 16
FILTER_MAX_COVER = 0.3

_SPLIT_FOLDERS = {"train": "training", "test": "evaluation"}
_HANDS = ("left", "right")


def _keypoint_box(points: np.ndarray) -> tuple:
    """(left, upper, right, lower) of all 21 points (visible or not, as TLlib)."""
    return (float(points[:, 0].min()), float(points[:, 1].min()),
            float(points[:, 0].max()), float(points[:, 1].max()))


def _square_box(box: tuple, width: int, height: int, scale: float) -> tuple:
    """TLlib's inclusive square box: side round(scale * longer side), centred, shifted inside."""
    left, upper, right, lower = box
    cx, cy = (left + right) / 2, (upper + lower) / 2
    side = min(round(scale * max(right - left, lower - upper)), min(width, height))
    x0 = round(cx - side / 2)
    y0 = round(cy - side / 2)
    x1, y1 = x0 + side - 1, y0 + side - 1
    if x0 < 0:
        x0, x1 = 0, side - 1
    if x1 >= width:
        x0, x1 = width - side, width - 1
    if y0 < 0:
        y0, y1 = 0, side - 1
    if y1 >= height:
        y0, y1 = height - side, height - 1
    return x0, y0, x1, y1


def _area(box: tuple) -> float:
    left, upper, right, lower = box
    return max(right - left + 1, 0) * max(lower - upper + 1, 0)


def _intersection(a: tuple, b: tuple) -> tuple:
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def keep_hand(uv: np.ndarray, visible: np.ndarray, other_uv: np.ndarray,
              image_size: int = RHD_IMAGE_SIZE) -> bool:
    """TLlib's RHD hand filter (datasets/rhd.md).

    A hand is kept when the square box of side 1.5 x its keypoint box (inclusive pixel box,
    clamped to the 320 x 320 image) has ``right - left > 64``, more than 16 of its 21 keypoints are
    visible, and the *keypoint box of the other hand* (not scaled) covers less than 30% of that
    square box. TLlib measures "covers" with keypoint boxes, not with the segmentation mask; we do
    the same so that the sample counts match.

    Args:
        uv: array (21, 2). This hand's keypoints (pixels).
        visible: array (21,). This hand's visibility flags.
        other_uv: array (21, 2). The other hand's keypoints.
        image_size: int. Image side used to clamp the box. Defaults to 320.
    """
    box = _square_box(_keypoint_box(uv), image_size, image_size, FILTER_BOX_SCALE)
    size = max(box[2] - box[0], box[3] - box[1])
    if size <= FILTER_MIN_SIZE:
        return False
    if float(np.sum(visible)) <= FILTER_MIN_VISIBLE:
        return False
    cover = _area(_intersection(box, _keypoint_box(other_uv))) / _area(box)
    return cover < FILTER_MAX_COVER


@register_converter
class RHDConverter(Converter):
    """Rendered Hand Pose dataset (RHD, synthetic; the source domain of RHD->H3D).

    Reads the official release ``RHD_published_v2/{training,evaluation}/`` (``color/%05d.png``,
    ``anno_{training,evaluation}.pickle``). Every sample holds two hands (rows 0-20 left, 21-41
    right, each finger ordered tip -> MCP); each hand that passes TLlib's filter (see
    :func:`keep_hand`) becomes one record, in Hand21 order. Right hands are mirrored so that every
    record looks like a left hand (TLlib), with ``keypoints_3d`` (X -> -X) and ``intrinsics``
    mirrored consistently, so projecting the 3D keypoints still gives the 2D ones.

    Splits: ``train`` = ``training/`` (TLlib keeps 41,258 images' hands that pass the filter),
    ``test`` = ``evaluation/``. RHD has no sequences: ``sequence`` is ``""`` and ``frame`` is the
    RHD sample id. ``source_id`` is ``"<folder>/<id:05d>/<left|right>"``; ``view`` is the hand.
    3D keypoints are in metres, camera frame (as in the release).

    Args:
        src: str. ``RHD_published_v2`` or the folder that contains it.
        flip_right: bool. Mirror right hands so all records look like left hands (TLlib).
            Defaults to True.
        tllib_filter: bool. Keep only hands passing TLlib's filter; False keeps both hands of
            every sample. Defaults to True.

    Example:

    ```python
    from synpose_keras.datasets import convert
    from synpose_keras.datasets.converters.rhd import RHDConverter
    convert(RHDConverter("/data/RHD_published_v2"), "data/rhd", crop=True, max_side=256)
    ```

    Reference:
        Zimmermann & Brox, "Learning to Estimate 3D Hand Pose from Single RGB Images", ICCV 2017;
        datasets/rhd.md.
    """

    name = "rhd"
    skeleton = "hand21"
    has_3d = True
    splits = ("train", "test")
    OPTIONS = (
        Option("flip_right", bool, True,
               "Mirror right hands so every record looks like a left hand (TLlib protocol)."),
        Option("tllib_filter", bool, True,
               "Keep only hands with 1.5x box side > 64 px, > 16 visible keypoints and < 30% "
               "covered by the other hand (TLlib protocol)."),
    )

    def __init__(self, src: str, **options) -> None:
        super().__init__(src, **options)
        self.root = self._find_root(self.src)
        self._annotations: dict = {}

    # -----------------------------------------------------------------------------------------
    # Layout
    # -----------------------------------------------------------------------------------------

    @staticmethod
    def _find_root(src: str) -> str:
        candidates = [src, os.path.join(src, "RHD_published_v2")]
        for root in candidates:
            if os.path.isfile(os.path.join(root, "training", "anno_training.pickle")) or \
                    os.path.isfile(os.path.join(root, "evaluation", "anno_evaluation.pickle")):
                break
        else:
            root = candidates[1] if os.path.isdir(candidates[1]) else candidates[0]
        for folder in _SPLIT_FOLDERS.values():
            anno = os.path.join(root, folder, f"anno_{folder}.pickle")
            if not os.path.isfile(anno):
                raise DatasetLayoutError(
                    f"RHD annotation file not found: {anno}. Pass the folder RHD_published_v2 "
                    "(the one that contains training/ and evaluation/) or its parent. "
                    f"Received: src={src!r}"
                )
            color = os.path.join(root, folder, "color")
            if not os.path.isdir(color):
                raise DatasetLayoutError(
                    f"RHD image folder not found: {color} (expected color/%05d.png next to "
                    f"{os.path.basename(anno)}). Pass the folder RHD_published_v2 or its parent."
                )
        return root

    def _load_annotations(self, folder: str) -> dict:
        if folder not in self._annotations:
            path = os.path.join(self.root, folder, f"anno_{folder}.pickle")
            try:
                with open(path, "rb") as f:
                    anno = pickle.load(f, encoding="latin1")
            except Exception as e:  # noqa: BLE001 - any unpickling failure is a layout problem
                raise DatasetLayoutError(
                    f"RHD annotation file {path} cannot be read ({type(e).__name__}: {e}); "
                    "re-download RHD_v1-1.zip"
                ) from e
            if not isinstance(anno, dict):
                raise DatasetLayoutError(
                    f"RHD annotation file {path}: expected a dict sample_id -> "
                    f"{{uv_vis, xyz, K}}, got {type(anno).__name__}"
                )
            self._annotations[folder] = anno
        return self._annotations[folder]

    # -----------------------------------------------------------------------------------------
    # Items
    # -----------------------------------------------------------------------------------------

    def items(self, split: str) -> list[Item]:
        if split not in _SPLIT_FOLDERS:
            raise ValueError(f"Unknown split for rhd. Expected one of {list(_SPLIT_FOLDERS)}. "
                             f"Received: split={split!r}")
        folder = _SPLIT_FOLDERS[split]
        anno_all = self._load_annotations(folder)
        out = []
        for sample_id, anno in anno_all.items():  # the release's order (TLlib's order)
            for h, hand in enumerate(_HANDS):
                arrays = _sample_arrays(anno, h)
                if arrays is not None and self.options["tllib_filter"]:
                    uv, vis = arrays[0], arrays[1]
                    rows = np.asarray(RHD_TO_HAND21) + 21 * h
                    other = uv[np.asarray(RHD_TO_HAND21) + 21 * (1 - h)]
                    # a malformed other hand (NaN) covers only its finite keypoints
                    other = other[np.all(np.isfinite(other), axis=1)]
                    if not len(other):
                        other = np.full((1, 2), -1e9)  # covers nothing
                    if not keep_hand(uv[rows], vis[rows], other):
                        continue
                # A malformed hand (NaN, wrong shape) bypasses the filter: its load() raises
                # BadSampleError naming it, so the writer stops or records the skip instead of
                # hiding it; the other hand of the sample is judged on its own.
                source_id = f"{folder}/{int(sample_id):05d}/{hand}"
                out.append(Item(source_id, functools.partial(
                    self._load, folder, sample_id, h, source_id)))
        return out

    def _load(self, folder: str, sample_id, hand: int, source_id: str) -> Record:
        anno = self._load_annotations(folder)[sample_id]
        ann_file = os.path.join(self.root, folder, f"anno_{folder}.pickle")
        where = f"{ann_file} sample {sample_id} ({_HANDS[hand]} hand)"
        problem = _sample_problem(anno, hand)
        if problem:
            raise BadSampleError(f"{where}: {problem}")
        uv_vis_uv, vis, xyz, k = _sample_arrays(anno, hand)
        rows = list(np.asarray(RHD_TO_HAND21) + 21 * hand)
        keypoints = check_keypoints(uv_vis_uv[rows], 21, where)
        visible = vis[rows].astype(np.float32)
        kp3d = xyz[rows].astype(np.float32)
        image_path = os.path.join(self.root, folder, "color", f"{int(sample_id):05d}.png")
        image = load_image(image_path)
        intrinsics = k.astype(np.float32)
        if hand == 1 and self.options["flip_right"]:
            image, keypoints, kp3d, intrinsics = hflip(image, keypoints, kp3d, intrinsics)
        return Record(
            image=image,
            keypoints=keypoints,
            visible=visible,
            sequence="",
            frame=int(sample_id),
            source_id=source_id,
            view=_HANDS[hand],
            keypoints_3d=kp3d,
            intrinsics=intrinsics,
        )

    def describe(self) -> dict:
        return {
            "options": dict(self.options),
            "source": "RHD_published_v2 (RHD v1.1)",
            "splits": {"train": "training/", "test": "evaluation/"},
            "joint_map": "Hand21 <- RHD rows " + str(list(RHD_TO_HAND21)) + " (+21 right hand)",
            "filter": ("TLlib: 1.5x square box (clamped to 320x320) side-1 > 64 px, > 16 visible "
                       "keypoints, other hand's keypoint box covers < 30% of the box")
            if self.options["tllib_filter"] else "none (both hands of every sample)",
            "flip": "right hands mirrored (x -> W-1-x, X -> -X, K mirrored)"
            if self.options["flip_right"] else "none",
            "units_3d": "metres, camera frame",
            "sequence": "none (RHD is single images); frame = RHD sample id; view = hand",
        }


def _sample_arrays(anno, hand: Optional[int] = None) -> Optional[tuple]:
    """(uv (42, 2), visible (42,), xyz (42, 3), K (3, 3)), or None when malformed or when
    ``hand``'s rows (both hands when None) are non-finite."""
    return None if _sample_problem(anno, hand) else (
        np.asarray(anno["uv_vis"], np.float64)[:, :2],
        np.asarray(anno["uv_vis"], np.float64)[:, 2],
        np.asarray(anno["xyz"], np.float64),
        np.asarray(anno["K"], np.float64),
    )


def _sample_problem(anno, hand: Optional[int] = None) -> Optional[str]:
    """What is wrong with one RHD annotation entry for ``hand`` (0 left, 1 right; None: both),
    or None. Shapes concern both hands; NaN or inf only the hand whose rows hold them."""
    expected = {"uv_vis": (42, 3), "xyz": (42, 3), "K": (3, 3)}
    for key, shape in expected.items():
        try:
            value = np.asarray(anno[key], dtype=np.float64)
        except (KeyError, TypeError, ValueError, IndexError):
            return f"missing or non-numeric field {key!r}"
        if value.shape != shape:
            return f"expected {key} of shape {shape}, got {value.shape}"
        if hand is not None and key != "K":
            value = value[21 * hand:21 * (hand + 1)]
        if not np.all(np.isfinite(value)):
            where = f" (rows of the {_HANDS[hand]} hand)" if hand is not None and key != "K" else ""
            return f"{key} contains NaN or inf{where}"
    return None
