"""Private helpers shared by the loss classes (not public API)."""

from __future__ import annotations

import numpy as np
from keras import ops


def keypoint_weights(sample_weight, y_pred):
    """Broadcasts per-keypoint weights (B, K), per-sample weights (B,) or a scalar to (B, K).

    Keras' ``reduce_weighted_values`` would not broadcast a (B,) weight against (B, K) per-keypoint
    losses, and ``"mean_with_sample_weight"`` divides by the sum of the weights *as given*; both
    need the full (B, K) array.
    """
    weights = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    if len(weights.shape) == 1:
        weights = ops.expand_dims(weights, -1)
    shape = ops.shape(y_pred)
    return ops.broadcast_to(weights, (shape[0], shape[-1]))


def gaussian_kernel_2d(size: int, sigma: float) -> np.ndarray:
    """Normalised (size, size) Gaussian, centred at (size - 1) / 2 (numpy, float32)."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    kernel = np.outer(g, g)
    return (kernel / kernel.sum()).astype(np.float32)


def depthwise_blur(images, kernel_2d: np.ndarray, strides: int = 1, padding: str = "valid"):
    """Same 2-D kernel on every channel of NHWC ``images`` (static channel count)."""
    channels = images.shape[-1]
    kernel = np.tile(kernel_2d[:, :, None, None], (1, 1, channels, 1))
    kernel = ops.cast(ops.convert_to_tensor(kernel), images.dtype)
    return ops.depthwise_conv(images, kernel, strides=strides, padding=padding)


def dtype_name(loss) -> str:
    """Serialisable dtype policy name of a Loss (Keras' own get_config omits it)."""
    return loss._dtype_policy.name
