"""AdaINStyleLoss: style loss of the AdaIN style transfer network (feature statistics)."""

from __future__ import annotations

import keras
from keras import ops

from synpose_keras.losses._utils import dtype_name


@keras.saving.register_keras_serializable(package="synpose_keras")
class AdaINStyleLoss(keras.losses.Loss):
    """Style loss of Huang & Belongie: match channel means and stds at every encoder layer.

    For encoder layers i = 1..L (relu1_1 … relu4_1 in AdaIN), with per-sample, per-channel mean
    μ and standard deviation σ over the spatial positions:

        loss = Σ_i [ mean_C (μ(φ_i(g(t))) − μ(φ_i(s)))² + mean_C (σ(φ_i(g(t))) − σ(φ_i(s)))² ]

    per sample (B,); averaged over the batch by the default reduction, this is the reference
    code's ``Σ_i MSE(mean) + MSE(std)``. σ = sqrt(population variance + ``epsilon``), the variance
    of AdaIN layers in Keras (the PyTorch reference uses the unbiased variance + 1e-5; the two
    differ by a factor n/(n−1) inside the square root, negligible for feature maps).

    Args:
        epsilon: float. Added to the variance before the square root. Defaults to 1e-5.
        reduction: str. Keras reduction. Defaults to "sum_over_batch_size".
        name: str. Defaults to "adain_style_loss".
        dtype: optional dtype (policy) of the computation. Defaults to None (float32).

    Shape glossary: B batch, h_i×w_i, C_i size and channels of layer i.
        ``y_true`` = [φ_i(style)] and ``y_pred`` = [φ_i(g(t))]: lists (same length, one tensor
        (B, h_i, w_i, C_i) per layer; style and output may differ in h_i×w_i).

    Example:

    ```python
    from synpose_keras.losses import AdaINStyleLoss

    loss = AdaINStyleLoss()(encoder(style_images), encoder(decoded))
    ```

    Reference:
        Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance
        Normalization", ICCV 2017, §6 (L_s).
    """

    def __init__(self, epsilon=1e-5, reduction="sum_over_batch_size", name="adain_style_loss",
                 dtype=None):
        if not epsilon >= 0:
            raise ValueError(f"`epsilon` must be >= 0. Received: epsilon={epsilon!r}")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = float(epsilon)

    def _statistics(self, features):
        mean, variance = ops.moments(features, axes=(1, 2))
        return mean, ops.sqrt(variance + self.epsilon)

    def call(self, y_true, y_pred):
        if not isinstance(y_true, (list, tuple)):
            y_true, y_pred = [y_true], [y_pred]
        if len(y_true) != len(y_pred):
            raise ValueError(
                "`y_true` and `y_pred` must hold one feature map per layer each. "
                f"Received: len(y_true)={len(y_true)}, len(y_pred)={len(y_pred)}"
            )
        total = 0.0
        for style, output in zip(y_true, y_pred):
            style_mean, style_std = self._statistics(style)
            output_mean, output_std = self._statistics(output)
            total += ops.mean(ops.square(output_mean - style_mean), axis=-1)
            total += ops.mean(ops.square(output_std - style_std), axis=-1)
        return total

    def get_config(self):
        return {
            "epsilon": self.epsilon,
            "reduction": self.reduction,
            "name": self.name,
            "dtype": dtype_name(self),
        }
