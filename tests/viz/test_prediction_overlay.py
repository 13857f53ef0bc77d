"""Overlays people can read: >= 512 px, colours per finger or limb, scores, a legend; and
predict_keypoints warns about images that are not the model's input size."""

import warnings

import numpy as np
import pytest

from synpose_keras.skeletons import BODY16, HAND21
from synpose_keras.viz import draw_prediction, keypoint_parts
from synpose_keras.viz.overlays import PART_COLORS


def test_parts_per_finger_and_limb():
    parts = keypoint_parts(HAND21)
    assert parts[0] == "palm" and parts[1:5] == ["thumb"] * 4 and parts[17:] == ["little"] * 4
    body = dict(zip(BODY16.keypoint_names, keypoint_parts(BODY16)))
    assert body["r_ankle"] == "right leg" and body["l_wrist"] == "left arm"
    assert body["pelvis"] == body["head_top"] == "torso and head"


def _hand_keypoints():
    kp = [[50.0, 70.0]]
    for f in range(5):
        kp += [[15.0 + 17.5 * f, 55.0 - 10.0 * j] for j in range(4)]
    return np.array(kp)


def test_overlay_is_large_coloured_per_finger_with_scores_and_legend():
    image = np.full((80, 100, 3), 40, np.uint8)
    kp = _hand_keypoints()
    scores = np.full(21, 0.87)
    out = draw_prediction(image, kp, HAND21, scores=scores)
    assert out.size == (512, 410)
    pixels = np.asarray(out)
    scale = 512 / 100
    for index, part in ((4, "thumb"), (20, "little"), (12, "middle")):
        x, y = np.round((kp[index] + 0.5) * scale - 0.5).astype(int)
        assert tuple(pixels[y, x]) == PART_COLORS[part], part
    # the legend: a white box in the top-left corner, on a dark image
    assert (pixels[10:40, 10:60] == 255).all(axis=-1).mean() > 0.5
    plain = np.asarray(draw_prediction(image, kp, HAND21, scores=scores, show_scores=False))
    assert (plain != pixels).any()  # the scores are written
    hidden = np.asarray(draw_prediction(image, kp, HAND21, scores=np.zeros(21), min_score=0.5,
                                        legend=False))
    assert (hidden == 40).all()  # nothing above min_score: the (enlarged) image only


def test_predict_keypoints_warns_on_images_of_another_size():
    from synpose_keras.models import PosePredictor

    model = PosePredictor(num_keypoints=21, backbone="resnet18", input_size=64,
                          width_multiplier=0.125, deconv_filters=8)
    with pytest.warns(UserWarning, match="80x64 px, the model's input is 64x64"):
        model.predict_keypoints(np.zeros((1, 64, 80, 3), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict_keypoints(np.zeros((1, 64, 64, 3), np.uint8))
