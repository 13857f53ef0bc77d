"""Unlabelled target footage: folders of frames and/or video files -> synpose records.

Layout::

    SRC/<sequence>/<frame>.jpg|png|...   one sub-folder per sequence, frames sorted naturally
                                         (frame2 < frame10)
    SRC/<sequence>.mp4|avi|mov|mkv|webm  one video per sequence (decoded with PyAV)
    SRC/<sequence>/<clip>.mp4            videos inside a sub-folder: sequence "<sequence>/<clip>"
    SRC/<image>.jpg                      loose images at the top level: single images, no sequence

Every record has all-zero keypoints and visibility (the footage is unlabelled), the skeleton of
the chosen task (``--task hand|body``), ``sequence`` = the sub-folder / video name, ``frame`` =
the frame's index in its folder (natural order) or video (decode order), counted *before*
``--every`` subsampling, so frame gaps stay meaningful for pairing.

Splits: one ``train`` split by default. With ``--test-fraction f > 0`` a ``test`` split holds about
``f`` of the frames, made of whole sequences (seeded shuffle of the sequences, seed 42, never a
sequence in both splits).
"""

from __future__ import annotations

import os
import re
from typing import Optional

import numpy as np

from synpose_keras.datasets.converters._image import load_image
from synpose_keras.datasets.converters._split import seeded_test_split
from synpose_keras.datasets.converters.base import (
    BadSampleError,
    Converter,
    DatasetLayoutError,
    Item,
    Option,
    Record,
    register_converter,
)
from synpose_keras.skeletons import TASK_SKELETON, get_skeleton

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers numerically (``frame2`` < ``frame10``)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _is_video(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS) and not name.startswith(".")


class _VideoReader:
    """Sequential frame access to one video with constant memory.

    The writer loads items in order, so frames are decoded forward through one open container;
    asking for an earlier frame re-opens the file.
    """

    def __init__(self, path: str, last_index: Optional[int] = None) -> None:
        self.path = path
        self.last_index = last_index  # the container is closed after this frame
        self._container = None
        self._frames = None
        self._next = 0

    def count(self) -> int:
        import av

        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                n = int(stream.frames or 0)
                if n <= 0:  # container without a frame count: count by decoding
                    n = sum(1 for _ in container.decode(stream))
        except (av.FFmpegError, IndexError, OSError) as err:
            raise DatasetLayoutError(f"{self.path}: cannot read video ({type(err).__name__}: {err})") from err
        return n

    def _open(self) -> None:
        import av

        self.close()
        self._container = av.open(self.path)
        self._frames = self._container.decode(self._container.streams.video[0])
        self._next = 0

    def frame(self, index: int) -> np.ndarray:
        import av

        try:
            if self._container is None or index < self._next:
                self._open()
            while True:
                frame = next(self._frames)
                current = self._next
                self._next += 1
                if current == index:
                    image = frame.to_ndarray(format="rgb24")
                    if index == self.last_index:
                        self.close()
                    return np.ascontiguousarray(image, dtype=np.uint8)
        except StopIteration:
            self.close()
            raise BadSampleError(f"{self.path}: frame {index} not found (the video ends earlier)") from None
        except (av.FFmpegError, OSError) as err:
            self.close()
            raise BadSampleError(f"{self.path}: cannot decode frame {index} ({type(err).__name__}: {err})") from err

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None
        self._next = 0


