"""A procedural 3D left hand (Hand21) with bone proportions, joint limits and annotation gaps.

Hand frame (metres, s = 1): origin at the wrist label, +y distal (towards the middle finger),
+z palmar (the direction the palm faces), +x = y x z ulnar (towards the little finger). With
these axes the hand is a *left* hand (thumb on -x); the common protocol mirrors right hands
into left ones (docs/protocol.md, "Dataset conventions"), so Hand21 has no flip pairs and every
hand here is a left hand.

Joint angles are in degrees. Flexion turns a bone towards the palm (+z of its parent frame),
abduction turns it in the palm plane towards the thumb side (+ = radial).

Reference:
    Hand proportions after the adult hand anthropometry used by MANO-style hand models (bone
    lengths in ``FINGER_LENGTHS``, rounded); flexion ranges as in ``skeletons.HAND21.bend_limits``.
"""

from __future__ import annotations

import numpy as np

from synpose_keras.datasets.synthetic.posed_skeleton import PosedSkeleton, PrimitiveList
from synpose_keras.datasets.synthetic.rotations import rot_x, rot_y, rot_z
from synpose_keras.skeletons import HAND21

FINGERS = ("thumb", "index", "middle", "ring", "little")

# MCP positions in the hand frame (m, s = 1) and the rest direction of each finger's proximal
# bone (degrees of abduction from +y, + = radial). The thumb starts at the wrist.
MCP_OFFSETS = {
    "index": (-0.026, 0.082, 0.0),
    "middle": (-0.007, 0.085, 0.0),
    "ring": (0.011, 0.080, 0.0),
    "little": (0.027, 0.071, 0.0),
}
REST_SPLAY_DEG = {"index": 8.0, "middle": 1.0, "ring": -5.0, "little": -13.0}
# Thumb base orientation: turned 42 deg radially in the palm plane, then rolled 55 deg about its
# own axis so that its pad faces the fingers.
THUMB_BASE_DEG = (42.0, 55.0)

# Bone lengths (m, s = 1): for the thumb (wrist->MCP, MCP->PIP, PIP->DIP, DIP->tip); for the other
# fingers (MCP->PIP, PIP->DIP, DIP->tip) -- wrist->MCP is |MCP_OFFSETS|.
FINGER_LENGTHS = {
    "thumb": (0.040, 0.035, 0.030, 0.025),
    "index": (0.040, 0.024, 0.020),
    "middle": (0.045, 0.028, 0.022),
    "ring": (0.042, 0.027, 0.021),
    "little": (0.033, 0.020, 0.019),
}
FINGER_RADIUS = {"thumb": 0.0110, "index": 0.0090, "middle": 0.0093, "ring": 0.0088, "little": 0.0078}

# Subject variation: overall size s ~ U(SCALE_RANGE); every bone length (and MCP offset) is then
# multiplied by its own factor 1 + e, e ~ U(-BONE_JITTER, BONE_JITTER).
SCALE_RANGE = (0.88, 1.12)
BONE_JITTER = 0.05

# Joint limits (degrees): name -> (low, high). Pose vectors follow this order.
JOINT_LIMITS = {
    "wrist_flex": (-60.0, 70.0),
    "wrist_dev": (-25.0, 35.0),
    "thumb_cmc_flex": (-10.0, 50.0),
    "thumb_cmc_abd": (-15.0, 40.0),
    "thumb_mcp_flex": (-10.0, 60.0),
    "thumb_pip_flex": (-10.0, 70.0),
    "thumb_dip_flex": (-15.0, 80.0),
    **{k: v for f in FINGERS[1:] for k, v in (
        (f"{f}_mcp_flex", (-20.0, 90.0)),
        (f"{f}_mcp_abd", (-15.0, 15.0)),
        (f"{f}_pip_flex", (0.0, 105.0)),
        (f"{f}_dip_flex", (0.0, 80.0)),
    )},
}
PARAM_NAMES = tuple(JOINT_LIMITS)
LIMITS_LOW = np.array([v[0] for v in JOINT_LIMITS.values()])
LIMITS_HIGH = np.array([v[1] for v in JOINT_LIMITS.values()])

# The annotation gap (m, x s). target label = source label + frame @ offset, where the frame is
# the hand frame for the wrist and the distal phalanx frame (y along the bone, z towards the pad)
# for the tips: the target labels the wrist 12 mm further towards the forearm, and each fingertip
# at the centre of its pad (6 mm back from the tip, 4.5 mm towards the palm side) instead of at
# the tip's end.
TIP_GAP = (0.0, -0.006, 0.0045)
WRIST_GAP = (0.0, -0.012, 0.0)
HAND_GAP = {0: WRIST_GAP, **{4 + 4 * f: TIP_GAP for f in range(5)}}

