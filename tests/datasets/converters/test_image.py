"""Shared image helpers of the converters: strict loading and consistent horizontal flips."""

import numpy as np
import pytest
from PIL import Image, ImageFile

from synpose_keras.datasets.converters._image import (
    hflip,
    hflip_intrinsics,
    load_image,
    load_mask,
    project,
)
from synpose_keras.datasets.converters.base import BadSampleError


def _png(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def test_load_image_converts_modes(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    img = load_image(_png(tmp_path / "g.png", gray))
    assert img.shape == (3, 4, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 1], gray)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200
    assert load_image(_png(tmp_path / "a.png", rgba))[0, 0].tolist() == [200, 0, 0]


def test_load_mask(tmp_path):
    mask = np.array([[0, 1], [2, 33]], np.uint8)
    np.testing.assert_array_equal(load_mask(_png(tmp_path / "m.png", mask)), mask)


def test_truncated_missing_and_garbage_files_name_the_file(tmp_path):
    rng = np.random.default_rng(0)
    path = _png(tmp_path / "t.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(BadSampleError, match="t.png: truncated or corrupt"):
        load_image(path)
    with pytest.raises(BadSampleError, match="none.png: image file not found"):
        load_image(str(tmp_path / "none.png"))
    (tmp_path / "x.jpg").write_bytes(b"not an image at all")
    with pytest.raises(BadSampleError, match="x.jpg"):
        load_image(str(tmp_path / "x.jpg"))


def test_strict_even_if_pillow_flag_is_on_and_flag_restored(tmp_path):
    rng = np.random.default_rng(1)
    path = str(tmp_path / "t.jpg")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        ImageFile.LOAD_TRUNCATED_IMAGES = True  # as TLlib's H3D loader sets it globally
        with pytest.raises(BadSampleError):
            load_image(path)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        assert load_image(path, allow_truncated=True).shape == (64, 64, 3)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def test_hflip_moves_pixels_and_keypoints_together():
    image = np.zeros((5, 7, 3), np.uint8)
    image[1, 2] = 255
    kp = np.array([[2.0, 1.0], [0.0, 0.0]])
    out, kp2, kp3, k2 = hflip(image, kp)
    assert kp3 is None and k2 is None
    assert out[1, 4].tolist() == [255, 255, 255]  # column 2 -> 7 - 1 - 2 = 4
    np.testing.assert_allclose(kp2, [[4.0, 1.0], [6.0, 0.0]])


def test_hflip_keeps_projection_with_skew_and_off_centre_principal_point():
    rng = np.random.default_rng(2)
    k = np.array([[300.0, 4.0, 101.3], [0.0, 280.0, 77.0], [0.0, 0.0, 1.0]])
    xyz = rng.uniform(-0.1, 0.1, (21, 3)) + [0.0, 0.0, 0.6]
    uv = project(xyz, k)
    _, uv2, xyz2, k2 = hflip(np.zeros((160, 240, 3), np.uint8), uv, xyz, k)
    np.testing.assert_allclose(project(xyz2, k2), uv2, atol=1e-3)
    np.testing.assert_allclose(uv2[:, 0], 239 - uv[:, 0], atol=1e-4)
    np.testing.assert_allclose(xyz2[:, 0], -xyz[:, 0], atol=1e-6)
    np.testing.assert_allclose(hflip_intrinsics(k, 240)[0], [300.0, -4.0, 239 - 101.3], atol=1e-4)


def test_hflip_flip_index_swaps_left_and_right():
    kp = np.array([[1.0, 0.0], [5.0, 0.0], [3.0, 2.0]])
    _, out, pts, _ = hflip(np.zeros((4, 8, 3), np.uint8), kp, np.ones((3, 3)), flip_index=(1, 0, 2))
    np.testing.assert_allclose(out, [[2.0, 0.0], [6.0, 0.0], [4.0, 2.0]])
    np.testing.assert_allclose(pts[:, 0], [-1.0, -1.0, -1.0])
