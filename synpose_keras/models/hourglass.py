"""FOMM hourglass (U-Net) shared by the warping module and the generator.

`Hourglass` is the public class of this module. The small convolution blocks it is made of
(`SameBlock2D`, `DownBlock2D`, `UpBlock2D`, `ResBlock2D`) are the First Order Motion Model's
building blocks; they live here because `WarpingModule` and `Generator` both use them.

Reference:
    Lin et al., NeurIPS 2023, supplementary A (W: five conv3×3-BN-ReLU-avgpool blocks down, five
    upsample-conv3×3-BN-ReLU blocks up). Siarohin et al., "First Order Motion Model for Image
    Animation", NeurIPS 2019 (`modules/util.py`: Hourglass, DownBlock2d, UpBlock2d, SameBlock2d,
    ResBlock2d).
"""

import numbers

import keras
from keras import ops

__all__ = ["Hourglass"]

# Torch BatchNorm2d (momentum 0.1, eps 1e-5) expressed in Keras terms: Keras's momentum weights the
# old moving statistics (torch's weights the new batch), so torch 0.1 is Keras 0.9.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


def _check_positive_int(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"{owner}: `{name}` must be a positive integer. Received: {name}={value!r}"
        )


def _batch_norm(name):
    return keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


class _ConvBlock(keras.layers.Layer):
    """Convolution ("same" padding)-BatchNorm-ReLU; the subclasses add what comes around it."""

    def __init__(self, filters, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        _check_positive_int(filters, "filters", owner)
        _check_positive_int(kernel_size, "kernel_size", owner)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.conv = keras.layers.Conv2D(filters, kernel_size, padding="same", name="conv")
        self.norm = _batch_norm("norm")

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.norm.build(tuple(input_shape[:-1]) + (self.filters,))
        self.built = True

    def _conv_bn_relu(self, inputs, training):
        return ops.relu(self.norm(self.conv(inputs), training=training))

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size})
        return config


@keras.saving.register_keras_serializable(package="synpose_keras")
class SameBlock2D(_ConvBlock):
    """Convolution-BatchNorm-ReLU at constant resolution ("same" padding).

    Args:
        filters: int. Output channels.
        kernel_size: int. Square kernel side. Defaults to 3.
        **kwargs: forwarded to `keras.layers.Layer`.

    Shapes: (B, H, W, C) -> (B, H, W, filters).
    """

    def call(self, inputs, training=None):
        return self._conv_bn_relu(inputs, training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)