@register_converter
class FramesConverter(Converter):
    """Unlabelled frames or videos (your own target footage) -> records without keypoints.

    Args:
        src: str. Folder with one sub-folder of frames (or one video) per sequence.
        task: str. "hand" (Hand21) or "body" (Body16): the skeleton the records declare.
            Defaults to "hand".
        every: int. Keep every n-th frame of each sequence (frame indices keep counting all
            frames). Defaults to 1.
        test_fraction: float. Fraction of frames (whole sequences) held out in a ``test`` split;
            0 gives a single ``train`` split. Defaults to 0.
        seed: int. Seed of the sequence shuffle for ``test_fraction``. Defaults to 42.
        boxes: str. A boxes file (:mod:`synpose_keras.inference.boxes` formats), keyed by the
            frame's source id (``seq/0001.jpg``, ``clip.mp4#frame=000010``), file name, stem
            or numeric stem (COCO ``image_id``), or ``<sequence>/<frame index>`` for video
            frames. Each box scoring at least ``min_box_score`` gives one record: the protocol's
            square crop around it (1.5 x its longer side, capped at the frame's shorter side
            and shifted inside, as TLlib's ``scale_box``), in the sequence ``<sequence>#box<n>``
            for the n-th best box of the frame (no tracking: order by score). Frames without a
            box are left out. Defaults to "" (whole frames).
        min_box_score: float. Defaults to 0.5.

    Example:

    >>> from synpose_keras.datasets import convert
    >>> from synpose_keras.datasets.converters.frames import FramesConverter
    >>> meta = convert(FramesConverter("clips/", task="hand", every=5), "data/clips")  # doctest: +SKIP
    """

    name = "frames"
    src_help = ("Folder of your footage: one sub-folder of frames, or one video file, per "
                "sequence.")
    skeleton = "hand21"
    has_3d = False
    splits = ("train", "test")
    OPTIONS = (
        Option("task", str, "hand", "Skeleton of the records: 'hand' (Hand21) or 'body' (Body16).",
               choices=("hand", "body")),
        Option("every", int, 1, "Keep every n-th frame of each sequence."),
        Option("test_fraction", float, 0.0, "Hold out about this fraction of frames (whole sequences) as 'test'."),
        Option("seed", int, 42, "Seed of the sequence shuffle used by --test-fraction."),
        Option("boxes", str, "", "Detection boxes (JSON: COCO detection results or {frame: "
               "[[x, y, w, h], ...]}): one record per box, its 1.5 x square crop; frames "
               "without a box are left out ('' = whole frames)."),
        Option("min_box_score", float, 0.5, "With --boxes: ignore boxes scoring below this."),
    )

    def __init__(self, src: str, **options) -> None:
        super().__init__(src, **options)
        task = self.check_choice("task", sorted(TASK_SKELETON))
        self.check_at_least("every", 1)
        if not 0.0 <= self.options["test_fraction"] < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1). Received: test_fraction={self.options['test_fraction']}")
        self.skeleton = get_skeleton(task).name
        self.splits = ("train", "test") if self.options["test_fraction"] > 0 else ("train",)
        if not os.path.isdir(self.src):
            raise DatasetLayoutError(f"frames folder not found: {self.src}; pass a folder with one "
                                     "sub-folder of frames (or one video file) per sequence")
        self._entries = self._scan()
        self._boxes = None
        self.frames_without_boxes = 0
        if self.options["boxes"]:
            from synpose_keras.inference.boxes import BoxFileError, read_boxes

            path = self.options["boxes"]
            if not os.path.isabs(path) and not os.path.isfile(path):
                path = os.path.join(self.src, path)
            try:
                self._boxes = read_boxes(path, min_score=float(self.options["min_box_score"]))
            except BoxFileError as err:
                raise DatasetLayoutError(str(err)) from err
        if not self._entries:
            raise DatasetLayoutError(
                f"{self.src}: no frames found; expected sub-folders of images "
                f"({', '.join(IMAGE_EXTENSIONS)}) or video files ({', '.join(VIDEO_EXTENSIONS)})"
            )

    # ------------------------------------------------------------------ listing

    def _scan(self) -> list:
        """List of (sequence, frame, source_id, kind, path) for every kept frame, in order."""
        every = self.options["every"]
        entries = []
        top = sorted(os.listdir(self.src), key=natural_key)
        for name in top:
            path = os.path.join(self.src, name)
            if os.path.isdir(path):
                children = sorted(os.listdir(path), key=natural_key)
                images = [c for c in children if _is_image(c) and os.path.isfile(os.path.join(path, c))]
                for i, child in enumerate(images):
                    if i % every == 0:
                        entries.append((name, i, f"{name}/{child}", "image", os.path.join(path, child)))
                for child in children:
                    if _is_video(child):
                        seq = f"{name}/{os.path.splitext(child)[0]}"
                        entries.extend(self._video_entries(seq, f"{name}/{child}", os.path.join(path, child)))
            elif _is_video(name):
                entries.extend(self._video_entries(os.path.splitext(name)[0], name, path))
            elif _is_image(name):
                entries.append(("", 0, name, "image", path))
        return entries

    def _video_entries(self, sequence: str, rel: str, path: str) -> list:
        n = _VideoReader(path).count()
        every = self.options["every"]
        return [(sequence, i, f"{rel}#frame={i:06d}", "video", path) for i in range(0, n, every)]

    def _split_entries(self, split: str) -> list:
        if split not in self.splits:
            raise ValueError(f"split must be one of {self.splits}. Received: split={split!r}")
        if len(self.splits) == 1:
            return self._entries
        ids = list(range(len(self._entries)))
        # loose images (no sequence) are their own group
        groups = [e[0] if e[0] else f"\0{e[2]}" for e in self._entries]
        train, test = seeded_test_split(ids, seed=self.options["seed"], fraction=self.options["test_fraction"],
                                        max_test=None, group_by=groups)
        chosen = sorted(train if split == "train" else test)  # stored order: sequences stay together
        return [self._entries[i] for i in chosen]

    def items(self, split: str) -> list:
        entries = self._split_entries(split)
        readers: dict = {}
        last: dict = {}
        for e in entries:
            if e[3] == "video":
                last[e[4]] = e[1]
        items = []
        self.frames_without_boxes = 0
        for sequence, frame, source_id, kind, path in entries:
            if kind == "video":
                if path not in readers:
                    readers[path] = _VideoReader(path, last_index=last[path])
                loader = self._video_loader(readers[path], sequence, frame, source_id)
            else:
                loader = self._image_loader(path, sequence, frame, source_id)
            if self._boxes is None:
                items.append(Item(source_id, loader))
                continue
            boxes = self._frame_boxes(sequence, frame, source_id)
            if not boxes:
                self.frames_without_boxes += 1
            for n, box in enumerate(boxes):
                items.append(Item(f"{source_id}#box={n}", self._box_loader(loader, box, n)))
        return items

    def _frame_boxes(self, sequence: str, frame: int, source_id: str) -> list:
        from synpose_keras.inference.boxes import boxes_for

        for key in (source_id, f"{sequence}/{frame}"):
            if key in self._boxes:
                return self._boxes[key]
        return boxes_for(self._boxes, source_id.split("#")[0]) or []

    def _box_loader(self, load_frame, box: dict, rank: int):
        from synpose_keras.datasets.writer import _crop_pixels, crop_box

        def load() -> Record:
            record = load_frame()
            h, w = record.image.shape[:2]
            x, y, bw, bh = box["bbox"]
            corners = np.array([[x, y], [x + bw, y + bh]], np.float64)
            region = crop_box(corners, np.ones(2), w, h, 1.5, policy="tllib")
            if region is None:
                raise BadSampleError(f"{record.source_id}: box {box['bbox']} is too small to "
                                     "crop (expected at least 2 px)")
            left, top, side = region
            return self._record(_crop_pixels(record.image, left, top, side),
                                f"{record.sequence}#box{rank}", record.frame,
                                f"{record.source_id}#box={rank}")

        return load

    # ------------------------------------------------------------------ loading

    def _record(self, image: np.ndarray, sequence: str, frame: int, source_id: str) -> Record:
        k = get_skeleton(self.skeleton).num_keypoints
        return Record(image=image, keypoints=np.zeros((k, 2), np.float32), visible=np.zeros(k, np.float32),
                      sequence=sequence, frame=int(frame), source_id=source_id)

    def _image_loader(self, path: str, sequence: str, frame: int, source_id: str):
        def load() -> Record:
            return self._record(load_image(path), sequence, frame, source_id)

        return load

    def _video_loader(self, reader: _VideoReader, sequence: str, frame: int, source_id: str):
        def load() -> Record:
            return self._record(reader.frame(frame), sequence, frame, source_id)

        return load

    def describe(self) -> dict:
        sequences = sorted({e[0] for e in self._entries if e[0]})
        return {
            "options": dict(self.options),
            "skeleton": self.skeleton,
            "labels": "none: keypoints and visibility are all zero (unlabelled target footage)",
            "num_sequences": len(sequences),
            "split_rule": ("single 'train' split" if len(self.splits) == 1 else
                           f"whole sequences shuffled with seed {self.options['seed']}; about "
                           f"{self.options['test_fraction']:.0%} of the frames in 'test'"),
            "frame": "index in the sequence (natural file order / video decode order), before --every",
            **({"boxes": "one record per box scoring >= min_box_score: its 1.5 x square crop; "
                         "sequence <sequence>#box<n> for the n-th best box of a frame",
                "frames_without_boxes": self.frames_without_boxes}
               if self._boxes is not None else {}),
        }
