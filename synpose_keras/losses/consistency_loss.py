"""ConsistencyLoss: masked heatmap MSE between student heatmaps and pseudo-label heatmaps."""

from __future__ import annotations

import keras
from keras import ops

from synpose_keras.losses._utils import dtype_name, keypoint_weights


@keras.saving.register_keras_serializable(package="synpose_keras")
class ConsistencyLoss(keras.losses.Loss):
    """Masked heatmap MSE for pseudo-labels, normalised by the number of active keypoints.

    ``call`` returns ``0.5 · mean_{H,W} (student − pseudo)²`` per keypoint instance (B, K), the
    same per-instance term as ``HeatmapMSE``. The per-keypoint mask M (B, K) (M_2D, M_3D or their
    union; 0/1 or soft) is the ``sample_weight``. With the default reduction
    ``"mean_with_sample_weight"``:

        loss = Σ_{b,k} M_bk · 0.5 · mean_{H,W} (student − pseudo)² / Σ_{b,k} M_bk,

    and 0 (with zero, finite gradients) when the mask is empty. With a full mask it equals
    ``HeatmapMSE``. ``reduction="sum_over_batch_size"`` divides by B·K instead (UniFrame's
    JointsMSELoss with the mask as target weight). The pseudo-labels receive no gradient
    (``stop_gradient``). Under ``tf.distribute`` each replica normalises by its own active count and
    Keras divides by the number of replicas (mean of replica means).

    Args:
        reduction: str. Keras reduction. Defaults to "mean_with_sample_weight".
        name: str. Defaults to "consistency_loss".
        dtype: optional dtype (policy) of the computation. Defaults to None (float32).

    Shape glossary: B batch, H×W heatmap size, K keypoints.
        ``y_true`` (pseudo-label heatmaps) and ``y_pred`` (student heatmaps): (B, H, W, K);
        ``sample_weight`` (mask): (B, K), or (B,) broadcast over keypoints, or None (all active).

    Example:

    ```python
    from synpose_keras.losses import ConsistencyLoss

    loss = ConsistencyLoss()(pseudo_heatmaps, student_heatmaps, sample_weight=mask_2d)
    ```

    Reference:
        Lin et al., NeurIPS 2023, §3 (L_2D, L_3D); Kim et al., "A Unified Framework for Domain
        Adaptive Pose Estimation" (UniFrame), ECCV 2022.
    """

    def __init__(self, reduction="mean_with_sample_weight", name="consistency_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true = ops.stop_gradient(y_true)
        return 0.5 * ops.mean(ops.square(y_pred - y_true), axis=(1, 2))

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            sample_weight = keypoint_weights(sample_weight, y_pred)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {"reduction": self.reduction, "name": self.name, "dtype": dtype_name(self)}
