"""Scenes of the synthetic benchmark: one function of (seed, domain, split, index) per image.

Every image has its own random stream, ``np.random.default_rng([seed, task, stream, split, ...])``,
so any item can be generated alone, in any order, with the same result (the writer may resume a
conversion half-way). Target sequences are built once (subject, appearance, motion, cameras,
backgrounds) from the sequence's own stream and cached.
"""

from __future__ import annotations

import collections
import threading

import numpy as np

from synpose_keras.datasets.converters.base import Record
from synpose_keras.datasets.synthetic import domains
from synpose_keras.datasets.synthetic.body_model import BodyModel
from synpose_keras.datasets.synthetic.camera import PinholeCamera, intrinsics_matrix, project
from synpose_keras.datasets.synthetic.hand_model import HandModel
from synpose_keras.datasets.synthetic.posed_skeleton import MATERIAL_INDEX
from synpose_keras.datasets.synthetic.render import rasterize, shade
from synpose_keras.datasets.synthetic.rotations import (
    axis_angle,
    look_at,
    random_rotation,
    random_unit_vector,
    rot_x,
    rot_y,
    rot_z,
)

TASKS = {"hand": 0, "body": 1}
DOMAINS = {"source": 0, "target": 1}
SPLITS = {"train": 0, "test": 1}
_NOISE_STREAM = 2

# Camera and framing ranges (focal length in units of the image width; fill = longer side of the
# keypoint box / image side; offset = shift of the box centre, in units of the image width).
SOURCE_FOCAL = 1.3
SOURCE_FILL = {"hand": (0.60, 0.80), "body": (0.50, 0.70)}
SOURCE_OFFSET = 0.08
TARGET_FOCAL = (1.0, 1.8)
TARGET_PRINCIPAL_OFFSET = 3.0 / 128.0
TARGET_FILL = {"hand": (0.65, 0.85), "body": (0.55, 0.75)}
TARGET_OFFSET = 0.06
# Target motion: joint angles move from one random pose towards another over the sequence
# (eased), while the subject turns and drifts.
HAND_TURN_DEG = (5.0, 20.0)
HAND_DRIFT_M = 0.03
BODY_TURN_DEG = 40.0
BODY_DRIFT_M = 0.4
VIEW_SEPARATION_DEG = {"hand": (25.0, 60.0), "body": (45.0, 120.0)}
# Hand viewpoints (both domains): the camera looks at the palm or at the back of the hand (50/50),
# from a direction within HAND_VIEW_CONE_DEG of the palm's normal, and the hand's distal axis
# (wrist -> fingers) points up in the image to within +-HAND_ROLL_DEG. Hand-held and egocentric
# footage (FreiHAND, H3D) mostly shows hands this way; a uniformly random rotation of the whole
# view (the benchmark before 2026-12-07) made the pose problem too hard to learn at the demo's scale.
HAND_VIEW_CONE_DEG = 40.0
HAND_ROLL_DEG = 20.0
BODY_ELEVATION_DEG = {"source": (-5.0, 25.0), "target": (0.0, 25.0)}


def _ease(u: float) -> float:
    return 0.5 - 0.5 * np.cos(np.pi * u)


