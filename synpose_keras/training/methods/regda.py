"""RegDA's building blocks (keras.ops): feature/head split of the pose predictor, the warm-start
gradient layer, "ground-truth" and "ground-false" heatmaps, and the heatmap KL loss.

Shapes: B batch, K keypoints, h x w heatmaps (channels last), C feature channels.

Which choice follows what (RegDA = Jiang et al., CVPR 2021; TLlib = its public code,
``tllib/alignment/regda.py`` and ``examples/domain_adaptation/keypoint_detection/regda.py``):

- Feature extractor = backbone + deconvolution head of :class:`PosePredictor`; main head = its
  final 1x1 conv (TLlib: ``backbone`` + ``upsampling`` / ``head``). The adversarial head reads
  the same features through the warm-start gradient layer (TLlib ``WarmStartGradientLayer``:
  identity forward, gradient multiplied by a coefficient rising from 0 to ``hi`` = 0.1 as
  ``2 (hi - lo) / (1 + exp(-alpha i / max_iters)) - (hi - lo) + lo``; alpha 1, max_iters 1000).
  It *scales*, it does not reverse: the feature extractor minimises the disparity.
- Ground truth of a prediction: a sigma = 2 Gaussian (peak 1, 13 x 13 window) at each map's
  argmax (TLlib ``PseudoLabelGenerator2d``; maps whose maximum is <= 0 put it at (0, 0), as
  TLlib's ``get_max_preds``). Ground false of keypoint k: the other keypoints' ground truths
  summed and clipped to [0, 1] (TLlib: ``ground_truth . (1 - I)`` clipped).
- Loss: TLlib ``JointsKLLoss``: KL(normalised target || softmax over the h*w pixels of the
  prediction), summed over pixels, weighted per keypoint, averaged over B*K.
"""

from __future__ import annotations

from keras import ops

from synpose_keras.models.backbones import normalize_images
from synpose_keras.ops.heatmaps import decode_heatmaps, encode_heatmaps


def predictor_features(predictor, images, training=None):
    """Features of a :class:`PosePredictor` before its final 1x1 conv: (B, h, w, C)."""
    x = normalize_images(images, predictor.normalization)
    x = predictor.backbone(x, training=training)
    for layer in predictor.head_layers:
        x = layer(x, training=training)
    return x


def main_head(predictor, features):
    """The predictor's own heatmaps from ``predictor_features`` (float32)."""
    return ops.cast(predictor.final_conv(features), "float32")


def feature_variables(predictor):
    """Trainable variables of the feature extractor (backbone + deconvolutions)."""
    out = list(predictor.backbone.trainable_variables)
    for layer in predictor.head_layers:
        out += list(layer.trainable_variables)
    return out


def head_variables(predictor):
    """Trainable variables of the main head (the final 1x1 conv)."""
    return list(predictor.final_conv.trainable_variables)


def warm_start_coefficient(iteration, hi=0.1, lo=0.0, alpha=1.0, max_iters=1000.0):
    """Gradient multiplier of TLlib's ``WarmStartGradientLayer`` at ``iteration`` (0 -> hi)."""
    i = ops.cast(iteration, "float32")
    span = hi - lo
    return 2.0 * span / (1.0 + ops.exp(-alpha * i / float(max_iters))) - span + lo


def scale_gradient(x, coefficient):
    """Identity forward; the gradient reaching ``x`` is multiplied by ``coefficient``."""
    coefficient = ops.cast(coefficient, x.dtype)
    return coefficient * x + (1.0 - coefficient) * ops.stop_gradient(x)


def ground_truth_and_false(heatmaps, sigma=2.0):
    """RegDA's targets from predicted heatmaps (no gradient).

    Args:
        heatmaps: (B, h, w, K) predictions.
        sigma: float. Gaussian sigma in heatmap pixels. Defaults to 2.

    Returns:
        ``(ground_truth, ground_false)``, each (B, h, w, K) float32.
    """
    heatmaps = ops.stop_gradient(ops.convert_to_tensor(heatmaps, "float32"))
    height, width = heatmaps.shape[1], heatmaps.shape[2]
    peaks, scores = decode_heatmaps(heatmaps)
    peaks = peaks * ops.cast(ops.expand_dims(scores > 0, -1), "float32")
    truth, _ = encode_heatmaps(peaks, ops.ones_like(scores), (width, height), (width, height),
                               sigma=sigma)
    total = ops.sum(truth, axis=-1, keepdims=True)
    false = ops.clip(total - truth, 0.0, 1.0)
    return truth, false


def joints_kl_loss(y_pred, y_true, weights=None):
    """TLlib ``JointsKLLoss`` (epsilon 0): per-replica mean over B*K.

    Args:
        y_pred: (B, h, w, K) predicted heatmaps (logits of a spatial softmax).
        y_true: (B, h, w, K) non-negative targets (normalised here; all-zero maps give 0).
        weights: optional (B, K) per-keypoint weights.
    """
    pred = ops.convert_to_tensor(y_pred, "float32")
    true = ops.convert_to_tensor(y_true, "float32")
    b, k = ops.shape(pred)[0], pred.shape[-1]
    pred = ops.reshape(ops.transpose(pred, (0, 3, 1, 2)), (b, k, -1))
    true = ops.reshape(ops.transpose(true, (0, 3, 1, 2)), (b, k, -1))
    log_q = ops.log_softmax(pred, axis=-1)
    p = true / ops.maximum(ops.sum(true, axis=-1, keepdims=True), 1e-12)
    safe_p = ops.where(p > 0, p, 1.0)
    kl = ops.sum(ops.where(p > 0, p * (ops.log(safe_p) - log_q), 0.0), axis=-1)  # (B, K)
    if weights is not None:
        kl = kl * ops.cast(weights, "float32")
    return ops.mean(kl)