# Palm outline in the hand frame (m, s = 1), besides the four MCPs.
_WRIST_RADIAL = (-0.021, 0.004, 0.0)
_WRIST_ULNAR = (0.022, 0.004, 0.0)
_THENAR = (-0.030, 0.040, 0.0)
_FOREARM_LENGTH = 0.16
_PALM_HALF_THICKNESS = 0.011


def _bone_names() -> tuple:
    names = ["thumb_0", "thumb_1", "thumb_2", "thumb_3"]
    for f in FINGERS[1:]:
        names += [f"{f}_0", f"{f}_1", f"{f}_2", f"{f}_3"]
    return tuple(names)


BONE_NAMES = _bone_names()  # one per Hand21 keypoint 1..20: the bone ending at that keypoint


def nominal_bone_lengths() -> np.ndarray:
    """(20,) bone lengths at s = 1 without jitter, for keypoints 1..20 (bone parent -> keypoint)."""
    out = list(FINGER_LENGTHS["thumb"])
    for f in FINGERS[1:]:
        out += [float(np.linalg.norm(MCP_OFFSETS[f]))] + list(FINGER_LENGTHS[f])
    return np.array(out)


class HandModel:
    """Procedural left hands: subjects (size, proportions), poses (joint angles) and geometry.

    Args:
        None.

    Example:

    ```python
    rng = np.random.default_rng(0)
    model = HandModel()
    subject = model.sample_subject(rng)
    posed = model.pose(subject, model.sample_pose(rng))
    posed.keypoints_source  # (21, 3) metres, hand frame
    ```
    """

    task = "hand"
    skeleton = HAND21
    param_names = PARAM_NAMES
    limits_low = LIMITS_LOW
    limits_high = LIMITS_HIGH
    gap = HAND_GAP

    def sample_subject(self, rng: np.random.Generator) -> dict:
        """A subject: overall size ``scale`` and per-bone length factors ``bone_factors`` (20,)."""
        scale = float(rng.uniform(*SCALE_RANGE))
        factors = 1.0 + rng.uniform(-BONE_JITTER, BONE_JITTER, size=len(BONE_NAMES))
        return {"scale": scale, "bone_factors": factors}

    def sample_pose(self, rng: np.random.Generator) -> np.ndarray:
        """Joint angles (degrees, ``PARAM_NAMES`` order), inside ``JOINT_LIMITS``.

        Half of the hands are open; in the other half each finger has its own flexion level
        (at most 70 % of the way to a fist; thumb likewise); distal joints follow the middle ones
        (DIP ~ 0.7 PIP), as in real hands. (Benchmark v3; v2 also had a sixth of fist-like hands
        and levels up to 100 %.)
        """
        p = dict.fromkeys(PARAM_NAMES, 0.0)
        mode = rng.random()
        spread = rng.uniform(-0.2, 1.0)
        base = rng.uniform(0.0, 0.25) if mode < 0.5 else None
        for f in FINGERS[1:]:
            level = rng.uniform(0.0, 0.7) if base is None else float(np.clip(base + rng.normal(0, 0.12), 0, 1))
            p[f"{f}_mcp_flex"] = -15.0 + 105.0 * level + rng.normal(0, 8)
            p[f"{f}_pip_flex"] = 105.0 * level + rng.normal(0, 10)
            p[f"{f}_dip_flex"] = 0.7 * p[f"{f}_pip_flex"] + rng.normal(0, 8)
            abd = {"index": 12.0, "middle": 1.0, "ring": -6.0, "little": -13.0}[f] * spread
            p[f"{f}_mcp_abd"] = abd * (1.0 - 0.6 * level) + rng.normal(0, 3)
        level = rng.uniform(0.0, 0.7)
        p["thumb_cmc_flex"] = -5.0 + 50.0 * level + rng.normal(0, 6)
        p["thumb_cmc_abd"] = rng.uniform(-10.0, 35.0)
        p["thumb_mcp_flex"] = 55.0 * level + rng.normal(0, 8)
        p["thumb_pip_flex"] = 65.0 * level + rng.normal(0, 8)
        p["thumb_dip_flex"] = -10.0 + 80.0 * level + rng.normal(0, 8)
        p["wrist_flex"] = rng.normal(0, 25)
        p["wrist_dev"] = rng.normal(5, 12)
        return np.clip(np.array([p[n] for n in PARAM_NAMES]), LIMITS_LOW, LIMITS_HIGH)

    def pose(self, subject: dict, params: np.ndarray, rotation=None, translation=None) -> PosedSkeleton:
        """Forward kinematics and surface of ``subject`` in pose ``params``.

        Args:
            subject: dict from :meth:`sample_subject`.
            params: (len(PARAM_NAMES),) joint angles in degrees (clipped to the limits).
            rotation: optional (3, 3) hand-frame orientation in the world. Defaults to identity.
            translation: optional (3,) world position of the wrist. Defaults to the origin.
        """
        s = subject["scale"]
        fac = dict(zip(BONE_NAMES, subject["bone_factors"]))
        q = dict(zip(PARAM_NAMES, np.radians(np.clip(params, LIMITS_LOW, LIMITS_HIGH))))
        hand = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
        wrist = np.zeros(3) if translation is None else np.asarray(translation, np.float64)

        def at(frame, vec):
            return frame @ np.asarray(vec, np.float64)

        kp = np.zeros((21, 3))
        frames = np.tile(np.eye(3), (21, 1, 1))
        kp[0] = wrist
        frames[0] = hand
        prims = PrimitiveList()
        for fi, f in enumerate(FINGERS):
            i0 = 1 + 4 * fi
            r0 = FINGER_RADIUS[f] * s
            radii = [r0, 0.94 * r0, 0.87 * r0, 0.80 * r0]
            if f == "thumb":
                base = hand @ rot_z(np.radians(THUMB_BASE_DEG[0])) @ rot_y(np.radians(THUMB_BASE_DEG[1]))
                fr = base @ rot_z(q["thumb_cmc_abd"]) @ rot_x(q["thumb_cmc_flex"])
                lens = [L * s * fac[f"thumb_{j}"] for j, L in enumerate(FINGER_LENGTHS["thumb"])]
                kp[i0] = wrist + at(fr, (0.0, lens[0], 0.0))
                prims.capsule(wrist, kp[i0], 1.3 * r0, 1.1 * r0, "skin", 1.0)  # thenar mass
                flex = [q["thumb_mcp_flex"], q["thumb_pip_flex"], q["thumb_dip_flex"]]
                lens = lens[1:]
                radii = [1.0 * r0, 0.95 * r0, 0.89 * r0, 0.82 * r0]
            else:
                kp[i0] = wrist + at(hand, np.asarray(MCP_OFFSETS[f]) * s * fac[f"{f}_0"])
                prims.capsule(wrist, kp[i0], 1.15 * r0, 1.1 * r0, "skin", 1.0)  # metacarpal
                fr = hand @ rot_z(np.radians(REST_SPLAY_DEG[f]) + q[f"{f}_mcp_abd"])
                fr = fr @ rot_x(q[f"{f}_mcp_flex"])
                flex = [q[f"{f}_pip_flex"], q[f"{f}_dip_flex"]]
                lens = [L * s * fac[f"{f}_{j + 1}"] for j, L in enumerate(FINGER_LENGTHS[f])]
                flex = [0.0] + flex  # the MCP flexion is already in `fr`
            for j in range(3):
                fr = fr @ rot_x(flex[j])
                frames[i0 + j + 1] = fr
                kp[i0 + j + 1] = kp[i0 + j] + at(fr, (0.0, lens[j], 0.0))
                shade = (1.0, 0.92, 1.0)[j]
                prims.capsule(kp[i0 + j], kp[i0 + j + 1], radii[j], radii[j + 1], "skin", shade)
            # the nail: a small sphere on the dorsal side of the distal phalanx
            nail = kp[i0 + 3] + at(fr, (0.0, -0.35 * lens[2], -0.55 * radii[3]))
            prims.sphere(nail, 0.55 * radii[3], "nail", 1.0)
        # knuckle ridge and palm
        prims.capsule(kp[5], kp[17], 1.2 * FINGER_RADIUS["index"] * s, 1.2 * FINGER_RADIUS["little"] * s, "skin", 1.0)
        # the palm: a slab between two faces 11 mm either side of the metacarpal plane. The order
        # of the outline makes every triangle's front side face dorsally (-z): "skin" shows on
        # the back of the hand and "palm" on the palm (each face's inner side stays hidden)
        outline = [wrist + at(hand, np.asarray(_WRIST_RADIAL) * s), wrist + at(hand, np.asarray(_THENAR) * s),
                   kp[5], kp[9], kp[13], kp[17], wrist + at(hand, np.asarray(_WRIST_ULNAR) * s)]
        for side in (-1.0, 1.0):
            shift = at(hand, (0.0, 0.0, side * _PALM_HALF_THICKNESS * s))
            prims.polygon([v + shift for v in outline], front="skin", back="palm")
        prims.capsule(outline[0], outline[-1], 0.012 * s, 0.012 * s, "skin", 1.0)
        # forearm
        fore = hand @ rot_x(-q["wrist_flex"]) @ rot_z(-q["wrist_dev"])
        prims.capsule(wrist, wrist + at(fore, (0.0, -_FOREARM_LENGTH * s, 0.0)), 0.021 * s, 0.026 * s, "skin", 0.97)

        target = kp.copy()
        target[0] = kp[0] + at(hand, np.asarray(WRIST_GAP) * s)
        for tip in range(4, 21, 4):  # frames[tip] is the distal phalanx frame
            target[tip] = kp[tip] + at(frames[tip], np.asarray(TIP_GAP) * s)
        return prims.build(kp, target, frames, s)