class SceneGenerator:
    """Generates the images and labels of both domains of the synthetic benchmark.

    Args:
        task: str. "hand" (Hand21) or "body" (Body16).
        seed: int. Seed of the whole benchmark (>= 0).
        image_size: int. Side of the square stored images, in pixels.
        frames: int. Frames per target sequence.
        views: int. Cameras per target sequence.

    Example:

    ```python
    gen = SceneGenerator("hand", seed=0, image_size=128)
    sample = gen.source_sample("train", 0)
    sample["record"].image.shape  # (128, 128, 3)
    ```
    """

    def __init__(self, task: str = "hand", seed: int = 0, image_size: int = 128, frames: int = 8,
                 views: int = 2) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {sorted(TASKS)}. Received: task={task!r}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0. Received: seed={seed}")
        if int(image_size) < 16:
            raise ValueError(f"image_size must be >= 16. Received: image_size={image_size}")
        if int(frames) < 1 or int(views) < 1:
            raise ValueError(f"frames and views must be >= 1. Received: frames={frames}, views={views}")
        self.task, self.seed, self.image_size = task, int(seed), int(image_size)
        self.frames, self.views = int(frames), int(views)
        self.model = HandModel() if task == "hand" else BodyModel()
        self._cache = collections.OrderedDict()
        self._lock = threading.Lock()

    # ---- random streams ----------------------------------------------------------------------------

    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, TASKS[self.task], *keys])

    # ---- source -----------------------------------------------------------------------------------

    def _orientation(self, rng: np.random.Generator) -> np.ndarray:
        if self.task == "hand":
            return random_rotation(rng)
        yaw = rng.uniform(0, 2 * np.pi)
        return rot_y(yaw) @ rot_x(np.radians(rng.normal(0, 5))) @ rot_z(np.radians(rng.normal(0, 5)))

    def _hand_view_direction(self, rng: np.random.Generator, orientation: np.ndarray) -> np.ndarray:
        """A unit direction from the hand towards a camera: within ``HAND_VIEW_CONE_DEG`` of the
        palm's normal (palm side or back side, 50/50), uniform over that spherical cap."""
        normal = orientation @ np.array([0.0, 0.0, 1.0]) * (1.0 if rng.random() < 0.5 else -1.0)
        cos_t = rng.uniform(np.cos(np.radians(HAND_VIEW_CONE_DEG)), 1.0)
        phi = rng.uniform(0, 2 * np.pi)
        a = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
        a /= np.linalg.norm(a)
        b = np.cross(normal, a)
        sin_t = np.sqrt(max(0.0, 1.0 - cos_t ** 2))
        return cos_t * normal + sin_t * (np.cos(phi) * a + np.sin(phi) * b)

    def _camera_rotation(self, rng: np.random.Generator, domain: str, direction=None,
                         orientation=None) -> np.ndarray:
        """World-to-camera rotation: hands from around the palm or back (``direction`` from the
        hand to the camera; the distal axis of ``orientation`` up in the image, rolled by up to
        ``HAND_ROLL_DEG``), bodies from around at eye level."""
        if self.task == "hand":
            d = self._hand_view_direction(rng, orientation) if direction is None else direction
            up = orientation @ np.array([0.0, 1.0, 0.0])
            roll = np.radians(rng.uniform(-HAND_ROLL_DEG, HAND_ROLL_DEG))
            return rot_z(roll) @ look_at(d, np.zeros(3), up)
        elevation = np.radians(rng.uniform(*BODY_ELEVATION_DEG[domain]))
        azimuth = rng.uniform(0, 2 * np.pi) if direction is None else direction
        eye = np.array([np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)])
        return rot_z(np.radians(rng.normal(0, 3))) @ look_at(eye, np.zeros(3), np.array([0.0, 1.0, 0.0]))

    def source_sample(self, split: str, index: int) -> dict:
        """Image ``index`` of the source split ``split``.

        Returns:
            dict: ``record`` (:class:`Record`, source labels), ``posed`` (camera-frame
            PosedSkeleton), ``camera``, ``alpha`` (H, W) subject coverage.
        """
        rng = self._rng(DOMAINS["source"], SPLITS[split], int(index))
        size = self.image_size
        subject = self.model.sample_subject(rng)
        orientation = self._orientation(rng)
        posed = self.model.pose(subject, self.model.sample_pose(rng), orientation)
        k = intrinsics_matrix(SOURCE_FOCAL * size, (size - 1) / 2, (size - 1) / 2)
        rotation = self._camera_rotation(rng, "source", orientation=orientation)
        points = np.concatenate([posed.keypoints_source, posed.keypoints_target])
        camera = PinholeCamera.framing(points, rotation, k, size, size, rng.uniform(*SOURCE_FILL[self.task]),
                                       rng.uniform(-SOURCE_OFFSET, SOURCE_OFFSET, 2) * size)
        background = domains.source_background(rng, size, size)
        posed_cam = posed.transformed(camera.rotation, camera.translation)
        appearance = domains.Appearance.source()
        colour, alpha = self._render(posed_cam, camera, appearance, appearance.light_direction)
        image = domains.finish_source(colour * alpha[..., None] + background * (1 - alpha[..., None]))
        record = self._record(image, posed_cam, camera, "source", sequence="", frame=0, view="",
                              source_id=f"source/{split}/{int(index):06d}")
        return {"record": record, "posed": posed_cam, "camera": camera, "alpha": alpha}

    # ---- target -----------------------------------------------------------------------------------

    def target_sequence(self, split: str, sequence: int) -> dict:
        """The fixed parts of target sequence ``sequence`` of ``split`` (cached).

        Returns:
            dict: ``subject``, ``params`` (F, P) joint angles per frame, ``posed`` (list of F world
            PosedSkeleton, occluder included), ``cameras`` (V PinholeCamera), ``appearance``,
            ``backgrounds`` (V, H, W, 3), ``occluder`` (bool).
        """
        key = (split, int(sequence))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        spec = self._build_sequence(split, int(sequence))
        with self._lock:
            self._cache[key] = spec
            while len(self._cache) > 4:
                self._cache.popitem(last=False)
        return spec

    def _build_sequence(self, split: str, sequence: int) -> dict:
        rng = self._rng(DOMAINS["target"], SPLITS[split], sequence)
        size, nf, nv = self.image_size, self.frames, self.views
        model = self.model
        subject = model.sample_subject(rng)
        p0, p1 = model.sample_pose(rng), model.sample_pose(rng)
        orientation = self._orientation(rng)
        if self.task == "hand":
            axis, turn = random_unit_vector(rng), np.radians(rng.uniform(*HAND_TURN_DEG))
            drift = random_unit_vector(rng) * rng.uniform(0, HAND_DRIFT_M)
        else:
            axis, turn = np.array([0.0, 1.0, 0.0]), np.radians(rng.uniform(-BODY_TURN_DEG, BODY_TURN_DEG))
            heading = orientation @ np.array([0.0, 0.0, 1.0])
            drift = np.array([heading[0], 0.0, heading[2]]) * rng.uniform(0, BODY_DRIFT_M)
        params, posed = [], []
        for f in range(nf):
            u = _ease(f / (nf - 1)) if nf > 1 else 0.0
            params.append(p0 + (p1 - p0) * u)
            posed.append(model.pose(subject, params[-1], axis_angle(axis, turn * u) @ orientation, drift * u))
        points = np.concatenate([np.concatenate([p.keypoints_source, p.keypoints_target]) for p in posed])
        centre = points.mean(axis=0)
        cameras = []
        lo, hi = VIEW_SEPARATION_DEG[self.task]
        if self.task == "hand":
            directions = self._hand_view_directions(rng, orientation, nv, lo, hi)
        else:
            direction = rng.uniform(0, 2 * np.pi)
        for v in range(nv):
            if self.task == "hand":
                rotation = self._camera_rotation(rng, "target", directions[v], orientation)
            else:
                rotation = self._camera_rotation(rng, "target", direction)
            focal = rng.uniform(*TARGET_FOCAL) * size
            pp = (size - 1) / 2 + rng.uniform(-1, 1, 2) * TARGET_PRINCIPAL_OFFSET * size
            k = intrinsics_matrix(focal, pp[0], pp[1])
            cameras.append(PinholeCamera.framing(points, rotation, k, size, size, rng.uniform(*TARGET_FILL[self.task]),
                                                 rng.uniform(-TARGET_OFFSET, TARGET_OFFSET, 2) * size))
            if self.task == "body":
                direction = direction + np.radians(rng.uniform(lo, hi)) * rng.choice([-1.0, 1.0])
        towards = np.mean([c.centre - centre for c in cameras], axis=0)
        appearance = domains.Appearance.sample_target(rng, nv, upper_light=self.task == "body",
                                                      towards=towards / max(np.linalg.norm(towards), 1e-9))
        backgrounds = np.stack([
            domains.target_background(rng, size, size, appearance.colours[MATERIAL_INDEX["skin"]],
                                      floor=self.task == "body")
            for _ in range(nv)
        ])
        occluder = rng.random() < domains.OCCLUDER_PROBABILITY
        if occluder:
            extent = np.linalg.norm(points - centre, axis=1).max()
            cam = cameras[int(rng.integers(nv))]
            towards = cam.centre - centre
            spot = centre + towards * rng.uniform(0.2, 0.4) + (rng.uniform(-0.25, 0.25, 3) * extent)
            radius = rng.uniform(*domains.OCCLUDER_RADIUS) * extent
            bar = random_unit_vector(rng) * radius * rng.uniform(0.0, 3.0)
            posed = [p.with_extra_capsules(spot - bar / 2, spot + bar / 2, radius, radius,
                                           MATERIAL_INDEX["occluder"], 1.0) for p in posed]
        return {"subject": subject, "params": np.stack(params), "posed": posed, "cameras": cameras,
                "appearance": appearance, "backgrounds": backgrounds, "occluder": occluder}

    def _hand_view_directions(self, rng, orientation, num_views, lo, hi, tries=200) -> list:
        """``num_views`` camera directions on one side of the hand (each as
        :meth:`_hand_view_direction`), every pair ``lo``..``hi`` degrees apart where the cone
        allows it (rejection sampling; the last draw is kept after ``tries``)."""
        first = self._hand_view_direction(rng, orientation)
        side = 1.0 if float(first @ (orientation @ np.array([0.0, 0.0, 1.0]))) > 0 else -1.0
        directions = [first]
        while len(directions) < num_views:
            for _ in range(tries):
                d = self._hand_view_direction(rng, orientation)
                if float(d @ (orientation @ np.array([0.0, 0.0, 1.0]))) * side < 0:
                    d = d - 2 * float(d @ (orientation @ np.array([0.0, 0.0, 1.0]))) * (
                        orientation @ np.array([0.0, 0.0, 1.0]))
                angles = [np.degrees(np.arccos(np.clip(d @ e, -1, 1))) for e in directions]
                if all(lo <= a <= hi for a in angles):
                    break
            directions.append(d)
        return directions

    def target_sample(self, split: str, sequence: int, frame: int, view: int) -> dict:
        """Frame ``frame`` of target sequence ``sequence`` seen by camera ``view``.

        Returns:
            dict: ``record`` (target labels), ``posed`` (camera frame), ``camera``, ``alpha``.
        """
        spec = self.target_sequence(split, sequence)
        camera = spec["cameras"][view]
        appearance = spec["appearance"]
        posed_cam = spec["posed"][frame].transformed(camera.rotation, camera.translation)
        colour, alpha = self._render(posed_cam, camera, appearance, camera.rotation @ appearance.light_direction)
        image = colour * alpha[..., None] + spec["backgrounds"][view] * (1 - alpha[..., None])
        rng = self._rng(_NOISE_STREAM, SPLITS[split], int(sequence), int(frame), int(view))
        image = domains.finish_target(image, appearance, view, rng)
        record = self._record(image, posed_cam, camera, "target",
                              sequence=f"target-{split}-{int(sequence):04d}", frame=int(frame),
                              view=f"cam{int(view)}",
                              source_id=f"target/{split}/{int(sequence):04d}/f{int(frame):02d}/cam{int(view)}")
        return {"record": record, "posed": posed_cam, "camera": camera, "alpha": alpha}

    # ---- shared -------------------------------------------------------------------------------------

    def _render(self, posed_cam, camera, appearance, light_cam) -> tuple:
        geometry = rasterize(posed_cam, camera.intrinsics, camera.width, camera.height)
        return shade(geometry, appearance.colours, light_cam, appearance.ambient, appearance.diffuse,
                     appearance.specular, light_rgb=appearance.light_rgb)

    def _record(self, image, posed_cam, camera, convention, sequence, frame, view, source_id) -> Record:
        kp3d = posed_cam.keypoints(convention)
        kp2d = project(kp3d, camera.intrinsics)
        size = self.image_size
        visible = ((kp2d[:, 0] >= 0) & (kp2d[:, 0] <= size - 1) & (kp2d[:, 1] >= 0) & (kp2d[:, 1] <= size - 1))
        return Record(
            image=image, keypoints=kp2d.astype(np.float32), visible=visible.astype(np.float32),
            sequence=sequence, frame=frame, source_id=source_id, view=view,
            keypoints_3d=kp3d.astype(np.float32), intrinsics=camera.intrinsics.astype(np.float32),
        )
