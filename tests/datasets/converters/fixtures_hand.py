"""Fixture writers for the hand converters: tiny copies of the official on-disk layouts.

Every labelled keypoint is drawn as a small square of a distinct colour, so a test can check that a
converted keypoint lies on the colour of *its* joint after any reorder, flip or crop. The writers
use their own tables (written from the dataset documentation, not imported from the converters),
so a wrong joint map in a converter is caught.

Conventions: pixel centres at integer coordinates (centre of the top-left pixel is (0, 0));
intrinsics K = [[f, 0, cx], [0, f, cy], [0, 0, 1]]; 3D points are back-projected from the 2D
keypoints, so projecting them gives the 2D keypoints exactly.

pytest runs with ``--import-mode=importlib``, so the test folder is not on ``sys.path``; test files
load this module by path with ``importlib.util.spec_from_file_location``.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle

import numpy as np
from PIL import Image

# 63 colours of the 4-level RGB cube (black excluded: it is the background), in a fixed order.
_LEVELS = (0, 85, 170, 255)
PALETTE = np.array(
    [c for c in itertools.product(_LEVELS, repeat=3) if c != (0, 0, 0)], dtype=np.uint8
)
# spread the colours used by one hand: every third colour, then the others
_ORDER = list(range(0, 63, 3)) + list(range(1, 63, 3)) + list(range(2, 63, 3))
LEFT_COLOURS = PALETTE[_ORDER[:21]]
RIGHT_COLOURS = PALETTE[_ORDER[21:42]]
BLOB_RADIUS = 2

# Hand21 index of (finger f, joint j) with j = 0 MCP, 1 PIP, 2 DIP, 3 tip: 1 + 4 f + j.
# RHD stores each finger tip first: RHD row of (f, j) is 1 + 4 f + (3 - j); wrist is row 0.
RHD_ROW_OF_HAND21 = [0] + [1 + 4 * f + (3 - j) for f in range(5) for j in range(4)]


# ---------------------------------------------------------------------------------------------
# drawing and checking
# ---------------------------------------------------------------------------------------------


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, colours: np.ndarray,
                   radius: int = BLOB_RADIUS) -> np.ndarray:
    """Draws a (2r+1)^2 square of ``colours[k]`` centred on the pixel nearest to keypoint k."""
    h, w = image.shape[:2]
    for (x, y), colour in zip(np.asarray(keypoints), colours):
        cx, cy = int(round(float(x))), int(round(float(y)))
        x0, x1 = max(cx - radius, 0), min(cx + radius + 1, w)
        y0, y1 = max(cy - radius, 0), min(cy + radius + 1, h)
        if x1 > x0 and y1 > y0:
            image[y0:y1, x0:x1] = colour
    return image


def colour_index(image: np.ndarray, x: float, y: float, colours: np.ndarray) -> int:
    """Index in ``colours`` of the colour nearest to the pixel at (x, y); -1 for background."""
    h, w = image.shape[:2]
    cx = min(max(int(round(float(x))), 0), w - 1)
    cy = min(max(int(round(float(y))), 0), h - 1)
    pixel = image[cy, cx].astype(np.int32)
    candidates = np.concatenate([np.zeros((1, 3), np.int32), np.asarray(colours, np.int32)])
    return int(np.argmin(np.sum((candidates - pixel) ** 2, axis=1))) - 1


def assert_on_colours(image, keypoints, visible, colours, where=""):
    """Every visible keypoint k lies on ``colours[k]``."""
    image = np.asarray(image)
    for k, ((x, y), v) in enumerate(zip(np.asarray(keypoints), np.asarray(visible))):
        if v <= 0:
            continue
        got = colour_index(image, x, y, colours)
        assert got == k, f"{where}: keypoint {k} at ({x:.2f}, {y:.2f}) lies on colour {got}"


def project(points_3d, k):
    p = np.asarray(points_3d, np.float64) @ np.asarray(k, np.float64).T
    return p[:, :2] / p[:, 2:3]


def _grid_hand(rng, origin, spacing):
    """21 keypoints on a shuffled 5x5 grid (random joint -> cell), with sub-pixel jitter."""
    cells = [(c, r) for r in range(5) for c in range(5)]
    order = rng.permutation(25)[:21]
    pts = np.array([cells[i] for i in order], np.float64) * spacing + np.asarray(origin, np.float64)
    return pts + rng.uniform(-0.3, 0.3, size=pts.shape)


def _intrinsics(f, width, height):
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _back_project(uv, k, z):
    """Camera points whose projection by K is ``uv`` (depth z per point)."""
    uv1 = np.concatenate([uv, np.ones((len(uv), 1))], axis=1) * np.asarray(z)[:, None]
    return uv1 @ np.linalg.inv(k).T


def _save(image, path, fmt):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if fmt == "jpeg":
        Image.fromarray(image).save(path, "JPEG", quality=95, subsampling=0)
    else:
        Image.fromarray(image).save(path, "PNG")


def truncate_file(path, keep=0.5):
    """Cuts a file to ``keep`` of its length (a truncated download)."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: max(16, int(len(data) * keep))])


