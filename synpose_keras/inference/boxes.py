"""Detection boxes for ``synpose predict --boxes FILE``: one protocol crop per box.

Two file formats (JSON):

- COCO detection results: a list of ``{"image_id": 42, "bbox": [x, y, w, h], "score": 0.9}``
  (``file_name`` may replace or accompany ``image_id``; ``score`` defaults to 1). An ``image_id``
  matches the image whose file stem is that number (``000000000042.jpg``) or that string.
- Per frame: an object ``{"<file name or stem>": [[x, y, w, h], ...]}`` whose boxes may also be
  ``{"bbox": [x, y, w, h], "score": s}``.

Boxes are in pixels of the original image (``x, y`` = top-left corner). Each box scoring at least
the threshold is framed as the protocol frames a subject: a square of side 1.5 x its longer side
around its centre (docs/protocol.md, "Evaluation protocol"), zero-padded where it leaves the
image; keypoints come back in original pixels per box.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np


class BoxFileError(ValueError):
    """The boxes file cannot be read (names it and what was expected)."""


def _box(entry, where: str) -> dict:
    if isinstance(entry, dict):
        bbox, score = entry.get("bbox"), entry.get("score", 1.0)
    else:
        bbox, score = entry, 1.0
    try:
        x, y, w, h = (float(v) for v in bbox)
        score = float(score)
    except (TypeError, ValueError):
        raise BoxFileError(f"{where}: a box must be [x, y, w, h] (numbers) or "
                           f"{{'bbox': [x, y, w, h], 'score': s}}. Received: {entry!r}") from None
    if not (np.isfinite([x, y, w, h, score]).all() and w > 0 and h > 0):
        raise BoxFileError(f"{where}: a box needs finite values and w, h > 0. Received: {entry!r}")
    return {"bbox": [x, y, w, h], "score": score}


def read_boxes(path, min_score: float = 0.0) -> dict:
    """Reads a boxes file -> ``{key: [{"bbox": [x, y, w, h], "score": s}, ...]}``, best first.

    Keys are file names, stems or image ids as strings (see the module docstring); boxes below
    ``min_score`` are dropped.

    Raises:
        BoxFileError: missing, empty or invalid file (one line naming it).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BoxFileError(f"Boxes file not found: {path}. Expected COCO detection results "
                           "(a JSON list of {image_id or file_name, bbox, score}) or a JSON "
                           "object {file name: [[x, y, w, h], ...]}.")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except ValueError as err:
        raise BoxFileError(f"{path} is not valid JSON ({err}); expected COCO detection results "
                           "or {file name: [[x, y, w, h], ...]}.") from err
    boxes: dict = {}
    if isinstance(data, list):
        for n, det in enumerate(data):
            where = f"{path} entry {n}"
            if not isinstance(det, dict) or "bbox" not in det:
                raise BoxFileError(f"{where}: expected {{'image_id' or 'file_name', 'bbox', "
                                   f"'score'}}. Received: {det!r}")
            keys = [str(det[k]) for k in ("file_name", "image_id") if k in det]
            if not keys:
                raise BoxFileError(f"{where}: needs 'image_id' or 'file_name'")
            box = _box(det, where)
            for key in keys:
                boxes.setdefault(key, []).append(box)
    elif isinstance(data, dict):
        for key, entries in data.items():
            if not isinstance(entries, list):
                raise BoxFileError(f"{path} [{key!r}]: expected a list of boxes. "
                                   f"Received: {entries!r}")
            boxes[str(key)] = [_box(e, f"{path} [{key!r}]") for e in entries]
    else:
        raise BoxFileError(f"{path}: expected a JSON list (COCO detection results) or object "
                           f"(per frame). Received: a {type(data).__name__}")
    return {key: sorted([b for b in found if b["score"] >= min_score],
                        key=lambda b: -b["score"]) for key, found in boxes.items()}


def boxes_for(boxes: dict, image_path) -> Optional[list]:
    """The boxes of an image file: by file name, then stem, then numeric image id; None when
    the file has no entry (the image is then framed whole)."""
    name = os.path.basename(os.fspath(image_path))
    stem = os.path.splitext(name)[0]
    for key in (name, stem):
        if key in boxes:
            return boxes[key]
    if stem.isdigit() and str(int(stem)) in boxes:
        return boxes[str(int(stem))]
    return None


def box_region(bbox, scale: float = 1.5) -> tuple:
    """``(center (2,), side)`` of the protocol square around a box ``[x, y, w, h]`` (pixel
    centres: the box's left edge ``x`` is the left edge of pixel ``x``)."""
    x, y, w, h = (float(v) for v in bbox)
    return np.array([x + w / 2.0 - 0.5, y + h / 2.0 - 0.5]), float(scale * max(w, h))
