"""3D Poses in the Wild (3DPW, von Marcard et al., ECCV 2018): outdoor videos, 1-2 people each.

Layout::

    SRC/sequenceFiles/{train,validation,test}/<sequence>.pkl   pickle (Python 2, load with latin1)
    SRC/imageFiles/<sequence>/image_%05d.jpg                   frame i -> image_{i:05d}.jpg

Facts this converter relies on (the dataset's readme, and public loaders such as mmhuman3d's
``keypoints_mapping/pw3d.py``): each pickle is a dict with ``sequence`` (name), ``poses2d`` (list
over persons of arrays (N, 3, 18): x, y, confidence of 18 OpenPose/COCO-18 keypoints, zeros where
no detection was associated), ``jointPositions`` (per person (N, 72) SMPL joints, world frame),
``cam_poses`` (N, 4, 4), ``cam_intrinsics`` (3, 3), ``campose_valid`` (per person (N,)),
``img_frame_ids``, ``genders``, ... OpenPose-18 order: nose, neck, r-shoulder, r-elbow, r-wrist,
l-shoulder, l-elbow, l-wrist, r-hip, r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear,
l-ear.

Body16 from OpenPose-18: limbs one to one; pelvis = mid-hip and thorax = mid-shoulder (visible when
both ends are); upper neck = OpenPose neck; head top has no counterpart: invisible by default, or
an *estimate* (option ``head_top``). Only the 2D keypoints are converted: the 3D ``jointPositions``
are SMPL joints, which do not project onto these OpenPose keypoints, so the records carry no 3D.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from synpose_keras.datasets.converters._image import load_image
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

#: For each Body16 keypoint: its OpenPose-18 joint, or -1 (pelvis, thorax, head top: derived).
OPENPOSE18_TO_BODY16 = (10, 9, 8, 11, 12, 13, -1, -1, 1, -1, 4, 3, 2, 5, 6, 7)
OP_NOSE, OP_NECK, OP_RSHO, OP_LSHO, OP_RHIP, OP_LHIP = 0, 1, 2, 5, 8, 11
OP_REYE, OP_LEYE, OP_REAR, OP_LEAR = 14, 15, 16, 17
PELVIS, THORAX, UPPER_NECK, HEAD_TOP = 6, 7, 8, 9

SPLIT_FOLDERS = {"train": "train", "val": "validation", "test": "test"}


def openpose18_to_body16(xy: np.ndarray, visible: np.ndarray, head_top: str = "invisible") -> tuple:
    """(18, 2) OpenPose keypoints with (18,) 0/1 visibility -> Body16 (16, 2), (16,).

    Derived joints: pelvis = mid-hip, thorax = mid-shoulder (visible only when both ends are).
    ``head_top="estimate"`` puts the head top at ``neck + 2 * (head centre - neck)``, the head centre
    being the mean of the visible ears (else eyes, else the nose); visible when the neck and a head
    point are. Invisible keypoints get placeholder coordinates (a related visible point, else the
    mean of the visible keypoints) so they stay finite and inside the subject.
    """
    xy = np.asarray(xy, np.float64)
    vis = np.asarray(visible, np.float32)
    kp = np.zeros((16, 2), np.float64)
    out_vis = np.zeros(16, np.float32)
    for b, o in enumerate(OPENPOSE18_TO_BODY16):
        if o >= 0:
            kp[b], out_vis[b] = xy[o], vis[o]
    for b, (a, c) in ((PELVIS, (OP_RHIP, OP_LHIP)), (THORAX, (OP_RSHO, OP_LSHO))):
        kp[b] = 0.5 * (xy[a] + xy[c])
        out_vis[b] = float(vis[a] > 0 and vis[c] > 0)
    kp[HEAD_TOP] = xy[OP_NECK]
    if head_top == "estimate" and vis[OP_NECK] > 0:
        for group in ((OP_REAR, OP_LEAR), (OP_REYE, OP_LEYE), (OP_NOSE,)):
            seen = [j for j in group if vis[j] > 0]
            if seen:
                centre = xy[seen].mean(axis=0)
                kp[HEAD_TOP] = xy[OP_NECK] + 2.0 * (centre - xy[OP_NECK])
                out_vis[HEAD_TOP] = 1.0
                break
    # Placeholders for invisible keypoints: finite, inside the person.
    if np.any(out_vis > 0):
        centroid = kp[out_vis > 0].mean(axis=0)
        kp[out_vis == 0] = centroid
    elif np.any(vis > 0):
        kp[:] = xy[vis > 0].mean(axis=0)
    return kp, out_vis


def _load_pickle(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = pickle.load(f, encoding="latin1")
    except Exception as err:
        raise DatasetLayoutError(f"{path}: cannot read 3DPW sequence pickle ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict) or "poses2d" not in data:
        raise DatasetLayoutError(f"{path}: expected a 3DPW sequence dict with a 'poses2d' entry")
    return data


@register_converter
class ThreeDPWConverter(Converter):
    """3DPW (official pickles + images) -> Body16 records from the 2D OpenPose annotations.

    One record per (person, kept frame) with enough confident keypoints. ``sequence`` =
    ``"<sequence>/person<i>"`` (a video of one person: consecutive frames pair), ``frame`` = image
    index. Splits: ``train``, ``val`` (the ``validation`` folder), ``test``.

    Args:
        src: str. The folder that contains ``sequenceFiles/`` and ``imageFiles/``.
        every: int. Keep every n-th frame. Defaults to 1.
        min_confidence: float. A keypoint is visible when its confidence exceeds this. Defaults
            to 0.3.
        min_keypoints: int. Skip (person, frame) pairs with fewer confident OpenPose keypoints
            (frames without an associated detection are all zeros). Defaults to 6 (the readme's
            rule for providing a 2D pose).
        head_top: str. "invisible" (default) or "estimate" (see :func:`openpose18_to_body16`; an
            approximation, not an annotation).

    Example:

    >>> from synpose_keras.datasets.converters.threedpw import ThreeDPWConverter
    >>> items = ThreeDPWConverter("/data/3DPW", every=5).items("test")  # doctest: +SKIP

    Reference: von Marcard et al., "Recovering Accurate 3D Human Pose in The Wild Using IMUs and a
    Moving Camera", ECCV 2018.
    """

    name = "3dpw"
    skeleton = "body16"
    has_3d = False
    splits = ("train", "val", "test")
    OPTIONS = (
        Option("every", int, 1, "Keep every n-th frame."),
        Option("min_confidence", float, 0.3, "Keypoints with confidence above this are visible."),
        Option("min_keypoints", int, 6, "Skip person-frames with fewer confident OpenPose keypoints."),
        Option("head_top", str, "invisible", "'invisible' (default) or 'estimate' (from neck and ears/eyes).",
               choices=("invisible", "estimate")),
    )

    def __init__(self, src: str, **options) -> None:
        super().__init__(src, **options)
        self.every = self.check_at_least("every", 1)
        self.check_choice("head_top", ("invisible", "estimate"))
        self.check_at_least("min_keypoints", 0)
        self.sequence_dir = os.path.join(self.src, "sequenceFiles")
        self.image_dir = os.path.join(self.src, "imageFiles")
        if not os.path.isdir(self.sequence_dir):
            raise DatasetLayoutError(
                f"3DPW annotation folder not found: {self.sequence_dir}; pass the folder that contains "
                "sequenceFiles/{train,validation,test}/ and imageFiles/"
            )
        if not os.path.isdir(self.image_dir):
            raise DatasetLayoutError(
                f"3DPW image folder not found: {self.image_dir}; pass the folder that contains "
                "sequenceFiles/ and imageFiles/"
            )

    def describe(self) -> dict:
        return {
            "options": dict(self.options),
            "split_rule": "release folders sequenceFiles/train, validation (val), test",
            "joint_mapping": {"from": "OpenPose-18 (poses2d)", "index": list(OPENPOSE18_TO_BODY16),
                              "pelvis": "mid-hip", "thorax": "mid-shoulder", "upper_neck": "neck",
                              "head_top": self.options["head_top"]},
            "visibility": f"confidence > {self.options['min_confidence']}",
        }

    def items(self, split: str) -> list:
        if split not in self.splits:
            raise ValueError(f"split must be one of {self.splits}. Received: split={split!r}")
        folder = os.path.join(self.sequence_dir, SPLIT_FOLDERS[split])
        if not os.path.isdir(folder):
            raise DatasetLayoutError(
                f"3DPW split folder not found: {folder}; pass the folder that contains "
                "sequenceFiles/{train,validation,test}/"
            )
        threshold = float(self.options["min_confidence"])
        items = []
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".pkl"):
                continue
            path = os.path.join(folder, name)
            data = _load_pickle(path)
            seq = str(data.get("sequence", name[: -len(".pkl")]))
            for person, poses in enumerate(data["poses2d"]):
                poses = np.asarray(poses, np.float64)
                if poses.ndim != 3 or poses.shape[1:] != (3, 18):
                    raise DatasetLayoutError(
                        f"{path}: poses2d[{person}] has shape {poses.shape}, expected (frames, 3, 18)"
                    )
                for frame in range(0, poses.shape[0], self.every):
                    pose = poses[frame]
                    # Non-finite values are kept on purpose: load() reports them as a bad sample.
                    if np.all(np.isfinite(pose)) and np.sum(pose[2] > threshold) < int(self.options["min_keypoints"]):
                        continue
                    image_rel = f"imageFiles/{seq}/image_{frame:05d}.jpg"
                    source_id = f"{image_rel}#person{person}"
                    items.append(Item(source_id, self._loader(pose.copy(), seq, person, frame, source_id)))
        return items

    def _loader(self, pose, seq, person, frame, source_id):
        def load() -> Record:
            return self._load(pose, seq, person, frame, source_id)

        return load

    def _load(self, pose, seq, person, frame, source_id) -> Record:
        path = os.path.join(self.image_dir, seq, f"image_{frame:05d}.jpg")
        where = f"{path} (person {person})"
        if not np.all(np.isfinite(pose)):
            raise BadSampleError(f"{where}: keypoints contain NaN or inf")
        visible18 = (pose[2] > float(self.options["min_confidence"])).astype(np.float32)
        keypoints, visible = openpose18_to_body16(pose[:2].T, visible18, self.options["head_top"])
        keypoints = check_keypoints(keypoints, 16, where)
        image = load_image(path)
        return Record(
            image=image,
            keypoints=keypoints,
            visible=visible,
            sequence=f"{seq}/person{person}",
            frame=int(frame),
            source_id=source_id,
        )
