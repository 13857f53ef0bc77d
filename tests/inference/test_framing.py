"""Framing arbitrary images for the square model input, and the exact way back."""

import numpy as np
import pytest
from PIL import Image

from synpose_keras.inference.framing import (
    keypoint_region,
    letterbox_region,
    render_region,
    to_input,
    to_original,
)


def _blob(width, height, x0, y0, sigma=6.0):
    yy, xx = np.mgrid[0:height, 0:width]
    value = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma ** 2))
    return Image.fromarray(np.round(255 * value).astype(np.uint8)).convert("RGB")


def _centroid(image):
    v = image[..., 0].astype(np.float64)
    yy, xx = np.mgrid[0:v.shape[0], 0:v.shape[1]]
    return np.array([(v * xx).sum() / v.sum(), (v * yy).sum() / v.sum()])


@pytest.mark.parametrize("width,height,point", [(160, 100, (40.3, 61.7)),
                                                (90, 150, (51.2, 70.9)),
                                                (48, 40, (20.0, 17.5))])
def test_letterbox_puts_a_blob_where_the_affine_says(width, height, point):
    # shrinking (160 -> 64, 150 -> 64) and enlarging (48 -> 64): a pixel-centre error of half a
    # pixel would move the centroid by 0.5 * |1 - scale| >= 0.16 px
    center, side = letterbox_region(width, height)
    assert side == max(width, height)
    rendered = render_region(_blob(width, height, *point), center, side, 64)
    assert rendered.shape == (64, 64, 3) and rendered.dtype == np.uint8
    np.testing.assert_allclose(_centroid(rendered), to_input(point, center, side, 64), atol=0.03)


def test_letterbox_pads_the_short_axis_with_equal_black_bands():
    image = Image.fromarray(np.full((32, 64, 3), 200, np.uint8))
    center, side = letterbox_region(64, 32)
    out = render_region(image, center, side, 64)
    assert np.all(out[:16] == 0) and np.all(out[48:] == 0)
    assert np.all(out[16:48] == 200)
    np.testing.assert_array_equal(to_input([[0, 0], [63, 31]], center, side, 64),
                                  [[0, 16], [63, 47]])


def test_to_original_inverts_to_input():
    rng = np.random.default_rng(0)
    points = rng.uniform(-20, 300, (7, 2))
    center, side = np.array([101.25, 40.5]), 173.0
    back = to_original(to_input(points, center, side, 256), center, side, 256)
    np.testing.assert_allclose(back, points, atol=1e-9)


def test_keypoint_region_is_the_protocol_crop_and_may_overhang():
    kp = np.array([[10.0, 10.0], [30.0, 20.0], [500.0, 500.0]])
    scores = np.array([0.9, 0.8, 0.1])
    center, side = keypoint_region(kp, 100, 80, scores, min_score=0.5)
    # box 20 x 10 -> side 30 around (20, 15): left = 5, top = 0 -> centres 5..34, 0..29
    assert side == 30.0
    np.testing.assert_array_equal(center, [19.5, 14.5])
    assert keypoint_region(np.zeros((3, 2)), 100, 80) is None
    # a crop larger than the image overhangs and is padded with zeros
    image = Image.fromarray(np.full((20, 20, 3), 255, np.uint8))
    out = render_region(image, np.array([9.5, 9.5]), 40.0, 40)
    assert np.all(out[:10] == 0) and np.all(out[10:30, 10:30] == 255)