@keras.saving.register_keras_serializable(package="synpose_keras")
class DownBlock2D(_ConvBlock):
    """Convolution 3×3-BatchNorm-ReLU followed by 2×2 average pooling (FOMM `DownBlock2d`).

    Args:
        filters: int. Output channels.
        kernel_size: int. Square kernel side. Defaults to 3.
        **kwargs: forwarded to `keras.layers.Layer`.

    Shapes: (B, H, W, C) -> (B, H/2, W/2, filters).
    """

    def __init__(self, filters, kernel_size=3, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self.pool = keras.layers.AveragePooling2D(pool_size=2, name="pool")

    def call(self, inputs, training=None):
        return self.pool(self._conv_bn_relu(inputs, training))

    def compute_output_shape(self, input_shape):
        b, h, w = input_shape[:3]
        return (b, None if h is None else h // 2, None if w is None else w // 2, self.filters)


@keras.saving.register_keras_serializable(package="synpose_keras")
class UpBlock2D(_ConvBlock):
    """Nearest ×2 upsampling followed by convolution 3×3-BatchNorm-ReLU (FOMM `UpBlock2d`).

    Args:
        filters: int. Output channels.
        kernel_size: int. Square kernel side. Defaults to 3.
        **kwargs: forwarded to `keras.layers.Layer`.

    Shapes: (B, H, W, C) -> (B, 2H, 2W, filters).
    """

    def __init__(self, filters, kernel_size=3, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self.upsample = keras.layers.UpSampling2D(size=2, interpolation="nearest",
                                                  name="upsample")

    def call(self, inputs, training=None):
        return self._conv_bn_relu(self.upsample(inputs), training)

    def compute_output_shape(self, input_shape):
        b, h, w = input_shape[:3]
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, self.filters)


@keras.saving.register_keras_serializable(package="synpose_keras")
class ResBlock2D(keras.layers.Layer):
    """Pre-activation residual block: x + conv(relu(BN(conv(relu(BN(x)))))) (FOMM `ResBlock2d`).

    Args:
        kernel_size: int. Square kernel side. Defaults to 3.
        **kwargs: forwarded to `keras.layers.Layer`.

    Shapes: (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(self, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int(kernel_size, "kernel_size", "ResBlock2D")
        self.kernel_size = int(kernel_size)
        self.norm1 = _batch_norm("norm1")
        self.conv1 = None
        self.norm2 = _batch_norm("norm2")
        self.conv2 = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                "ResBlock2D needs a known channel dimension. Received: input_shape="
                f"{tuple(input_shape)}"
            )
        self.conv1 = keras.layers.Conv2D(channels, self.kernel_size, padding="same", name="conv1")
        self.conv2 = keras.layers.Conv2D(channels, self.kernel_size, padding="same", name="conv2")
        for layer in (self.norm1, self.conv1, self.norm2, self.conv2):
            layer.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        x = self.conv1(ops.relu(self.norm1(inputs, training=training)))
        x = self.conv2(ops.relu(self.norm2(x, training=training)))
        return inputs + x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size})
        return config


@keras.saving.register_keras_serializable(package="synpose_keras")
class Hourglass(keras.layers.Layer):
    """FOMM hourglass: an encoder-decoder (U-Net) with skip concatenations.

    The encoder applies `num_blocks` `DownBlock2D` (conv3×3-BN-ReLU-avgpool2×2); block i outputs
    `min(max_features, block_expansion * 2**(i+1))` channels. The decoder applies `num_blocks`
    `UpBlock2D` (nearest ×2-conv3×3-BN-ReLU) and concatenates each output with the encoder
    feature map of the same resolution, the last one being the input itself. The output therefore
    has `block_expansion + C` channels at the input resolution.

    Args:
        block_expansion: int. Width of the first level; doubles at every level. FOMM uses 64.
            Defaults to 32.
        num_blocks: int. Number of down (and up) blocks. The paper uses 5. The input height and
            width must be divisible by `2**num_blocks`. Defaults to 5.
        max_features: int. Cap on the width of every level. FOMM uses 1024. Defaults to 256.
        **kwargs: forwarded to `keras.layers.Layer`.

    Shapes (B batch, H, W spatial, C channels):
        inputs: (B, H, W, C).
        output: (B, H, W, block_expansion + C).

    Example:

    >>> from synpose_keras.models.hourglass import Hourglass
    >>> import numpy as np
    >>> hourglass = Hourglass(block_expansion=8, num_blocks=3, max_features=32)
    >>> tuple(hourglass(np.zeros((2, 16, 16, 4), "float32")).shape)
    (2, 16, 16, 12)

    Reference:
        Lin et al., NeurIPS 2023, supplementary A; Siarohin et al., NeurIPS 2019 (FOMM `Hourglass`).
    """

    def __init__(self, block_expansion=32, num_blocks=5, max_features=256, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int(block_expansion, "block_expansion", "Hourglass")
        _check_positive_int(num_blocks, "num_blocks", "Hourglass")
        _check_positive_int(max_features, "max_features", "Hourglass")
        self.block_expansion = int(block_expansion)
        self.num_blocks = int(num_blocks)
        self.max_features = int(max_features)
        self.down_blocks = [
            DownBlock2D(self.level_features(i + 1), name=f"down_{i}")
            for i in range(self.num_blocks)
        ]
        self.up_blocks = [
            UpBlock2D(self.level_features(i), name=f"up_{i}")
            for i in reversed(range(self.num_blocks))
        ]

    def level_features(self, level):
        """Channels of encoder level `level` (level 0 = `block_expansion`, before the cap)."""
        return min(self.max_features, self.block_expansion * 2**level)

    @property
    def divisor(self):
        """The input height and width must be multiples of this number (`2**num_blocks`)."""
        return 2**self.num_blocks

    def check_spatial_size(self, height, width, context=None):
        """Raise a ValueError when (height, width) cannot go through `num_blocks` poolings.

        Unknown (None) sizes pass. `context` is prepended to the message to name the caller.
        """
        if any(s is not None and (s < self.divisor or s % self.divisor) for s in (height, width)):
            where = f"{context}: " if context else ""
            raise ValueError(
                f"{where}the hourglass halves its input {self.num_blocks} times (num_blocks="
                f"{self.num_blocks}), so the height and width it receives must be positive "
                f"multiples of 2**{self.num_blocks}={self.divisor}; it would receive "
                f"{height}×{width}. Lower num_blocks or use a larger image. Received: "
                f"num_blocks={self.num_blocks}"
            )

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "Hourglass expects NHWC inputs (B, H, W, C) with a known C. Received: "
                f"input_shape={input_shape}"
            )
        self.check_spatial_size(input_shape[1], input_shape[2], "Hourglass")
        shapes = [input_shape]
        for block in self.down_blocks:
            block.build(shapes[-1])
            shapes.append(block.compute_output_shape(shapes[-1]))
        out_shape = shapes.pop()
        for block in self.up_blocks:
            block.build(out_shape)
            out_shape = block.compute_output_shape(out_shape)
            skip = shapes.pop()
            out_shape = out_shape[:-1] + (out_shape[-1] + skip[-1],)
        self.built = True

    def call(self, inputs, training=None):
        static = tuple(inputs.shape)
        self.check_spatial_size(static[1], static[2], "Hourglass")
        outs = [inputs]
        for block in self.down_blocks:
            outs.append(block(outs[-1], training=training))
        out = outs.pop()
        for block in self.up_blocks:
            out = block(out, training=training)
            out = ops.concatenate([out, outs.pop()], axis=-1)
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.block_expansion + input_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "block_expansion": self.block_expansion,
                "num_blocks": self.num_blocks,
                "max_features": self.max_features,
            }
        )
        return config
