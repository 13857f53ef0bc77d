"""Warping module W: keypoints -> region mask, displacement field D and inpainting map C."""

import numbers

import keras
from keras import ops

from synpose_keras.models.hourglass import Hourglass
from synpose_keras.ops.warp import (
    anti_alias_downsample,
    displacement_field,
    grid_sample,
    keypoints_to_gaussians,
    make_coordinate_grid,
)

__all__ = ["WarpingModule", "MASK_PRIORS"]

#: Region-mask priors: "none" (FOMM: the mask is the hourglass's alone), "gaussian" (the
#: hourglass's logits are added to log-Gaussians at the driving keypoints, and the mask head starts
#: at zero, so that an untrained module already moves each keypoint's neighbourhood with it) or
#: "analytic" (the mask is the log-Gaussians' softmax alone, at the image's full resolution; the
#: hourglass predicts only the occlusion map, and the keypoints act on the output through the
#: motion only).
MASK_PRIORS = ("none", "gaussian", "analytic")

#: With the "analytic" prior, the occlusion head's initial bias: sigmoid(4) = 0.98, so that an
#: untrained module and generator in "blend" mode return the base image warped by the analytic
#: motion.
ANALYTIC_OCCLUSION_BIAS = 4.0

#: With the "gaussian" prior, the background's logit: a pixel farther than this many standard
#: deviations (sqrt(kp_variance)) from every driving keypoint belongs to the static background.
BACKGROUND_RADIUS_SIGMAS = 3.0

# FOMM's dense-motion network (Siarohin et al., NeurIPS 2019; docs/protocol.md) with the paper's
# five-block hourglass.
PAPER_CONFIG = {
    "num_keypoints": 21,
    "block_expansion": 64,
    "num_blocks": 5,
    "max_features": 1024,
    "scale_factor": 0.25,
}


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"WarpingModule: `{name}` must be a positive integer. Received: {name}={value!r}"
        )


