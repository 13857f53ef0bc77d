"""A procedural 3D human body (Body16, MPII order) with proportions, joint limits and annotation gaps.

Body frame (metres, s = 1): origin at the pelvis label, +x towards the subject's *left*, +y up,
+z forward (the way the subject faces); (left, up, forward) is right-handed. "Left"/"right" in
keypoint names are the subject's own, as in MPII: seen from the front, the subject's right side
is on the image's left, and a horizontal image flip must swap them (``BODY16.flip_pairs``).

Joint angles are in degrees: flexion raises a limb forwards (shoulder, hip), bends the knee
backwards and the elbow forwards; abduction moves a limb away from the body's mid-plane.

The annotation gap mimics SURREAL -> Human3.6M (docs/protocol.md, "Dataset conventions";
datasets/surreal.md): the source labels the shoulders at the collar joints and the head at its
centre; the target labels the true shoulder joints and the top of the head (``BODY_GAP``).
"""

from __future__ import annotations

import numpy as np

from synpose_keras.datasets.synthetic.posed_skeleton import PosedSkeleton, PrimitiveList
from synpose_keras.datasets.synthetic.rotations import rot_x, rot_y, rot_z
from synpose_keras.skeletons import BODY16

# Jittered bone lengths (m, s = 1): each x s x (1 + e), e ~ U(-BONE_JITTER, BONE_JITTER).
BONE_LENGTHS = {
    "spine": 0.47,      # pelvis -> thorax
    "neck": 0.13,       # thorax -> upper neck
    "upper_arm": 0.28,  # shoulder -> elbow
    "forearm": 0.25,    # elbow -> wrist
    "thigh": 0.43,      # hip -> knee
    "shin": 0.42,       # knee -> ankle
}
# Fixed offsets (m, x s, no jitter), in the frame named in the comment.
HIP_OFFSET = (0.095, -0.065, 0.0)       # pelvis -> left hip, root frame (right hip: x negated)
SHOULDER_OFFSET = (0.175, -0.01, -0.01)  # thorax -> left shoulder joint, torso frame
HEAD_CENTRE_OFFSET = (0.0, 0.10, 0.02)   # upper neck -> head centre, head frame
HEAD_RADIUS = 0.105

SCALE_RANGE = (0.90, 1.10)
BONE_JITTER = 0.05

# The annotation gap (m, x s): target label = source label + frame @ offset, in the torso frame for
# the shoulders (the target's shoulder joint is 10.5 cm further out, 3 cm lower and 1 cm further
# back than the source's collar point) and in the head frame for the head (head top = head centre
# + one head radius straight up).
SHOULDER_GAP = (0.105, -0.03, -0.01)  # left shoulder; the right one has x negated
HEAD_GAP = (0.0, HEAD_RADIUS, 0.0)
BODY_GAP = {9: HEAD_GAP, 12: (-SHOULDER_GAP[0],) + SHOULDER_GAP[1:], 13: SHOULDER_GAP}

JOINT_LIMITS = {
    "spine_flex": (-15.0, 40.0),
    "spine_lat": (-20.0, 20.0),
    "spine_twist": (-30.0, 30.0),
    "neck_flex": (-30.0, 40.0),
    "neck_lat": (-25.0, 25.0),
    "neck_turn": (-50.0, 50.0),
    **{k: v for side in ("r", "l") for k, v in (
        (f"{side}_shoulder_flex", (-40.0, 160.0)),
        (f"{side}_shoulder_abd", (-10.0, 150.0)),
        (f"{side}_shoulder_twist", (-60.0, 60.0)),
        (f"{side}_elbow_flex", (0.0, 145.0)),
        (f"{side}_hip_flex", (-20.0, 110.0)),
        (f"{side}_hip_abd", (-15.0, 45.0)),
        (f"{side}_hip_twist", (-30.0, 30.0)),
        (f"{side}_knee_flex", (0.0, 140.0)),
    )},
}
PARAM_NAMES = tuple(JOINT_LIMITS)
LIMITS_LOW = np.array([v[0] for v in JOINT_LIMITS.values()])
LIMITS_HIGH = np.array([v[1] for v in JOINT_LIMITS.values()])

_JITTERED = ("spine", "neck", "r_upper_arm", "r_forearm", "l_upper_arm", "l_forearm",
             "r_thigh", "r_shin", "l_thigh", "l_shin")

# Bones of the *source* labels whose length changes with the pose: the source's "shoulder" is the
# collar point, which is not the centre of the arm's rotation.
SOURCE_NONRIGID_BONES = ((11, 12), (14, 13))


