"""PCK on hand-computed cases (protocol of docs/protocol.md, "Evaluation protocol")."""

import numpy as np
import pytest

from synpose_keras.metrics import PCKResult, heatmap_argmax, pck, pck_from_heatmaps


def test_threshold_is_five_percent_of_64_pixels():
    gt = np.full((4, 1, 2), 10.0)
    pred = gt + np.array([[[3.1, 0.0]], [[3.3, 0.0]], [[0.0, -3.1]], [[2.2, 2.3]]])
    # distances 3.1 (correct), 3.3 (wrong), 3.1 (correct), sqrt(2.2²+2.3²)=3.18 (correct)
    result = pck(pred, gt, threshold=0.05, heatmap_size=64)
    assert isinstance(result, PCKResult)
    assert result.correct[:, 0].tolist() == [True, False, True, True]
    assert result.valid[:, 0].tolist() == [True, True, True, True]
    assert result.per_keypoint.tolist() == [0.75]


def test_threshold_scales_with_heatmap_size_and_threshold():
    gt = np.full((1, 1, 2), 10.0)
    pred = gt + np.array([[[6.3, 0.0]]])
    assert pck(pred, gt, heatmap_size=128).per_keypoint.tolist() == [1.0]  # 6.4 px
    assert pck(pred, gt, heatmap_size=64).per_keypoint.tolist() == [0.0]
    assert pck(pred, gt, threshold=0.1, heatmap_size=64).per_keypoint.tolist() == [1.0]


def test_exact_boundary_is_wrong():
    # 0.0625 × 64 = 4 px exactly: "< threshold" makes a distance of exactly 4 wrong
    gt = np.full((2, 1, 2), 10.0)
    pred = gt + np.array([[[4.0, 0.0]], [[3.0, 0.0]]])
    assert pck(pred, gt, threshold=0.0625).correct[:, 0].tolist() == [False, True]


def test_non_square_heatmap_normalises_each_axis():
    # width 64 -> 3.2 px in x, height 48 -> 2.4 px in y
    gt = np.full((2, 1, 2), 10.0)
    pred = gt + np.array([[[3.0, 0.0]], [[0.0, 3.0]]])
    result = pck(pred, gt, heatmap_size=(64, 48))
    assert result.correct[:, 0].tolist() == [True, False]


def test_invisible_joints_are_excluded():
    gt = np.full((3, 2, 2), 10.0)
    pred = gt.copy()
    pred[0, 0] += [5.0, 0.0]  # wrong and visible
    pred[1, 1] += [5.0, 0.0]  # wrong but invisible
    visible = np.array([[1, 1], [1, 0], [0, 1]], dtype=np.float32)
    result = pck(pred, gt, visible)
    # keypoint 0: samples 0 (wrong), 1 (right) valid -> 0.5; keypoint 1: samples 0, 2 -> 1.0
    np.testing.assert_array_equal(result.per_keypoint, [0.5, 1.0])
    np.testing.assert_array_equal(result.valid, [[True, True], [True, False], [False, True]])
    np.testing.assert_array_equal(result.correct, [[False, True], [True, False], [False, True]])


def test_gt_on_the_border_is_excluded():
    gt = np.array([[[1.0, 10.0], [10.0, 1.0], [1.01, 1.01], [0.0, 0.0]]])
    pred = gt.copy()  # perfect predictions
    result = pck(pred, gt)
    assert result.valid.tolist() == [[False, False, True, False]]
    assert result.correct.tolist() == [[False, False, True, False]]


def test_keypoint_without_valid_sample_is_nan():
    gt = np.array([[[10.0, 10.0], [0.0, 0.0]], [[20.0, 20.0], [5.0, 5.0]]])
    pred = gt.copy()
    visible = np.array([[1, 1], [1, 0]])
    per_keypoint = pck(pred, gt, visible).per_keypoint
    assert per_keypoint[0] == 1.0
    assert np.isnan(per_keypoint[1])


def test_nan_prediction_is_wrong():
    gt = np.full((2, 1, 2), 10.0)
    pred = np.array([[[np.nan, 10.0]], [[10.0, 10.0]]])
    assert pck(pred, gt).per_keypoint.tolist() == [0.5]


