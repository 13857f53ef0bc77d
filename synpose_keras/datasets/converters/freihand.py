"""FreiHAND converter: ``FreiHAND_pub_v2`` training set (4 appearance versions) -> Hand21 records.

Reference:
    datasets/freihand.md and docs/protocol.md, "Dataset conventions" (FreiHAND layout, versions,
    TLlib flip and seed-42 split, the version leak).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Optional

import numpy as np

from synpose_keras.datasets.converters._image import hflip, load_image, project
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

#: Version name -> image id offset (multiples of N): the release's numbering.
VERSION_OFFSETS = {"gs": 0, "hom": 1, "sample": 2, "auto": 3}
#: The order in which TLlib concatenates the versions before its seeded shuffle ("all" task).
TLLIB_VERSION_ORDER = ("gs", "auto", "sample", "hom")


def parse_versions(value: str) -> tuple:
    """``"all"`` or a comma list of version names -> the versions, in TLlib's order."""
    if value is None or str(value).strip().lower() in ("", "all"):
        return TLLIB_VERSION_ORDER
    names = [v.strip().lower() for v in str(value).split(",") if v.strip()]
    unknown = sorted(set(names) - set(VERSION_OFFSETS))
    if unknown or not names:
        raise ValueError(
            f"versions must be 'all' or a comma list of {list(VERSION_OFFSETS)}. "
            f"Received: versions={value!r}"
        )
    return tuple(v for v in TLLIB_VERSION_ORDER if v in names)


