"""PCKMetric (keras.ops) against the numpy protocol; PCKAccumulator."""

import keras
import numpy as np
import pytest

from synpose_keras.losses import HeatmapMSE
from synpose_keras.metrics import PCKAccumulator, PCKMetric, pck, pck_from_heatmaps
from synpose_keras.skeletons import HAND21


def _gaussian_maps(points, size=32, sigma=2.0):
    """(N, K, 2) float (x, y) -> (N, size, size, K) Gaussians; NaN -> all-zero map."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    n, k = points.shape[:2]
    maps = np.zeros((n, size, size, k), dtype=np.float32)
    for i in range(n):
        for j in range(k):
            x, y = points[i, j]
            if not np.isnan(x):
                maps[i, :, :, j] = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return maps


def _random_batch(seed, n=6, k=5, size=32):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, size, size=(n, k, 2)).astype(np.float64)
    gt[0, 0] = np.nan  # an all-zero GT map
    pred = np.clip(gt + rng.integers(-4, 5, size=(n, k, 2)), 0, size - 1)
    pred[np.isnan(pred)] = 3.0
    gt_maps = _gaussian_maps(gt, size)
    pred_maps = _gaussian_maps(pred, size) + 0.01 * rng.standard_normal(gt_maps.shape)
    visible = (rng.random((n, k)) > 0.2).astype(np.float32)
    return gt_maps, pred_maps.astype(np.float32), visible


def test_metric_equals_numpy_on_random_heatmaps():
    metric = PCKMetric(num_keypoints=5, threshold=0.1)
    accumulator = PCKAccumulator(num_keypoints=5, threshold=0.1)
    for seed in (0, 1, 2):
        gt_maps, pred_maps, visible = _random_batch(seed)
        metric.update_state(gt_maps, pred_maps, sample_weight=visible)
        accumulator.add_heatmaps(pred_maps, gt_maps, visible)
    np.testing.assert_array_equal(metric.per_keypoint(), accumulator.result())
    expected_instance = accumulator.num_correct.sum() / accumulator.num_valid.sum()
    assert float(metric.result()) == pytest.approx(expected_instance, abs=1e-6)
    # the fixture is not trivial: some right, some wrong, some invalid
    assert 0 < expected_instance < 1
    assert accumulator.num_valid.sum() < 3 * 6 * 5


def test_metric_single_batch_equals_pck_from_heatmaps():
    gt_maps, pred_maps, visible = _random_batch(7)
    metric = PCKMetric(num_keypoints=5, average="keypoint")
    metric.update_state(gt_maps, pred_maps, sample_weight=visible)
    expected = pck_from_heatmaps(pred_maps, gt_maps, visible)
    np.testing.assert_array_equal(metric.per_keypoint(), expected.per_keypoint)
    assert float(metric.result()) == pytest.approx(np.nanmean(expected.per_keypoint), abs=1e-6)


def test_metric_keypoint_subset_and_reset():
    gt_maps, pred_maps, visible = _random_batch(3)
    metric = PCKMetric(num_keypoints=5, keypoints=[1, 3])
    metric.update_state(gt_maps, pred_maps, sample_weight=visible)
    result = pck_from_heatmaps(pred_maps, gt_maps, visible)
    expected = result.correct[:, [1, 3]].sum() / result.valid[:, [1, 3]].sum()
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    assert np.isnan(metric.per_keypoint()).all()


def test_metric_sample_weight_per_sample_and_none():
    gt_maps, pred_maps, _ = _random_batch(4)
    per_sample = np.array([1, 0, 1, 1, 0, 1], dtype=np.float32)
    metric = PCKMetric(num_keypoints=5)
    metric.update_state(gt_maps, pred_maps, sample_weight=per_sample)
    expected = pck_from_heatmaps(pred_maps, gt_maps, np.repeat(per_sample[:, None], 5, axis=1))
    np.testing.assert_array_equal(metric.per_keypoint(), expected.per_keypoint)
    metric = PCKMetric(num_keypoints=5)
    metric.update_state(gt_maps, pred_maps)
    np.testing.assert_array_equal(
        metric.per_keypoint(), pck_from_heatmaps(pred_maps, gt_maps).per_keypoint
    )


def test_metric_in_compiled_model_graph_mode():
    gt_maps, pred_maps, visible = _random_batch(5)
    model = keras.Sequential([keras.Input((32, 32, 5)), keras.layers.Identity()])
    # sample weights reach compiled metrics only through `weighted_metrics`
    model.compile(loss=HeatmapMSE(), weighted_metrics=[PCKMetric(num_keypoints=5, name="pck")])
    logs = model.evaluate(pred_maps, gt_maps, sample_weight=visible, batch_size=4,
                          return_dict=True, verbose=0)
    result = pck_from_heatmaps(pred_maps, gt_maps, visible)
    expected_loss = (0.5 * (pred_maps - gt_maps) ** 2 * visible[:, None, None, :]).mean()
    assert logs["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert logs["pck"] == pytest.approx(result.correct.sum() / result.valid.sum(), abs=1e-6)


def test_metric_config_round_trip():
    metric = PCKMetric(num_keypoints=21, threshold=0.1, keypoints=[0, 4], average="keypoint",
                       name="pck_tips")
    config = metric.get_config()
    assert config["num_keypoints"] == 21
    assert config["threshold"] == 0.1
    assert config["keypoints"] == [0, 4]
    assert config["average"] == "keypoint"
    assert config["name"] == "pck_tips"
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(restored) is PCKMetric
    assert restored.get_config() == config


def test_metric_validation():
    with pytest.raises(ValueError, match="Received: average='median'"):
        PCKMetric(num_keypoints=3, average="median")
    with pytest.raises(ValueError, match=r"Received: keypoints=\[3\]"):
        PCKMetric(num_keypoints=3, keypoints=[3])
    with pytest.raises(ValueError, match="Received: num_keypoints=0"):
        PCKMetric(num_keypoints=0)


def test_accumulator_sums_counts_over_batches():
    gt = np.full((4, 2, 2), 10.0)
    pred = gt.copy()
    pred[0, 0, 0] += 5.0
    accumulator = PCKAccumulator(num_keypoints=2, keep_masks=True)
    first = accumulator.add(pred[:1], gt[:1])
    accumulator.add(pred[1:], gt[1:], visible=np.array([[1, 1], [1, 0], [1, 0]]))
    # keypoint 0: 4 valid, 3 correct; keypoint 1: 2 valid (samples 0, 1), both correct
    np.testing.assert_array_equal(accumulator.result(), [0.75, 1.0])
    np.testing.assert_array_equal(first.per_keypoint, [0.0, 1.0])
    assert accumulator.num_samples == 4
    assert accumulator.correct_mask.tolist() == [[False, True], [True, True], [True, False],
                                                 [True, False]]
    assert accumulator.valid_mask.tolist() == [[True, True], [True, True], [True, False],
                                               [True, False]]
    accumulator.reset()
    assert np.isnan(accumulator.result()).all()
    assert accumulator.correct_mask.shape == (0, 2)


def test_accumulator_table_and_errors():
    accumulator = PCKAccumulator(num_keypoints=21)
    gt = np.full((2, 21, 2), 10.0)
    pred = gt.copy()
    pred[0, [4, 8, 12, 16, 20], 0] += 10.0  # fingertips wrong on one sample
    accumulator.add(pred, gt)
    table = accumulator.table(HAND21)
    assert table["Fin"] == 50.0
    assert table["MCP"] == 100.0
    assert table["All"] == pytest.approx(100 * (21 - 2.5) / 21, abs=1e-12)
    with pytest.raises(ValueError, match="keep_masks=False"):
        accumulator.correct_mask
    with pytest.raises(ValueError, match="Received: a batch with 3 keypoints"):
        accumulator.add(np.zeros((1, 3, 2)), np.zeros((1, 3, 2)))
    np.testing.assert_array_equal(
        accumulator.result(), pck(pred, gt).per_keypoint
    )


def test_metric_non_square_heatmaps_normalise_each_axis():
    # 48 (H) × 64 (W): dx = 3 < 3.2 is right, dy = 3 >= 2.4 is wrong; a negative map is (0, 0)
    gt = np.zeros((1, 48, 64, 3), dtype=np.float32)
    pred = np.zeros_like(gt)
    gt[0, 10, 10, 0], pred[0, 10, 13, 0] = 1.0, 0.5
    gt[0, 10, 10, 1], pred[0, 13, 10, 1] = 1.0, 0.5
    gt[0, 2, 2, 2] = 1.0
    pred[0, :, :, 2] = -1.0
    pred[0, 2, 2, 2] = -0.5  # argmax at the GT, but the maximum is <= 0
    metric = PCKMetric(num_keypoints=3)
    metric.update_state(gt, pred)
    np.testing.assert_array_equal(metric.per_keypoint(), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(
        metric.per_keypoint(), pck_from_heatmaps(pred, gt).per_keypoint
    )
