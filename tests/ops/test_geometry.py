"""Tests of synpose_keras.ops.geometry (NumPy and keras.ops paths)."""

import doctest

import keras
import numpy as np
import pytest
import tensorflow as tf

import synpose_keras.ops.geometry
import synpose_keras.ops.heatmaps
import synpose_keras.ops.warp
from synpose_keras.ops import apply_affine
from synpose_keras.ops import compose
from synpose_keras.ops import crop_matrix
from synpose_keras.ops import fit_scale_translation
from synpose_keras.ops import hflip_matrix
from synpose_keras.ops import invert_affine
from synpose_keras.ops import procrustes
from synpose_keras.ops import procrustes_align
from synpose_keras.ops import project
from synpose_keras.ops import rotation_matrix
from synpose_keras.ops import scale_matrix
from synpose_keras.ops import shear_matrix
from synpose_keras.ops import to_transform_params
from synpose_keras.ops import translation_matrix


def _augmentation():
    return compose(
        translation_matrix(5.0, -3.0),
        scale_matrix(1.3, (32.0, 20.0)),
        shear_matrix(20.0, (10.0, 10.0), deg_y=-7.0),
        rotation_matrix(37.0, (31.5, 31.5)),
        hflip_matrix(64),
    )


def test_known_points():
    np.testing.assert_allclose(apply_affine(translation_matrix(2.0, -1.0), [[1.0, 1.0]]), [[3.0, 0.0]])
    # 90 degrees counter-clockwise as displayed (y down): right of the centre goes up
    np.testing.assert_allclose(apply_affine(rotation_matrix(90.0, (10.0, 10.0)), [[11.0, 10.0]]), [[10.0, 9.0]], atol=1e-12)
    np.testing.assert_allclose(apply_affine(rotation_matrix(90.0), [[0.0, 1.0]]), [[1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(apply_affine(scale_matrix(2.0, (4.0, 4.0)), [[5.0, 2.0]]), [[6.0, 0.0]])
    np.testing.assert_allclose(apply_affine(scale_matrix(2.0, scale_y=3.0), [[1.0, 1.0]]), [[2.0, 3.0]])
    np.testing.assert_allclose(apply_affine(shear_matrix(45.0, (0.0, 2.0)), [[1.0, 5.0]]), [[4.0, 5.0]])
    np.testing.assert_allclose(apply_affine(hflip_matrix(64), [[0.0, 7.0], [63.0, 1.0], [31.5, 2.0]]),
                               [[63.0, 7.0], [0.0, 1.0], [31.5, 2.0]])
    # a single (2,) point
    np.testing.assert_allclose(apply_affine(translation_matrix(1.0, 1.0), [0.0, 0.0]), [1.0, 1.0])


def test_compose_applies_last_matrix_first():
    t, r = translation_matrix(10.0, 0.0), rotation_matrix(90.0)
    p = np.array([[1.0, 0.0]])
    np.testing.assert_allclose(apply_affine(compose(t, r), p), apply_affine(t, apply_affine(r, p)), atol=1e-12)
    np.testing.assert_allclose(apply_affine(compose(t, r), p), [[10.0, -1.0]], atol=1e-12)
    np.testing.assert_allclose(apply_affine(compose(r, t), p), [[0.0, -11.0]], atol=1e-12)


def test_invert_compose_round_trip():
    m = _augmentation()
    np.testing.assert_allclose(compose(invert_affine(m), m), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(invert_affine(m), np.linalg.inv(m), atol=1e-12)
    pts = np.random.default_rng(0).uniform(0, 64, (21, 2))
    np.testing.assert_allclose(apply_affine(invert_affine(m), apply_affine(m, pts)), pts, atol=1e-10)


def test_hflip_twice_is_identity():
    np.testing.assert_array_equal(compose(hflip_matrix(37), hflip_matrix(37)), np.eye(3))


def test_crop_matrix():
    m = crop_matrix((100.0, 50.0), 200.0, 256)
    np.testing.assert_allclose(apply_affine(m, [[100.0, 50.0]]), [[127.5, 127.5]])
    # crop edges land on the output's outer pixel edges
    np.testing.assert_allclose(apply_affine(m, [[0.0, -50.0], [200.0, 150.0]]), [[-0.5, -0.5], [255.5, 255.5]])
    # side == output size: pure translation; an output-sized crop of a same-sized image is the identity
    np.testing.assert_allclose(crop_matrix((40.0, 30.0), 64, 64)[:2, :2], np.eye(2))
    np.testing.assert_allclose(crop_matrix((31.5, 31.5), 64, 64), np.eye(3))
    # batched
    batched = crop_matrix(np.array([[100.0, 50.0], [31.5, 31.5]]), np.array([200.0, 64.0]), 256)
    assert batched.shape == (2, 3, 3)
    np.testing.assert_allclose(batched[0], m)


def test_batched_builders_and_broadcasting():
    angles = np.array([0.0, 90.0, -30.0])
    mats = rotation_matrix(angles, (5.0, 5.0))
    assert mats.shape == (3, 3, 3)
    for i, a in enumerate(angles):
        np.testing.assert_allclose(mats[i], rotation_matrix(a, (5.0, 5.0)))
    pts = np.random.default_rng(1).normal(size=(3, 4, 2))
    out = apply_affine(mats, pts)
    for i in range(3):
        np.testing.assert_allclose(out[i], apply_affine(mats[i], pts[i]))
    assert translation_matrix(np.zeros(4), 1.0).shape == (4, 3, 3)


def test_tensor_inputs_give_tensors_matching_numpy():
    m = _augmentation()
    pts = np.random.default_rng(2).uniform(0, 64, (2, 5, 2))
    out = apply_affine(tf.constant(m, tf.float32), tf.constant(pts, tf.float32))
    assert keras.ops.is_tensor(out) and out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), apply_affine(m, pts), atol=1e-4)
    inv = invert_affine(tf.constant(m, tf.float64))
    assert inv.dtype == tf.float64
    np.testing.assert_allclose(inv.numpy(), invert_affine(m), atol=1e-12)
    angle = tf.constant([10.0, 20.0])
    np.testing.assert_allclose(rotation_matrix(angle, (3.0, 4.0)).numpy(), rotation_matrix([10.0, 20.0], (3.0, 4.0)), atol=1e-6)
    np.testing.assert_allclose(hflip_matrix(tf.constant(64)).numpy(), hflip_matrix(64))


def test_builders_inside_tf_data_map():
    def augment(angle, kp):
        m = compose(crop_matrix((31.5, 31.5), 64.0, 32), rotation_matrix(angle, (31.5, 31.5)))
        return apply_affine(invert_affine(m), apply_affine(m, kp)), apply_affine(m, kp)

    angles = np.array([0.0, 45.0, 180.0], "float32")
    kps = np.random.default_rng(3).uniform(0, 64, (3, 6, 2)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((angles, kps)).map(augment)
    for i, (back, fwd) in enumerate(ds):
        np.testing.assert_allclose(back.numpy(), kps[i], atol=1e-4)
        m = compose(crop_matrix((31.5, 31.5), 64.0, 32), rotation_matrix(float(angles[i]), (31.5, 31.5)))
        np.testing.assert_allclose(fwd.numpy(), apply_affine(m, kps[i]), atol=1e-4)


def test_transform_params_use_the_same_pixel_convention_as_keras_images():
    rng = np.random.default_rng(4)
    image = rng.random((1, 8, 6, 1)).astype("float32")

    def warp(matrix):
        params = to_transform_params(matrix)[None].astype("float32")
        return keras.ops.convert_to_numpy(keras.ops.image.affine_transform(image, params, interpolation="bilinear"))

    np.testing.assert_allclose(warp(hflip_matrix(6)), image[:, :, ::-1], atol=1e-6)
    # 180 degrees about the image centre ((W - 1) / 2, (H - 1) / 2)
    np.testing.assert_allclose(warp(rotation_matrix(180.0, (2.5, 3.5))), image[:, ::-1, ::-1], atol=1e-5)
    shifted = warp(translation_matrix(2.0, 1.0))
    np.testing.assert_allclose(shifted[0, 1:, 2:], image[0, :-1, :-2], atol=1e-6)


def test_project_and_fit_scale_translation_recover_exactly():
    rng = np.random.default_rng(5)
    points = np.concatenate([rng.uniform(-0.3, 0.3, (2, 21, 2)), rng.uniform(2.0, 4.0, (2, 21, 1))], -1)
    k = np.array([[500.0, 0.0, 128.0], [0.0, 480.0, 120.0], [0.0, 0.0, 1.0]])
    uv = project(points, k)
    assert uv.shape == (2, 21, 2)
    np.testing.assert_allclose(uv[..., 0], 500.0 * points[..., 0] / points[..., 2] + 128.0)
    np.testing.assert_allclose(uv[..., 1], 480.0 * points[..., 1] / points[..., 2] + 120.0)

    scale = np.array([0.7, 2.5])
    shift = np.array([[3.0, -4.0], [100.0, 20.0]])
    dst = scale[:, None, None] * uv + shift[:, None, :]
    s, t = fit_scale_translation(uv, dst)
    np.testing.assert_allclose(s, scale, rtol=1e-10)
    np.testing.assert_allclose(t, shift, rtol=1e-10, atol=1e-8)
    # zero-weight outliers do not move the fit
    corrupted = dst.copy()
    corrupted[:, :5] += 50.0
    weights = np.ones((2, 21))
    weights[:, :5] = 0.0
    s, t = fit_scale_translation(uv, corrupted, weights)
    np.testing.assert_allclose(s, scale, rtol=1e-10)
    np.testing.assert_allclose(t, shift, rtol=1e-10, atol=1e-8)
    # ... but they do without weights
    assert not np.allclose(fit_scale_translation(uv, corrupted)[0], scale, rtol=1e-3)
    # tensors
    s_t, t_t = fit_scale_translation(tf.constant(uv), tf.constant(dst))
    np.testing.assert_allclose(s_t.numpy(), scale, rtol=1e-10)
    np.testing.assert_allclose(project(tf.constant(points, tf.float32), tf.constant(k, tf.float32)).numpy(), uv, rtol=1e-5)


def _random_rotation(rng, dim):
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


@pytest.mark.parametrize("dim", [2, 3])
def test_procrustes_recovers_similarity(dim):
    rng = np.random.default_rng(dim)
    src = rng.normal(size=(16, dim))
    rot = _random_rotation(rng, dim)
    dst = 1.7 * src @ rot.T + rng.normal(size=dim)
    s, r, t = procrustes(src, dst)
    assert s == pytest.approx(1.7, rel=1e-10)
    np.testing.assert_allclose(r, rot, atol=1e-10)
    np.testing.assert_allclose(procrustes_align(src, dst), dst, atol=1e-10)
    # a mirrored target: a proper rotation cannot fit it exactly, det R stays +1
    mirrored = dst * np.array([-1.0] + [1.0] * (dim - 1))
    _, r_proper, _ = procrustes(src, mirrored)
    assert np.linalg.det(r_proper) == pytest.approx(1.0)
    _, r_any, _ = procrustes(src, mirrored, allow_reflection=True)
    assert np.linalg.det(r_any) == pytest.approx(-1.0)
    np.testing.assert_allclose(procrustes_align(src, mirrored, allow_reflection=True), mirrored, atol=1e-10)
    # tensors, batched
    aligned = procrustes_align(tf.constant(np.stack([src, src])), tf.constant(np.stack([dst, dst])))
    np.testing.assert_allclose(aligned.numpy(), np.stack([dst, dst]), atol=1e-8)


def test_invalid_shapes_raise():
    with pytest.raises(ValueError, match="matrix.shape"):
        invert_affine(np.eye(2))
    with pytest.raises(ValueError, match="points.shape"):
        apply_affine(np.eye(3), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="Received: no arguments"):
        compose()


@pytest.mark.parametrize(
    "module", [synpose_keras.ops.geometry, synpose_keras.ops.heatmaps, synpose_keras.ops.warp]
)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
