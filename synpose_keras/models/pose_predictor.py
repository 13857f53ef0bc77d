"""The keypoint predictor f_kp: a ResNet backbone and a SimpleBaseline deconvolution head."""

from __future__ import annotations

import warnings

import numpy as np
import keras
from keras import layers, ops

from synpose_keras.models.backbones import (
    BACKBONE_NORMALIZATION,
    BACKBONES,
    build_backbone,
    check_weights_argument,
    normalize_images,
)
from synpose_keras.models.forward import forward_function
from synpose_keras.ops.heatmaps import (
    LOCAL_SOFT_ARGMAX_BETA,
    LOCAL_SOFT_ARGMAX_WINDOW,
    READOUTS,
    SOFT_ARGMAX_BETA,
    HeatmapCodec,
    check_decoding,
)

BACKBONE_STRIDE = 32

# The paper's f_kp (supplementary A): ResNet-101, 256 x 256 input, 64 x 64 heatmaps.
PAPER_CONFIG = {"num_keypoints": 21, "backbone": "resnet101", "input_size": 256}


#: Values of `PosePredictor`'s ``handedness``: None (unknown or both hands), or one side.
HANDEDNESS = (None, "left", "right")


@keras.saving.register_keras_serializable(package="synpose_keras")
class PosePredictor(keras.Model):
    """Image -> K keypoint heatmaps (Xiao et al. 2018 "SimpleBaseline" on a ResNet).

    The head is ``num_deconv_layers`` × (4×4 stride-2 `Conv2DTranspose` with ``deconv_filters``
    channels, no bias, `BatchNormalization(momentum=0.9, epsilon=1e-5)` (= torch defaults), ReLU)
    followed by a 1×1 convolution to K channels. With 3 deconvolutions the heatmaps are 1/4 of
    the input (256 → 64).

    Inputs are raw RGB in [0, 255], uint8 or float, NHWC: the normalisation lives inside the
    model and depends on the backbone, so that ImageNet weights are used as trained
    (`synpose_keras.models.backbones`): "resnet101"/"resnet50" (keras.applications, Caffe
    weights) use Caffe preprocessing (BGR minus the BGR mean, 0-255 scale); "resnet18" (ours)
    uses RGB/255 then ImageNet mean/std. The normalisation is fixed by the backbone name, not by
    whether weights were loaded, so a model keeps its input convention whatever its weights.

    Heatmap pixel (x_hm, y_hm) maps to input pixel (x_hm · stride, y_hm · stride), the
    convention of `synpose_keras.ops.heatmaps.HeatmapCodec` and of the PCK protocol.
    `predict_keypoints` decodes with DARK sub-pixel refinement by default (``decoding="dark"``;
    ``"argmax"`` for the protocol's integer cells).

    Args:
        num_keypoints: int. K, the number of heatmaps. Defaults to 21 (Hand21).
        backbone: str. "resnet101" (paper), "resnet50" or "resnet18". Defaults to "resnet18".
        input_size: int. Side of the square input the model is built for; must be divisible by
            32. Other sizes divisible by 32 also run. Defaults to 256.
        backbone_weights: None, "imagenet" or str path to a local .h5/.weights.h5 file of the
            backbone. Only used at construction: `keras.models.load_model` restores every
            weight from the archive and never re-reads (or downloads) these. Defaults to None.
        num_deconv_layers: int. Number of stride-2 deconvolutions (0-5). Defaults to 3.
        output_stride: int. Backbone stride: 32 (every backbone), 16 or 8 (resnet18 only, for
            small inputs). The heatmap stride is output_stride / 2**num_deconv_layers.
            Defaults to 32.
        deconv_filters: int. Channels of each deconvolution. Defaults to 256.
        width_multiplier: float. Channel multiplier of the "resnet18" backbone (must stay 1.0
            for the Keras ResNets). Defaults to 1.0.
        soft_argmax_beta: float. Inverse temperature of the global readout
            (``soft_argmax_readout="global"``, `synpose_keras.ops.heatmaps.soft_argmax`), in
            units of heatmap value. Defaults to `SOFT_ARGMAX_BETA` (25).
        soft_argmax_readout: str. Differentiable readout of `keypoints` and `soft_keypoints`:
            "local" (`synpose_keras.ops.heatmaps.local_soft_argmax`: a soft-argmax in a window
            around the argmax with a peak-relative temperature, which agrees with the argmax on
            weak maps) or "global" (`synpose_keras.ops.heatmaps.soft_argmax` over the whole
            map, the readout of models saved before this option, whose configs now load with
            "local"). Defaults to "local".
        soft_argmax_window: int. Half-width in heatmap pixels of the local readout's window.
            Defaults to `LOCAL_SOFT_ARGMAX_WINDOW` (2, a 5 × 5 window).
        soft_argmax_local_beta: float. Inverse temperature of the local readout, relative to
            each map's peak. Defaults to `LOCAL_SOFT_ARGMAX_BETA` (50).
        handedness: None, "left" or "right". The hands the model was trained on, when they are
            all one side (training sets it from the source dataset: "left" for the hand
            benchmarks whose converters mirror right hands into left ones); None: unknown or
            both. Metadata only: stored in the config, so a saved `.keras` file states it
            (`synpose predict` tells to pass `--flip` for right hands), and models saved before
            this field load with None. Defaults to None.
        **kwargs: forwarded to `keras.Model` (name, dtype, ...).

    Shapes:
        B batch, H × W input, K keypoints, h = H / stride, w = W / stride,
        stride = 32 / 2**num_deconv_layers (4 by default).
        call: images (B, H, W, 3) -> heatmaps (B, h, w, K) float32.

    Example:
    >>> from synpose_keras.models import PosePredictor
    >>> model = PosePredictor(num_keypoints=21, backbone="resnet18", input_size=64,
    ...                       width_multiplier=0.25, deconv_filters=32)
    >>> images = np.zeros((2, 64, 64, 3), "uint8")
    >>> model.predict(images, verbose=0).shape
    (2, 16, 16, 21)
    >>> keypoints, scores = model.predict_keypoints(images)  # (2, 21, 2) input px, (2, 21)
    >>> protocol, _ = model.predict_keypoints(images, decoding="argmax")  # integer cells
    >>> paper = PosePredictor.paper()  # ResNet-101, 256 -> 64, 21 keypoints

    Reference:
        Lin et al., NeurIPS 2023, supplementary A (f_kp); Xiao, Wu, Wei, "Simple Baselines for
        Human Pose Estimation and Tracking", ECCV 2018.
    """

    def __init__(
        self,
        num_keypoints=21,
        backbone="resnet18",
        input_size=256,
        backbone_weights=None,
        num_deconv_layers=3,
        deconv_filters=256,
        width_multiplier=1.0,
        soft_argmax_beta=SOFT_ARGMAX_BETA,
        output_stride=BACKBONE_STRIDE,
        soft_argmax_readout="local",
        soft_argmax_window=LOCAL_SOFT_ARGMAX_WINDOW,
        soft_argmax_local_beta=LOCAL_SOFT_ARGMAX_BETA,
        handedness=None,
        **kwargs,
    ):
        if backbone not in BACKBONES:
            raise ValueError(
                f"`backbone` must be one of {BACKBONES}. Received: backbone={backbone!r}"
            )
        if not isinstance(num_keypoints, (int, np.integer)) or num_keypoints < 1:
            raise ValueError(
                f"`num_keypoints` must be a positive int. Received: num_keypoints={num_keypoints!r}"
            )
        if output_stride not in (32, 16, 8):
            raise ValueError(
                f"`output_stride` must be 32, 16 or 8. Received: output_stride={output_stride!r}"
            )
        if (not isinstance(input_size, (int, np.integer)) or input_size < output_stride
                or input_size % output_stride):
            raise ValueError(
                f"`input_size` must be a positive multiple of the backbone stride "
                f"{output_stride}. Received: input_size={input_size!r}"
            )
        if not isinstance(num_deconv_layers, (int, np.integer)) or not 0 <= num_deconv_layers <= 5:
            raise ValueError(
                "`num_deconv_layers` must be an int in [0, 5]. "
                f"Received: num_deconv_layers={num_deconv_layers!r}"
            )
        if output_stride < 2 ** num_deconv_layers:
            raise ValueError(
                "The heatmap stride output_stride / 2**num_deconv_layers must be >= 1. "
                f"Received: output_stride={output_stride}, num_deconv_layers={num_deconv_layers}"
            )
        if not isinstance(deconv_filters, (int, np.integer)) or deconv_filters < 1:
            raise ValueError(
                "`deconv_filters` must be a positive int. "
                f"Received: deconv_filters={deconv_filters!r}"
            )
        if not soft_argmax_beta > 0:
            raise ValueError(
                "`soft_argmax_beta` must be positive. "
                f"Received: soft_argmax_beta={soft_argmax_beta!r}"
            )
        if soft_argmax_readout not in READOUTS:
            raise ValueError(
                f"`soft_argmax_readout` must be one of {list(READOUTS)}. "
                f"Received: soft_argmax_readout={soft_argmax_readout!r}"
            )
        if (isinstance(soft_argmax_window, bool)
                or not isinstance(soft_argmax_window, (int, np.integer)) or soft_argmax_window < 1):
            raise ValueError(
                "`soft_argmax_window` must be a positive int (heatmap pixels). "
                f"Received: soft_argmax_window={soft_argmax_window!r}"
            )
        if not soft_argmax_local_beta > 0:
            raise ValueError(
                "`soft_argmax_local_beta` must be positive. "
                f"Received: soft_argmax_local_beta={soft_argmax_local_beta!r}"
            )
        if handedness not in HANDEDNESS:
            raise ValueError(
                f"`handedness` must be one of {HANDEDNESS}. Received: handedness={handedness!r}"
            )
        backbone_weights = check_weights_argument(backbone_weights)
        super().__init__(**kwargs)
        self.handedness = handedness
        self.num_keypoints = int(num_keypoints)
        self.backbone_name = backbone
        self.input_size = int(input_size)
        self.backbone_weights = backbone_weights
        self.num_deconv_layers = int(num_deconv_layers)
        self.deconv_filters = int(deconv_filters)
        self.width_multiplier = float(width_multiplier)
        self.soft_argmax_beta = float(soft_argmax_beta)
        self.soft_argmax_readout = soft_argmax_readout
        self.soft_argmax_window = int(soft_argmax_window)
        self.soft_argmax_local_beta = float(soft_argmax_local_beta)
        self.output_stride = int(output_stride)
        self.normalization = BACKBONE_NORMALIZATION[backbone]

        self.backbone = build_backbone(
            backbone, weights=backbone_weights, width_multiplier=width_multiplier,
            output_stride=output_stride,
        )
        self.head_layers = []
        for i in range(self.num_deconv_layers):
            self.head_layers += [
                layers.Conv2DTranspose(
                    deconv_filters, 4, strides=2, padding="same", use_bias=False,
                    kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
                    name=f"deconv{i + 1}",
                ),
                layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"deconv{i + 1}_bn"),
                layers.ReLU(name=f"deconv{i + 1}_relu"),
            ]
        self.final_conv = layers.Conv2D(
            num_keypoints, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
            name="heatmaps",
        )
        self.build((None, self.input_size, self.input_size, 3))

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def paper(cls, **overrides):
        """The paper's configuration: ResNet-101, 256 × 256 input, 64 × 64 heatmaps, K = 21.

        Args:
            **overrides: any constructor argument, e.g. ``num_keypoints=16`` for bodies or
                ``backbone_weights="/path/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5"``.
        """
        return cls(**{**PAPER_CONFIG, **overrides})

    @property
    def stride(self):
        """Input pixels per heatmap pixel (4 with 3 deconvolutions)."""
        return self.output_stride // 2 ** self.num_deconv_layers

    @property
    def heatmap_size(self):
        """Heatmap side for the `input_size` the model was built for."""
        return self.input_size // self.stride

    def build(self, input_shape):
        if self.built:
            return
        shape = self.backbone.compute_output_shape(tuple(input_shape))
        for layer in self.head_layers + [self.final_conv]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    # ------------------------------------------------------------------------------ forward
    def call(self, images, training=None):
        x = normalize_images(images, self.normalization)
        x = self.backbone(x, training=training)
        for layer in self.head_layers:
            x = layer(x, training=training)
        return ops.cast(self.final_conv(x), "float32")

    def compute_output_shape(self, input_shape):
        batch, height, width = input_shape[0], input_shape[1], input_shape[2]
        scale = self.stride
        return (batch, None if height is None else height // scale,
                None if width is None else width // scale, self.num_keypoints)

    def _codec(self, image_shape):
        height = image_shape[1] if image_shape[1] is not None else self.input_size
        width = image_shape[2] if image_shape[2] is not None else self.input_size
        height, width = int(height), int(width)
        return HeatmapCodec((width, height), (width // self.stride, height // self.stride),
                            beta=self.soft_argmax_beta, readout=self.soft_argmax_readout,
                            window=self.soft_argmax_window,
                            local_beta=self.soft_argmax_local_beta)

    def soft_keypoints(self, heatmaps, image_shape=None):
        """Differentiable keypoints of heatmaps (the `soft_argmax_readout`), in input pixels.

        Args:
            heatmaps: tensor (B, h, w, K) produced by this model.
            image_shape: optional (B, H, W, 3) of the images; defaults to `input_size` squared.

        Returns:
            tensor (B, K, 2), (x, y) in input pixels.
        """
        if image_shape is None:
            image_shape = (None, self.input_size, self.input_size, 3)
        return self._codec(image_shape).soft_decode(heatmaps)

    def keypoints(self, images, training=False):
        """Differentiable keypoints of images, for the reconstruction loss (keras.ops).

        Args:
            images: tensor (B, H, W, 3), RGB in [0, 255].
            training: bool. Forwarded to the model call (BatchNorm mode).

        Returns:
            tensor (B, K, 2): keypoints of the `soft_argmax_readout` ("local" by default),
            (x, y) in input pixels.
        """
        images = ops.convert_to_tensor(images)
        heatmaps = self(images, training=training)
        return self.soft_keypoints(heatmaps, tuple(images.shape))

    def predict_keypoints(self, images, batch_size=None, decoding="dark"):
        """Keypoints of a batch of images, decoded to sub-pixel precision by default.

        The default ``decoding="dark"`` refines each heatmap's argmax with one Newton step on
        the smoothed log-heatmap (Zhang et al., "Distribution-Aware Coordinate Representation
        for Human Pose Estimation", CVPR 2020; `synpose_keras.ops.heatmaps.dark_refine`, σ = 2,
        the σ of the training targets), at most 1 heatmap px from the argmax; it removes the
        up-to-half-a-heatmap-pixel quantisation of the argmax. ``decoding="argmax"`` gives the
        PCK protocol's integer decoding (what ``synpose evaluate`` scores by default).

        Inputs that fit one batch (N <= ``batch_size``) run through one cached traced forward
        (`synpose_keras.models.forward.forward_function`) rather than `predict`, whose per-call
        set-up costs about as much as a ResNet-101 forward of one image on a CPU.

        Args:
            images: array (N, H, W, 3), uint8 or float RGB in [0, 255].
            batch_size: optional int. Batch size of `predict` for larger inputs. Defaults to
                None (32, as `predict`).
            decoding: str. "dark" (sub-pixel refinement) or "argmax" (the PCK protocol's).
                Defaults to "dark".

        Returns:
            tuple of numpy arrays: keypoints (N, K, 2) (x, y) in input pixels (decoded heatmap
            position × stride) and scores (N, K) (heatmap maxima, whatever the decoding).

        Warns (``UserWarning``) when the images are not the model's square input size.
        """
        check_decoding(decoding)
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "`images` must have shape (N, H, W, 3). "
                f"Received: images.shape={images.shape}"
            )
        if images.shape[1:3] != (self.input_size, self.input_size):
            warnings.warn(
                f"predict_keypoints: the images are {images.shape[2]}x{images.shape[1]} px, the "
                f"model's input is {self.input_size}x{self.input_size}; keypoints are read in "
                "the given pixels, but the model was trained on square crops of that size. Frame "
                "images first (synpose_keras.inference.predict_arrays, or `synpose predict`, "
                "which letterbox or crop and map back to original pixels).", stacklevel=2)
        if len(images) <= (batch_size or 32):
            heatmaps = np.asarray(forward_function(self)(images))
        else:
            heatmaps = self.predict(images, batch_size=batch_size, verbose=0)
        keypoints, scores = self._codec(images.shape).decode(heatmaps, decoding=decoding)
        return np.asarray(keypoints, "float32"), np.asarray(scores, "float32")

    # ------------------------------------------------------------------------ serialisation
    def get_config(self):
        config = super().get_config()
        config.update(
            num_keypoints=self.num_keypoints,
            backbone=self.backbone_name,
            input_size=self.input_size,
            backbone_weights=self.backbone_weights,
            num_deconv_layers=self.num_deconv_layers,
            output_stride=self.output_stride,
            deconv_filters=self.deconv_filters,
            width_multiplier=self.width_multiplier,
            soft_argmax_beta=self.soft_argmax_beta,
            soft_argmax_readout=self.soft_argmax_readout,
            soft_argmax_window=self.soft_argmax_window,
            soft_argmax_local_beta=self.soft_argmax_local_beta,
            handedness=self.handedness,
        )
        return config

    @classmethod
    def from_config(cls, config):
        # The archive holds every weight: never re-read (or download) the initial weights.
        config = dict(config)
        backbone_weights = config.pop("backbone_weights", None)
        model = cls(backbone_weights=None, **config)
        model.backbone_weights = backbone_weights
        return model
