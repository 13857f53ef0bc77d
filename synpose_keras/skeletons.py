"""Skeleton definitions: declarative tables, no logic beyond lookups.

Two skeletons are canonical in synpose-keras:

- ``HAND21``: wrist, then thumb, index, middle, ring, little finger, each MCP, PIP, DIP, tip
  (the order of FreiHAND and of the common RHD->H3D protocol).
- ``BODY16``: MPII order (0 r-ankle ... 15 l-wrist), as used by SURREAL->Human3.6M/LSP.

Part groups follow the protocol of TLlib/UniFrame (docs/protocol.md, "Evaluation protocol").
For bodies the paper's "All" column matches the mean over all 16 keypoints, while TLlib averages
the 12 limb joints; both are exposed (``All-12`` and ``All-16``).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """A keypoint skeleton.

    Args:
        name: str. Registry name ("hand21", "body16").
        keypoint_names: tuple of str. One name per keypoint, canonical order.
        parents: tuple of int. Parent index of each keypoint in the kinematic tree; -1 for the root.
        flip_pairs: tuple of (int, int). Keypoints swapped by a horizontal flip.
        groups: mapping str -> tuple of int. Part groups reported in the PCK table, in column order.
        all_columns: mapping str -> tuple of int. The "All" column(s): which keypoints are averaged.
        bend_limits: mapping int -> float. Joint limits used by the kinematic projection of 3D
            pseudo-labels: for keypoint i, the largest angle (degrees) between its bone
            (parent(i) -> i) and the parent's bone (parent(parent(i)) -> parent(i)). Keypoints
            not listed are unconstrained. Defaults to no limits.
        inversion_pairs: tuple of (int, int). The keypoints a mirror-image reading of the pose
            swaps (an "inversion" error, Ronchi & Perona 2017): left/right for bodies (the flip
            pairs); for hands, whose chirality is fixed, the finger order (index <-> little,
            middle <-> ring), the error of reading the palm side as the back. Defaults to
            ``flip_pairs``.
    """

    name: str
    keypoint_names: tuple
    parents: tuple
    flip_pairs: tuple
    groups: Mapping[str, tuple]
    all_columns: Mapping[str, tuple]
    bend_limits: Mapping[int, float] = dataclasses.field(default_factory=dict)
    inversion_pairs: Optional[tuple] = None

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def bones(self) -> tuple:
        """(child, parent) pairs of the kinematic tree, in keypoint order."""
        return tuple((i, p) for i, p in enumerate(self.parents) if p >= 0)

    @property
    def flip_index(self) -> tuple:
        """Permutation that maps keypoint i to its mirror keypoint (identity when unpaired)."""
        return _pair_permutation(self.flip_pairs, self.num_keypoints)

    @property
    def inversion_index(self) -> tuple:
        """Permutation that maps keypoint i to its keypoint under an inversion (see Args)."""
        pairs = self.flip_pairs if self.inversion_pairs is None else self.inversion_pairs
        return _pair_permutation(pairs, self.num_keypoints)

    @property
    def columns(self) -> tuple:
        """Every column of the PCK table, groups first then the All column(s)."""
        return tuple(self.groups) + tuple(self.all_columns)

    def index(self, name: str) -> int:
        return self.keypoint_names.index(name)


def _pair_permutation(pairs, num_keypoints: int) -> tuple:
    perm = list(range(num_keypoints))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


_FINGERS = ("thumb", "index", "middle", "ring", "little")
_FINGER_JOINTS = ("mcp", "pip", "dip", "tip")

HAND21 = Skeleton(
    name="hand21",
    keypoint_names=("wrist",)
    + tuple(f"{f}_{j}" for f in _FINGERS for j in _FINGER_JOINTS),
    # each finger: MCP <- wrist, PIP <- MCP, DIP <- PIP, tip <- DIP
    parents=(-1,) + tuple(0 if j == 0 else 1 + 4 * f + j - 1 for f in range(5) for j in range(4)),
    flip_pairs=(),
    groups={
        "MCP": (1, 5, 9, 13, 17),
        "PIP": (2, 6, 10, 14, 18),
        "DIP": (3, 7, 11, 15, 19),
        "Fin": (4, 8, 12, 16, 20),
    },
    all_columns={"All": tuple(range(21))},
    # flexion ranges of the finger joints (MCP ~90°, PIP ~110°, DIP ~90°): the bone ending at the
    # PIP bends at the MCP, and so on. Thumb joints are looser; kept at the same bounds.
    bend_limits={**{1 + 4 * f + 1: 100.0 for f in range(5)},
                 **{1 + 4 * f + 2: 120.0 for f in range(5)},
                 **{1 + 4 * f + 3: 100.0 for f in range(5)}},
    # palm read as back: index <-> little, middle <-> ring, joint by joint (thumb and wrist stay)
    inversion_pairs=tuple((1 + 4 * a + j, 1 + 4 * b + j) for a, b in ((1, 4), (2, 3))
                          for j in range(4)),
)

BODY16 = Skeleton(
    name="body16",
    keypoint_names=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
        "pelvis", "thorax", "upper_neck", "head_top",
        "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
    ),
    parents=(1, 2, 6, 6, 3, 4, -1, 6, 7, 8, 11, 12, 7, 7, 13, 14),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    groups={
        "Head": (9,),
        "Sld": (12, 13),
        "Elb": (11, 14),
        "Wrist": (10, 15),
        "Hip": (2, 3),
        "Knee": (1, 4),
        "Ankle": (0, 5),
    },
    all_columns={
        "All": (0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15),
        "All-16": tuple(range(16)),
    },
    # knees and elbows: at most ~160° of flexion between the two limb segments.
    bend_limits={0: 160.0, 5: 160.0, 10: 160.0, 15: 160.0},
)

SKELETONS = {s.name: s for s in (HAND21, BODY16)}
TASK_SKELETON = {"hand": "hand21", "body": "body16"}


def get_skeleton(name: str) -> Skeleton:
    """Returns a skeleton by name ("hand21", "body16") or task ("hand", "body")."""
    key = TASK_SKELETON.get(name, name)
    if key not in SKELETONS:
        raise ValueError(
            f"Unknown skeleton. Expected one of {sorted(SKELETONS) + sorted(TASK_SKELETON)}. "
            f"Received: skeleton={name!r}"
        )
    return SKELETONS[key]
