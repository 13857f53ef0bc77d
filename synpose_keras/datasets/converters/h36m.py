"""Human3.6M, from the widely used JSON release (the I2L-MeshNet / Pose2Mesh authors' annotations).

Layout::

    SRC/annotations/Human36M_subject{S}_data.json      COCO-style: "images" list with id,
                                                       file_name, width, height, subject,
                                                       action_idx, subaction_idx, frame_idx, cam_idx
    SRC/annotations/Human36M_subject{S}_camera.json    {cam_idx: {"R": 3x3, "t": 3, "f": 2, "c": 2}}
    SRC/annotations/Human36M_subject{S}_joint_3d.json  {action: {subaction: {frame: 17x3 world mm}}}
    SRC/images/<file_name>

Facts this converter relies on (checked in mks0601/I2L-MeshNet_RELEASE ``data/Human36M`` and
TLlib ``tllib/vision/datasets/keypoint_detection/human36m.py``):

- Camera convention of this release: ``X_cam = R @ X_world + t`` (``t`` in mm, *not* the
  ``R (X - T)`` of the original H36M metadata); pixels ``u = f_x X/Z + c_x``, ``v = f_y Y/Z + c_y``.
- H36M-17 order: pelvis, r-hip, r-knee, r-ankle, l-hip, l-knee, l-ankle, torso, neck, nose,
  head-top, l-shoulder, l-elbow, l-wrist, r-shoulder, r-elbow, r-wrist. Body16 takes
  [3, 2, 1, 4, 5, 6, 0, 11, 8, 10, 16, 15, 14, 11, 12, 13] and replaces the thorax (index 7) by the
  3D midpoint of the two shoulders, projected like every other joint (TLlib).
- Protocol: train subjects 1, 5, 6, 7, 8; test subjects 9, 11; every 5th frame. TLlib keeps
  every 5th entry of each subject's image *list* and then draws 3200 test samples **with
  replacement** (``random.seed(42); random.choices(samples, k=3200)``): see the options
  ``sample_by`` and ``test_draws``.
"""

from __future__ import annotations

import json
import os
import random

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

#: H36M-17 index of every Body16 keypoint (index 7, the thorax, is recomputed from the shoulders).
H36M_TO_BODY16 = (3, 2, 1, 4, 5, 6, 0, 11, 8, 10, 16, 15, 14, 11, 12, 13)
THORAX = 7
R_SHOULDER, L_SHOULDER = 12, 13  # Body16 indices


def h36m_to_body16(joints17: np.ndarray) -> np.ndarray:
    """(..., 17, 3) H36M joints -> (..., 16, 3) Body16, thorax = midpoint of the shoulders."""
    out = np.asarray(joints17, np.float64)[..., list(H36M_TO_BODY16), :].copy()
    out[..., THORAX, :] = 0.5 * (out[..., R_SHOULDER, :] + out[..., L_SHOULDER, :])
    return out


def _parse_subjects(text: str, name: str) -> tuple:
    try:
        subjects = tuple(int(s) for s in str(text).replace(" ", "").split(",") if s != "")
    except ValueError:
        raise ValueError(f"{name} must be comma-separated subject numbers. Received: {name}={text!r}") from None
    if not subjects:
        raise ValueError(f"{name} must name at least one subject. Received: {name}={text!r}")
    return subjects


def _load_json(path: str):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except ValueError as err:
        raise DatasetLayoutError(f"Human3.6M annotation file is not valid JSON: {path} ({err})") from err


