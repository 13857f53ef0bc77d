"""Hand-3D-Studio (H3D) converter: TLlib's ``H3D_crop/annotation.json`` -> Hand21 records.

Reference:
    datasets/h3d.md and docs/protocol.md, "Dataset conventions" (H3D layout, ``without_object``
    task, seed-42 split, multi-view pairs); the RHD->H3D task of the paper (Table A).
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Optional

import numpy as np

from synpose_keras.datasets.converters._image import load_image
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

_LAST_INT = re.compile(r"(\d+)(?!.*\d)")


def default_capture_ids(name: str) -> tuple:
    """(sequence, view, frame) of an image by the default rule.

    ``sequence`` = the image's folder inside ``H3D_crop`` (e.g. ``"part1/0003"``), ``view`` = ""
    and ``frame`` = the last integer in the file name (0 when there is none).
    """
    name = str(name).replace("\\", "/")
    folder, base = os.path.split(name) if "/" in name else ("", name)
    stem = os.path.splitext(base)[0]
    match = _LAST_INT.search(stem)
    return folder, "", int(match.group(1)) if match else 0


@register_converter
class H3DConverter(Converter):
    """Hand-3D-Studio (real, multi-view studio capture; the target domain of RHD->H3D).

    Reads TLlib's cropped copy ``H3D_crop/annotation.json``: a list of ``{name, keypoint2d (21, 2),
    keypoint3d (21, 3), intrinsic_matrix (3, 3), without_object}`` with images ``H3D_crop/<name>``
    (under ``part1`` ... ``part5``). Keypoints are already in Hand21 order and all marked visible
    (as TLlib); no flip.

    Selection and split (TLlib): keep ``without_object == 1`` (``with_object=False``, TLlib's
    default task "noobject"; ``with_object=True`` keeps every image, TLlib's "all"), in file
    order; then ``random.seed(42); random.shuffle``; test = the first ``min(int(0.2 n), 3200)``.
    Views of one capture can land in both splits (the same hand pose seen by another camera):
    ``group_split=True`` shuffles whole sequences instead (test <= the same bound), at the price
    of numbers that are not comparable with published ones.

    Sequences: H3D is a multi-view capture, so views of one capture are natural base/driving
    pairs. The file naming of ``H3D_crop`` is not documented in our sources; by default the
    images of one folder form one ``sequence`` and ``frame`` is the last number of the file name
    (see :func:`default_capture_ids`). If your copy encodes the capture and the camera in the file
    name, pass ``sequence_regex`` with a named group ``sequence`` (and optionally ``view`` and
    ``frame``), searched in ``name``; e.g. ``"(?P<sequence>.+)_cam(?P<view>\\d+)\\.jpg$"``.

    TLlib loads this dataset with Pillow's ``LOAD_TRUNCATED_IMAGES = True``, which suggests some
    files of the archive are truncated: by default such an image raises ``BadSampleError`` (skip
    it with ``skip_bad``); ``allow_truncated=True`` decodes it as far as it goes, as TLlib does.

    ``source_id`` = ``name``. 3D keypoints are stored as in ``annotation.json`` (camera frame; the
    unit is not documented in our sources — check a bone length: wrist to middle MCP is ~0.09 in
    metres, ~90 in millimetres).

    Args:
        src: str. ``H3D_crop`` or the folder that contains it.
        with_object: bool. Also keep images of hands holding objects. Defaults to False.
        group_split: bool. Split by sequence (no view leak). Defaults to False (TLlib's split).
        sequence_regex: str. Regex with named groups ``sequence`` [, ``view``, ``frame``] applied
            to ``name``; "" for the default folder rule. Defaults to "".
        allow_truncated: bool. Decode truncated JPEGs instead of failing. Defaults to False.

    Example:

    ```python
    from synpose_keras.datasets import convert
    from synpose_keras.datasets.converters.h3d import H3DConverter
    convert(H3DConverter("/data/H3D_crop"), "data/h3d", crop=True, max_side=256)
    ```

    Reference:
        Zhao et al., "Hand-3D-Studio: A New Multi-view System for 3D Hand Reconstruction",
        ICASSP 2020; datasets/h3d.md.
    """

    name = "h3d"
    skeleton = "hand21"
    has_3d = True
    splits = ("train", "test")
    OPTIONS = (
        Option("with_object", bool, False,
               "Also keep images with an object in the hand (TLlib's default keeps "
               "without_object == 1 only)."),
        Option("group_split", bool, False,
               "Split whole sequences (views of one capture never straddle train/test); "
               "off = TLlib's split, comparable with published numbers."),
        Option("sequence_regex", str, "",
               "Regex with named groups sequence[, view, frame] searched in each image name; "
               "empty = images of one folder form one sequence."),
        Option("allow_truncated", bool, False,
               "Decode truncated images as far as they go (as TLlib) instead of failing."),
    )

    def __init__(self, src: str, **options) -> None:
        super().__init__(src, **options)
        regex = self.options["sequence_regex"] or ""
        self._regex: Optional[re.Pattern] = None
        if regex:
            try:
                self._regex = re.compile(regex)
            except re.error as e:
                raise ValueError(f"sequence_regex is not a valid regular expression ({e}). "
                                 f"Received: sequence_regex={regex!r}") from e
            if "sequence" not in self._regex.groupindex:
                raise ValueError("sequence_regex needs a named group (?P<sequence>...). "
                                 f"Received: sequence_regex={regex!r}")
        self.root = self._find_root(self.src)
        self._entries: Optional[list] = None

    @staticmethod
    def _find_root(src: str) -> str:
        candidates = [src, os.path.join(src, "H3D_crop")]
        root = next((c for c in candidates if os.path.isfile(os.path.join(c, "annotation.json"))),
                    None)
        if root is None:
            expected = os.path.join(candidates[1] if os.path.isdir(candidates[1]) else src,
                                    "annotation.json")
            raise DatasetLayoutError(
                f"H3D annotation file not found: {expected}. Pass the folder H3D_crop (the one "
                "that contains annotation.json and part1/ ... part5/) or its parent. "
                f"Received: src={src!r}"
            )
        return root

    @property
    def annotation_file(self) -> str:
        return os.path.join(self.root, "annotation.json")

    def _load_entries(self) -> list:
        if self._entries is None:
            path = self.annotation_file
            try:
                with open(path) as f:
                    entries = json.load(f)
            except (OSError, ValueError) as e:
                raise DatasetLayoutError(f"H3D annotation file {path} cannot be read ({e})") from e
            if not isinstance(entries, list):
                raise DatasetLayoutError(
                    f"H3D annotation file {path}: expected a list of samples, got "
                    f"{type(entries).__name__}"
                )
            self._entries = entries
        return self._entries

    def _selected(self) -> list:
        """Indices into annotation.json of the selected task, in file order (TLlib's order)."""
        out = []
        for i, entry in enumerate(self._load_entries()):
            if self.options["with_object"]:
                out.append(i)
                continue
            try:
                keep = int(entry["without_object"]) == 1
            except (KeyError, TypeError, ValueError):
                keep = True  # undecidable: keep it so that load() reports the problem
            if keep:
                out.append(i)
        return out

    def capture_ids(self, name: str) -> tuple:
        """(sequence, view, frame) of an image name, by ``sequence_regex`` or the default rule."""
        if self._regex is None:
            return default_capture_ids(name)
        match = self._regex.search(str(name))
        if match is None:
            raise ValueError(
                f"sequence_regex does not match the H3D image name {name!r} (in "
                f"{self.annotation_file}). Received: sequence_regex={self._regex.pattern!r}"
            )
        groups = match.groupdict()
        frame = groups.get("frame")
        return (groups["sequence"] or "", groups.get("view") or "",
                int(frame) if frame and frame.isdigit() else 0)

    def items(self, split: str) -> list[Item]:
        if split not in self.splits:
            raise ValueError(f"Unknown split for h3d. Expected one of {list(self.splits)}. "
                             f"Received: split={split!r}")
        entries = self._load_entries()
        selected = self._selected()
        ids = {}
        for i in selected:
            name = entries[i].get("name") if isinstance(entries[i], dict) else None
            ids[i] = self.capture_ids(name) if isinstance(name, str) else ("", "", 0)
        group = (lambda i: ids[i][0]) if self.options["group_split"] else None
        train, test = seeded_test_split(selected, seed=42, fraction=0.2, max_test=3200,
                                        group_by=group)
        out = []
        for i in (train if split == "train" else test):
            entry = entries[i]
            name = entry.get("name") if isinstance(entry, dict) else None
            source_id = name if isinstance(name, str) else f"annotation.json[{i}]"
            out.append(Item(source_id, functools.partial(self._load, i, ids[i])))
        return out

    def _load(self, index: int, capture: tuple) -> Record:
        entry = self._load_entries()[index]
        where = f"{self.annotation_file} entry {index}"
        if not isinstance(entry, dict):
            raise BadSampleError(f"{where}: expected an object, got {type(entry).__name__}")
        fields = {"name": None, "keypoint2d": (21, 2), "keypoint3d": (21, 3),
                  "intrinsic_matrix": (3, 3)}
        missing = [k for k in fields if k not in entry]
        if missing:
            raise BadSampleError(f"{where}: missing field(s) {missing}")
        if not self.options["with_object"]:
            try:
                int(entry["without_object"])
            except (KeyError, TypeError, ValueError) as e:
                raise BadSampleError(f"{where}: without_object must be 0 or 1 ({e!r})") from e
        where = f"{where} ({entry['name']})"
        arrays = {}
        for key, shape in fields.items():
            if shape is None:
                continue
            try:
                value = np.asarray(entry[key], dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise BadSampleError(f"{where}: {key} is not numeric ({e})") from e
            if value.shape != shape:
                raise BadSampleError(f"{where}: expected {key} of shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise BadSampleError(f"{where}: {key} contains NaN or inf")
            arrays[key] = value
        keypoints = check_keypoints(arrays["keypoint2d"], 21, where)
        parts = str(entry["name"]).replace("\\", "/").split("/")
        image = load_image(os.path.join(self.root, *parts),
                           allow_truncated=self.options["allow_truncated"])
        sequence, view, frame = capture
        return Record(
            image=image,
            keypoints=keypoints,
            visible=np.ones(21, np.float32),
            sequence=sequence,
            frame=frame,
            source_id=str(entry["name"]),
            view=view,
            keypoints_3d=arrays["keypoint3d"].astype(np.float32),
            intrinsics=arrays["intrinsic_matrix"].astype(np.float32),
        )

    def describe(self) -> dict:
        n = len(self._selected())
        return {
            "options": dict(self.options),
            "source": "H3D_crop (TLlib's cropped Hand-3D-Studio)",
            "selection": "all images" if self.options["with_object"] else "without_object == 1",
            "split": (f"seed-42 shuffle of sequences; test <= min(int(0.2 n), 3200) = "
                      f"{num_test_items(n)} of n = {n}")
            if self.options["group_split"] else
            (f"TLlib: random.seed(42); random.shuffle; test = first min(int(0.2 n), 3200) = "
             f"{num_test_items(n)} of n = {n}"),
            "flip": "none",
            "visible": "all keypoints visible (as TLlib)",
            "sequence": ("regex " + self._regex.pattern) if self._regex is not None else
            "image folder; frame = last integer of the file name",
        }