# ---------------------------------------------------------------------------------------------
# RHD: RHD_published_v2/{training,evaluation}/{color,mask}/%05d.png + anno_<set>.pickle
# ---------------------------------------------------------------------------------------------

# (origin, spacing, number of invisible joints) per hand; spacing 25 -> keypoint box 100 px ->
# TLlib box 150 px (kept); spacing 10 -> box 40 -> 60 px (too small).
RHD_DESIGN = {
    "training": [
        # 0: both hands kept
        {"left": ((20, 20), 25, 0), "right": ((190, 190), 25, 0)},
        # 1: right hand too small -> only left
        {"left": ((20, 180), 25, 0), "right": ((220, 30), 10, 0)},
        # 2: left hand has only 16 visible keypoints -> only right
        {"left": ((20, 20), 25, 5), "right": ((190, 190), 25, 1)},
        # 3: the hands overlap (> 30% of each box) -> none
        {"left": ((20, 20), 25, 0), "right": ((60, 60), 25, 0)},
    ],
    "evaluation": [
        # 0: both kept
        {"left": ((40, 170), 25, 2), "right": ((170, 30), 25, 0)},
        # 1: right hand with 16 visible -> only left
        {"left": ((180, 180), 25, 0), "right": ((20, 20), 25, 5)},
    ],
}
# source ids the TLlib filter keeps, in order
RHD_KEPT = {
    "train": ["training/00000/left", "training/00000/right", "training/00001/left",
              "training/00002/right"],
    "test": ["evaluation/00000/left", "evaluation/00000/right", "evaluation/00001/left"],
}
RHD_ALL = {
    "train": [f"training/{i:05d}/{h}" for i in range(4) for h in ("left", "right")],
    "test": [f"evaluation/{i:05d}/{h}" for i in range(2) for h in ("left", "right")],
}