def nominal_bone_lengths(convention: str = "source") -> dict:
    """{(child, parent): length at s = 1 without jitter} for every rigid bone of ``convention``."""
    shoulder = np.asarray(SHOULDER_OFFSET)
    collar = shoulder - np.asarray(SHOULDER_GAP)
    head = np.asarray(HEAD_CENTRE_OFFSET) + (np.asarray(HEAD_GAP) if convention == "target" else 0.0)
    out = {
        (0, 1): BONE_LENGTHS["shin"], (5, 4): BONE_LENGTHS["shin"],
        (1, 2): BONE_LENGTHS["thigh"], (4, 3): BONE_LENGTHS["thigh"],
        (2, 6): float(np.linalg.norm(HIP_OFFSET)), (3, 6): float(np.linalg.norm(HIP_OFFSET)),
        (7, 6): BONE_LENGTHS["spine"], (8, 7): BONE_LENGTHS["neck"],
        (9, 8): float(np.linalg.norm(head)),
        (10, 11): BONE_LENGTHS["forearm"], (15, 14): BONE_LENGTHS["forearm"],
        (12, 7): float(np.linalg.norm(shoulder if convention == "target" else collar)),
        (13, 7): float(np.linalg.norm(shoulder if convention == "target" else collar)),
    }
    if convention == "target":
        out[(11, 12)] = out[(14, 13)] = BONE_LENGTHS["upper_arm"]
    return out