@register_converter
class H36MConverter(Converter):
    """Human3.6M (JSON release) -> Body16 records with camera-frame 3D keypoints in millimetres.

    ``sequence`` = ``"S<subject>_a<action>_s<subaction>"``, ``view`` = camera index, ``frame`` =
    ``frame_idx``: records sharing a sequence and frame are the four synchronised views
    (multi-view pairs); records sharing a sequence and view are video frames.

    Args:
        src: str. The folder that contains ``annotations/`` and ``images/``.
        every: int. Keep every n-th frame. Defaults to 5 (the common protocol).
        sample_by: str. "frame": keep ``frame_idx % every == 0`` (all four views of a kept frame
            survive, so multi-view pairs form; default). "list": keep every n-th entry of each
            subject's image list, as TLlib does (the kept frames then differ between cameras).
        test_draws: int. 0 (default): the test split is every kept frame of the test subjects.
            N > 0: the test split is N draws *with replacement* from them
            (``random.Random(draw_seed).choices``), TLlib's protocol with N = 3200 (combine with
            ``sample_by="list"`` to reproduce its exact sample list). Drawn duplicates get
            ``source_id`` suffix ``"@draw<j>"``.
        draw_seed: int. Seed of the test draws. Defaults to 42 (TLlib).
        train_subjects: str. Defaults to "1,5,6,7,8".
        test_subjects: str. Defaults to "9,11".

    Example:

    >>> from synpose_keras.datasets.converters.h36m import H36MConverter
    >>> conv = H36MConverter("/data/Human36M", test_draws=3200)  # doctest: +SKIP
    >>> len(conv.items("test"))  # doctest: +SKIP
    3200

    Reference: Ionescu et al., "Human3.6M", TPAMI 2014; SURREAL->Human3.6M in the paper's Table A.
    """

    name = "h36m"
    skeleton = "body16"
    has_3d = True
    splits = ("train", "test")
    OPTIONS = (
        Option("every", int, 5, "Keep every n-th frame."),
        Option("sample_by", str, "frame",
               "'frame' (frame_idx % every == 0, keeps all views of a frame) or 'list' (TLlib: every "
               "n-th entry of each subject's image list).",
               choices=("frame", "list")),
        Option("test_draws", int, 0,
               "0: all kept test frames; N > 0: N draws with replacement (TLlib: 3200)."),
        Option("draw_seed", int, 42, "Seed of the test draws (TLlib: 42)."),
        Option("train_subjects", str, "1,5,6,7,8", "Comma-separated training subjects."),
        Option("test_subjects", str, "9,11", "Comma-separated test subjects."),
    )

    def __init__(self, src: str, **options) -> None:
        super().__init__(src, **options)
        self.every = self.check_at_least("every", 1)
        self.check_choice("sample_by", ("frame", "list"))
        self.check_at_least("test_draws", 0)
        self.subjects = {
            "train": _parse_subjects(self.options["train_subjects"], "train_subjects"),
            "test": _parse_subjects(self.options["test_subjects"], "test_subjects"),
        }
        self.annotation_dir = os.path.join(self.src, "annotations")
        self.image_dir = os.path.join(self.src, "images")
        if not os.path.isdir(self.annotation_dir):
            raise DatasetLayoutError(
                f"Human3.6M annotation folder not found: {self.annotation_dir}; pass the folder that "
                "contains annotations/ (Human36M_subject*_data.json, ..._camera.json, ..._joint_3d.json) "
                "and images/"
            )
        if not os.path.isdir(self.image_dir):
            raise DatasetLayoutError(
                f"Human3.6M image folder not found: {self.image_dir}; pass the folder that contains "
                "annotations/ and images/"
            )
        all_subjects = self.subjects["train"] + self.subjects["test"]
        if not any(os.path.isfile(self._path(s, "data")) for s in all_subjects):
            raise DatasetLayoutError(
                f"Human3.6M annotation file not found: {self._path(all_subjects[0], 'data')} (nor that "
                f"of any subject in {list(all_subjects)}); pass the folder that contains annotations/"
            )

    def _path(self, subject: int, kind: str) -> str:
        return os.path.join(self.annotation_dir, f"Human36M_subject{subject}_{kind}.json")

    def describe(self) -> dict:
        return {
            "options": dict(self.options),
            "split_rule": f"train subjects {list(self.subjects['train'])}, test subjects "
            f"{list(self.subjects['test'])}",
            "sampling": f"every {self.every}th frame by {self.options['sample_by']}",
            "test_draws": int(self.options["test_draws"]),
            "joint_mapping": {"from": "H36M-17", "index": list(H36M_TO_BODY16),
                              "thorax": "midpoint of the shoulders (3D, then projected)"},
            "camera": "X_cam = R X_world + t (mm)",
            "units_3d": "millimetres, camera frame",
        }

    # ------------------------------------------------------------------ listing
    def _subject_samples(self, subject: int) -> list:
        """Kept samples of one subject: (file_name, meta, joints_cam (16,3), K (3,3))."""
        paths = {kind: self._path(subject, kind) for kind in ("data", "camera", "joint_3d")}
        for kind, path in paths.items():
            if not os.path.isfile(path):
                raise DatasetLayoutError(
                    f"Human3.6M annotation file not found: {path}; pass the folder that contains "
                    f"annotations/ with the {kind} file of subject {subject} (or leave the subject out "
                    "with --train-subjects / --test-subjects)"
                )
        data = _load_json(paths["data"])
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise DatasetLayoutError(f"{paths['data']}: expected a JSON object with an 'images' list")
        cameras = _load_json(paths["camera"])
        joints = _load_json(paths["joint_3d"])

        samples = []
        for position, img in enumerate(data["images"]):
            try:
                frame = int(img["frame_idx"])
                keep = (frame if self.options["sample_by"] == "frame" else position) % self.every == 0
                if not keep:
                    continue
                action, subaction, cam = int(img["action_idx"]), int(img["subaction_idx"]), int(img["cam_idx"])
                file_name = str(img["file_name"])
            except (KeyError, TypeError, ValueError) as err:
                raise DatasetLayoutError(
                    f"{paths['data']}: image entry {position} lacks frame_idx/action_idx/subaction_idx/"
                    f"cam_idx/file_name ({err})"
                ) from err
            samples.append((file_name, subject, action, subaction, frame, cam, position))

        # Resolve cameras and joints once per sample (small arrays), then drop the raw JSON.
        out = []
        cam_cache = {}
        for file_name, subj, action, subaction, frame, cam, position in samples:
            if cam not in cam_cache:
                cam_cache[cam] = self._camera(cameras, cam, paths["camera"])
            try:
                world = np.asarray(joints[str(action)][str(subaction)][str(frame)], np.float64)
            except (KeyError, TypeError, ValueError):
                world = None  # reported when the item is loaded
            out.append((file_name, (subj, action, subaction, frame, cam), world, cam_cache[cam]))
        return out

    @staticmethod
    def _camera(cameras: dict, cam: int, path: str):
        entry = cameras.get(str(cam)) if isinstance(cameras, dict) else None
        if entry is None:
            return None  # reported when an item of this camera is loaded
        try:
            rot = np.asarray(entry["R"], np.float64).reshape(3, 3)
            t = np.asarray(entry["t"], np.float64).reshape(3)
            f = np.asarray(entry["f"], np.float64).reshape(2)
            c = np.asarray(entry["c"], np.float64).reshape(2)
        except (KeyError, ValueError) as err:
            raise DatasetLayoutError(f"{path}: camera {cam} must have R (3x3), t (3), f (2), c (2) ({err})") from err
        k = np.array([[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]])
        return rot, t, k

    def items(self, split: str) -> list:
        if split not in self.splits:
            raise ValueError(f"split must be one of {self.splits}. Received: split={split!r}")
        samples = []
        for subject in self.subjects[split]:
            samples.extend(self._subject_samples(subject))
        items = [Item(s[0], self._loader(s, s[0])) for s in samples]
        draws = int(self.options["test_draws"])
        if split == "test" and draws > 0 and samples:
            rng = random.Random(int(self.options["draw_seed"]))
            picked = rng.choices(range(len(samples)), k=draws)
            items = [
                Item(f"{samples[i][0]}@draw{j}", self._loader(samples[i], f"{samples[i][0]}@draw{j}"))
                for j, i in enumerate(picked)
            ]
        return items

    def _loader(self, sample, source_id):
        def load() -> Record:
            return self._load(sample, source_id)

        return load

    # ------------------------------------------------------------------ loading
    def _load(self, sample, source_id) -> Record:
        file_name, (subject, action, subaction, frame, cam), world, camera = sample
        where = f"{self.image_dir}/{file_name}"
        if world is None:
            raise BadSampleError(
                f"{where}: no 3D joints for action {action}, subaction {subaction}, frame {frame} in "
                f"{self._path(subject, 'joint_3d')}"
            )
        if camera is None:
            raise BadSampleError(f"{where}: camera {cam} missing from {self._path(subject, 'camera')}")
        world = np.asarray(world, np.float64)
        if world.shape != (17, 3):
            raise BadSampleError(f"{where}: expected 17x3 world joints, got shape {world.shape}")
        rot, t, k = camera
        cam_xyz = h36m_to_body16(world) @ rot.T + t
        if not np.all(np.isfinite(cam_xyz)):
            raise BadSampleError(f"{where}: keypoints contain NaN or inf")
        if np.any(cam_xyz[:, 2] <= 0):
            raise BadSampleError(f"{where}: joints behind camera {cam}")
        uvw = cam_xyz @ k.T
        keypoints = check_keypoints(uvw[:, :2] / uvw[:, 2:3], 16, where)
        image = load_image(os.path.join(self.image_dir, file_name))
        return Record(
            image=image,
            keypoints=keypoints,
            visible=np.ones(16, np.float32),
            sequence=f"S{subject}_a{action}_s{subaction}",
            frame=int(frame),
            source_id=source_id,
            view=str(cam),
            keypoints_3d=cam_xyz.astype(np.float32),
            intrinsics=k.astype(np.float32),
        )