@register_converter
class FreiHANDConverter(Converter):
    """FreiHAND (real, green-screen capture with 4 appearance versions per frame).

    Reads ``FreiHAND_pub_v2/training_K.json`` and ``training_xyz.json`` (N entries, metres, camera
    frame) and ``training/rgb/%08d.jpg``, where the image of frame ``i`` in version ``v`` has id
    ``i + N * offset(v)`` (gs 0, hom 1, sample 2, auto 3). The 2D keypoints are the projection of
    ``xyz`` by ``K``; the native order is already Hand21; every keypoint is visible.
    ``training_mano.json`` and the evaluation set are not used.

    Flip: TLlib mirrors every FreiHAND image (its hands are right hands; after the flip they look
    like RHD's mirrored left hands). ``flip=True`` (default) does the same, mirroring
    ``keypoints_3d`` (X -> -X) and ``intrinsics`` consistently.

    Split (TLlib): the sample list (versions concatenated in TLlib's order gs, auto, sample, hom)
    is shuffled by ``random.seed(42); random.shuffle``; test = the first ``min(int(0.2 n), 3200)``.
    The four versions of one frame are the same hand pose and camera, so this split puts versions
    of one frame into both train and test (a leak). ``group_versions=True`` (default) shuffles
    *frames* with the same seed instead and keeps the four versions together (test size <= the
    same bound); ``group_versions=False`` reproduces TLlib's split exactly.

    Ids: ``source_id`` = ``"training/rgb/<id:08d>.jpg"``; ``frame`` = the frame index i;
    ``view`` = the version name. FreiHAND has no video: ``sequence`` is ``""`` unless
    ``pair_versions=True``, which sets ``sequence = "frame<i:08d>"`` so the versions of one frame
    pair up as base/driving images (same pose, different background: a degenerate pair for
    geometric reconstruction, hence off by default).

    Args:
        src: str. ``FreiHAND_pub_v2`` or the folder that contains it.
        flip: bool. Mirror every image (TLlib). Defaults to True.
        versions: str. ``"all"`` or a comma list of ``gs, hom, sample, auto``. Defaults to "all".
        group_versions: bool. Split by frame (no leak). Defaults to True.
        pair_versions: bool. ``sequence`` = frame id. Defaults to False.

    Example:

    ```python
    from synpose_keras.datasets import convert
    from synpose_keras.datasets.converters.freihand import FreiHANDConverter
    convert(FreiHANDConverter("/data/FreiHAND_pub_v2"), "data/freihand", crop=True)
    ```

    Reference:
        Zimmermann et al., "FreiHAND: A Dataset for Markerless Capture of Hand Pose and Shape
        from Single RGB Images", ICCV 2019; datasets/freihand.md.
    """

    name = "freihand"
    skeleton = "hand21"
    has_3d = True
    splits = ("train", "test")
    OPTIONS = (
        Option("flip", bool, True, "Mirror every image horizontally (TLlib protocol)."),
        Option("versions", str, "all",
               "Appearance versions to include: 'all' or a comma list of gs,hom,sample,auto."),
        Option("group_versions", bool, True,
               "Split by frame so the 4 versions of a frame never straddle train/test "
               "(--no-group-versions reproduces TLlib's split exactly, leak included)."),
        Option("pair_versions", bool, False,
               "Set sequence = frame id so the versions of one frame form base/driving pairs."),
    )

    def __init__(self, src: str, **options) -> None:
        super().__init__(src, **options)
        self.versions = parse_versions(self.options["versions"])
        self.root = self._find_root(self.src)
        self._annotations: Optional[tuple] = None

    @staticmethod
    def _find_root(src: str) -> str:
        candidates = [src, os.path.join(src, "FreiHAND_pub_v2")]
        root = next((c for c in candidates if os.path.isfile(os.path.join(c, "training_K.json"))),
                    candidates[1] if os.path.isdir(candidates[1]) else candidates[0])
        for name in ("training_K.json", "training_xyz.json"):
            path = os.path.join(root, name)
            if not os.path.isfile(path):
                raise DatasetLayoutError(
                    f"FreiHAND annotation file not found: {path}. Pass the folder FreiHAND_pub_v2 "
                    "(the one that contains training_K.json, training_xyz.json and training/rgb/) "
                    f"or its parent. Received: src={src!r}"
                )
        rgb = os.path.join(root, "training", "rgb")
        if not os.path.isdir(rgb):
            raise DatasetLayoutError(
                f"FreiHAND image folder not found: {rgb} (expected training/rgb/%08d.jpg). "
                "Pass the folder FreiHAND_pub_v2 or its parent."
            )
        return root

    def _load_annotations(self) -> tuple:
        if self._annotations is None:
            lists = []
            for name in ("training_K.json", "training_xyz.json"):
                path = os.path.join(self.root, name)
                try:
                    with open(path) as f:
                        value = json.load(f)
                except (OSError, ValueError) as e:
                    raise DatasetLayoutError(
                        f"FreiHAND annotation file {path} cannot be read ({e}); re-download it"
                    ) from e
                if not isinstance(value, list):
                    raise DatasetLayoutError(f"FreiHAND annotation file {path}: expected a list, "
                                             f"got {type(value).__name__}")
                lists.append(value)
            if len(lists[0]) != len(lists[1]):
                raise DatasetLayoutError(
                    f"FreiHAND annotation files disagree: training_K.json has {len(lists[0])} "
                    f"entries, training_xyz.json {len(lists[1])} (in {self.root})"
                )
            self._annotations = tuple(lists)
        return self._annotations

    @property
    def num_frames(self) -> int:
        """N, the number of distinct frames (32,560 in the release)."""
        return len(self._load_annotations()[0])

    def sample_ids(self) -> list:
        """Every (version, frame) pair in TLlib's sample order (before the shuffle)."""
        n = self.num_frames
        return [(v, i) for v in self.versions for i in range(n)]

    def image_id(self, version: str, frame: int) -> int:
        return frame + self.num_frames * VERSION_OFFSETS[version]

    def items(self, split: str) -> list[Item]:
        if split not in self.splits:
            raise ValueError(f"Unknown split for freihand. Expected one of {list(self.splits)}. "
                             f"Received: split={split!r}")
        ids = self.sample_ids()
        group = (lambda vi: vi[1]) if self.options["group_versions"] else None
        train, test = seeded_test_split(ids, seed=42, fraction=0.2, max_test=3200, group_by=group)
        chosen = train if split == "train" else test
        out = []
        for version, frame in chosen:
            source_id = f"training/rgb/{self.image_id(version, frame):08d}.jpg"
            out.append(Item(source_id, functools.partial(self._load, version, frame, source_id)))
        return out

    def _load(self, version: str, frame: int, source_id: str) -> Record:
        ks, xyzs = self._load_annotations()
        where = f"{os.path.join(self.root, 'training_xyz.json')} entry {frame} ({source_id})"
        try:
            k = np.asarray(ks[frame], dtype=np.float64)
            xyz = np.asarray(xyzs[frame], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise BadSampleError(f"{where}: non-numeric K or xyz ({e})") from e
        if k.shape != (3, 3) or xyz.shape != (21, 3):
            raise BadSampleError(f"{where}: expected K (3, 3) and xyz (21, 3), got {k.shape} and "
                                 f"{xyz.shape}")
        if not (np.all(np.isfinite(k)) and np.all(np.isfinite(xyz))):
            raise BadSampleError(f"{where}: K or xyz contains NaN or inf")
        if np.any(xyz[:, 2] <= 0):
            raise BadSampleError(f"{where}: keypoints behind the camera (z <= 0)")
        keypoints = check_keypoints(project(xyz, k), 21, where)
        image = load_image(os.path.join(self.root, *source_id.split("/")))
        kp3d = xyz.astype(np.float32)
        intrinsics = k.astype(np.float32)
        if self.options["flip"]:
            image, keypoints, kp3d, intrinsics = hflip(image, keypoints, kp3d, intrinsics)
        return Record(
            image=image,
            keypoints=keypoints,
            visible=np.ones(21, np.float32),
            sequence=f"frame{frame:08d}" if self.options["pair_versions"] else "",
            frame=int(frame),
            source_id=source_id,
            view=version,
            keypoints_3d=kp3d,
            intrinsics=intrinsics,
        )

    def describe(self) -> dict:
        n = len(self.versions) * self.num_frames
        return {
            "options": dict(self.options),
            "source": "FreiHAND_pub_v2 training set",
            "versions": list(self.versions),
            "split": ("seed-42 shuffle of frames (versions kept together); test <= "
                      f"min(int(0.2 n), 3200) = {num_test_items(n)} of n = {n}")
            if self.options["group_versions"] else
            ("TLlib: random.seed(42); random.shuffle(samples in version order gs, auto, sample, "
             f"hom); test = first min(int(0.2 n), 3200) = {num_test_items(n)} of n = {n}"),
            "flip": "every image mirrored (x -> W-1-x, X -> -X, K mirrored)"
            if self.options["flip"] else "none",
            "keypoints": "projection of training_xyz by training_K; Hand21 native order",
            "units_3d": "metres, camera frame",
            "sequence": "frame<i>" if self.options["pair_versions"] else
            "none; frame = FreiHAND frame index, view = version",
        }
