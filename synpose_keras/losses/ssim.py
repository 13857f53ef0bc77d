"""Structural similarity (SSIM) in keras.ops, as ``tf.image.ssim``."""

from __future__ import annotations

from keras import ops

from synpose_keras.losses._utils import depthwise_blur, gaussian_kernel_2d


def ssim(x, y, max_val: float = 1.0, filter_size: int = 11, filter_sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03):
    """Mean SSIM per image, differentiable, in ``keras.ops`` (backend-portable).

    Same definition as ``tf.image.ssim``: Gaussian-weighted local statistics (``filter_size`` ×
    ``filter_size`` window, σ = ``filter_sigma``, "valid" positions only), per-channel SSIM map
    ``(2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))`` with
    ``C1 = (k1·max_val)²``, ``C2 = (k2·max_val)²``, averaged over positions and channels.

    Documented choice for small images (the coarse levels of a pyramid): when the image is smaller
    than the window (static shape), the window shrinks to the largest odd size that fits, with the
    same σ. ``tf.image.ssim`` raises instead. SSIM(x, x) = 1 exactly.

    Args:
        x: tensor (B, H, W, C). First images, in [0, max_val].
        y: tensor (B, H, W, C). Second images.
        max_val: float. Dynamic range. Defaults to 1.0.
        filter_size: int. Gaussian window size. Defaults to 11.
        filter_sigma: float. Gaussian σ. Defaults to 1.5.
        k1: float. Defaults to 0.01.
        k2: float. Defaults to 0.03.

    Returns:
        tensor (B,): mean SSIM of each image pair, in [-1, 1].

    Example:

    ```python
    from synpose_keras.losses import ssim

    ssim(images_a, images_b)  # (B,)
    ```

    Reference:
        Wang et al., "Image Quality Assessment: From Error Visibility to Structural Similarity",
        IEEE TIP 2004.
    """
    x = ops.convert_to_tensor(x)
    y = ops.cast(ops.convert_to_tensor(y), x.dtype)
    if len(x.shape) != 4 or x.shape[-1] is None:
        raise ValueError(
            "`x` must be a (B, H, W, C) tensor with a known channel count. "
            f"Received: x.shape={tuple(x.shape)}"
        )
    size = int(filter_size)
    known = [d for d in x.shape[1:3] if d is not None]
    if known and min(known) < size:
        size = min(known) if min(known) % 2 else min(known) - 1
    if size < 1:
        raise ValueError(f"`x` is too small for SSIM. Received: x.shape={tuple(x.shape)}")
    kernel = gaussian_kernel_2d(size, filter_sigma)
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2

    def blur(t):
        return depthwise_blur(t, kernel)

    mean_x, mean_y = blur(x), blur(y)
    num0 = 2.0 * mean_x * mean_y
    den0 = ops.square(mean_x) + ops.square(mean_y)
    luminance = (num0 + c1) / (den0 + c1)
    num1 = 2.0 * blur(x * y)
    den1 = blur(ops.square(x) + ops.square(y))
    contrast_structure = (num1 - num0 + c2) / (den1 - den0 + c2)
    return ops.mean(luminance * contrast_structure, axis=(1, 2, 3))
