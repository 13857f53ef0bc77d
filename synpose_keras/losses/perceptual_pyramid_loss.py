"""PerceptualPyramidLoss: multi-scale VGG-19 perceptual loss (FOMM), or an L1 + SSIM fallback."""

from __future__ import annotations

import math
import os

import keras
import numpy as np
from keras import ops

from synpose_keras.losses._utils import dtype_name
from synpose_keras.losses.ssim import ssim
from synpose_keras.ops.warp import anti_alias_downsample

VGG_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
"""Keras VGG19 layer names of relu1_1 ... relu5_1 (Keras convs carry their ReLU)."""

# Caffe/ImageNet BGR means used by keras.applications.vgg19.preprocess_input.
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_VGG_MIN_SIZE = 16  # four 2×2 poolings before block5_conv1


def _build_vgg_features(vgg_weights):
    if vgg_weights != "imagenet" and not os.path.isfile(vgg_weights):
        raise FileNotFoundError(
            f"VGG-19 weights file not found: {vgg_weights}. Pass the path of a Keras VGG19 "
            "weights file without the classifier (vgg19_weights_tf_dim_ordering_tf_kernels_"
            "notop.h5, or a .weights.h5 saved from keras.applications.VGG19(include_top=False)), "
            "'imagenet' to let Keras download it, or vgg_weights=None for the L1 + SSIM fallback. "
            f"Received: vgg_weights={vgg_weights!r}"
        )
    try:
        vgg = keras.applications.VGG19(
            include_top=False, weights=vgg_weights, input_shape=(None, None, 3)
        )
    except Exception as error:  # download failure or a file for another architecture
        raise ValueError(
            f"Could not load VGG-19 weights from {vgg_weights!r} ({type(error).__name__}: "
            f"{error}). Expected a Keras VGG19 include_top=False weights file; without network "
            "access download it elsewhere and pass its path, or use vgg_weights=None. "
            f"Received: vgg_weights={vgg_weights!r}"
        ) from error
    features = keras.Model(
        vgg.input, [vgg.get_layer(name).output for name in VGG_LAYERS], name="vgg19_features"
    )
    features.trainable = False
    return features


