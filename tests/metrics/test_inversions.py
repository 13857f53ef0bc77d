"""Inversion errors (mirror-image readings of a pose) on hand-built cases, and in the evaluation."""

import keras
import numpy as np
import pytest
from keras import ops

from synpose_keras.datasets.pipeline import eval_pipeline
from synpose_keras.datasets.writer import convert
from synpose_keras.metrics import inversions
from synpose_keras.skeletons import BODY16, HAND21
from synpose_keras.training.evaluation import evaluate_predictor
from tests.cli.inference_helpers import SIZE, TinyPoseConverter


def _pose(skeleton, n=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 64, (n, skeleton.num_keypoints, 2))


def test_hand_inversion_swaps_index_with_little_and_middle_with_ring():
    names = HAND21.keypoint_names
    swapped = {names[i]: names[j] for i, j in enumerate(HAND21.inversion_index) if i != j}
    assert len(swapped) == 16
    for joint in ("mcp", "pip", "dip", "tip"):
        assert swapped[f"index_{joint}"] == f"little_{joint}"
        assert swapped[f"middle_{joint}"] == f"ring_{joint}"
    assert all(HAND21.inversion_index[i] == i for i in range(5))  # wrist and thumb stay


def test_body_inversion_is_the_left_right_flip():
    assert BODY16.inversion_index == BODY16.flip_index


@pytest.mark.parametrize("skeleton", [HAND21, BODY16], ids=lambda s: s.name)
def test_mirrored_predictions_are_inverted_and_noisy_ones_are_not(skeleton):
    gt = _pose(skeleton, n=4)
    perm = list(skeleton.inversion_index)
    noisy = gt + np.random.default_rng(1).normal(0, 0.5, gt.shape)
    result = inversions(np.concatenate([gt[:, perm], noisy]), np.concatenate([gt, gt]), None,
                        skeleton)
    assert result.inverted.tolist() == [True] * 4 + [False] * 4
    assert result.counted.tolist() == [True] * 8
    assert result.rate == 0.5


def test_only_valid_pairs_count_and_a_sample_needs_two_of_them():
    gt = _pose(BODY16, n=3)
    pred = gt[:, list(BODY16.inversion_index)]
    visible = np.ones((3, 16))
    visible[0, :] = 0  # nothing visible: not counted
    visible[0, 6:10] = 1  # central keypoints only (not moved by an inversion)
    visible[1, [1, 2, 3, 4, 10, 11, 12, 13, 14, 15]] = 0  # one pair left: ankles 0 and 5
    visible[2, [0]] = 0  # ankle 0 hidden: its pair (5) does not count either
    result = inversions(pred, gt, visible, BODY16)
    assert result.counted.tolist() == [False, True, True]
    assert result.inverted.tolist() == [False, True, True]
    assert result.rate == 1.0
    # a pair whose prediction lies on the GT counts for the direct reading
    pred[2] = gt[2]
    assert inversions(pred, gt, visible, BODY16).inverted.tolist() == [False, True, False]


def test_no_counted_sample_gives_nan_and_bad_shapes_are_refused():
    gt = _pose(HAND21, n=2)
    assert np.isnan(inversions(gt, gt, np.zeros((2, 21)), HAND21).rate)
    with pytest.raises(ValueError, match=r"\(N, 21, 2\) for hand21"):
        inversions(gt[:, :16], gt[:, :16], None, HAND21)
    with pytest.raises(ValueError, match="visible"):
        inversions(gt, gt, np.ones((2, 20)), HAND21)


class _SamePose(TinyPoseConverter):
    """Every record is the same image and pose, so a constant model can predict it exactly."""

    def _record(self, i):
        return super()._record(0)


class _Constant(keras.Model):
    """Returns the same heatmaps for every image."""

    def __init__(self, heatmaps):
        super().__init__(name="constant")
        self.heatmaps = np.asarray(heatmaps, "float32")
        self.input_size = SIZE
        self.heatmap_size = self.heatmaps.shape[0]

    def call(self, images, training=False):
        batch = ops.shape(images)[0]
        return ops.broadcast_to(self.heatmaps[None], (batch,) + self.heatmaps.shape)


def test_evaluation_reports_the_inversion_rate(tmp_path):
    data = str(tmp_path / "same")
    convert(_SamePose(n=3), data, progress=False, image_format="png")
    gt = next(iter(eval_pipeline(data, input_size=SIZE, heatmap_size=SIZE // 4, batch_size=1,
                                 split="test")))["heatmaps"].numpy()[0]
    right = evaluate_predictor(_Constant(gt), data, "test")
    assert right["inversion_rate"] == 0.0
    assert right["table"]["All"] == 100.0
    mirrored = evaluate_predictor(_Constant(gt[..., list(HAND21.inversion_index)]), data, "test")
    assert mirrored["inversion_rate"] == 100.0
    assert mirrored["count"] == 3
