"""PCKMetric: PCK@threshold of heatmaps as a stateful Keras metric."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from synpose_keras.metrics.pck import _check_threshold
from synpose_keras.ops.heatmaps import decode_heatmaps

_AVERAGES = ("instance", "keypoint")


def _argmax_keypoints(heatmaps):
    """(B, H, W, K) -> (B, K, 2) argmax (x, y) in heatmap pixels, (0, 0) where the max is <= 0.

    ``decode_heatmaps`` (the shared codec: first maximum in row-major order) plus TLlib's
    ``get_max_preds`` rule that a map whose maximum is <= 0 decodes to (0, 0).
    """
    keypoints, scores = decode_heatmaps(heatmaps)
    return keypoints * ops.cast(ops.expand_dims(scores > 0, -1), keypoints.dtype)


@keras.saving.register_keras_serializable(package="synpose_keras")
class PCKMetric(keras.metrics.Metric):
    """PCK@threshold between predicted and GT heatmaps, protocol of docs/protocol.md.

    For every keypoint instance (sample b, keypoint k): predicted and GT locations are the argmax of
    the heatmaps ((0, 0) for a map whose maximum is <= 0); the instance is *valid* when
    ``sample_weight[b, k] > 0`` and the GT has x > 1 and y > 1; it is *correct* when valid and
    ``sqrt((dx / W)² + (dy / H)²) < threshold`` (distance < 3.2 px on a 64×64 map at 0.05).
    The metric sums correct and valid counts per keypoint (state variables ``correct_count`` and
    ``valid_count``, shape (K,), summed across replicas) and ``result()`` returns, over the
    keypoints in ``keypoints``:

    - ``average="instance"`` (default): Σ correct / Σ valid, the fraction of correct valid keypoint
      instances;
    - ``average="keypoint"``: the mean over keypoints that have at least one valid instance of
      (correct / valid), i.e. the "All" column of ``part_group_table`` when ``keypoints`` is that
      column's index list (as a fraction, not %).

    Both give 0.0 when no instance is valid. ``per_keypoint()`` returns the (K,) accuracies with NaN
    where no instance is valid, exactly ``PCKAccumulator.result()`` / ``pck_from_heatmaps``.

    Args:
        num_keypoints: int. K, the number of heatmap channels.
        threshold: float. Fraction of the heatmap size. Defaults to 0.05.
        keypoints: optional list of int. Keypoints averaged by ``result()`` (e.g.
            ``BODY16.all_columns["All"]``). Defaults to None (all K).
        average: str. "instance" or "keypoint", see above. Defaults to "instance".
        name: str. Defaults to "pck".
        dtype: optional dtype of the metric variables. Defaults to None (float32).

    Shape glossary: B batch, H×W heatmap size, K keypoints.
        ``update_state(y_true (B, H, W, K), y_pred (B, H, W, K), sample_weight=None)``, where
        ``sample_weight`` is the visibility / target weight (B, K) (or (B,), broadcast over
        keypoints; None means all visible).

    Example:

    ```python
    from synpose_keras.metrics import PCKMetric

    # Keras passes sample_weight (the (B, K) target weights) only to `weighted_metrics`;
    # under `metrics=` the metric counts invisible keypoints whose GT map has a peak.
    model.compile(optimizer="adam", loss=HeatmapMSE(),
                  weighted_metrics=[PCKMetric(num_keypoints=21)])
    model.fit(images, gt_heatmaps, sample_weight=target_weights)

    metric = PCKMetric(num_keypoints=21)
    metric.update_state(gt_heatmaps, pred_heatmaps, sample_weight=visible)
    metric.result()
    ```

    Reference:
        Lin et al., NeurIPS 2023, supplementary Table A (PCK@0.05); TLlib ``keypoint_detection``.
    """

    def __init__(self, num_keypoints: int, threshold: float = 0.05, keypoints=None,
                 average: str = "instance", name: str = "pck", dtype=None, **kwargs):
        if not (isinstance(num_keypoints, int) and num_keypoints > 0):
            raise ValueError(
                f"`num_keypoints` must be a positive int. Received: num_keypoints={num_keypoints!r}"
            )
        _check_threshold(threshold)
        if average not in _AVERAGES:
            raise ValueError(f"`average` must be one of {_AVERAGES}. Received: average={average!r}")
        if keypoints is not None:
            keypoints = [int(i) for i in keypoints]
            if not keypoints or any(i < 0 or i >= num_keypoints for i in keypoints):
                raise ValueError(
                    f"`keypoints` must be a non-empty list of indices in [0, {num_keypoints}). "
                    f"Received: keypoints={keypoints!r}"
                )
        super().__init__(name=name, dtype=dtype, **kwargs)
        self.num_keypoints = num_keypoints
        self.threshold = float(threshold)
        self.keypoints = keypoints
        self.average = average
        self.correct_count = self.add_variable(
            shape=(num_keypoints,), initializer="zeros", name="correct_count"
        )
        self.valid_count = self.add_variable(
            shape=(num_keypoints,), initializer="zeros", name="valid_count"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(ops.convert_to_tensor(y_true), "float32")
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
        gt = _argmax_keypoints(y_true)
        pred = _argmax_keypoints(y_pred)
        shape = ops.shape(y_true)
        size = ops.cast(ops.stack([shape[2], shape[1]]), "float32")  # (W, H)
        valid = ops.logical_and(gt[..., 0] > 1.0, gt[..., 1] > 1.0)
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight)
            if len(sample_weight.shape) == 1:
                sample_weight = ops.expand_dims(sample_weight, -1)
            valid = ops.logical_and(valid, ops.cast(sample_weight, "float32") > 0)
        distance = ops.sqrt(ops.sum(ops.square((pred - gt) / size), axis=-1))
        correct = ops.logical_and(valid, distance < self.threshold)
        self.correct_count.assign_add(ops.sum(ops.cast(correct, self.dtype), axis=0))
        self.valid_count.assign_add(ops.sum(ops.cast(valid, self.dtype), axis=0))

    def _selected(self, variable):
        value = ops.convert_to_tensor(variable)
        if self.keypoints is not None:
            value = ops.take(value, self.keypoints, axis=0)
        return value

    def result(self):
        correct = self._selected(self.correct_count)
        valid = self._selected(self.valid_count)
        if self.average == "instance":
            return ops.divide_no_nan(ops.sum(correct), ops.sum(valid))
        has_valid = ops.cast(valid > 0, self.dtype)
        per_keypoint = ops.divide_no_nan(correct, valid)
        return ops.divide_no_nan(ops.sum(per_keypoint * has_valid), ops.sum(has_valid))

    def per_keypoint(self):
        """(K,) numpy accuracies in [0, 1], NaN for keypoints without a valid instance."""
        correct = np.asarray(keras.ops.convert_to_numpy(self.correct_count), dtype=np.float64)
        valid = np.asarray(keras.ops.convert_to_numpy(self.valid_count), dtype=np.float64)
        out = np.full(self.num_keypoints, np.nan)
        np.divide(correct, valid, out=out, where=valid > 0)
        return out

    def reset_state(self):
        self.correct_count.assign(ops.zeros((self.num_keypoints,), self.dtype))
        self.valid_count.assign(ops.zeros((self.num_keypoints,), self.dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_keypoints": self.num_keypoints,
                "threshold": self.threshold,
                "keypoints": self.keypoints,
                "average": self.average,
            }
        )
        return config
