"""Tiny body datasets written in their OFFICIAL on-disk formats, for the converter tests.

Every labelled keypoint is drawn as a flat disc of a distinct colour (one colour per Body16
keypoint *name*), so a test can check that each converted keypoint lies on the colour of the
keypoint it claims to be: this catches index-mapping and left/right mistakes. The fixtures name
joints by anatomy and derive each dataset's storage index from its documented joint order
(SMPL names with SURREAL's left/right swap, H36M-17, LSP-14, OpenPose-18), independently of
the converters' tables.

Import from a test module with::

    sys.path.insert(0, os.path.dirname(__file__)); import fixtures_body as fx
"""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
from PIL import Image

BODY16 = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)

#: One colour per Body16 keypoint (same order), far apart in RGB.
PALETTE = np.array(
    [
        (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0),
        (255, 0, 255), (0, 255, 255), (255, 128, 0), (128, 0, 255),
        (0, 128, 255), (255, 0, 128), (128, 255, 0), (0, 255, 128),
        (128, 0, 0), (0, 128, 0), (0, 0, 128), (128, 128, 0),
    ],
    dtype=np.uint8,
)
BACKGROUND = (40, 40, 40)

# --- documented joint orders of the releases (by anatomy) -----------------------------------------
SMPL_NAMES = (
    "pelvis", "l_hip", "r_hip", "spine1", "l_knee", "r_knee", "spine2", "l_ankle", "r_ankle",
    "spine3", "l_foot", "r_foot", "neck", "l_collar", "r_collar", "head", "l_shoulder",
    "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hand", "r_hand",
)
H36M_NAMES = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "torso", "neck", "nose",
    "head_top", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)
LSP_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
    "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top",
)
OPENPOSE18_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)


def _swap_side(name: str) -> str:
    if name.startswith("l_"):
        return "r_" + name[2:]
    if name.startswith("r_"):
        return "l_" + name[2:]
    return name


#: Body16 name -> which SMPL joint of a SURREAL file holds it. SURREAL stores joints with left and
#: right swapped relative to the SMPL names (gulvarol/surreal#10); TLlib's protocol uses the collar
#: joints as shoulders, spine3 as thorax, neck as upper neck and the head (centre) as head top.
SURREAL_SOURCE = {
    "r_ankle": "r_ankle", "r_knee": "r_knee", "r_hip": "r_hip", "l_hip": "l_hip",
    "l_knee": "l_knee", "l_ankle": "l_ankle", "pelvis": "pelvis", "thorax": "spine3",
    "upper_neck": "neck", "head_top": "head", "r_wrist": "r_wrist", "r_elbow": "r_elbow",
    "r_shoulder": "r_collar", "l_shoulder": "l_collar", "l_elbow": "l_elbow", "l_wrist": "l_wrist",
}


def surreal_stored_index(body16_name: str) -> int:
    """Index in SURREAL's joints2D/joints3D of a Body16 keypoint of the *person* (sides swapped)."""
    return SMPL_NAMES.index(_swap_side(SURREAL_SOURCE[body16_name]))


# --- drawing and checking --------------------------------------------------------------------------
def body16_layout(rng: np.random.Generator, width: int, height: int, cols: int = 4, rows: int = 4,
                  jitter: float = 1.0, x0: float = 0.0) -> np.ndarray:
    """(16, 2) keypoint positions on a grid of ``cols x rows`` cells, centre-of-pixel coordinates.

    Pelvis and thorax sit exactly between the two hips / shoulders (same row, neighbouring
    cells), the other keypoints on random distinct cells, everything jittered by up to ``jitter``.
    """
    xs = x0 + (np.arange(cols) + 0.5) * width / cols - 0.5
    ys = (np.arange(rows) + 0.5) * height / rows - 0.5
    free = {(c, r) for c in range(cols) for r in range(rows)}
    pos = np.zeros((16, 2))
    names = {n: i for i, n in enumerate(BODY16)}
    r_sho, r_hip = rng.choice(rows, size=2, replace=False)
    for mid, (a, b), row in (("thorax", ("r_shoulder", "l_shoulder"), r_sho),
                             ("pelvis", ("r_hip", "l_hip"), r_hip)):
        c = int(rng.integers(1, cols - 1))
        left, right = (a, b) if rng.random() < 0.5 else (b, a)
        for name, col in ((left, c - 1), (right, c + 1)):
            pos[names[name]] = (xs[col] + rng.uniform(-jitter, jitter), ys[row] + rng.uniform(-jitter, jitter))
            free.discard((col, row))
        pos[names[mid]] = 0.5 * (pos[names[a]] + pos[names[b]])
        free.discard((c, row))
    rest = [n for n in BODY16 if n not in ("thorax", "pelvis", "r_shoulder", "l_shoulder", "r_hip", "l_hip")]
    cells = sorted(free)
    order = rng.permutation(len(cells))[: len(rest)]
    for name, k in zip(rest, order):
        c, r = cells[k]
        pos[names[name]] = (xs[c] + rng.uniform(-jitter, jitter), ys[r] + rng.uniform(-jitter, jitter))
    return pos


