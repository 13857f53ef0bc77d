import numpy as np
import pytest
from PIL import Image

from synpose_keras.skeletons import BODY16, HAND21
from synpose_keras.viz import contact_sheet, draw_keypoints, pck_bars, pseudo_label_curves


def test_draw_keypoints_colours_the_keypoint_pixels_only_where_visible():
    image = np.zeros((40, 40, 3), np.uint8)
    kp = np.tile(np.array([[5.0, 5.0]]), (16, 1))
    kp[9] = [30, 30]
    visible = np.zeros(16)
    visible[9] = 1
    out = np.asarray(draw_keypoints(image, kp, BODY16, visible=visible, radius=2))
    assert out[30, 30].sum() > 0
    assert out[5, 5].sum() == 0
    assert image.sum() == 0  # input untouched


def test_draw_keypoints_checks_shape():
    with pytest.raises(ValueError, match=r"\(21, 2\)"):
        draw_keypoints(np.zeros((8, 8, 3), np.uint8), np.zeros((16, 2)), HAND21)


def test_contact_sheet_size():
    tiles = [Image.new("RGB", (10, 8)) for _ in range(5)]
    sheet = contact_sheet(tiles, columns=2, pad=1)
    assert sheet.size == (2 * 11 + 1, 3 * 9 + 1)


def test_plots_write_png(tmp_path):
    tables = {"pretrain": {"MCP": 50.0, "All": 40.0}, "adapt": {"MCP": 60.0, "All": 55.0}}
    path = pck_bars(tables, str(tmp_path / "bars.png"))
    assert Image.open(path).format == "PNG"
    hist = [{"epoch": 0, "overlap": 0.4, "accuracy": 0.7, "saturation": 0.5,
             "coincidence": float("nan")},
            {"epoch": 1, "overlap": 0.8, "accuracy": 0.8, "saturation": 0.6, "coincidence": 0.3}]
    path = pseudo_label_curves(hist, str(tmp_path / "curves.png"), threshold=0.8)
    assert Image.open(path).size[0] > 100
    with pytest.raises(ValueError):
        pck_bars({}, str(tmp_path / "x.png"))
