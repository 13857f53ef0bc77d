"""SURREAL (Varol et al., CVPR 2017): synthetic humans rendered over LSUN backgrounds, as videos.

Official layout (the ``SURREAL_v1`` archive)::

    SRC/cmu/{train,val,test}/run{0,1,2}/<seq>/<seq>_c%04d.mp4        RGB video, 320x240
    SRC/cmu/{train,val,test}/run{0,1,2}/<seq>/<seq>_c%04d_info.mat   joints2D (2,24,T),
                                                                     joints3D (3,24,T), camLoc, ...

Facts this converter relies on (from the authors' ``datageneration/misc/3Dto2D`` scripts and
README, github.com/gulvarol/surreal):

- Intrinsics are the same for every clip: 320x240 render, 60 mm lens on a 32 mm sensor, so
  f = 600 px, principal point at the image centre (160, 120) in Blender's pixel-*edge*
  coordinates. The synpose schema puts the centre of the top-left pixel at (0, 0), so we store
  cx = 159.5, cy = 119.5 and shift the 2D joints by -0.5 px.
- Extrinsics come from ``camLoc`` only (a fixed rotation): world -> camera is
  ``X_cam = R (X_world - camLoc)`` with ``R = [[0, 0, -1], [0, 1, 0], [-1, 0, 0]]``
  (Blender's camera axes turned into the computer-vision convention: x right, y down, z forward).
  ``joints2D`` is that projection rounded to whole pixels, so stored 2D and projected 3D agree to
  within 0.5 px per axis.
- The stored joints have left and right swapped relative to the SMPL joint names (gulvarol/surreal
  issue #10), so SMPL "L_ankle" (7) is the person's right ankle. Body16 (MPII order) takes SMPL
  indices (7, 4, 1, 2, 5, 8, 0, 9, 12, 15, 20, 18, 13, 14, 19, 21), the mapping of TLlib: the
  *shoulders are the SMPL collar joints* 13/14 and the head is SMPL "head" (head centre, not head
  top). This is the annotation gap between SURREAL and real datasets (paper, supplementary E).
"""

from __future__ import annotations

import os
import threading
from typing import Optional

import numpy as np

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

#: SMPL joint index of every Body16 keypoint (MPII order), as stored in SURREAL (sides swapped).
SMPL_TO_BODY16 = (7, 4, 1, 2, 5, 8, 0, 9, 12, 15, 20, 18, 13, 14, 19, 21)
#: The same with the anatomical SMPL shoulder joints (16/17, sides swapped) instead of the collars.
SMPL_TO_BODY16_SHOULDER = (7, 4, 1, 2, 5, 8, 0, 9, 12, 15, 20, 18, 16, 17, 19, 21)

IMAGE_WIDTH = 320
IMAGE_HEIGHT = 240
FOCAL_PX = 600.0  # 60 mm lens * 320 px / 32 mm sensor

#: SURREAL's fixed world -> camera rotation (computer-vision axes).
WORLD_TO_CAMERA = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])


def surreal_intrinsics() -> np.ndarray:
    """The (3, 3) camera matrix of every SURREAL frame, pixel centres at integer coordinates."""
    return np.array(
        [
            [FOCAL_PX, 0.0, IMAGE_WIDTH / 2.0 - 0.5],
            [0.0, FOCAL_PX, IMAGE_HEIGHT / 2.0 - 0.5],
            [0.0, 0.0, 1.0],
        ],
        dtype=np.float64,
    )


def world_to_camera(points: np.ndarray, cam_loc: np.ndarray) -> np.ndarray:
    """(N, 3) world points (metres) -> camera coordinates, given the clip's ``camLoc``."""
    return (np.asarray(points, np.float64) - np.asarray(cam_loc, np.float64).reshape(1, 3)) @ WORLD_TO_CAMERA.T


def _parse_runs(text: str) -> tuple:
    try:
        runs = tuple(sorted({int(r) for r in str(text).replace(" ", "").split(",") if r != ""}))
    except ValueError:
        raise ValueError(f"runs must be a comma-separated list of 0, 1, 2. Received: runs={text!r}") from None
    if not runs or any(r not in (0, 1, 2) for r in runs):
        raise ValueError(f"runs must be a comma-separated list of 0, 1, 2. Received: runs={text!r}")
    return runs


