"""Generator G: base image + displacement field D + occlusion map C -> driving image."""

import numbers

import keras
from keras import ops

from synpose_keras.models.hourglass import (
    DownBlock2D,
    Hourglass,
    ResBlock2D,
    SameBlock2D,
    UpBlock2D,
)
from synpose_keras.ops.warp import grid_sample, make_coordinate_grid

__all__ = ["Generator"]

# FOMM's OcclusionAwareGenerator = the paper's Johnson generator (2 down, 6 residual, 2 up).
PAPER_CONFIG = {
    "block_expansion": 64,
    "num_down_blocks": 2,
    "num_residual_blocks": 6,
    "max_features": 512,
}

OUTPUT_MODES = ("blend", "decoder")


def _check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"Generator: `{name}` must be an integer >= {minimum}. Received: {name}={value!r}"
        )


@keras.saving.register_keras_serializable(package="synpose_keras")
class Generator(keras.Model):
    """Occlusion-aware Johnson-style generator (FOMM `OcclusionAwareGenerator`).

    A 7×7 SameBlock (conv-BN-ReLU) to `block_expansion` channels, `num_down_blocks` down blocks
    (conv3×3-BN-ReLU-avgpool2×2, doubling the width up to `max_features`), then the encoder
    features are warped by the displacement field D (bilinear `grid_sample`, align_corners=True)
    and multiplied by the occlusion map C. `num_residual_blocks` pre-activation residual blocks,
    `num_down_blocks` up blocks (nearest ×2-conv3×3-BN-ReLU), a 7×7 convolution back to the image
    channels and a sigmoid give the decoder's image in [0, 1]; `output_mode` (below) says
    whether that is the output or is blended with the warped base image.

    When D or C is not at the feature resolution (1 / 2**num_down_blocks of the image) it is
    resized bilinearly. D is resized as a displacement from the identity (D - z, resized, plus
    the identity grid at the new size), so an identity field stays exactly the identity.

    With `hourglass_refinement=True`, an `Hourglass` (same width arguments, depth
    `hourglass_num_blocks`) refines the warped, occlusion-masked features before the residual
    blocks: x <- x + conv1×1(hourglass(x)). This is the supplementary's "U-Net" reading of G.

    Output (`output_mode`): the paper's reading and ours. The paper's G is a Johnson network,
    so its output is the decoder's image ("decoder"). FOMM's occlusion-aware generator
    (Siarohin et al., NeurIPS 2019), which the paper's W and G follow, uses the occlusion map
    only on the 1/4-resolution encoder features (warped features times C), so even a perfect
    D and C = 1 leave the decoder to re-synthesise every pixel, and it can do worse than copying
    the base image. Our default, "blend", also applies it at full resolution:

        output = C↑ · grid_sample(base, D↑) + (1 - C↑) · decoder(·)

    with D↑ the field D resized to the image size (as a displacement from the identity, see
    above) and C↑ the map C resized bilinearly. Where C is 1 the output is the base image warped
    at full resolution, where it is 0 the decoder inpaints. Copying the base image (D = identity,
    C = 1) is exactly representable, and warping it by the keypoints' motion too, whatever the
    decoder has learnt; the reconstruction loss reaches the keypoints through D at the image's
    resolution. The Thin-Plate Spline Motion Model ends its inpainting network with the same
    blend (Zhao and Zhang, CVPR 2022). Models saved before this option existed have no
    `output_mode` in their config and load as "decoder".

    Args:
        block_expansion: int. Width after the first convolution; FOMM uses 64. Defaults to 64.
        num_down_blocks: int. Down (and up) blocks; the image is processed at
            1 / 2**num_down_blocks resolution. Defaults to 2.
        num_residual_blocks: int. Residual blocks at the bottleneck (0 allowed). Defaults to 6.
        max_features: int. Width cap. FOMM uses 512. Defaults to 512.
        hourglass_refinement: bool. Refine the warped features with an hourglass.
            Defaults to False.
        hourglass_num_blocks: int. Depth of that hourglass (used only when
            `hourglass_refinement` is True); the feature resolution must be divisible by
            `2**hourglass_num_blocks`. Defaults to 5.
        output_mode: str. "blend" (the warped base image at full resolution blended with the
            decoder's image by the occlusion map) or "decoder" (the decoder's image alone, the
            behaviour before this option). Defaults to "blend".
        **kwargs: forwarded to `keras.Model`.

    Shapes (B batch, H×W image, h×w motion resolution, C image channels):
        inputs: a list `[base_image, deformation, occlusion]`: base image (B, H, W, C) in [0, 1];
            deformation (B, h, w, 2), a sampling grid of (x, y) in [-1, 1] (the warping
            module's "deformation"); occlusion (B, h', w', 1) in [0, 1].
        output: the generated driving image (B, H, W, C) in [0, 1], float32.

    Example:

    >>> import numpy as np
    >>> from synpose_keras.models import Generator
    >>> from synpose_keras.ops import make_coordinate_grid
    >>> generator = Generator(block_expansion=8, max_features=32, num_residual_blocks=1)
    >>> image = np.zeros((2, 64, 64, 3), "float32")
    >>> identity = np.broadcast_to(np.asarray(make_coordinate_grid(16, 16)), (2, 16, 16, 2))
    >>> tuple(generator([image, identity, np.ones((2, 16, 16, 1), "float32")]).shape)
    (2, 64, 64, 3)

    Reference:
        Lin et al., NeurIPS 2023, supplementary A (G: Johnson, 2 down, 6 residual, 2 up).
        Siarohin et al., "First Order Motion Model for Image Animation", NeurIPS 2019
        (`modules/generator.py`). Zhao and Zhang, "Thin-Plate Spline Motion Model for Image
        Animation", CVPR 2022 (the full-resolution blend of "blend").
    """

    def __init__(
        self,
        block_expansion=64,
        num_down_blocks=2,
        num_residual_blocks=6,
        max_features=512,
        hourglass_refinement=False,
        hourglass_num_blocks=5,
        output_mode="blend",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int(block_expansion, "block_expansion")
        _check_positive_int(num_down_blocks, "num_down_blocks", minimum=0)
        _check_positive_int(num_residual_blocks, "num_residual_blocks", minimum=0)
        _check_positive_int(max_features, "max_features")
        if not isinstance(hourglass_refinement, bool):
            raise ValueError(
                "Generator: `hourglass_refinement` must be a bool. Received: "
                f"hourglass_refinement={hourglass_refinement!r}"
            )
        _check_positive_int(hourglass_num_blocks, "hourglass_num_blocks")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(
                f"Generator: `output_mode` must be one of {list(OUTPUT_MODES)}. Received: "
                f"output_mode={output_mode!r}"
            )
        self.block_expansion = int(block_expansion)
        self.num_down_blocks = int(num_down_blocks)
        self.num_residual_blocks = int(num_residual_blocks)
        self.max_features = int(max_features)
        self.hourglass_refinement = hourglass_refinement
        self.hourglass_num_blocks = int(hourglass_num_blocks)
        self.output_mode = output_mode

        self.first = SameBlock2D(self.block_expansion, kernel_size=7, name="first")
        self.down_blocks = [
            DownBlock2D(self._width(i + 1), name=f"down_{i}") for i in range(self.num_down_blocks)
        ]
        if hourglass_refinement:
            self.hourglass = Hourglass(
                block_expansion=self.block_expansion,
                num_blocks=self.hourglass_num_blocks,
                max_features=self.max_features,
                name="hourglass",
            )
            self.hourglass_projection = keras.layers.Conv2D(
                self.bottleneck_features, 1, name="hourglass_projection"
            )
        else:
            self.hourglass = None
            self.hourglass_projection = None
        self.residual_blocks = [
            ResBlock2D(kernel_size=3, name=f"residual_{i}") for i in range(self.num_residual_blocks)
        ]
        self.up_blocks = [
            UpBlock2D(self._width(self.num_down_blocks - i - 1), name=f"up_{i}")
            for i in range(self.num_down_blocks)
        ]
        self.final = None  # output channels = image channels, known in build()

    @classmethod
    def paper(cls, **overrides):
        """FOMM's generator size (64 -> 128 -> 256, six residual blocks), about 7.9 M parameters.

        `**overrides` replaces any constructor argument.
        """
        return cls(**{**PAPER_CONFIG, **overrides})

    def _width(self, level):
        return min(self.max_features, self.block_expansion * 2**level)

    @property
    def bottleneck_features(self):
        """Channels of the warped feature map (and of the residual blocks)."""
        return self._width(self.num_down_blocks)

    @property
    def divisor(self):
        """The image height and width must be multiples of this number."""
        depth = self.num_down_blocks
        if self.hourglass_refinement:
            depth += self.hourglass_num_blocks
        return 2**depth

    # ------------------------------------------------------------------------------------------
    # Shapes and validation
    # ------------------------------------------------------------------------------------------

    def _split_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
            raise ValueError(
                "Generator expects a list [base_image, deformation, occlusion]. Received: "
                f"input_shape={input_shape!r}"
            )
        image_shape, deformation_shape, occlusion_shape = (tuple(s) for s in input_shape)
        if len(image_shape) != 4 or image_shape[-1] is None:
            raise ValueError(
                "Generator: the base image must be NHWC (B, H, W, C) with a known C. Received: "
                f"image_shape={image_shape}"
            )
        if len(deformation_shape) != 4 or deformation_shape[-1] != 2:
            raise ValueError(
                "Generator: `deformation` must have shape (B, h, w, 2). Received: "
                f"deformation_shape={deformation_shape}"
            )
        if len(occlusion_shape) != 4 or occlusion_shape[-1] != 1:
            raise ValueError(
                "Generator: `occlusion` must have shape (B, h, w, 1). Received: "
                f"occlusion_shape={occlusion_shape}"
            )
        return image_shape, deformation_shape, occlusion_shape

    def _check_image_size(self, height, width):
        if any(s is not None and (s < self.divisor or s % self.divisor) for s in (height, width)):
            extra = (
                f" and hourglass_num_blocks={self.hourglass_num_blocks}"
                if self.hourglass_refinement
                else ""
            )
            raise ValueError(
                f"Generator: with num_down_blocks={self.num_down_blocks}{extra} the image height "
                f"and width must be positive multiples of {self.divisor}. Received: "
                f"image_size={height}×{width}"
            )

    def build(self, input_shape):
        if self.built:
            return
        image_shape, _, _ = self._split_shapes(input_shape)
        self._check_image_size(image_shape[1], image_shape[2])
        channels = image_shape[-1]
        self.final = keras.layers.Conv2D(channels, 7, padding="same", name="final")
        shape = (None, None, None, channels)
        self.first.build(shape)
        shape = self.first.compute_output_shape(shape)
        for block in self.down_blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        if self.hourglass is not None:
            self.hourglass.build(shape)
            self.hourglass_projection.build(self.hourglass.compute_output_shape(shape))
        for block in self.residual_blocks:
            block.build(shape)
        for block in self.up_blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.final.build(shape)
        self.built = True

    # ------------------------------------------------------------------------------------------
    # Forward pass
    # ------------------------------------------------------------------------------------------

    @staticmethod
    def resize_deformation(deformation, height, width):
        """Resize a sampling grid (B, h, w, 2) to (height, width), keeping the identity exact."""
        static = tuple(deformation.shape)
        if static[1] == height and static[2] == width:
            return deformation
        if static[1] is None or static[2] is None:
            raise ValueError(
                "Generator: `deformation` needs a static height and width. Received: "
                f"deformation_shape={static}"
            )
        source_grid = ops.cast(make_coordinate_grid(static[1], static[2]), deformation.dtype)
        target_grid = ops.cast(make_coordinate_grid(height, width), deformation.dtype)
        offset = ops.image.resize(deformation - source_grid, (height, width), "bilinear")
        return target_grid + offset

    @staticmethod
    def resize_occlusion(occlusion, height, width):
        """Resize an occlusion map (B, h, w, 1) to (height, width) bilinearly."""
        static = tuple(occlusion.shape)
        if static[1] == height and static[2] == width:
            return occlusion
        return ops.image.resize(occlusion, (height, width), "bilinear")

    def call(self, inputs, training=None):
        base, deformation, occlusion = inputs
        image = ops.cast(base, self.compute_dtype)
        self._check_image_size(image.shape[1], image.shape[2])

        out = self.first(image, training=training)
        for block in self.down_blocks:
            out = block(out, training=training)

        height, width = out.shape[1], out.shape[2]
        if height is None or width is None:
            raise ValueError(
                "Generator needs images with a static height and width. Received: "
                f"image_shape={tuple(image.shape)}"
            )
        deformation = ops.cast(deformation, "float32")
        occlusion = ops.cast(occlusion, "float32")
        # grid_sample computes coordinates in float32 (also under mixed precision).
        out = grid_sample(out, self.resize_deformation(deformation, height, width))
        out = out * ops.cast(self.resize_occlusion(occlusion, height, width), out.dtype)

        if self.hourglass is not None:
            out = out + self.hourglass_projection(self.hourglass(out, training=training))
        for block in self.residual_blocks:
            out = block(out, training=training)
        for block in self.up_blocks:
            out = block(out, training=training)
        out = self.final(out)
        decoded = ops.cast(ops.sigmoid(out), "float32")
        if self.output_mode == "decoder":
            return decoded
        return self.blend(base, deformation, occlusion, decoded)

    def blend(self, base, deformation, occlusion, decoded):
        """C↑ · grid_sample(base, D↑) + (1 - C↑) · decoded, at the image resolution (float32).

        Args:
            base: tensor (B, H, W, C), the base image in [0, 1].
            deformation: tensor (B, h, w, 2), the sampling grid D.
            occlusion: tensor (B, h', w', 1), the occlusion map C in [0, 1].
            decoded: tensor (B, H, W, C), the decoder's image in [0, 1].

        Returns:
            float32 tensor (B, H, W, C) in [0, 1].
        """
        base = ops.cast(base, "float32")
        height, width = base.shape[1], base.shape[2]
        deformation = self.resize_deformation(ops.cast(deformation, "float32"), height, width)
        occlusion = self.resize_occlusion(ops.cast(occlusion, "float32"), height, width)
        warped = grid_sample(base, deformation)
        return occlusion * warped + (1.0 - occlusion) * ops.cast(decoded, "float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "block_expansion": self.block_expansion,
                "num_down_blocks": self.num_down_blocks,
                "num_residual_blocks": self.num_residual_blocks,
                "max_features": self.max_features,
                "hourglass_refinement": self.hourglass_refinement,
                "hourglass_num_blocks": self.hourglass_num_blocks,
                "output_mode": self.output_mode,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Files saved before `output_mode` existed used the decoder's image alone.
        config = {"output_mode": "decoder", **config}
        return super().from_config(config)