def draw_blobs(image: np.ndarray, points, names, radius: float) -> np.ndarray:
    """Draws a disc of the colour of each Body16 ``name`` at ``points`` (in place)."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    for (x, y), name in zip(np.asarray(points, np.float64), names):
        mask = (xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2
        image[mask] = PALETTE[BODY16.index(name)]
    return image


def blank(width: int, height: int) -> np.ndarray:
    img = np.empty((height, width, 3), np.uint8)
    img[:] = BACKGROUND
    return img


def colour_at(image: np.ndarray, xy, radius: int = 1) -> np.ndarray:
    """Median colour of the pixels within ``radius`` of the rounded point."""
    x, y = int(round(float(xy[0]))), int(round(float(xy[1])))
    h, w = image.shape[:2]
    ys = slice(max(0, y - radius), min(h, y + radius + 1))
    xs = slice(max(0, x - radius), min(w, x + radius + 1))
    patch = np.asarray(image)[ys, xs].reshape(-1, 3).astype(np.float64)
    if patch.size == 0:
        return np.array([-1000.0, -1000.0, -1000.0])
    return np.median(patch, axis=0)


def name_at(image: np.ndarray, xy, radius: int = 1, tolerance: float = 70.0):
    """Body16 name whose colour is under ``xy`` (None when it is background / unclear)."""
    c = colour_at(image, xy, radius)
    d = np.linalg.norm(PALETTE.astype(np.float64) - c, axis=1)
    k = int(np.argmin(d))
    return BODY16[k] if d[k] < tolerance else None


def mismatched_keypoints(image, keypoints, visible=None, indices=None, radius: int = 1) -> list:
    """[(Body16 name, name found under it)] for every checked keypoint not on its own colour."""
    bad = []
    for k in (range(16) if indices is None else indices):
        if visible is not None and visible[k] <= 0:
            continue
        found = name_at(image, keypoints[k], radius)
        if found != BODY16[k]:
            bad.append((BODY16[k], found))
    return bad


def save_jpeg(path: str, image: np.ndarray, quality: int = 95) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=quality, subsampling=0)


def truncate_file(path: str, keep: float = 0.4) -> None:
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: max(1, int(len(data) * keep))])


# --- SURREAL ------------------------------------------------------------------------------------
SURREAL_W, SURREAL_H, SURREAL_F = 320, 240, 600.0


def surreal_extrinsic(cam_loc) -> np.ndarray:
    """3x4 world -> computer-vision camera matrix of the authors' getExtrinsicBlender.m."""
    r_world2bcam = np.array([[0, 0, 1], [0, -1, 0], [-1, 0, 0]], np.float64).T
    t_world2bcam = -r_world2bcam @ np.asarray(cam_loc, np.float64).reshape(3)
    r_bcam2cv = np.diag([1.0, -1.0, -1.0])
    return np.concatenate([r_bcam2cv @ r_world2bcam, (r_bcam2cv @ t_world2bcam)[:, None]], axis=1)


def surreal_intrinsic_edge() -> np.ndarray:
    """getIntrinsicBlender.m: f = 600, principal point (160, 120) in pixel-edge coordinates."""
    return np.array([[600.0, 0, 160.0], [0, 600.0, 120.0], [0, 0, 1]])


