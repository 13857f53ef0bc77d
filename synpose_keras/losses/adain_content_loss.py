"""AdaINContentLoss: content loss of the AdaIN style transfer network."""

from __future__ import annotations

import keras
from keras import ops

from synpose_keras.losses._utils import dtype_name


@keras.saving.register_keras_serializable(package="synpose_keras")
class AdaINContentLoss(keras.losses.Loss):
    """Content loss of Huang & Belongie: MSE between the output's encoder features and the target t.

    ``t = AdaIN(f(content), f(style))`` is the AdaIN output at the encoder's last layer (relu4_1)
    and ``f(g(t))`` the same encoder applied to the decoded image. ``call`` returns the mean over
    (h, w, C) of the squared difference per sample (B,); the default reduction averages over the
    batch, so the value equals ``nn.MSELoss()(f(g(t)), t)`` of the reference code.

    Args:
        reduction: str. Keras reduction. Defaults to "sum_over_batch_size".
        name: str. Defaults to "adain_content_loss".
        dtype: optional dtype (policy) of the computation. Defaults to None (float32).

    Shape glossary: B batch, h×w feature size, C channels.
        ``y_true`` = t and ``y_pred`` = f(g(t)): (B, h, w, C).

    Example:

    ```python
    from synpose_keras.losses import AdaINContentLoss

    loss = AdaINContentLoss()(target_features, encoder(decoded)[-1])
    ```

    Reference:
        Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance
        Normalization", ICCV 2017, §6 (L_c).
    """

    def __init__(self, reduction="sum_over_batch_size", name="adain_content_loss", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return ops.mean(ops.square(y_pred - y_true), axis=(1, 2, 3))

    def get_config(self):
        return {"reduction": self.reduction, "name": self.name, "dtype": dtype_name(self)}