class BodyModel:
    """Procedural human bodies: subjects (size, proportions), poses (joint angles) and geometry.

    Example:

    ```python
    rng = np.random.default_rng(0)
    model = BodyModel()
    posed = model.pose(model.sample_subject(rng), model.sample_pose(rng))
    posed.keypoints_target  # (16, 3) metres: true shoulders, head top
    ```
    """

    task = "body"
    skeleton = BODY16
    param_names = PARAM_NAMES
    limits_low = LIMITS_LOW
    limits_high = LIMITS_HIGH
    gap = BODY_GAP

    def sample_subject(self, rng: np.random.Generator) -> dict:
        """A subject: overall size ``scale`` and per-bone length factors ``bone_factors``."""
        scale = float(rng.uniform(*SCALE_RANGE))
        factors = 1.0 + rng.uniform(-BONE_JITTER, BONE_JITTER, size=len(_JITTERED))
        return {"scale": scale, "bone_factors": factors}

    def sample_pose(self, rng: np.random.Generator) -> np.ndarray:
        """Joint angles (degrees, ``PARAM_NAMES`` order) inside ``JOINT_LIMITS``.

        Mostly everyday poses (standing, walking, reaching) with a share of wide poses drawn
        uniformly over the arm and leg ranges; knees bend when the hip flexes a lot (sitting,
        kneeling, kicking).
        """
        n = rng.normal
        p = {
            "spine_flex": n(5, 12), "spine_lat": n(0, 7), "spine_twist": n(0, 12),
            "neck_flex": n(5, 15), "neck_lat": n(0, 8), "neck_turn": n(0, 20),
        }
        for side in ("r", "l"):
            wide = rng.random() < 0.4
            p[f"{side}_shoulder_flex"] = rng.uniform(-30, 160) if wide else n(10, 25)
            p[f"{side}_shoulder_abd"] = rng.uniform(-10, 150) if wide else abs(n(12, 15))
            p[f"{side}_shoulder_twist"] = n(0, 25)
            p[f"{side}_elbow_flex"] = rng.uniform(0, 140) if rng.random() < 0.5 else abs(n(15, 15))
            p[f"{side}_hip_flex"] = rng.uniform(-20, 110) if rng.random() < 0.3 else n(5, 20)
            p[f"{side}_hip_abd"] = abs(n(5, 12))
            p[f"{side}_hip_twist"] = n(0, 10)
            bent = p[f"{side}_hip_flex"] > 40 or rng.random() < 0.3
            p[f"{side}_knee_flex"] = rng.uniform(15, 130) if bent else abs(n(5, 10))
        return np.clip(np.array([p[k] for k in PARAM_NAMES]), LIMITS_LOW, LIMITS_HIGH)

    def pose(self, subject: dict, params: np.ndarray, rotation=None, translation=None) -> PosedSkeleton:
        """Forward kinematics and surface of ``subject`` in pose ``params``.

        Args:
            subject: dict from :meth:`sample_subject`.
            params: (len(PARAM_NAMES),) joint angles in degrees (clipped to the limits).
            rotation: optional (3, 3) orientation of the body frame in the world. Defaults to identity.
            translation: optional (3,) world position of the pelvis. Defaults to the origin.
        """
        s = subject["scale"]
        L = dict(zip(_JITTERED, subject["bone_factors"]))
        for name in _JITTERED:
            L[name] *= s * BONE_LENGTHS[name.split("_", 1)[-1] if name[:2] in ("r_", "l_") else name]
        q = dict(zip(PARAM_NAMES, np.radians(np.clip(params, LIMITS_LOW, LIMITS_HIGH))))
        root = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
        pelvis = np.zeros(3) if translation is None else np.asarray(translation, np.float64)

        kp = np.zeros((16, 3))
        frames = np.tile(np.eye(3), (16, 1, 1))
        prims = PrimitiveList()
        kp[6], frames[6] = pelvis, root
        torso = root @ rot_y(q["spine_twist"]) @ rot_x(q["spine_flex"]) @ rot_z(q["spine_lat"])
        kp[7], frames[7] = pelvis + torso @ np.array([0.0, L["spine"], 0.0]), torso
        head = torso @ rot_y(q["neck_turn"]) @ rot_x(q["neck_flex"]) @ rot_z(q["neck_lat"])
        kp[8], frames[8] = kp[7] + head @ np.array([0.0, L["neck"], 0.0]), head
        head_centre = kp[8] + head @ (np.asarray(HEAD_CENTRE_OFFSET) * s)
        kp[9], frames[9] = head_centre, head

        shoulders = {}
        for side, sign, (sh, el, wr), (hp, kn, an) in (
            ("r", -1.0, (12, 11, 10), (2, 1, 0)),
            ("l", 1.0, (13, 14, 15), (3, 4, 5)),
        ):
            mirror = np.array([sign, 1.0, 1.0])
            shoulder = kp[7] + torso @ (np.asarray(SHOULDER_OFFSET) * mirror * s)
            shoulders[side] = shoulder
            kp[sh] = shoulder - torso @ (np.asarray(SHOULDER_GAP) * mirror * s)  # collar point
            frames[sh] = torso
            upper = torso @ rot_z(sign * q[f"{side}_shoulder_abd"]) @ rot_x(-q[f"{side}_shoulder_flex"])
            upper = upper @ rot_y(sign * q[f"{side}_shoulder_twist"])
            kp[el], frames[el] = shoulder + upper @ np.array([0.0, -L[f"{side}_upper_arm"], 0.0]), upper
            fore = upper @ rot_x(-q[f"{side}_elbow_flex"])
            kp[wr], frames[wr] = kp[el] + fore @ np.array([0.0, -L[f"{side}_forearm"], 0.0]), fore
            hand_end = kp[wr] + fore @ np.array([0.0, -0.085 * s, 0.0])

            kp[hp], frames[hp] = pelvis + root @ (np.asarray(HIP_OFFSET) * mirror * s), root
            thigh = root @ rot_z(sign * q[f"{side}_hip_abd"]) @ rot_x(-q[f"{side}_hip_flex"])
            thigh = thigh @ rot_y(sign * q[f"{side}_hip_twist"])
            kp[kn], frames[kn] = kp[hp] + thigh @ np.array([0.0, -L[f"{side}_thigh"], 0.0]), thigh
            shin = thigh @ rot_x(q[f"{side}_knee_flex"])
            kp[an], frames[an] = kp[kn] + shin @ np.array([0.0, -L[f"{side}_shin"], 0.0]), shin
            toe = kp[an] + shin @ (np.array([0.0, -0.05, 0.14]) * s)

            prims.capsule(shoulder, kp[el], 0.048 * s, 0.040 * s, "shirt", 1.0)
            prims.capsule(kp[el], kp[wr], 0.038 * s, 0.030 * s, "skin", 1.0)
            prims.capsule(kp[wr], hand_end, 0.034 * s, 0.029 * s, "skin", 0.93)
            prims.capsule(kp[hp], kp[kn], 0.075 * s, 0.055 * s, "trousers", 1.0)
            prims.capsule(kp[kn], kp[an], 0.052 * s, 0.040 * s, "trousers", 0.93)
            prims.capsule(kp[an], toe, 0.042 * s, 0.034 * s, "shoes", 1.0)
            side_top = kp[7] + torso @ (np.array([0.125 * sign, -0.03, 0.0]) * s)
            prims.capsule(side_top, kp[hp], 0.085 * s, 0.085 * s, "shirt", 0.96)

        # torso, neck and head
        prims.capsule(pelvis + torso @ (np.array([0.0, 0.08, 0.0]) * s), kp[7] - torso @ (np.array([0.0, 0.05, 0.0]) * s),
                      0.12 * s, 0.12 * s, "shirt", 1.0)
        prims.capsule(shoulders["r"], shoulders["l"], 0.07 * s, 0.07 * s, "shirt", 1.0)
        prims.capsule(kp[2], kp[3], 0.095 * s, 0.095 * s, "trousers", 1.0)
        prims.capsule(kp[7] + torso @ (np.array([0.0, 0.02, 0.0]) * s), kp[8], 0.05 * s, 0.045 * s, "skin", 0.9)
        prims.sphere(head_centre, HEAD_RADIUS * s, "skin", 1.0)
        prims.sphere(head_centre + head @ (np.array([0.0, 0.02, -0.025]) * s), 0.10 * s, "hair", 1.0)
        prims.sphere(head_centre + head @ (np.array([0.0, -0.015, 0.10]) * s), 0.02 * s, "skin", 0.9)

        target = kp.copy()
        for k, offset in BODY_GAP.items():
            target[k] = kp[k] + frames[k] @ (np.asarray(offset) * s)
        return prims.build(kp, target, frames, s)