@keras.saving.register_keras_serializable(package="synpose_keras")
class PerceptualPyramidLoss(keras.losses.Loss):
    """Reconstruction loss over an image pyramid: VGG-19 perceptual L1, or L1 + (1 − SSIM).

    Both images are downsampled to every scale of ``scales`` with FOMM's anti-aliasing (Gaussian
    σ = (1/s − 1)/2, then stride 1/s). Per sample:

    - with ``vgg_weights`` (a file path or "imagenet"): ``Σ_s Σ_i layer_weights[i] ·
      mean |φ_i(pred_s) − φ_i(true_s)|`` where φ_1..φ_5 are VGG-19 relu1_1, relu2_1, relu3_1,
      relu4_1, relu5_1 (Keras layers block1_conv1 … block5_conv1) on Caffe-preprocessed inputs
      (RGB→BGR, ×255, ImageNet mean subtracted), target features without gradient. FOMM weights
      every term 10 on torchvision's VGG (inputs in [0, 1] divided by the ImageNet std ≈ 0.226);
      Keras's Caffe-trained VGG takes 0–255 input without std division, so its features are
      roughly 255 × 0.226 ≈ 58 times larger (and come from other weights): re-tune
      ``layer_weights`` (or the loss weight) rather than expecting FOMM's magnitudes;
    - with ``vgg_weights=None`` (no weights available, tests, CPU demo): ``Σ_s l1_weight ·
      mean |pred_s − true_s| + ssim_weight · (1 − SSIM(pred_s, true_s))`` (SSIM: 11×11 Gaussian
      window, σ 1.5, see ``synpose_keras.losses.ssim``).

    The VGG network is built (and its weights loaded) in the constructor, frozen; create the loss
    inside ``strategy.scope()`` when training distributed. It runs under the global dtype policy
    (bf16 with ``mixed_bfloat16``); the loss itself is float32. The smallest pyramid level must be
    at least 16 pixels for VGG (e.g. 128×128 images for scales down to 1/8).

    Args:
        scales: tuple of float. Pyramid scales, each 1 or 1/n. Defaults to (1, 1/2, 1/4, 1/8).
        vgg_weights: optional str. Path to a Keras VGG19 ``include_top=False`` weights file
            (``.h5`` or ``.weights.h5``), or "imagenet" (Keras downloads it), or None for the
            L1 + SSIM fallback. Defaults to None.
        layer_weights: tuple of 5 floats. Weight of each VGG layer term. Defaults to (10,) * 5.
        l1_weight: float. Fallback L1 weight. Defaults to 1.0.
        ssim_weight: float. Fallback (1 − SSIM) weight. Defaults to 1.0.
        reduction: str. Keras reduction over the batch. Defaults to "sum_over_batch_size".
        name: str. Defaults to "perceptual_pyramid_loss".
        dtype: optional dtype (policy) of the loss. Defaults to None (float32).

    Shape glossary: B batch, H×W image size.
        ``y_true`` (real driving image) and ``y_pred`` (generated image): (B, H, W, 3) in [0, 1]
        (any channel count for the fallback); ``call`` returns (B,).

    Example:

    ```python
    from synpose_keras.losses import PerceptualPyramidLoss

    loss_fn = PerceptualPyramidLoss(vgg_weights="weights/vgg19_notop.h5")
    loss = loss_fn(driving_image, generated_image)
    ```

    Reference:
        Siarohin et al., "First Order Motion Model for Image Animation", NeurIPS 2019
        (``ImagePyramide``, ``Vgg19`` perceptual loss); Johnson et al., ECCV 2016; Lin et al.,
        NeurIPS 2023, §3.2 (L_rec).
    """

    def __init__(self, scales=(1.0, 0.5, 0.25, 0.125), vgg_weights=None,
                 layer_weights=(10.0, 10.0, 10.0, 10.0, 10.0), l1_weight=1.0, ssim_weight=1.0,
                 reduction="sum_over_batch_size", name="perceptual_pyramid_loss", dtype=None):
        scales = tuple(float(s) for s in scales)
        for s in scales:
            if not (0 < s <= 1 and math.isclose(1.0 / s, round(1.0 / s))):
                raise ValueError(
                    f"Every scale must be 1 or 1/n for an integer n. Received: scales={scales}"
                )
        if not scales:
            raise ValueError(f"`scales` must not be empty. Received: scales={scales}")
        layer_weights = tuple(float(w) for w in layer_weights)
        if len(layer_weights) != len(VGG_LAYERS):
            raise ValueError(
                f"`layer_weights` must have {len(VGG_LAYERS)} values (relu1_1 ... relu5_1). "
                f"Received: layer_weights={layer_weights}"
            )
        if vgg_weights is not None and not isinstance(vgg_weights, (str, os.PathLike)):
            raise ValueError(
                "`vgg_weights` must be None, 'imagenet' or a file path. "
                f"Received: vgg_weights={vgg_weights!r}"
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.scales = scales
        self.vgg_weights = None if vgg_weights is None else os.fspath(vgg_weights)
        self.layer_weights = layer_weights
        self.l1_weight = float(l1_weight)
        self.ssim_weight = float(ssim_weight)
        self.vgg = None if self.vgg_weights is None else _build_vgg_features(self.vgg_weights)

    def _vgg_term(self, y_true, y_pred):
        size = [d for d in y_pred.shape[1:3] if d is not None]
        if size and min(size) < _VGG_MIN_SIZE:
            raise ValueError(
                f"Pyramid level of {tuple(y_pred.shape[1:3])} pixels is smaller than VGG-19's "
                f"minimum of {_VGG_MIN_SIZE}; use larger images or fewer scales. "
                f"Received: scales={self.scales}"
            )
        # VGG runs on pred (with gradient) and on the target (without) separately: with one
        # concatenated batch the backward pass of every VGG layer would also run over the target
        # half. VGG has no batch-dependent layer, so the features are the same either way.
        mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR)
        pred = ops.flip(y_pred * 255.0, axis=-1) - mean
        true = ops.stop_gradient(ops.flip(y_true * 255.0, axis=-1) - mean)
        pred_features = self.vgg(pred, training=False)
        true_features = self.vgg(true, training=False)
        total = 0.0
        for weight, pred_f, true_f in zip(self.layer_weights, pred_features, true_features):
            pred_f = ops.cast(pred_f, "float32")
            true_f = ops.stop_gradient(ops.cast(true_f, "float32"))
            total += weight * ops.mean(ops.abs(pred_f - true_f), axis=(1, 2, 3))
        return total

    def _fallback_term(self, y_true, y_pred):
        l1 = ops.mean(ops.abs(y_pred - y_true), axis=(1, 2, 3))
        return self.l1_weight * l1 + self.ssim_weight * (1.0 - ssim(y_pred, y_true))

    def call(self, y_true, y_pred):
        total = 0.0
        for scale in self.scales:
            true_s = anti_alias_downsample(y_true, scale)
            pred_s = anti_alias_downsample(y_pred, scale)
            if self.vgg is not None:
                total += self._vgg_term(true_s, pred_s)
            else:
                total += self._fallback_term(true_s, pred_s)
        return total

    def get_config(self):
        return {
            "scales": self.scales,
            "vgg_weights": self.vgg_weights,
            "layer_weights": self.layer_weights,
            "l1_weight": self.l1_weight,
            "ssim_weight": self.ssim_weight,
            "reduction": self.reduction,
            "name": self.name,
            "dtype": dtype_name(self),
        }