def write_rhd(root, size=320, seed=0, nan_sample=None, truncate_sample=None):
    """Writes a tiny RHD_published_v2 under ``root``; returns the expected Hand21 annotations.

    Args:
        nan_sample: optional (folder, sample_id): write NaN into that sample's left-hand uv.
        truncate_sample: optional (folder, sample_id): truncate that sample's PNG.

    Returns:
        dict folder -> sample_id -> hand -> dict(uv (21, 2), visible (21,), xyz (21, 3), K (3, 3))
        in Hand21 order and in the original (unflipped) image.
    """
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "RHD_published_v2")
    expected = {}
    for folder, samples in RHD_DESIGN.items():
        anno_all = {}
        expected[folder] = {}
        for sample_id, design in enumerate(samples):
            k = _intrinsics(280.0 + 5 * sample_id, size, size)
            image = np.zeros((size, size, 3), np.uint8)
            uv_vis = np.zeros((42, 3), np.float32)
            xyz = np.zeros((42, 3), np.float32)
            expected[folder][sample_id] = {}
            for h, hand in enumerate(("left", "right")):
                origin, spacing, n_invisible = design[hand]
                uv = _grid_hand(rng, origin, spacing)
                visible = np.ones(21, np.float32)
                visible[rng.permutation(21)[:n_invisible]] = 0
                z = 0.45 + 0.01 * np.arange(21) + 0.1 * h
                pts = _back_project(uv, k, z)
                colours = LEFT_COLOURS if h == 0 else RIGHT_COLOURS
                draw_keypoints(image, uv, colours)
                for j in range(21):
                    row = 21 * h + RHD_ROW_OF_HAND21[j]
                    uv_vis[row] = (uv[j, 0], uv[j, 1], visible[j])
                    xyz[row] = pts[j]
                expected[folder][sample_id][hand] = {
                    "uv": uv_vis[21 * h + np.array(RHD_ROW_OF_HAND21), :2].astype(np.float64),
                    "visible": visible,
                    "xyz": xyz[21 * h + np.array(RHD_ROW_OF_HAND21)].astype(np.float64),
                    "K": k.astype(np.float32),
                }
            if nan_sample == (folder, sample_id):
                uv_vis[3, 0] = np.nan
            anno_all[sample_id] = {"uv_vis": uv_vis, "xyz": xyz, "K": k.astype(np.float32)}
            _save(image, os.path.join(base, folder, "color", f"{sample_id:05d}.png"), "png")
            mask = np.zeros((size, size), np.uint8)  # RHD masks: class index per pixel
            os.makedirs(os.path.join(base, folder, "mask"), exist_ok=True)
            Image.fromarray(mask).save(os.path.join(base, folder, "mask", f"{sample_id:05d}.png"))
            if truncate_sample == (folder, sample_id):
                truncate_file(os.path.join(base, folder, "color", f"{sample_id:05d}.png"))
        with open(os.path.join(base, folder, f"anno_{folder}.pickle"), "wb") as f:
            pickle.dump(anno_all, f, protocol=2)
    return expected


# ---------------------------------------------------------------------------------------------
# FreiHAND: FreiHAND_pub_v2/training_{K,xyz,mano}.json + training/rgb/%08d.jpg (4 versions)
# ---------------------------------------------------------------------------------------------

FREIHAND_VERSIONS = ("gs", "hom", "sample", "auto")  # id offsets N x 0, 1, 2, 3
_BACKGROUNDS = ((0, 0, 0), (20, 20, 20), (0, 0, 30), (30, 0, 0))


def write_freihand(root, num_frames=10, size=64, seed=0, nan_frame=None, truncate_image=None):
    """Writes a tiny FreiHAND_pub_v2 under ``root``; returns expected uv (N, 21, 2) and K/xyz."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "FreiHAND_pub_v2")
    ks, xyzs, uvs = [], [], []
    for idx in range(num_frames):
        k = _intrinsics(150.0 + idx, size, size)
        uv = _grid_hand(rng, (8, 8), 11)
        xyz = _back_project(uv, k, 0.6 + 0.005 * np.arange(21))
        if nan_frame == idx:
            xyz[5, 2] = np.nan
        ks.append(k.tolist())
        xyzs.append(xyz.tolist())
        uvs.append(uv)
        for v, background in enumerate(_BACKGROUNDS):
            image = np.zeros((size, size, 3), np.uint8)
            image[:] = background
            draw_keypoints(image, uv, LEFT_COLOURS)
            path = os.path.join(base, "training", "rgb", f"{idx + num_frames * v:08d}.jpg")
            _save(image, path, "jpeg")
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, "training_K.json"), "w") as f:
        json.dump(ks, f)
    with open(os.path.join(base, "training_xyz.json"), "w") as f:
        json.dump(xyzs, f)
    with open(os.path.join(base, "training_mano.json"), "w") as f:
        json.dump([[[0.0] * 61] for _ in range(num_frames)], f)
    if truncate_image is not None:
        truncate_file(os.path.join(base, "training", "rgb", f"{truncate_image:08d}.jpg"))
    return {"uv": np.stack(uvs), "K": np.array(ks), "xyz": np.array(xyzs)}


# ---------------------------------------------------------------------------------------------
# H3D (TLlib's H3D_crop): annotation.json + part1..part5/<...>.jpg
# ---------------------------------------------------------------------------------------------

H3D_CAPTURES = 4
H3D_CAMERAS = 3
H3D_WITH_OBJECT_CAPTURE = 3  # this capture's images have without_object == 0


def h3d_name(capture, camera):
    return f"part{1 + capture % 2}/{capture:04d}/{camera:02d}.jpg"


def write_h3d(root, size=64, seed=0, nan_index=None, truncate_index=None):
    """Writes a tiny H3D_crop under ``root``; returns the annotation list written."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "H3D_crop")
    entries = []
    for capture in range(H3D_CAPTURES):
        for camera in range(H3D_CAMERAS):
            k = _intrinsics(120.0 + 3 * camera, size, size)
            uv = _grid_hand(rng, (8, 8), 11)
            xyz = _back_project(uv, k, 0.5 + 0.004 * np.arange(21))  # metres here
            image = np.zeros((size, size, 3), np.uint8)
            draw_keypoints(image, uv, LEFT_COLOURS)
            name = h3d_name(capture, camera)
            _save(image, os.path.join(base, name), "jpeg")
            entries.append({
                "name": name,
                "keypoint2d": uv.tolist(),
                "keypoint3d": xyz.tolist(),
                "intrinsic_matrix": k.tolist(),
                "without_object": 0 if capture == H3D_WITH_OBJECT_CAPTURE else 1,
            })
    if nan_index is not None:
        entries[nan_index]["keypoint2d"][4][1] = float("nan")
    if truncate_index is not None:
        truncate_file(os.path.join(base, entries[truncate_index]["name"]))
    with open(os.path.join(base, "annotation.json"), "w") as f:
        json.dump(entries, f)  # NaN is written as the JSON extension NaN, as Python does
    return entries


