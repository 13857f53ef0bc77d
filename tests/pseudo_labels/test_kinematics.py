import numpy as np
import pytest

from synpose_keras.pseudo_labels import (
    bone_lengths,
    project_to_skeleton,
    reference_bone_ratios,
    reproject,
)
from synpose_keras.skeletons import BODY16, HAND21


def _random_poses(skeleton, n, seed):
    rng = np.random.default_rng(seed)
    poses = np.zeros((n, skeleton.num_keypoints, 3))
    from synpose_keras.pseudo_labels.kinematics import topological_order

    for j in topological_order(skeleton):
        p = skeleton.parents[j]
        if p >= 0:
            poses[:, j] = poses[:, p] + rng.normal(size=(n, 3)) * rng.uniform(0.5, 2.0)
    return poses.astype(np.float32)


@pytest.mark.parametrize("skeleton", [HAND21, BODY16])
def test_projection_gives_the_reference_ratios_exactly(skeleton):
    ratios = reference_bone_ratios(_random_poses(skeleton, 50, seed=0), skeleton)
    assert ratios.shape == (skeleton.num_keypoints - 1,)
    assert ratios.sum() == pytest.approx(1.0, abs=1e-5)
    noisy = _random_poses(skeleton, 8, seed=1)
    projected = np.asarray(project_to_skeleton(noisy, skeleton, ratios, apply_limits=False))
    lengths = np.asarray(bone_lengths(projected, skeleton))
    got = lengths / lengths.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(got, np.broadcast_to(ratios, got.shape), atol=1e-5)
    # root and total scale are kept; bone directions are kept without limits
    root = skeleton.parents.index(-1)
    np.testing.assert_allclose(projected[:, root], noisy[:, root], atol=1e-6)
    np.testing.assert_allclose(lengths.sum(-1), np.asarray(bone_lengths(noisy, skeleton)).sum(-1),
                               rtol=1e-5)
    for child, parent in skeleton.bones:
        d0 = noisy[:, child] - noisy[:, parent]
        d1 = projected[:, child] - projected[:, parent]
        cos = (d0 * d1).sum(-1) / np.linalg.norm(d0, axis=-1) / np.linalg.norm(d1, axis=-1)
        np.testing.assert_allclose(cos, 1.0, atol=1e-5)


def _bend_angles(poses, skeleton):
    angles = {}
    for joint in skeleton.bend_limits:
        parent = skeleton.parents[joint]
        grand = skeleton.parents[parent]
        u = poses[:, parent] - poses[:, grand]
        v = poses[:, joint] - poses[:, parent]
        cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        angles[joint] = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    return angles


def _same_direction(a, b, joint, skeleton):
    parent = skeleton.parents[joint]
    u = a[:, joint] - a[:, parent]
    v = b[:, joint] - b[:, parent]
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    return cos > 1 - 1e-6


@pytest.mark.parametrize("skeleton", [HAND21, BODY16])
def test_projection_respects_bend_limits(skeleton):
    poses = _random_poses(skeleton, 64, seed=2)
    before = _bend_angles(poses, skeleton)
    assert any((before[j] > lim + 1).any() for j, lim in skeleton.bend_limits.items())
    ratios = reference_bone_ratios(_random_poses(skeleton, 20, seed=3), skeleton)
    projected = np.asarray(project_to_skeleton(poses, skeleton, ratios))
    after = _bend_angles(projected, skeleton)
    limits = skeleton.bend_limits
    for joint, limit in limits.items():
        assert after[joint].max() <= limit + 1e-3
        # a bend is unchanged when neither this bone nor its parent bone was rotated
        parent = skeleton.parents[joint]
        untouched = _same_direction(poses, projected, joint, skeleton) & _same_direction(
            poses, projected, parent, skeleton)
        assert (before[joint][untouched] <= limit + 1e-3).all()
        assert untouched.any()
        np.testing.assert_allclose(after[joint][untouched], before[joint][untouched], atol=1e-3)
    lengths = np.asarray(bone_lengths(projected, skeleton))
    np.testing.assert_allclose(lengths / lengths.sum(-1, keepdims=True),
                               np.broadcast_to(ratios, lengths.shape), atol=1e-5)


def test_reproject_recovers_scale_and_translation():
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(3, 21, 3)).astype(np.float32)
    target = 7.5 * poses[..., :2] + np.array([20.0, 31.0], np.float32)
    np.testing.assert_allclose(np.asarray(reproject(poses, target)), target, atol=1e-3)


def test_reproject_weights_ignore_outliers():
    rng = np.random.default_rng(1)
    poses = rng.normal(size=(1, 21, 3)).astype(np.float32)
    target = 3.0 * poses[..., :2] + 5.0
    target[0, 4] += 100.0
    weights = np.ones((1, 21), np.float32)
    weights[0, 4] = 0.0
    out = np.asarray(reproject(poses, target, weights))
    np.testing.assert_allclose(np.delete(out, 4, axis=1), np.delete(target, 4, axis=1), atol=1e-3)
