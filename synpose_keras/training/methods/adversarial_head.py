"""AdversarialHead: RegDA's second regressor on the pose predictor's features."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="synpose_keras")
class AdversarialHead(keras.Model):
    """Features (B, h, w, C) -> K heatmaps, the adversarial regressor of RegDA.

    ``num_layers - 1`` blocks of (3x3 conv with ``filters`` channels, BatchNorm, ReLU), then a
    1x1 conv to K channels; convolutions initialised N(0, 0.001) with zero bias (TLlib
    ``PoseResNet2d._make_head``). With ``num_layers=1`` it mirrors the main head of
    :class:`~synpose_keras.models.PosePredictor` (one 1x1 conv), which is our default: RegDA's
    two heads have the same capacity, and ours is a single 1x1 conv.

    Args:
        num_keypoints: int. K.
        filters: int. Channels of the hidden 3x3 convolutions. Defaults to 256.
        num_layers: int. Total layers (>= 1). Defaults to 1. TLlib: 2.
        **kwargs: forwarded to ``keras.Model``.

    Shapes:
        call: features (B, h, w, C) -> heatmaps (B, h, w, K) float32.

    Example:

    ```python
    from synpose_keras.training.methods import AdversarialHead
    head = AdversarialHead(num_keypoints=21, filters=64)
    heatmaps = head(np.zeros((2, 16, 16, 64), "float32"))  # (2, 16, 16, 21)
    ```

    Reference:
        Jiang et al., "Regressive Domain Adaptation for Unsupervised Keypoint Detection",
        CVPR 2021, Sec. 4 (adversarial regressor).
    """

    def __init__(self, num_keypoints, filters=256, num_layers=1, **kwargs):
        if int(num_keypoints) < 1:
            raise ValueError(f"num_keypoints must be >= 1. Received: num_keypoints={num_keypoints}")
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be >= 1. Received: num_layers={num_layers}")
        if int(filters) < 1:
            raise ValueError(f"filters must be >= 1. Received: filters={filters}")
        super().__init__(**kwargs)
        self.num_keypoints = int(num_keypoints)
        self.filters = int(filters)
        self.num_layers = int(num_layers)
        init = keras.initializers.RandomNormal(stddev=0.001)
        self.blocks = []
        for i in range(self.num_layers - 1):
            self.blocks += [
                layers.Conv2D(self.filters, 3, padding="same", kernel_initializer=init,
                              name=f"conv{i + 1}"),
                layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{i + 1}"),
                layers.ReLU(name=f"relu{i + 1}"),
            ]
        self.final_conv = layers.Conv2D(self.num_keypoints, 1, kernel_initializer=init,
                                        name="heatmaps")

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.blocks + [self.final_conv]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, features, training=None):
        x = features
        for layer in self.blocks:
            x = layer(x, training=training)
        return ops.cast(self.final_conv(x), "float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_keypoints,)

    def get_config(self):
        config = super().get_config()
        config.update(num_keypoints=self.num_keypoints, filters=self.filters,
                      num_layers=self.num_layers)
        return config
