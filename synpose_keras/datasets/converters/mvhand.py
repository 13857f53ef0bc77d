"""MVHand / generic multi-view hand converter: ``annotations.json`` + images -> Hand21 records.

MVHand's own release layout is not publicly documented (datasets/mvhand.md), so this converter
reads a small, documented multi-view JSON layout that any multi-view (or video) hand dataset can
be converted to with a few lines of Python (``datasets/mvhand.md`` has a script sketch).

Layout (``SRC/annotations.json``; paths relative to ``SRC``)::

    [
      {
        "image": "images/seq_a/cam0/0000.png",      # required
        "keypoints2d": [[x, y, v], ... 21 rows],     # required; (21, 2) or (21, 3) with v in {0,1}
        "visible": [1, 0, ...],                      # optional, overrides the third column
        "keypoints3d": [[X, Y, Z], ... 21 rows],     # optional, camera frame of this view
        "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]],  # optional, intrinsics of this image
        "sequence": "seq_a",                         # capture / video id (pairs are made in it)
        "view": "cam0",                              # camera id
        "frame": 0,                                  # time index inside the sequence
        "split": "train",                            # optional: "train" or "test"
        "hand": "left"                               # optional: "left" or "right"
      },
      ...
    ]

(or ``{"annotations": [...]}``). Other keys are ignored. Pixel convention: the centre of the
top-left pixel is (0, 0). The dataset has 3D labels (``has_3d``) when every entry has both
``keypoints3d`` and ``K``.

Reference:
    datasets/mvhand.md (MVHand: layout not public; generic multi-view route); docs/protocol.md,
    "Dataset conventions" (base/driving pairs come from records sharing a ``sequence``).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Optional

import numpy as np

from synpose_keras.datasets.converters._image import hflip, load_image
from synpose_keras.datasets.converters._split import num_test_items, seeded_test_split
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

#: Hand21 <- "tip_first" storage (each finger tip -> MCP, as RHD).
TIP_FIRST_TO_HAND21 = (0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17)


def parse_joint_order(value: str) -> tuple:
    """``"hand21"`` (identity), ``"tip_first"`` or 21 comma-separated source rows -> permutation.

    Entry j of the result is the row of the file that holds Hand21 keypoint j.
    """
    text = str(value or "").strip().lower()
    if text in ("", "hand21"):
        return tuple(range(21))
    if text == "tip_first":
        return TIP_FIRST_TO_HAND21
    try:
        order = tuple(int(v) for v in text.split(","))
    except ValueError:
        order = ()
    if sorted(order) != list(range(21)):
        raise ValueError(
            "joint_order must be 'hand21', 'tip_first' or a permutation of 0..20 as 21 "
            f"comma-separated integers. Received: joint_order={value!r}"
        )
    return order


@register_converter
class MVHandConverter(Converter):
    """MVHand and other multi-view hand datasets, through a documented generic JSON layout.

    MVHand's own release layout is not public in our sources: convert it (or any multi-view or
    video hand dataset) to the layout of this module's docstring, then run this converter. Records
    sharing ``sequence`` form base/driving pairs (camera views of one capture, or frames of one
    video), which is what the geometric reconstruction needs.

    Split: when every entry has a ``split`` field, it is used as is. Otherwise the seed-42 shuffle
    of the other hand benchmarks (test = ``min(int(0.2 n), 3200)``), by whole sequences when
    ``group_split=True`` (default; a capture never straddles train and test).

    Args:
        src: str. Folder holding the annotation file; image paths are relative to it.
        annotation_file: str. Name of the JSON file inside ``src``. Defaults to "annotations.json".
        joint_order: str. How the file orders the 21 keypoints: ``"hand21"`` (wrist, then each
            finger MCP -> tip), ``"tip_first"`` (each finger tip -> MCP, as RHD) or 21
            comma-separated rows giving, for each Hand21 keypoint, its row in the file.
            Defaults to "hand21".
        flip_right: bool. Mirror entries with ``"hand": "right"`` so all look like left hands (the
            RHD/TLlib convention). Defaults to False.
        group_split: bool. Seeded split by whole sequences. Defaults to True.

    Example:

    ```python
    from synpose_keras.datasets import convert
    from synpose_keras.datasets.converters.mvhand import MVHandConverter
    convert(MVHandConverter("/data/mvhand_json"), "data/mvhand", crop=True, max_side=256)
    ```

    Reference:
        datasets/mvhand.md (MVHand, BMVC 2021).
    """

    name = "mvhand"
    skeleton = "hand21"
    has_3d = False  # set per instance from the data
    splits = ("train", "test")
    OPTIONS = (
        Option("annotation_file", str, "annotations.json",
               "JSON file (inside SRC) in the generic multi-view layout of datasets/mvhand.md."),
        Option("joint_order", str, "hand21",
               "'hand21', 'tip_first' (RHD-like) or 21 comma-separated file rows, one per "
               "Hand21 joint."),
        Option("flip_right", bool, False,
               "Mirror entries marked \"hand\": \"right\" so all look like left hands."),
        Option("group_split", bool, True,
               "Without split fields: seed-42 split by whole sequences (no capture leak)."),
    )

    def __init__(self, src: str, **options) -> None:
        super().__init__(src, **options)
        self.joint_order = parse_joint_order(self.options["joint_order"])
        self.annotation_path = os.path.join(self.src, self.options["annotation_file"])
        self.entries = self._read_entries()
        self.has_3d = bool(self.entries) and all(
            isinstance(e, dict) and "keypoints3d" in e and "K" in e for e in self.entries)
        self._explicit = self._explicit_splits()

    def _read_entries(self) -> list:
        path = self.annotation_path
        if not os.path.isfile(path):
            raise DatasetLayoutError(
                f"Multi-view hand annotation file not found: {path}. Pass the folder that contains "
                f"{self.options['annotation_file']} (MVHand's own release layout is not public in "
                "our sources: convert it to the generic multi-view JSON layout described in "
                f"datasets/mvhand.md). Received: src={self.src!r}"
            )
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise DatasetLayoutError(f"{path} cannot be read as JSON ({e})") from e
        if isinstance(data, dict) and isinstance(data.get("annotations"), list):
            data = data["annotations"]
        if not isinstance(data, list):
            raise DatasetLayoutError(
                f"{path}: expected a list of entries (or {{\"annotations\": [...]}}), got "
                f"{type(data).__name__}; see datasets/mvhand.md"
            )
        return data

    def _explicit_splits(self) -> Optional[list]:
        marks = [e.get("split") if isinstance(e, dict) else None for e in self.entries]
        if all(m is None for m in marks):
            return None
        bad = sorted({str(m) for m in marks if m not in self.splits})
        if bad:
            raise DatasetLayoutError(
                f"{self.annotation_path}: when entries carry 'split', every entry needs one of "
                f"{list(self.splits)}; found {bad}"
            )
        return marks

    @staticmethod
    def _sequence(entry) -> str:
        return str(entry.get("sequence", "")) if isinstance(entry, dict) else ""

    def items(self, split: str) -> list[Item]:
        if split not in self.splits:
            raise ValueError(f"Unknown split for mvhand. Expected one of {list(self.splits)}. "
                             f"Received: split={split!r}")
        indices = list(range(len(self.entries)))
        if self._explicit is not None:
            chosen = [i for i in indices if self._explicit[i] == split]
        else:
            group = None
            if self.options["group_split"]:
                group = [self._sequence(self.entries[i]) for i in indices]
            train, test = seeded_test_split(indices, seed=42, fraction=0.2, max_test=3200,
                                            group_by=group)
            chosen = train if split == "train" else test
        out = []
        for i in chosen:
            entry = self.entries[i]
            image = entry.get("image") if isinstance(entry, dict) else None
            fallback = f"{self.options['annotation_file']}[{i}]"
            source_id = image if isinstance(image, str) else fallback
            out.append(Item(source_id, functools.partial(self._load, i, source_id)))
        return out

    def _array(self, entry, key, shapes, where):
        try:
            value = np.asarray(entry[key], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise BadSampleError(f"{where}: {key} is not numeric ({e})") from e
        if value.shape not in shapes:
            raise BadSampleError(f"{where}: expected {key} of shape "
                                 f"{' or '.join(map(str, shapes))}, got {value.shape}")
        if not np.all(np.isfinite(value)):
            raise BadSampleError(f"{where}: {key} contains NaN or inf")
        return value

    def _load(self, index: int, source_id: str) -> Record:
        entry = self.entries[index]
        where = f"{self.annotation_path} entry {index}"
        if not isinstance(entry, dict):
            raise BadSampleError(f"{where}: expected an object, got {type(entry).__name__}")
        missing = [k for k in ("image", "keypoints2d") if k not in entry]
        if missing:
            raise BadSampleError(f"{where}: missing field(s) {missing}")
        where = f"{where} ({entry['image']})"
        order = list(self.joint_order)
        kp = self._array(entry, "keypoints2d", [(21, 2), (21, 3)], where)
        visible = (kp[:, 2] > 0).astype(np.float32) if kp.shape[1] == 3 else np.ones(21, np.float32)
        if "visible" in entry:
            visible = (self._array(entry, "visible", [(21,)], where) > 0).astype(np.float32)
        keypoints = check_keypoints(kp[order, :2], 21, where)
        visible = visible[order]
        kp3d = intrinsics = None
        if self.has_3d:
            kp3d = self._array(entry, "keypoints3d", [(21, 3)], where)[order].astype(np.float32)
            intrinsics = self._array(entry, "K", [(3, 3)], where).astype(np.float32)
        hand = str(entry.get("hand", "")).lower()
        if hand not in ("", "left", "right"):
            raise BadSampleError(f"{where}: hand must be 'left' or 'right', got {entry['hand']!r}")
        try:
            frame = int(entry.get("frame", 0))
        except (TypeError, ValueError) as e:
            raise BadSampleError(f"{where}: frame must be an integer ({e})") from e
        parts = str(entry["image"]).replace("\\", "/").split("/")
        image = load_image(os.path.join(self.src, *parts))
        if hand == "right" and self.options["flip_right"]:
            image, keypoints, kp3d, intrinsics = hflip(image, keypoints, kp3d, intrinsics)
        return Record(
            image=image,
            keypoints=keypoints,
            visible=visible,
            sequence=self._sequence(entry),
            frame=frame,
            source_id=source_id,
            view=str(entry.get("view", "")),
            keypoints_3d=kp3d,
            intrinsics=intrinsics,
        )

    def describe(self) -> dict:
        n = len(self.entries)
        if self._explicit is not None:
            split = "from the entries' split fields"
        else:
            unit = "sequences" if self.options["group_split"] else "entries"
            split = (f"seed-42 shuffle of {unit}; test <= min(int(0.2 n), 3200) = "
                     f"{num_test_items(n)} of n = {n}")
        return {
            "options": dict(self.options),
            "source": "generic multi-view hand JSON (datasets/mvhand.md)",
            "annotation_file": self.options["annotation_file"],
            "joint_order": list(self.joint_order),
            "has_3d": self.has_3d,
            "split": split,
            "flip": "entries with hand == 'right' mirrored" if self.options["flip_right"]
            else "none",
        }
