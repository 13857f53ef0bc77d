"""Skeleton tables: lengths, tree structure, flip symmetry, part groups (metadata is data)."""

import pytest

from synpose_keras.skeletons import BODY16, HAND21, SKELETONS, Skeleton, get_skeleton

ALL_SKELETONS = [HAND21, BODY16]


@pytest.mark.parametrize("skeleton", ALL_SKELETONS, ids=lambda s: s.name)
def test_lengths(skeleton):
    k = skeleton.num_keypoints
    assert len(skeleton.keypoint_names) == k
    assert len(skeleton.parents) == k
    assert len(set(skeleton.keypoint_names)) == k
    assert len(skeleton.bones) == k - 1


def test_sizes():
    assert HAND21.num_keypoints == 21
    assert BODY16.num_keypoints == 16


@pytest.mark.parametrize("skeleton", ALL_SKELETONS, ids=lambda s: s.name)
def test_parents_form_one_tree(skeleton):
    k = skeleton.num_keypoints
    roots = [i for i, p in enumerate(skeleton.parents) if p == -1]
    assert len(roots) == 1
    assert all(p == -1 or 0 <= p < k for p in skeleton.parents)
    for start in range(k):
        seen, node = set(), start
        while skeleton.parents[node] != -1:
            assert node not in seen, f"cycle through {skeleton.keypoint_names[node]}"
            seen.add(node)
            node = skeleton.parents[node]
        assert node == roots[0]


def test_roots():
    assert HAND21.keypoint_names[HAND21.parents.index(-1)] == "wrist"
    assert BODY16.keypoint_names[BODY16.parents.index(-1)] == "pelvis"


@pytest.mark.parametrize("skeleton", ALL_SKELETONS, ids=lambda s: s.name)
def test_flip_index_is_an_involution(skeleton):
    perm = skeleton.flip_index
    assert sorted(perm) == list(range(skeleton.num_keypoints))
    assert all(perm[perm[i]] == i for i in range(skeleton.num_keypoints))


@pytest.mark.parametrize("skeleton", ALL_SKELETONS, ids=lambda s: s.name)
def test_inversion_index_is_an_involution_that_moves_keypoints(skeleton):
    perm = skeleton.inversion_index
    assert sorted(perm) == list(range(skeleton.num_keypoints))
    assert all(perm[perm[i]] == i for i in range(skeleton.num_keypoints))
    assert sum(perm[i] != i for i in range(skeleton.num_keypoints)) >= 2


@pytest.mark.parametrize("skeleton", ALL_SKELETONS, ids=lambda s: s.name)
def test_flip_pairs_map_left_to_right(skeleton):
    used = [i for pair in skeleton.flip_pairs for i in pair]
    assert len(used) == len(set(used))
    for a, b in skeleton.flip_pairs:
        name_a, name_b = skeleton.keypoint_names[a], skeleton.keypoint_names[b]
        assert {name_a[:2], name_b[:2]} == {"l_", "r_"}
        assert name_a[2:] == name_b[2:]
    # every left/right keypoint has a pair, and unpaired keypoints are central
    for i, name in enumerate(skeleton.keypoint_names):
        assert (i in used) == name.startswith(("l_", "r_"))


def test_body_flip_pairs_respect_the_tree():
    # the mirror of a bone is a bone
    perm = BODY16.flip_index
    bones = set(BODY16.bones)
    assert {(perm[c], perm[p]) for c, p in bones} == bones


@pytest.mark.parametrize("skeleton", ALL_SKELETONS, ids=lambda s: s.name)
def test_groups_are_valid_indices(skeleton):
    k = skeleton.num_keypoints
    for column, indices in {**skeleton.groups, **skeleton.all_columns}.items():
        assert len(indices) > 0, column
        assert len(set(indices)) == len(indices), column
        assert set(indices) <= set(range(k)), column
    assert skeleton.columns == tuple(skeleton.groups) + tuple(skeleton.all_columns)


def test_hand_groups():
    assert HAND21.columns == ("MCP", "PIP", "DIP", "Fin", "All")
    assert HAND21.all_columns["All"] == tuple(range(21))
    names = HAND21.keypoint_names
    for column, joint in [("MCP", "mcp"), ("PIP", "pip"), ("DIP", "dip"), ("Fin", "tip")]:
        assert [names[i].split("_")[1] for i in HAND21.groups[column]] == [joint] * 5
    assert HAND21.flip_index == tuple(range(21))


def test_body_groups():
    assert BODY16.columns == (
        "Head", "Sld", "Elb", "Wrist", "Hip", "Knee", "Ankle", "All", "All-16"
    )
    limbs = BODY16.all_columns["All"]
    assert len(limbs) == 12
    assert BODY16.index("head_top") not in limbs
    assert set(limbs) == {i for c in ("Sld", "Elb", "Wrist", "Hip", "Knee", "Ankle")
                          for i in BODY16.groups[c]}
    assert BODY16.all_columns["All-16"] == tuple(range(16))
    assert BODY16.groups["Head"] == (BODY16.index("head_top"),)
    assert [BODY16.keypoint_names[i] for i in BODY16.groups["Sld"]] == ["r_shoulder", "l_shoulder"]


def test_mpii_order():
    assert BODY16.keypoint_names[:6] == (
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle"
    )
    assert BODY16.keypoint_names[10:] == (
        "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist"
    )


def test_hand_order_and_parents():
    assert HAND21.keypoint_names[:5] == ("wrist", "thumb_mcp", "thumb_pip", "thumb_dip", "thumb_tip")
    assert HAND21.keypoint_names[17] == "little_mcp"
    # MCPs hang from the wrist, every other joint from the previous joint of its finger
    for f in range(5):
        assert HAND21.parents[1 + 4 * f] == 0
        for j in range(1, 4):
            assert HAND21.parents[1 + 4 * f + j] == 4 * f + j


def test_get_skeleton():
    assert get_skeleton("hand") is HAND21
    assert get_skeleton("body16") is BODY16
    assert set(SKELETONS) == {"hand21", "body16"}
    assert isinstance(get_skeleton("hand21"), Skeleton)
    with pytest.raises(ValueError, match="Received: skeleton='foot'"):
        get_skeleton("foot")