# ---------------------------------------------------------------------------------------------
# MVHand (our documented generic multi-view JSON): annotations.json + images
# ---------------------------------------------------------------------------------------------

MV_SEQUENCES = ("seq_a", "seq_b", "seq_c", "seq_d", "seq_e")
MV_VIEWS = ("cam0", "cam1")
MV_FRAMES = 2


def write_mvhand(root, size=64, seed=0, with_split=False, with_3d=True, tip_first=False,
                 truncate_index=None):
    """Writes a multi-view hand folder in the generic JSON layout; returns the entries written.

    Args:
        tip_first: store each finger tip -> MCP (RHD style) instead of Hand21 order.
    """
    rng = np.random.default_rng(seed)
    entries = []
    for s, seq in enumerate(MV_SEQUENCES):
        for frame in range(MV_FRAMES):
            for v, view in enumerate(MV_VIEWS):
                k = _intrinsics(110.0 + 5 * v, size, size)
                uv = _grid_hand(rng, (8, 8), 11)
                vis = np.ones(21)
                vis[rng.permutation(21)[:2]] = 0
                image = np.zeros((size, size, 3), np.uint8)
                draw_keypoints(image, uv, LEFT_COLOURS)
                rel = f"images/{seq}/{view}/{frame:04d}.png"
                _save(image, os.path.join(root, rel), "png")
                rows = RHD_ROW_OF_HAND21 if tip_first else list(range(21))
                stored = np.zeros((21, 3))
                xyz = _back_project(uv, k, 0.4 + 0.003 * np.arange(21))
                stored_xyz = np.zeros((21, 3))
                for j in range(21):
                    stored[rows[j]] = (uv[j, 0], uv[j, 1], vis[j])
                    stored_xyz[rows[j]] = xyz[j]
                entry = {"image": rel, "keypoints2d": stored.tolist(), "sequence": seq,
                         "view": view, "frame": frame, "_uv": uv.tolist(), "_vis": vis.tolist()}
                if with_3d:
                    entry["keypoints3d"] = stored_xyz.tolist()
                    entry["K"] = k.tolist()
                if with_split:
                    entry["split"] = "test" if s == 1 else "train"
                entries.append(entry)
    if truncate_index is not None:
        truncate_file(os.path.join(root, entries[truncate_index]["image"]))
    with open(os.path.join(root, "annotations.json"), "w") as f:
        json.dump(entries, f)
    return entries