@keras.saving.register_keras_serializable(package="synpose_keras")
class WarpingModule(keras.Model):
    """Dense motion from two keypoint sets (FOMM dense-motion network, zero-order motion).

    The base image is downscaled by `scale_factor` (anti-aliased). At that resolution the module
    builds, for each of the K+1 regions (region 0 = background, which does not move):

    - the heatmap difference: a Gaussian (variance `kp_variance`, normalised units) at the driving
      keypoint minus one at the base keypoint; zero for the background;
    - the base image translated so that the base keypoint lands on the driving keypoint (backward
      warp by the sampling grid z + p_base_k - p_drv_k; identity for the background).

    The (K+1)·(C+1) channels go through an `Hourglass`; a 7×7 convolution gives K+1 logits and a
    softmax over them the region mask. The displacement field (a sampling grid into the base image)
    is D(z) = z + Σ_k mask_k(z)·(p_base_k - p_drv_k) (`synpose_keras.ops.warp.displacement_field`).
    Another 7×7 convolution and a sigmoid give the occlusion (inpainting) map C.

    Coordinates are (x, y) in [-1, 1] with ±1 at the centres of the edge pixels
    (align_corners=True), for keypoints and for D alike.

    Args:
        num_keypoints: int. K, the number of keypoints. Defaults to 21 (Hand21).
        block_expansion: int. Width of the hourglass's first level. FOMM uses 64. Defaults to 32.
        num_blocks: int. Hourglass depth; the paper uses 5. The motion resolution (image size ×
            `scale_factor`) must be divisible by `2**num_blocks`. Defaults to 5.
        max_features: int. Width cap of the hourglass. FOMM uses 1024. Defaults to 256.
        scale_factor: float, the inverse of an integer (1, 0.5, 0.25, ...). Resolution of the
            motion estimation relative to the image; 1 disables the downscaling. Defaults to 0.25.
        kp_variance: float. Variance of the keypoint Gaussians in normalised units.
            Defaults to 0.01.
        estimate_occlusion: bool. Predict the occlusion map; when False the map is all ones.
            Defaults to True.
        mask_prior: str. "none" (default): FOMM's mask, the hourglass's alone. "gaussian": the
            region logits are the hourglass's plus
            ``-|z - p_drv_k|^2 / (2 kp_variance)`` for keypoint k and ``-BACKGROUND_RADIUS_SIGMAS^2
            / 2`` for the background, and the mask head is initialised at zero, so that before
            any training the motion is the analytic one (each pixel follows its nearest driving
            keypoint's translation, pixels far from every keypoint stay). Our addition, not in
            FOMM or the paper: with the demo's short generator schedule the learned mask alone
            does not beat copying the base frame (docs/results.md). "analytic": the mask is that
            prior's softmax alone (no learned term, no mask head), computed at the image's full
            resolution, so "deformation" and "mask" come out at H×W; the hourglass predicts only
            the occlusion map, whose head starts at ``ANALYTIC_OCCLUSION_BIAS`` (the untrained
            generator in "blend" mode returns the analytically warped base image), and the
            keypoints reach the hourglass without gradient: the reconstruction loss's gradient
            at the keypoints is the motion's alone. Also ours; measured in docs/results.md.
            Files saved before this option existed load as "none".
        motion_consensus: optional float (normalised units), only with the "gaussian" and
            "analytic" priors. When set, each keypoint's region logit is lowered by
            ``(d_k / motion_consensus)^2``, where d_k is the distance between the keypoint's
            motion ``p_drv_k - p_base_k`` and the keypoints' median motion (per coordinate):
            a keypoint that moves unlike the rest of the subject (in practice a keypoint that the
            predictor misread on one of the two frames) gives its pixels to the static
            background instead of dragging them along. The weight is computed without gradient,
            so the loss's gradient still reaches every keypoint through its motion. Ours, not in
            FOMM or the paper; measured in docs/results.md. None (default): no weighting.
        **kwargs: forwarded to `keras.Model`.

    Shapes (B batch, H×W image, h×w = motion resolution, K keypoints):
        inputs: a list `[base_image, kp_base, kp_driving]`: base image (B, H, W, C) in [0, 1];
            base and driving keypoints (B, K, 2), (x, y) normalised to [-1, 1].
        output: a dict with "mask" (B, h, w, K+1) (sums to 1 over the last axis), "deformation"
            (B, h, w, 2) (a sampling grid for `grid_sample`) and "occlusion" (B, h, w, 1) in (0, 1).
            With ``mask_prior="analytic"``, "mask" and "deformation" are (B, H, W, ·).
        All three are float32.

    Example:

    >>> import numpy as np
    >>> from synpose_keras.models import WarpingModule
    >>> warp = WarpingModule(num_keypoints=5, block_expansion=8, num_blocks=3, max_features=32)
    >>> image = np.zeros((2, 64, 64, 3), "float32")
    >>> kp = np.zeros((2, 5, 2), "float32")
    >>> motion = warp([image, kp, kp])
    >>> tuple(motion["deformation"].shape)
    (2, 16, 16, 2)

    Reference:
        Lin et al., NeurIPS 2023, supplementary A (W). Siarohin et al., "First Order Motion Model
        for Image Animation", NeurIPS 2019, §3 and `modules/dense_motion.py`.
    """

    def __init__(
        self,
        num_keypoints=21,
        block_expansion=32,
        num_blocks=5,
        max_features=256,
        scale_factor=0.25,
        kp_variance=0.01,
        estimate_occlusion=True,
        mask_prior="none",
        motion_consensus=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int(num_keypoints, "num_keypoints")
        _check_positive_int(block_expansion, "block_expansion")
        _check_positive_int(num_blocks, "num_blocks")
        _check_positive_int(max_features, "max_features")
        if (
            isinstance(scale_factor, bool)
            or not isinstance(scale_factor, numbers.Real)
            or not 0.0 < scale_factor <= 1.0
            or abs(1.0 / scale_factor - round(1.0 / scale_factor)) > 1e-6
        ):
            raise ValueError(
                "WarpingModule: `scale_factor` must be the inverse of a positive integer "
                f"(1, 0.5, 0.25, ...). Received: scale_factor={scale_factor!r}"
            )
        if isinstance(kp_variance, bool) or not isinstance(kp_variance, numbers.Real) or not (
            kp_variance > 0
        ):
            raise ValueError(
                "WarpingModule: `kp_variance` must be a positive number. Received: "
                f"kp_variance={kp_variance!r}"
            )
        if not isinstance(estimate_occlusion, bool):
            raise ValueError(
                "WarpingModule: `estimate_occlusion` must be a bool. Received: "
                f"estimate_occlusion={estimate_occlusion!r}"
            )
        if mask_prior not in MASK_PRIORS:
            raise ValueError(
                f"WarpingModule: `mask_prior` must be one of {list(MASK_PRIORS)}. Received: "
                f"mask_prior={mask_prior!r}"
            )
        if motion_consensus is not None:
            if isinstance(motion_consensus, bool) or not isinstance(
                motion_consensus, numbers.Real
            ) or not motion_consensus > 0:
                raise ValueError(
                    "WarpingModule: `motion_consensus` must be None or a positive number "
                    f"(normalised units). Received: motion_consensus={motion_consensus!r}"
                )
            if mask_prior == "none":
                raise ValueError(
                    "WarpingModule: `motion_consensus` weights the keypoint regions of a "
                    "Gaussian mask prior; it needs mask_prior='gaussian' or 'analytic'. "
                    f"Received: mask_prior={mask_prior!r}, motion_consensus={motion_consensus!r}"
                )
            motion_consensus = float(motion_consensus)
        self.motion_consensus = motion_consensus
        self.mask_prior = mask_prior
        self.num_keypoints = int(num_keypoints)
        self.block_expansion = int(block_expansion)
        self.num_blocks = int(num_blocks)
        self.max_features = int(max_features)
        self.scale_factor = float(scale_factor)
        self.kp_variance = float(kp_variance)
        self.estimate_occlusion = estimate_occlusion

        self.hourglass = Hourglass(
            block_expansion=self.block_expansion,
            num_blocks=self.num_blocks,
            max_features=self.max_features,
            name="hourglass",
        )
        self.mask_head = None if mask_prior == "analytic" else keras.layers.Conv2D(
            self.num_keypoints + 1, 7, padding="same", name="mask",
            kernel_initializer="zeros" if mask_prior == "gaussian" else "glorot_uniform",
        )
        self.occlusion_head = (
            keras.layers.Conv2D(
                1, 7, padding="same", name="occlusion",
                bias_initializer=keras.initializers.Constant(
                    ANALYTIC_OCCLUSION_BIAS if mask_prior == "analytic" else 0.0),
            )
            if estimate_occlusion
            else None
        )

    @classmethod
    def paper(cls, **overrides):
        """FOMM's dense-motion size (block_expansion 64, max_features 1024, 5 blocks, scale 1/4).

        About 38 M parameters for K = 21. `**overrides` replaces any constructor argument.
        """
        return cls(**{**PAPER_CONFIG, **overrides})

    # ------------------------------------------------------------------------------------------
    # Shapes and validation
    # ------------------------------------------------------------------------------------------

    def _split_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
            raise ValueError(
                "WarpingModule expects a list [base_image, kp_base, kp_driving]. Received: "
                f"input_shape={input_shape!r}"
            )
        image_shape, base_shape, driving_shape = (tuple(s) for s in input_shape)
        if len(image_shape) != 4 or image_shape[-1] is None:
            raise ValueError(
                "WarpingModule: the base image must be NHWC (B, H, W, C) with a known C. "
                f"Received: image_shape={image_shape}"
            )
        for name, shape in (("kp_base", base_shape), ("kp_driving", driving_shape)):
            if len(shape) != 3 or shape[-1] != 2 or shape[1] not in (None, self.num_keypoints):
                raise ValueError(
                    f"WarpingModule: `{name}` must have shape (B, {self.num_keypoints}, 2) "
                    f"(num_keypoints={self.num_keypoints}). Received: {name}_shape={shape}"
                )
        return image_shape, base_shape, driving_shape

    def _check_motion_size(self, height, width, image_height, image_width):
        try:
            self.hourglass.check_spatial_size(height, width)
        except ValueError:
            largest = 0
            while all(
                s is None or (s % 2 ** (largest + 1) == 0 and s >= 2 ** (largest + 1))
                for s in (height, width)
            ):
                largest += 1
            raise ValueError(
                f"WarpingModule: a {image_height}×{image_width} image at scale_factor="
                f"{self.scale_factor} gives a {height}×{width} motion resolution, which the "
                f"hourglass cannot halve num_blocks={self.num_blocks} times (it must be a positive "
                f"multiple of 2**{self.num_blocks}={2 ** self.num_blocks}). Use num_blocks <= "
                f"{largest} or a larger image. Received: num_blocks={self.num_blocks}"
            ) from None

    def build(self, input_shape):
        if self.built:
            return
        image_shape, _, _ = self._split_shapes(input_shape)
        channels = image_shape[-1]
        regions = self.num_keypoints + 1
        features_shape = (None, None, None, regions * (channels + 1))
        self.hourglass.build(features_shape)
        prediction_shape = self.hourglass.compute_output_shape(features_shape)
        if self.mask_head is not None:
            self.mask_head.build(prediction_shape)
        if self.occlusion_head is not None:
            self.occlusion_head.build(prediction_shape)
        self.built = True

    # ------------------------------------------------------------------------------------------
    # Forward pass
    # ------------------------------------------------------------------------------------------

    def downsample(self, image):
        """The image at the motion resolution (anti-aliased; unchanged when scale_factor is 1)."""
        if self.scale_factor == 1.0:
            return image
        return anti_alias_downsample(image, self.scale_factor)

    def heatmap_representation(self, kp_base, kp_driving, height, width):
        """(B, h, w, K+1): Gaussians at driving minus Gaussians at base; channel 0 is zero."""
        gaussians_driving = keypoints_to_gaussians(kp_driving, height, width, self.kp_variance)
        gaussians_base = keypoints_to_gaussians(kp_base, height, width, self.kp_variance)
        heatmap = ops.cast(gaussians_driving - gaussians_base, self.compute_dtype)
        zeros = ops.zeros_like(heatmap[..., :1])
        return ops.concatenate([zeros, heatmap], axis=-1)

    def prior_logits(self, kp_driving, height, width):
        """(B, h, w, K+1) log-Gaussian region logits of the "gaussian" prior (channel 0: the
        background's constant)."""
        grid = ops.cast(make_coordinate_grid(height, width), "float32")  # (h, w, 2)
        diff = grid[None, :, :, None, :] - kp_driving[:, None, None, :, :]  # (B, h, w, K, 2)
        keypoints = -ops.sum(diff * diff, axis=-1) / (2.0 * self.kp_variance)
        background = ops.full_like(keypoints[..., :1], -0.5 * BACKGROUND_RADIUS_SIGMAS**2)
        return ops.concatenate([background, keypoints], axis=-1)

    def consensus_logits(self, kp_base, kp_driving):
        """(B, K+1) log-weights of the regions under ``motion_consensus`` (0 for the background),
        without gradient: ``-(|m_k - median_j m_j| / motion_consensus)^2`` with ``m = p_drv -
        p_base``."""
        motion = ops.stop_gradient(kp_driving - kp_base)  # (B, K, 2)
        median = ops.median(motion, axis=1, keepdims=True)  # (B, 1, 2)
        deviation = ops.sum(ops.square(motion - median), axis=-1)  # (B, K)
        logits = -deviation / (self.motion_consensus**2)
        return ops.concatenate([ops.zeros_like(logits[:, :1]), logits], axis=1)

    def sparse_motions(self, kp_base, kp_driving, height, width):
        """(B, K+1, h, w, 2): per-region sampling grids z + p_base_k - p_drv_k (region 0: z)."""
        grid = ops.cast(make_coordinate_grid(height, width), kp_base.dtype)  # (h, w, 2)
        shift = kp_base - kp_driving  # (B, K, 2)
        shift = ops.concatenate([ops.zeros_like(shift[:, :1]), shift], axis=1)  # (B, K+1, 2)
        return grid[None, None] + shift[:, :, None, None, :]

    def deformed_images(self, image, motions):
        """(B, K+1, h, w, C): the image sampled by each region's grid."""
        shape = ops.shape(image)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        regions = self.num_keypoints + 1
        repeated = ops.repeat(image[:, None], regions, axis=1)
        flat_images = ops.reshape(repeated, (-1, height, width, channels))
        flat_grids = ops.reshape(motions, (-1, height, width, 2))  # float32, also under bf16
        deformed = grid_sample(flat_images, flat_grids)
        return ops.reshape(deformed, (batch, regions, height, width, channels))

    def call(self, inputs, training=None):
        image, kp_base, kp_driving = inputs
        image = ops.cast(image, self.compute_dtype)
        kp_base = ops.cast(kp_base, "float32")
        kp_driving = ops.cast(kp_driving, "float32")

        low = self.downsample(image)
        static = tuple(low.shape)
        height, width, channels = static[1], static[2], static[3]
        if height is None or width is None:
            raise ValueError(
                "WarpingModule needs images with a static height and width (the keypoint "
                f"Gaussians and the displacement field are built for one size). Received: "
                f"image_shape={tuple(image.shape)}"
            )
        self._check_motion_size(height, width, image.shape[1], image.shape[2])
        regions = self.num_keypoints + 1

        analytic = self.mask_prior == "analytic"
        # "analytic": the keypoints act on the output through the motion only
        kp_in = [ops.stop_gradient(k) for k in (kp_base, kp_driving)] if analytic else (
            kp_base, kp_driving)
        heatmap = self.heatmap_representation(*kp_in, height, width)  # (B,h,w,K+1)
        motions = self.sparse_motions(*kp_in, height, width)  # (B,K+1,h,w,2)
        deformed = self.deformed_images(low, motions)  # (B,K+1,h,w,C)

        # FOMM layout: for each region, [heatmap difference, deformed image channels].
        per_region = ops.concatenate(
            [ops.transpose(heatmap, (0, 3, 1, 2))[..., None], ops.cast(deformed, heatmap.dtype)],
            axis=-1,
        )  # (B, K+1, h, w, C+1)
        features = ops.transpose(per_region, (0, 2, 3, 1, 4))
        features = ops.reshape(
            features, (ops.shape(features)[0], height, width, regions * (channels + 1))
        )

        prediction = self.hourglass(features, training=training)
        if analytic:
            logits = self.prior_logits(kp_driving, image.shape[1], image.shape[2])
        else:
            logits = ops.cast(self.mask_head(prediction), "float32")
            if self.mask_prior == "gaussian":
                logits = logits + self.prior_logits(kp_driving, height, width)
        if self.motion_consensus is not None:
            logits = logits + self.consensus_logits(kp_base, kp_driving)[:, None, None, :]
        mask = ops.softmax(logits, axis=-1)
        deformation = displacement_field(mask, kp_base, kp_driving)
        if self.occlusion_head is not None:
            occlusion = ops.sigmoid(ops.cast(self.occlusion_head(prediction), "float32"))
        else:
            occlusion = ops.ones_like(mask[..., :1])
        return {
            "mask": mask,
            "deformation": ops.cast(deformation, "float32"),
            "occlusion": occlusion,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_keypoints": self.num_keypoints,
                "block_expansion": self.block_expansion,
                "num_blocks": self.num_blocks,
                "max_features": self.max_features,
                "scale_factor": self.scale_factor,
                "kp_variance": self.kp_variance,
                "estimate_occlusion": self.estimate_occlusion,
                "mask_prior": self.mask_prior,
                "motion_consensus": self.motion_consensus,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Files saved before `mask_prior` existed used FOMM's mask alone.
        config = {"mask_prior": "none", **config}
        return super().from_config(config)
