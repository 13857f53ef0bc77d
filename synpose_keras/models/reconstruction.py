"""The geometric reconstruction path: base image + two keypoint sets -> driving image."""

__all__ = ["reconstruct"]


def reconstruct(warping_module, generator, base_image, kp_base, kp_driving, training=None):
    """Generate the driving image from the base image and the keypoint displacements.

    Runs W on `[base_image, kp_base, kp_driving]` and G on `[base_image, D, C]`. Differentiable in
    the keypoints, the image and both modules' weights, so a reconstruction loss on the output
    trains the pose predictor that produced the keypoints.

    Args:
        warping_module: `synpose_keras.models.WarpingModule`.
        generator: `synpose_keras.models.Generator`.
        base_image: tensor (B, H, W, C), RGB in [0, 1].
        kp_base: tensor (B, K, 2). Keypoints on the base image, (x, y) normalised to [-1, 1]
            with align_corners=True (`synpose_keras.ops.warp.normalize_keypoints`).
        kp_driving: tensor (B, K, 2). Keypoints on the driving image, same convention.
        training: bool or None. Forwarded to both modules (BatchNorm mode).

    Returns:
        `(generated, motion)`: the generated driving image (B, H, W, C) in [0, 1] and the warping
        module's dict with "mask" (B, h, w, K+1), "deformation" (B, h, w, 2) and
        "occlusion" (B, h, w, 1).

    Example:

    >>> import numpy as np
    >>> from synpose_keras.models import Generator, WarpingModule
    >>> from synpose_keras.models.reconstruction import reconstruct
    >>> warp = WarpingModule(num_keypoints=5, block_expansion=8, num_blocks=3, max_features=32)
    >>> generator = Generator(block_expansion=8, max_features=32, num_residual_blocks=1)
    >>> image = np.zeros((2, 64, 64, 3), "float32")
    >>> kp = np.zeros((2, 5, 2), "float32")
    >>> generated, motion = reconstruct(warp, generator, image, kp, kp)
    >>> tuple(generated.shape)
    (2, 64, 64, 3)

    Reference:
        Lin et al., NeurIPS 2023, §3.2 (geometric reconstruction).
    """
    motion = warping_module([base_image, kp_base, kp_driving], training=training)
    generated = generator(
        [base_image, motion["deformation"], motion["occlusion"]], training=training
    )
    return generated, motion