def write_surreal_clip(root: str, split: str, run: int, seq: str, clip: int, num_frames: int,
                       seed: int, radius: float = 9.0, crf: int = 4, video_frames=None) -> dict:
    """Writes ``cmu/<split>/run<run>/<seq>/<seq>_c%04d.mp4`` and ``..._info.mat``.

    Returns dict(video, info, body16_2d (T, 16, 2) centre-of-pixel targets, joints2D, joints3D,
    camLoc).
    """
    import av
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cmu", split, f"run{run}", seq)
    os.makedirs(folder, exist_ok=True)
    name = f"{seq}_c{clip:04d}"
    cam_loc = np.array([rng.uniform(5.0, 8.0), rng.uniform(-1.5, 1.5), rng.uniform(-2.0, 0.0)])
    ext = surreal_extrinsic(cam_loc)
    k_edge = surreal_intrinsic_edge()
    targets = np.zeros((num_frames, 16, 2))
    joints3d = np.zeros((3, 24, num_frames))
    frames = []
    for t in range(num_frames):
        pos = body16_layout(rng, SURREAL_W, SURREAL_H, jitter=3.0)
        targets[t] = pos
        uv = np.zeros((24, 2))
        uv[:] = pos.mean(axis=0)  # unused SMPL joints: somewhere in the middle, not drawn
        uv += rng.uniform(-20, 20, size=(24, 2))
        for b, bname in enumerate(BODY16):
            uv[surreal_stored_index(bname)] = pos[b]
        z = rng.uniform(4.0, 6.0, size=24)
        # centre-of-pixel -> Blender edge coordinates (+0.5), then back-project.
        cam = np.stack([(uv[:, 0] + 0.5 - 160.0) / 600.0 * z, (uv[:, 1] + 0.5 - 120.0) / 600.0 * z, z], axis=1)
        rot, tr = ext[:, :3], ext[:, 3]
        world = (cam - tr) @ rot  # R^T (cam - t), row vectors
        joints3d[:, :, t] = world.T
        img = blank(SURREAL_W, SURREAL_H)
        draw_blobs(img, pos, BODY16, radius)
        frames.append(img)
    # joints2D: the authors' projection, rounded (main.m asserts round(P2D) == joints2D).
    homo = np.concatenate([joints3d, np.ones((1, 24, num_frames))], axis=0)
    p = np.einsum("ij,jkt->ikt", k_edge @ ext, homo)
    joints2d = np.round(p[:2] / p[2:3])
    info_path = os.path.join(folder, name + "_info.mat")
    savemat(info_path, {
        "joints2D": joints2d.astype(np.float32),
        "joints3D": joints3d.astype(np.float32),
        "camLoc": cam_loc.reshape(3, 1).astype(np.float32),
        "camDist": np.float32(np.linalg.norm(cam_loc)),
        "clipNo": float(clip),
        "sequence": name,
        "source": "cmu",
        "stride": np.uint8(50),
        "gender": np.zeros((num_frames, 1), np.uint8),
        "zrot": np.zeros((num_frames, 1), np.float32),
        "pose": np.zeros((72, num_frames), np.float32),
        "shape": np.zeros((10, num_frames), np.float32),
    })
    video_path = os.path.join(folder, name + ".mp4")
    n_video = num_frames if video_frames is None else video_frames
    with av.open(video_path, mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = SURREAL_W, SURREAL_H, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast"}
        for img in frames[:n_video]:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {
        "video": video_path, "info": info_path, "body16_2d": targets, "joints2D": joints2d,
        "joints3D": joints3d.astype(np.float32).astype(np.float64), "camLoc": cam_loc.astype(np.float32).astype(np.float64),
    }


# --- Human3.6M ----------------------------------------------------------------------------------
H36M_SIZE, H36M_F = 64, 70.0


def h36m_file_name(subject: int, action: int, subaction: int, cam: int, frame: int) -> str:
    stem = f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{cam:02d}"
    return f"{stem}/{stem}_{frame + 1:06d}.jpg"


def _rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def write_h36m_subject(root: str, subject: int, seed: int, actions=((2, 1),), cams=(1, 2),
                       num_frames: int = 10, radius: float = 3.2) -> dict:
    """Writes annotations/Human36M_subject{S}_{data,camera,joint_3d}.json and the images.

    Camera 2 is camera 1 turned 180 degrees about its optical axis, so its view is the point
    mirror of view 1 through the image centre (every blob stays on its own grid cell).
    Returns dict(cameras {cam: (R, t, K)}, targets {(action, subaction, frame, cam): (16, 2)},
    images [entries in file order]).
    """
    rng = np.random.default_rng(seed)
    ann = os.path.join(root, "annotations")
    os.makedirs(ann, exist_ok=True)
    c = (H36M_SIZE - 1) / 2.0
    k = np.array([[H36M_F, 0, c], [0, H36M_F, c], [0, 0, 1.0]])
    r1, t1 = _rotation(rng), rng.uniform(-500, 500, size=3)
    rz = np.diag([-1.0, -1.0, 1.0])
    cameras = {1: (r1, t1, k), 2: (rz @ r1, rz @ t1, k)}
    cameras = {cam: cameras[cam] for cam in cams}
    joint_3d, images, targets = {}, [], {}
    image_id = 0
    for action, subaction in actions:
        per_frame = {}
        for frame in range(num_frames):
            pos = body16_layout(rng, H36M_SIZE, H36M_SIZE, jitter=1.0)
            uv = np.zeros((17, 2))
            z = np.full(17, 4500.0) + rng.uniform(-300, 300, size=17)
            for b, bname in enumerate(BODY16):
                if bname == "thorax":
                    continue
                name = {"upper_neck": "neck"}.get(bname, bname)
                uv[H36M_NAMES.index(name)] = pos[b]
            uv[H36M_NAMES.index("torso")] = pos[BODY16.index("thorax")] + 3.0
            uv[H36M_NAMES.index("nose")] = pos[BODY16.index("head_top")] + 3.0
            z[H36M_NAMES.index("r_shoulder")] = z[H36M_NAMES.index("l_shoulder")]  # thorax projects mid-way
            cam1 = np.stack([(uv[:, 0] - c) / H36M_F * z, (uv[:, 1] - c) / H36M_F * z, z], axis=1)
            world = (cam1 - t1) @ r1  # R1^T (X - t1)
            per_frame[str(frame)] = world.tolist()
            for cam in cams:
                shown = pos if cam == 1 else (H36M_SIZE - 1) - pos
                targets[(action, subaction, frame, cam)] = shown
        joint_3d.setdefault(str(action), {})[str(subaction)] = per_frame
        for cam in cams:
            for frame in range(num_frames):
                fname = h36m_file_name(subject, action, subaction, cam, frame)
                img = blank(H36M_SIZE, H36M_SIZE)
                draw_blobs(img, targets[(action, subaction, frame, cam)], BODY16, radius)
                save_jpeg(os.path.join(root, "images", fname), img)
                images.append({
                    "id": image_id, "file_name": fname, "width": H36M_SIZE, "height": H36M_SIZE,
                    "subject": subject, "action_name": f"Action{action}", "action_idx": action,
                    "subaction_idx": subaction, "cam_idx": cam, "frame_idx": frame,
                })
                image_id += 1
    data = {"images": images, "annotations": [
        {"id": im["id"], "image_id": im["id"], "bbox": [0, 0, H36M_SIZE, H36M_SIZE], "keypoints_vis": [True] * 17}
        for im in images
    ]}
    camera_json = {str(cam): {"R": r.tolist(), "t": t.tolist(), "f": [kk[0, 0], kk[1, 1]], "c": [kk[0, 2], kk[1, 2]]}
                   for cam, (r, t, kk) in cameras.items()}
    for kind, obj in (("data", data), ("camera", camera_json), ("joint_3d", joint_3d)):
        with open(os.path.join(ann, f"Human36M_subject{subject}_{kind}.json"), "w") as f:
            json.dump(obj, f)
    return {"cameras": cameras, "targets": targets, "images": images}


# --- LSP ----------------------------------------------------------------------------------------
def write_lsp(root: str, num_images: int, seed: int, radius: float = 3.2) -> dict:
    """Writes images/im%04d.jpg (sizes vary) and joints.mat with ``joints`` (3, 14, N).

    The third row is 1 for occluded joints (as in the release). Returns dict(joints, sizes).
    """
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    joints = np.zeros((3, 14, num_images))
    sizes = []
    for i in range(num_images):
        w, h = int(rng.choice([56, 64, 72])), int(rng.choice([64, 72]))
        pos = body16_layout(rng, w, h, jitter=1.0)
        names = [{"neck": "upper_neck"}.get(n, n) for n in LSP_NAMES]
        for j, name in enumerate(names):
            joints[:2, j, i] = pos[BODY16.index(name)]
        joints[2, :, i] = (rng.random(14) < 0.3).astype(np.float64)
        img = blank(w, h)
        draw_blobs(img, joints[:2, :, i].T, names, radius)
        save_jpeg(os.path.join(root, "images", f"im{i + 1:04d}.jpg"), img)
        sizes.append((w, h))
    savemat(os.path.join(root, "joints.mat"), {"joints": joints})
    return {"joints": joints, "sizes": sizes}


# --- 3DPW ---------------------------------------------------------------------------------------
def write_3dpw_sequence(root: str, split_folder: str, seq: str, num_frames: int, num_persons: int,
                        seed: int, radius: float = 3.2, missing=(), low_conf=None) -> dict:
    """Writes sequenceFiles/<split_folder>/<seq>.pkl (protocol 2, latin1-loadable) and images.

    Person p occupies the p-th 64-px-wide column of a (64 x 64*P) image. ``missing``: (person,
    frame) pairs with no associated detection (all zeros). ``low_conf``: dict (person, frame) ->
    list of OpenPose joint names given confidence 0.1.
    Returns dict(poses2d list of (N, 3, 18)).
    """
    rng = np.random.default_rng(seed)
    low_conf = low_conf or {}
    width, height = 64 * num_persons, 64
    poses2d = [np.zeros((num_frames, 3, 18)) for _ in range(num_persons)]
    for frame in range(num_frames):
        img = blank(width, height)
        for p in range(num_persons):
            if (p, frame) in missing:
                continue
            pos = body16_layout(rng, 64, 64, jitter=1.0, x0=64.0 * p)
            xy = np.zeros((18, 2))
            for j, name in enumerate(OPENPOSE18_NAMES):
                b = {"neck": "upper_neck"}.get(name)
                if name in BODY16 or b:
                    xy[j] = pos[BODY16.index(b or name)]
            neck = pos[BODY16.index("upper_neck")]
            for j, off in ((0, (0, -4)), (14, (-2, -6)), (15, (2, -6)), (16, (-3, -5)), (17, (3, -5))):
                xy[j] = neck + np.array(off, np.float64)
            conf = rng.uniform(0.5, 1.0, size=18)
            for name in low_conf.get((p, frame), ()):
                conf[OPENPOSE18_NAMES.index(name)] = 0.1
            poses2d[p][frame, :2] = xy.T
            poses2d[p][frame, 2] = conf
            drawn = [(b, pos[b]) for b, n in enumerate(BODY16) if n != "head_top"]
            draw_blobs(img, [q for _, q in drawn], [BODY16[b] for b, _ in drawn], radius)
        save_jpeg(os.path.join(root, "imageFiles", seq, f"image_{frame:05d}.jpg"), img)
    data = {
        "sequence": seq,
        "poses2d": poses2d,
        "jointPositions": [rng.normal(size=(num_frames, 72)) for _ in range(num_persons)],
        "cam_poses": np.tile(np.eye(4), (num_frames, 1, 1)),
        "cam_intrinsics": np.array([[50.0, 0, 32.0], [0, 50.0, 32.0], [0, 0, 1]]),
        "campose_valid": [np.ones(num_frames, bool) for _ in range(num_persons)],
        "img_frame_ids": np.arange(num_frames) * 2,
        "genders": ["m"] * num_persons,
        "betas": [np.zeros(10) for _ in range(num_persons)],
        "poses": [np.zeros((num_frames, 72)) for _ in range(num_persons)],
        "trans": [np.zeros((num_frames, 3)) for _ in range(num_persons)],
    }
    folder = os.path.join(root, "sequenceFiles", split_folder)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, seq + ".pkl"), "wb") as f:
        pickle.dump(data, f, protocol=2)
    return {"poses2d": poses2d}