class _ClipCache:
    """Decoded frames of the most recently used clip (only the frames at the sampled stride).

    Items of one clip are consecutive, so each video is decoded once; memory stays bounded to one
    clip's sampled frames. Thread-safe (one lock; decoding is sequential per clip anyway).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Optional[tuple] = None
        self._frames: dict = {}
        self._error: Optional[str] = None

    def frame(self, video_path: str, index: int, wanted: tuple) -> np.ndarray:
        key = (video_path, wanted)
        with self._lock:
            if self._key != key:
                self._frames, self._error = {}, None
                self._key = key
                try:
                    self._frames = _decode_frames(video_path, set(wanted))
                except BadSampleError as err:
                    self._error = str(err)
            if self._error is not None:
                raise BadSampleError(self._error)
            if index not in self._frames:
                raise BadSampleError(
                    f"{video_path}: video has no frame {index} "
                    f"(decoded {len(self._frames)} of the {len(wanted)} sampled frames); "
                    "the video is shorter than its _info.mat says"
                )
            return self._frames[index]


def _decode_frames(video_path: str, wanted: set) -> dict:
    """Decodes ``video_path`` and returns {frame index: uint8 RGB (H, W, 3)} for ``wanted``."""
    import av

    if not os.path.isfile(video_path):
        raise BadSampleError(f"SURREAL video not found: {video_path} (expected next to its _info.mat)")
    last = max(wanted) if wanted else -1
    frames = {}
    try:
        with av.open(video_path) as container:
            if not container.streams.video:
                raise BadSampleError(f"{video_path}: no video stream")
            stream = container.streams.video[0]
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    frames[index] = frame.to_ndarray(format="rgb24")
                if index >= last:
                    break
    except BadSampleError:
        raise
    except Exception as err:  # av raises its own FFmpegError family (and OSError/ValueError)
        raise BadSampleError(f"{video_path}: cannot decode video ({type(err).__name__}: {err})") from err
    return frames


@register_converter
class SurrealConverter(Converter):
    """SURREAL (official videos + _info.mat) -> Body16 records with 3D keypoints in metres.

    Splits are the release's ``train``/``val``/``test`` folders. Every ``every``-th frame of every
    clip of the selected ``runs`` is kept. ``sequence`` = ``"run<r>/<seq>/<clip>"`` (one rendered
    clip: same subject, clothing, background and camera), ``frame`` = frame index in the clip.
    ``keypoints_3d`` are camera-frame metres; ``intrinsics`` the fixed SURREAL camera.

    Args:
        src: str. The folder that contains ``cmu/`` (or the ``cmu`` folder itself).
        every: int. Keep frames 0, every, 2*every, ... of each clip. Defaults to 10.
        runs: str. Comma-separated runs to include (0: 50%, 1: 30%, 2: 70% clip overlap).
            Defaults to "0,1,2".
        shoulders: str. "collar" (SMPL 13/14, TLlib's mapping, the default) or "smpl" (the SMPL
            shoulder joints 16/17, closer to the anatomical shoulders of real datasets).
        keypoints_2d: str. "stored" (the release's integer ``joints2D`` shifted by -0.5 px to the
            pixel-centre convention; default) or "projected" (exact projection of ``joints3D``).

    Example:

    >>> from synpose_keras.datasets.converters.surreal import SurrealConverter
    >>> conv = SurrealConverter("/data/SURREAL/data", every=10)  # doctest: +SKIP
    >>> record = conv.items("test")[0].load()  # doctest: +SKIP

    Reference: Varol et al., "Learning from Synthetic Humans", CVPR 2017; the paper's
    SURREAL->Human3.6M/LSP tasks (supplementary Table A).
    """

    name = "surreal"
    skeleton = "body16"
    has_3d = True
    splits = ("train", "val", "test")
    OPTIONS = (
        Option("every", int, 10, "Keep every n-th frame of each clip."),
        Option("runs", str, "0,1,2", "Comma-separated runs (0, 1, 2) to include."),
        Option("shoulders", str, "collar",
               "Body16 shoulders: 'collar' (SMPL 13/14, TLlib) or 'smpl' (SMPL 16/17).",
               choices=("collar", "smpl")),
        Option("keypoints_2d", str, "stored",
               "'stored' (joints2D, integer-rounded) or 'projected' (exact projection of joints3D).",
               choices=("stored", "projected")),
    )

    def __init__(self, src: str, **options) -> None:
        super().__init__(src, **options)
        self.every = self.check_at_least("every", 1)
        self.runs = _parse_runs(self.options["runs"])
        self.check_choice("shoulders", ("collar", "smpl"))
        self.check_choice("keypoints_2d", ("stored", "projected"))
        self.joint_index = SMPL_TO_BODY16 if self.options["shoulders"] == "collar" else SMPL_TO_BODY16_SHOULDER
        self.root = self._find_root(self.src)
        self._clips = _ClipCache()

    @staticmethod
    def _find_root(src: str) -> str:
        if not os.path.isdir(src):
            raise DatasetLayoutError(f"SURREAL folder not found: {src}; pass the folder that contains cmu/")
        cmu = os.path.join(src, "cmu")
        if os.path.isdir(cmu):
            return cmu
        if any(os.path.isdir(os.path.join(src, s)) for s in SurrealConverter.splits):
            return src  # the cmu folder itself
        raise DatasetLayoutError(
            f"SURREAL layout not found: {cmu} does not exist; pass the folder that contains "
            "cmu/{train,val,test}/run{0,1,2}/ (the SURREAL_v1 'data' folder)"
        )

    def describe(self) -> dict:
        return {
            "options": dict(self.options),
            "split_rule": "release folders cmu/train, cmu/val, cmu/test",
            "sampling": f"every {self.every}th frame of each clip, runs {list(self.runs)}",
            "joint_mapping": {"from": "SMPL-24 as stored (left/right swapped)", "smpl_index": list(self.joint_index)},
            "units_3d": "metres, camera frame",
            "annotation_gap": "shoulders = SMPL collar joints (default), head = head centre (not head top)",
            "pixel_convention": "joints2D shifted by -0.5 px; principal point (159.5, 119.5)",
        }

    # ------------------------------------------------------------------ listing
    def _clip_infos(self, split: str) -> list:
        split_dir = os.path.join(self.root, split)
        if not os.path.isdir(split_dir):
            raise DatasetLayoutError(
                f"SURREAL split folder not found: {split_dir}; pass the folder that contains "
                "cmu/{train,val,test}/"
            )
        clips = []
        found_run = False
        for run in self.runs:
            run_dir = os.path.join(split_dir, f"run{run}")
            if not os.path.isdir(run_dir):
                continue
            found_run = True
            for seq in sorted(os.listdir(run_dir)):
                seq_dir = os.path.join(run_dir, seq)
                if not os.path.isdir(seq_dir):
                    continue
                for name in sorted(os.listdir(seq_dir)):
                    if name.endswith("_info.mat"):
                        clips.append((run, seq, name[: -len("_info.mat")], os.path.join(seq_dir, name)))
        if not found_run:
            raise DatasetLayoutError(
                f"SURREAL run folders not found: none of "
                f"{[os.path.join(split_dir, f'run{r}') for r in self.runs]} exists; pass the folder "
                "that contains cmu/, or choose --runs among those downloaded"
            )
        return clips

    def items(self, split: str) -> list:
        if split not in self.splits:
            raise ValueError(f"split must be one of {self.splits}. Received: split={split!r}")
        from scipy.io import whosmat

        items = []
        for run, seq, clip, info_path in self._clip_infos(split):
            try:
                shapes = {name: shape for name, shape, _ in whosmat(info_path)}
            except Exception as err:
                # A corrupt _info.mat: one item that fails on load, so skip_bad can record it.
                items.append(Item(f"{split}/run{run}/{seq}/{clip}.mp4", self._failing(info_path, err)))
                continue
            shape = shapes.get("joints2D")
            # (2, 24, T); MATLAB drops a trailing T = 1; a missing variable is reported by load().
            num_frames = int(shape[2]) if shape is not None and len(shape) == 3 else 1
            video_path = os.path.join(os.path.dirname(info_path), clip + ".mp4")
            wanted = tuple(range(0, num_frames, self.every))
            for t in wanted:
                source_id = f"{split}/run{run}/{seq}/{clip}.mp4:{t}"
                items.append(Item(source_id, self._loader(source_id, run, seq, clip, info_path, video_path, t, wanted)))
        return items

    @staticmethod
    def _failing(path: str, err: Exception):
        def load():
            raise BadSampleError(f"{path}: cannot read MATLAB file ({type(err).__name__}: {err})")

        return load

    def _loader(self, source_id, run, seq, clip, info_path, video_path, t, wanted):
        def load() -> Record:
            return self._load(source_id, run, seq, clip, info_path, video_path, t, wanted)

        return load

    # ------------------------------------------------------------------ loading
    def _read_info(self, info_path: str) -> dict:
        from scipy.io import loadmat

        try:
            mat = loadmat(info_path, variable_names=("joints2D", "joints3D", "camLoc"))
        except Exception as err:
            raise BadSampleError(f"{info_path}: cannot read MATLAB file ({type(err).__name__}: {err})") from err
        for key, rows in (("joints2D", 2), ("joints3D", 3)):
            if key not in mat:
                raise BadSampleError(f"{info_path}: variable {key!r} missing")
            arr = np.asarray(mat[key], np.float64)
            if arr.ndim == 2:
                arr = arr[:, :, None]
            if arr.ndim != 3 or arr.shape[0] != rows or arr.shape[1] != 24:
                raise BadSampleError(f"{info_path}: {key} has shape {arr.shape}, expected ({rows}, 24, T)")
            mat[key] = arr
        if "camLoc" not in mat or np.asarray(mat["camLoc"]).size != 3:
            raise BadSampleError(f"{info_path}: variable 'camLoc' missing or not 3 values")
        return {
            "joints2D": mat["joints2D"],
            "joints3D": mat["joints3D"],
            "camLoc": np.asarray(mat["camLoc"], np.float64).reshape(3),
        }

    def _load(self, source_id, run, seq, clip, info_path, video_path, t, wanted) -> Record:
        info = self._info_cache(info_path)
        where = f"{video_path} frame {t}"
        if t >= info["joints2D"].shape[2] or t >= info["joints3D"].shape[2]:
            raise BadSampleError(f"{info_path}: no annotation for frame {t}")
        idx = list(self.joint_index)
        joints3d = world_to_camera(info["joints3D"][:, idx, t].T, info["camLoc"])
        intrinsics = surreal_intrinsics()
        if not np.all(np.isfinite(joints3d)):
            raise BadSampleError(f"{where}: joints3D contain NaN or inf")
        if np.any(joints3d[:, 2] <= 0):
            raise BadSampleError(f"{where}: joints behind the camera (check camLoc)")
        if self.options["keypoints_2d"] == "projected":
            uvw = joints3d @ intrinsics.T
            keypoints = uvw[:, :2] / uvw[:, 2:3]
        else:
            keypoints = info["joints2D"][:, idx, t].T - 0.5
        keypoints = check_keypoints(keypoints, 16, where)
        image = self._clips.frame(video_path, t, wanted)
        if image.shape[:2] != (IMAGE_HEIGHT, IMAGE_WIDTH):
            raise BadSampleError(
                f"{video_path}: frame size {image.shape[1]}x{image.shape[0]}, expected {IMAGE_WIDTH}x{IMAGE_HEIGHT}"
            )
        return Record(
            image=image,
            keypoints=keypoints,
            visible=np.ones(16, np.float32),
            sequence=f"run{run}/{seq}/{clip}",
            frame=int(t),
            source_id=source_id,
            keypoints_3d=joints3d.astype(np.float32),
            intrinsics=intrinsics.astype(np.float32),
        )

    def _info_cache(self, info_path: str) -> dict:
        cached = getattr(self, "_info", None)
        if cached is not None and cached[0] == info_path:
            return cached[1]
        info = self._read_info(info_path)
        self._info = (info_path, info)
        return info