def test_input_validation():
    with pytest.raises(ValueError, match=r"Received: pred.shape=\(2, 3, 2\), gt.shape=\(2, 4, 2\)"):
        pck(np.zeros((2, 3, 2)), np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="Received: threshold=0"):
        pck(np.zeros((1, 1, 2)), np.zeros((1, 1, 2)), threshold=0)
    with pytest.raises(ValueError, match=r"Received: visible.shape=\(1, 2\)"):
        pck(np.zeros((1, 1, 2)), np.zeros((1, 1, 2)), visible=np.ones((1, 2)))
    with pytest.raises(ValueError, match="Received: heatmap_size=-64"):
        pck(np.zeros((1, 1, 2)), np.zeros((1, 1, 2)), heatmap_size=-64)


def _one_hot_heatmaps(points, height, width, value=1.0):
    """(N, K, 2) integer (x, y) -> (N, H, W, K) maps with one peak; NaN point -> zero map."""
    n, k = points.shape[:2]
    maps = np.zeros((n, height, width, k), dtype=np.float32)
    for i in range(n):
        for j in range(k):
            if not np.isnan(points[i, j, 0]):
                x, y = points[i, j].astype(int)
                maps[i, y, x, j] = value
    return maps


def test_heatmap_argmax_reads_x_from_columns():
    maps = _one_hot_heatmaps(np.array([[[20.0, 5.0]]]), height=48, width=64)
    keypoints, maxvals = heatmap_argmax(maps)
    assert keypoints.tolist() == [[[20.0, 5.0]]]
    assert maxvals.tolist() == [[1.0]]


def test_heatmap_argmax_non_positive_map_decodes_to_origin():
    maps = -np.ones((1, 8, 8, 2), dtype=np.float32)
    maps[0, 3, 4, 0] = -0.5  # maximum < 0
    keypoints, maxvals = heatmap_argmax(maps)
    assert keypoints.tolist() == [[[0.0, 0.0], [0.0, 0.0]]]
    assert maxvals.tolist() == [[-0.5, -1.0]]


def test_heatmap_argmax_ties_go_to_first_row_major():
    maps = np.zeros((1, 8, 8, 1), dtype=np.float32)
    maps[0, 5, 1, 0] = 1.0
    maps[0, 2, 6, 0] = 1.0
    assert heatmap_argmax(maps)[0].tolist() == [[[6.0, 2.0]]]


def test_pck_from_heatmaps_matches_pck_on_argmax():
    # height 48, width 64: dx = 3 is correct (< 3.2), dy = 3 is wrong (>= 2.4)
    gt_points = np.array(
        [[[10.0, 10.0], [30.0, 20.0], [40.0, 40.0], [np.nan, np.nan]],
         [[1.0, 10.0], [5.0, 5.0], [60.0, 2.0], [12.0, 12.0]]]
    )
    pred_points = np.array(
        [[[13.0, 10.0], [30.0, 23.0], [44.0, 40.0], [3.0, 3.0]],
         [[1.0, 10.0], [7.0, 6.0], [60.0, 4.0], [12.0, 12.0]]]
    )
    visible = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=np.float32)
    gt_maps = _one_hot_heatmaps(gt_points, 48, 64)
    pred_maps = _one_hot_heatmaps(pred_points, 48, 64, value=0.7)
    result = pck_from_heatmaps(pred_maps, gt_maps, visible)
    expected = pck(pred_points, np.nan_to_num(gt_points, nan=0.0), visible, heatmap_size=(64, 48))
    np.testing.assert_array_equal(result.correct, expected.correct)
    np.testing.assert_array_equal(result.valid, expected.valid)
    np.testing.assert_array_equal(result.per_keypoint, expected.per_keypoint)
    # and by hand
    assert result.valid.tolist() == [[True, True, True, False], [False, True, True, False]]
    assert result.correct.tolist() == [[True, False, False, False], [False, True, True, False]]
    np.testing.assert_array_equal(result.per_keypoint, [1.0, 0.5, 0.5, np.nan])


def test_pck_from_heatmaps_shape_mismatch():
    with pytest.raises(ValueError, match="Received: pred_heatmaps.shape"):
        pck_from_heatmaps(np.zeros((1, 8, 8, 2)), np.zeros((1, 8, 8, 3)))
