"""Per-replica loss terms of the stages' custom ``train_step`` (keras.ops).

The formulas are those of the ``keras.losses.Loss`` classes of :mod:`synpose_keras.losses`
(their unreduced ``call``); here they are reduced to a per-replica mean, and a stage passes the
sum of its terms once through :func:`synpose_keras.losses.scaling.scale_loss_for_distribution`
(the one scaling convention, see that module).
"""

from __future__ import annotations

from keras import ops

from synpose_keras.losses import ConsistencyLoss, HeatmapMSE, PerceptualPyramidLoss

_HEATMAP_MSE = HeatmapMSE()
_CONSISTENCY = ConsistencyLoss()


def heatmap_mse(y_true, y_pred, weights):
    """TLlib JointsMSELoss: mean over (batch, keypoints) of w_k * 0.5 * pixel MSE.

    Args:
        y_true: (B, h, w, K) target heatmaps.
        y_pred: (B, h, w, K) predicted heatmaps.
        weights: (B, K) per-keypoint weights (visibility).
    """
    per_kp = _HEATMAP_MSE.call(ops.cast(y_true, "float32"), ops.cast(y_pred, "float32"))
    return ops.mean(per_kp * ops.cast(weights, "float32"))


def masked_heatmap_mse(y_true, y_pred, mask):
    """Consistency loss: heatmap MSE averaged over the selected keypoint instances (0 if none)."""
    per_kp = _CONSISTENCY.call(ops.cast(y_true, "float32"), ops.cast(y_pred, "float32"))
    mask = ops.cast(mask, "float32")
    return ops.sum(per_kp * mask) / ops.maximum(ops.sum(mask), 1.0)


def make_reconstruction_loss(vgg_weights=None):
    """Returns ``fn(target, generated)`` -> per-replica mean perceptual pyramid loss.

    Args:
        vgg_weights: optional path to VGG-19 weights (or "imagenet"). None: the L1 + SSIM pyramid.
    """
    loss = PerceptualPyramidLoss(vgg_weights=vgg_weights)

    def reconstruction_loss(target, generated):
        return ops.mean(loss.call(ops.cast(target, "float32"), ops.cast(generated, "float32")))

    return reconstruction_loss
