import numpy as np
import pytest

from synpose_keras.pseudo_labels import (
    IntegrationSchedule,
    agreement_mask,
    mask_overlap,
    strategy_masks,
    top_fraction_mask,
)


def test_top_fraction_keeps_most_confident_half_of_batch():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3]], np.float32)
    mask = np.asarray(top_fraction_mask(scores, 0.5))
    np.testing.assert_array_equal(mask, [[1, 0, 1], [0, 1, 0]])


def test_top_fraction_rejects_bad_fraction():
    with pytest.raises(ValueError, match="Received: fraction=0"):
        top_fraction_mask(np.ones((2, 3)), 0.0)


def test_agreement_mask_uses_distance_and_validity():
    a = np.zeros((1, 3, 2), np.float32)
    b = np.array([[[1.9, 0.0], [0.0, 2.1], [0.5, 0.5]]], np.float32)
    np.testing.assert_array_equal(np.asarray(agreement_mask(a, b, 2.0)), [[1, 0, 1]])
    np.testing.assert_array_equal(
        np.asarray(agreement_mask(a, b, 2.0, valid=np.array([[1, 1, 0]]))), [[1, 0, 0]])


def test_overlap_is_iou():
    m2 = np.array([[1, 1, 0, 0]], np.float32)
    m3 = np.array([[0, 1, 1, 0]], np.float32)
    assert float(mask_overlap(m2, m3)) == pytest.approx(1 / 3)
    assert float(mask_overlap(np.zeros((1, 4)), np.zeros((1, 4)))) == 1.0


@pytest.mark.parametrize(
    "mode, combined, expect_2d, expect_3d",
    [
        ("none", False, [0, 0, 0, 0], [0, 0, 0, 0]),
        ("2d", False, [1, 1, 0, 0], [0, 0, 0, 0]),
        ("3d", False, [0, 0, 0, 0], [0, 1, 1, 0]),
        ("union", False, [1, 1, 1, 0], [1, 1, 1, 0]),
        ("independent", True, [1, 1, 0, 0], [0, 1, 1, 0]),
        ("integrated", False, [1, 1, 0, 0], [0, 1, 1, 0]),
        ("integrated", True, [1, 1, 1, 0], [1, 1, 1, 0]),
    ],
)
def test_strategy_masks(mode, combined, expect_2d, expect_3d):
    m2 = np.array([[1, 1, 0, 0]], np.float32)
    m3 = np.array([[0, 1, 1, 0]], np.float32)
    a, b = strategy_masks(mode, m2, m3, combined)
    np.testing.assert_array_equal(np.asarray(a), [expect_2d])
    np.testing.assert_array_equal(np.asarray(b), [expect_3d])


def test_integration_schedule_switches_once_at_threshold():
    schedule = IntegrationSchedule("integrated", threshold=0.8)
    assert [schedule.update(x) for x in (0.4, 0.79, 0.8, 0.5)] == [False, False, True, True]
    other = IntegrationSchedule("independent", threshold=0.8)
    assert [other.update(x) for x in (0.9, 1.0)] == [False, False]


def test_integration_schedule_validates():
    with pytest.raises(ValueError, match="Received: mode='both'"):
        IntegrationSchedule("both")
