import math

import numpy as np
import pytest

from synpose_keras.pseudo_labels import PseudoLabelStatistics


def _batch(offsets, selected):
    gt = np.full((2, 2, 2), 10.0)
    labels = gt + np.array(offsets, dtype=float)[..., None] * np.array([1.0, 0.0])
    return ["a", "b"], labels, gt, np.ones((2, 2)), np.array(selected)


def test_statistics_by_hand():
    stats = PseudoLabelStatistics(heatmap_size=64)  # radius 3.2 px
    # epoch 0: a0 correct, a1 wrong (5 px), b0 wrong, b1 not selected
    stats.update(*_batch([[0.0, 5.0], [4.0, 0.0]], [[1, 1], [1, 0]]), overlap=0.4)
    row0 = stats.end_epoch()
    assert row0["accuracy"] == pytest.approx(1 / 3)
    assert row0["saturation"] == pytest.approx(1 / 4)
    assert math.isnan(row0["coincidence"])
    assert row0["overlap"] == pytest.approx(0.4)
    # epoch 1: a1 still wrong, b0 now correct, b1 wrong
    stats.update(*_batch([[0.0, 5.0], [1.0, 9.0]], [[0, 1], [1, 1]]), overlap=0.9)
    row1 = stats.end_epoch()
    assert row1["accuracy"] == pytest.approx(1 / 3)
    assert row1["saturation"] == pytest.approx(2 / 4)  # a0, b0 ever correct
    # W0 = {a1, b0}, W1 = {a1, b1}: 1 / 3
    assert row1["coincidence"] == pytest.approx(1 / 3)
    assert [r["epoch"] for r in stats.history] == [0, 1]


def test_invalid_ground_truth_is_ignored_and_state_round_trips():
    stats = PseudoLabelStatistics(heatmap_size=64)
    ids, labels, gt, vis, sel = _batch([[0.0, 0.0], [0.0, 0.0]], [[1, 1], [1, 1]])
    vis[1, :] = 0
    gt[0, 1] = [0.5, 10.0]  # x <= 1 is not a valid ground truth
    stats.update(ids, labels, gt, vis, sel)
    row = stats.end_epoch()
    assert row["selected"] == 1
    clone = PseudoLabelStatistics(heatmap_size=64)
    clone.load_state(stats.state())
    assert clone.state() == stats.state()


def test_inversion_rate_is_accumulated_over_the_epoch_and_nan_when_not_measured():
    from synpose_keras.metrics import InversionResult

    stats = PseudoLabelStatistics(heatmap_size=64)
    stats.update(*_batch([[0.0, 0.0], [0.0, 0.0]], [[1, 1], [1, 1]]),
                 inversions=InversionResult(inverted=np.array([True, False]),
                                            counted=np.array([True, True])))
    stats.update(*_batch([[0.0, 0.0], [0.0, 0.0]], [[1, 1], [1, 1]]),
                 inversions=InversionResult(inverted=np.array([True, False]),
                                            counted=np.array([True, False])))
    assert stats.end_epoch()["inversion"] == pytest.approx(2 / 3)
    stats.update(*_batch([[0.0, 0.0], [0.0, 0.0]], [[1, 1], [1, 1]]))
    assert math.isnan(stats.end_epoch()["inversion"])
