"""Per-replica loss terms used by the stages' ``train_step`` (keras.ops).

Each returns a per-replica *mean*; a stage sums them and passes the total once through
:func:`synpose_keras.losses.scaling.scale_loss_for_distribution` (the one scaling convention).
The formulas are the ones of :mod:`synpose_keras.losses` (the ``keras.losses.Loss`` classes
users compile with); these functions are their unreduced cores for custom steps.
"""

from __future__ import annotations

from keras import ops


def heatmap_mse(y_true, y_pred, weights):
    """TLlib JointsMSELoss: 0.5 * mean over (batch, keypoints) of w_k * pixel MSE (w in {0, 1}).

    Args:
        y_true: (B, h, w, K) target heatmaps.
        y_pred: (B, h, w, K) predicted heatmaps.
        weights: (B, K) per-keypoint weights (visibility).
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    per_kp = ops.mean(ops.square(y_pred - y_true), axis=(1, 2))  # (B, K)
    return 0.5 * ops.mean(per_kp * ops.cast(weights, "float32"))


def masked_heatmap_mse(y_true, y_pred, mask):
    """Heatmap MSE averaged over the selected keypoint instances only (0 when none is selected)."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    mask = ops.cast(mask, "float32")
    per_kp = ops.mean(ops.square(y_pred - y_true), axis=(1, 2))
    return 0.5 * ops.sum(per_kp * mask) / ops.maximum(ops.sum(mask), 1.0)


def _ssim(x, y, window=7):
    """Mean SSIM with a uniform window (images in [0, 1])."""
    c1, c2 = 0.01**2, 0.03**2
    pool = lambda t: ops.average_pool(t, window, strides=1, padding="valid")  # noqa: E731
    mu_x, mu_y = pool(x), pool(y)
    sxx = pool(x * x) - mu_x * mu_x
    syy = pool(y * y) - mu_y * mu_y
    sxy = pool(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    return ops.mean(num / den)


def reconstruction_loss(target, generated, kind="ssim", scales=(1, 2, 4, 8)):
    """Pyramid reconstruction loss between images in [0, 1].

    Args:
        target: (B, H, W, 3) the real driving image.
        generated: (B, H, W, 3) the generator's output.
        kind: str. "ssim": L1 + (1 - SSIM)/2 per scale (the fallback when no VGG weights are
            present); "l1": L1 only.
        scales: downsampling factors of the pyramid (1, 1/2, 1/4, 1/8 of the resolution).
    """
    target = ops.cast(target, "float32")
    generated = ops.cast(generated, "float32")
    total = 0.0
    for s in scales:
        if s > 1:
            t = ops.average_pool(target, s, strides=s, padding="valid")
            g = ops.average_pool(generated, s, strides=s, padding="valid")
        else:
            t, g = target, generated
        term = ops.mean(ops.abs(t - g))
        if kind == "ssim" and ops.shape(t)[1] >= 7:
            term = term + 0.5 * (1.0 - _ssim(t, g))
        total = total + term
    return total / len(scales)
