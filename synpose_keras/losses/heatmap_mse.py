"""HeatmapMSE: visibility-weighted heatmap mean squared error."""

from __future__ import annotations

import keras
from keras import ops

from synpose_keras.losses._utils import dtype_name, keypoint_weights


@keras.saving.register_keras_serializable(package="synpose_keras")
class HeatmapMSE(keras.losses.Loss):
    """Visibility-weighted heatmap MSE with the semantics of TLlib's ``JointsMSELoss``.

    ``call`` returns one value per keypoint instance, ``0.5 · mean_{H,W} (pred − true)²`` of shape
    (B, K); the per-keypoint weights (visibility / target weights from the heatmap codec) are the
    ``sample_weight`` of shape (B, K). With the default reduction ``"sum_over_batch_size"`` Keras
    sums the weighted values and divides by B·K, i.e.

        loss = 0.5 / (B·K·H·W) · Σ_{b,k} w_bk · Σ_{h,w} (pred − true)²,

    exactly ``JointsMSELoss(reduction="mean")(pred, true, target_weight)``. Invisible keypoints
    (weight 0) contribute 0 but still count in the B·K denominator, as in TLlib. Because it is a
    mean-reduced Keras loss it is divided by the number of replicas under ``tf.distribute``
    (see ``synpose_keras.losses.scaling``); do not scale it again.

    ``sample_weight`` may also be (B,) (one weight per sample, broadcast over keypoints) or None
    (every keypoint weight 1). It works both as ``loss(y_true, y_pred, sample_weight=w)`` and through
    ``model.fit(x, heatmaps, sample_weight=w)`` with ``compile(loss=HeatmapMSE())``.

    Args:
        reduction: str. Keras reduction. Defaults to "sum_over_batch_size" (TLlib's mean).
        name: str. Defaults to "heatmap_mse".
        dtype: optional dtype (policy) of the computation. Defaults to None (float32).

    Shape glossary: B batch, H×W heatmap size, K keypoints.
        ``y_true`` and ``y_pred``: (B, H, W, K); ``sample_weight``: (B, K).

    Example:

    ```python
    from synpose_keras.losses import HeatmapMSE

    loss = HeatmapMSE()(gt_heatmaps, pred_heatmaps, sample_weight=target_weights)
    ```

    Reference:
        Xiao et al., "Simple Baselines for Human Pose Estimation and Tracking", ECCV 2018
        (JointsMSELoss); TLlib ``tllib/vision/models/keypoint_detection/loss.py``.
    """

    def __init__(self, reduction="sum_over_batch_size", name="heatmap_mse", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return 0.5 * ops.mean(ops.square(y_pred - y_true), axis=(1, 2))

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            sample_weight = keypoint_weights(sample_weight, y_pred)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {"reduction": self.reduction, "name": self.name, "dtype": dtype_name(self)}
