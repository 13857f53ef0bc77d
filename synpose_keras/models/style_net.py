"""The style network f_sty: AdaIN restyling and an ALADIN-style style code."""

from __future__ import annotations

import h5py
import keras
from keras import layers, ops

from synpose_keras.losses.adain_content_loss import AdaINContentLoss
from synpose_keras.losses.adain_style_loss import AdaINStyleLoss
from synpose_keras.models.backbones import (
    check_weights_argument,
    fetch_imagenet_weights,
    normalize_images,
)

# VGG-19 up to relu4_1: (layer name, channels at width 1); "pool" entries are 2x2 max pools.
VGG19_LAYERS = (
    ("block1_conv1", 64), ("block1_conv2", 64), ("pool", None),
    ("block2_conv1", 128), ("block2_conv2", 128), ("pool", None),
    ("block3_conv1", 256), ("block3_conv2", 256), ("block3_conv3", 256), ("block3_conv4", 256),
    ("pool", None),
    ("block4_conv1", 512),
)
# The features AdaIN matches: relu1_1, relu2_1, relu3_1, relu4_1.
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
_EPSILON = 1e-5


class _ReflectionPadding2D(layers.Layer):
    """Pads height and width by `padding` pixels with reflection (no edge repeat)."""

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = padding

    def call(self, x):
        p = self.padding
        return ops.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        p = 2 * self.padding
        return (b, None if h is None else h + p, None if w is None else w + p, c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def _moments(features):
    """Per-sample, per-channel mean and std over (H, W), float32: (B, 1, 1, C) each."""
    features = ops.cast(features, "float32")
    mean, variance = ops.moments(features, axes=(1, 2), keepdims=True)
    return mean, ops.sqrt(variance + _EPSILON)


def adaptive_instance_normalization(content_features, style_features):
    """AdaIN(x, y) = σ(y) (x − μ(x)) / σ(x) + μ(y), statistics per sample and channel."""
    content_mean, content_std = _moments(content_features)
    style_mean, style_std = _moments(style_features)
    normalized = (ops.cast(content_features, "float32") - content_mean) / content_std
    return normalized * style_std + style_mean


def edge_correlation(images_a, images_b):
    """Per-image Pearson correlation of the Sobel edge magnitudes of two image batches.

    A measure of how much of an image's structure (outlines, limbs, fingers) a restyled version
    keeps, insensitive to the colour and contrast changes a restyling is meant to make: 1 for the
    same edges, about 0 for unrelated images. Measured on the embedded hand benchmark
    (2026-11-24): a 5 x 5 box blur keeps 0.81, a 50 % blend with a target image 0.74, a different
    source image 0.18, and a StyleNet with a random encoder trained 100-400 CPU steps 0.08-0.14.

    Args:
        images_a: (B, H, W, 3) RGB, any range.
        images_b: (B, H, W, 3) RGB, same range.

    Returns:
        float32 (B,) correlations in [-1, 1].
    """

    def edges(images):
        x = ops.cast(images, "float32")
        gray = ops.sum(x * ops.convert_to_tensor([0.299, 0.587, 0.114], "float32"), axis=-1,
                       keepdims=True)
        sobel_x = ops.convert_to_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        kernel = ops.stack([sobel_x, ops.transpose(sobel_x)], axis=-1)[:, :, None, :]
        g = ops.conv(gray, kernel, padding="valid")
        magnitude = ops.sqrt(ops.sum(ops.square(g), axis=-1) + 1e-12)
        flat = ops.reshape(magnitude, (ops.shape(magnitude)[0], -1))
        return flat - ops.mean(flat, axis=1, keepdims=True)

    a, b = edges(images_a), edges(images_b)
    numerator = ops.sum(a * b, axis=1)
    denominator = ops.sqrt(ops.sum(ops.square(a), axis=1) * ops.sum(ops.square(b), axis=1))
    return numerator / ops.maximum(denominator, 1e-12)


@keras.saving.register_keras_serializable(package="synpose_keras")
class StyleNet(keras.Model):
    """AdaIN style transfer (Huang & Belongie 2017) with an ALADIN-style style code.

    - Encoder: VGG-19 up to relu4_1 (`keras.applications` layer names and zero padding, so
      Keras's ImageNet file loads into it), frozen (``encoder.trainable = False``; note that
      setting ``style_net.trainable = True`` would unfreeze it, as for any Keras model). It takes RGB in [0, 255] and applies Caffe
      preprocessing itself (BGR minus the BGR mean), as Keras's VGG weights expect.
    - Decoder: the mirror image (reflection-padded 3×3 convolutions, ReLU, nearest ×2
      upsampling), trainable. It predicts an image on a [0, 1] scale that the model multiplies
      by 255.
    - ``call([content, style], alpha)`` returns the restyled content **in [0, 255]** (float32,
      clipped), the range `PosePredictor` takes, so a restyled batch feeds it directly.
      ``alpha`` interpolates the AdaIN target with the content features: 0 keeps the content
      (up to the decoder's reconstruction), 1 is the full style.
    - Style code: per-channel mean and std of relu1_1, relu2_1, relu3_1 and relu4_1,
      concatenated: (B, D), D = 2 · (64 + 128 + 256 + 512) · width_multiplier = 1920 at width 1.
      Used to pick style references and to measure style distance (the role ALADIN plays in
      UniFrame).
    - Training objective (`compute_losses`): AdaIN content loss ||f(g(t)) − t||² at relu4_1 plus
      ``style_weight`` × the sum over the four layers of ||μ(f(g(t))) − μ(f(s))||² +
      ||σ(f(g(t))) − σ(f(s))||², means over elements (`synpose_keras.losses.AdaINContentLoss`,
      `AdaINStyleLoss`; UniFrame: style weight 0.1).

    Args:
        encoder_weights: None, "imagenet" or str path to a local file: Keras's
            ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (legacy .h5, loaded by layer
            name) or a ``.weights.h5`` saved from this encoder. Only used at construction;
            `keras.models.load_model` restores the weights from the archive. Defaults to None.
        width_multiplier: float. Channel multiplier of encoder and decoder (VGG widths
            64-128-256-512); "imagenet" requires 1.0. Defaults to 1.0.
        style_weight: float. Weight of the style loss in `compute_losses`. Defaults to 0.1.
        **kwargs: forwarded to `keras.Model`.

    Shapes:
        B batch, H × W image (divisible by 8), C_l encoder channels at layer l, D style code.
        call: [content (B, H, W, 3), style (B, H', W', 3)] RGB [0, 255] -> (B, H, W, 3) [0, 255].
        alpha: float or (B,) tensor in [0, 1].

    Example:
    >>> from synpose_keras.models import StyleNet
    >>> net = StyleNet(width_multiplier=0.125)
    >>> restyled = net([content, style], alpha=0.5)       # (B, 64, 64, 3) in [0, 255]
    >>> codes = net.style_code(style)                      # (B, 240)
    >>> losses = net.compute_losses(content, style)        # {"loss", "content_loss", "style_loss"}

    Reference:
        Lin et al., NeurIPS 2023, supplementary A (f_sty); Huang & Belongie, "Arbitrary Style
        Transfer in Real-time with Adaptive Instance Normalization", ICCV 2017; Ruta et al.,
        "ALADIN: All Layer Adaptive Instance Normalization for Fine-grained Style Similarity",
        ICCV 2021.
    """

    def __init__(self, encoder_weights=None, width_multiplier=1.0, style_weight=0.1, **kwargs):
        if not width_multiplier > 0:
            raise ValueError(
                f"`width_multiplier` must be positive. Received: width_multiplier={width_multiplier!r}"
            )
        if encoder_weights == "imagenet" and width_multiplier != 1.0:
            raise ValueError(
                "ImageNet VGG-19 weights need width_multiplier=1.0. "
                f"Received: encoder_weights='imagenet', width_multiplier={width_multiplier!r}"
            )
        if not style_weight >= 0:
            raise ValueError(f"`style_weight` must be >= 0. Received: style_weight={style_weight!r}")
        encoder_weights = check_weights_argument(encoder_weights, option="encoder_weights")
        super().__init__(**kwargs)
        self.encoder_weights = encoder_weights
        self.width_multiplier = float(width_multiplier)
        self.style_weight = float(style_weight)

        # Resolved before building, so a machine without network fails fast.
        path = fetch_imagenet_weights("vgg19", option="encoder_weights") \
            if encoder_weights == "imagenet" else encoder_weights
        self.encoder = self._build_encoder()
        self.encoder.trainable = False
        if path is not None:
            self._load_encoder_weights(path)
        self.decoder = self._build_decoder()
        self.content_loss = AdaINContentLoss()
        self.style_loss = AdaINStyleLoss(epsilon=_EPSILON)
        self.build([(None, None, None, 3), (None, None, None, 3)])

    def _width(self, channels):
        return max(1, int(round(channels * self.width_multiplier)))

    def _build_encoder(self):
        inputs = keras.Input((None, None, 3), name="normalized_images")
        x, outputs = inputs, []
        for name, channels in VGG19_LAYERS:
            if name == "pool":
                x = layers.MaxPooling2D(2, strides=2)(x)
                continue
            x = layers.Conv2D(self._width(channels), 3, padding="same", activation="relu",
                              name=name)(x)
            if name in STYLE_LAYERS:
                outputs.append(x)
        return keras.Model(inputs, outputs, name="vgg19_encoder")

    def _build_decoder(self):
        def conv(x, channels, name, activation="relu"):
            x = _ReflectionPadding2D(1, name=f"{name}_pad")(x)
            return layers.Conv2D(channels, 3, activation=activation, name=name)(x)

        def up(x, name):
            return layers.UpSampling2D(2, interpolation="nearest", name=name)(x)

        inputs = keras.Input((None, None, self._width(512)), name="relu4_1")
        x = conv(inputs, self._width(256), "block4_conv1")
        x = up(x, "up3")
        for i in (4, 3, 2):
            x = conv(x, self._width(256), f"block3_conv{i}")
        x = conv(x, self._width(128), "block3_conv1")
        x = up(x, "up2")
        x = conv(x, self._width(128), "block2_conv2")
        x = conv(x, self._width(64), "block2_conv1")
        x = up(x, "up1")
        x = conv(x, self._width(64), "block1_conv2")
        x = conv(x, 3, "block1_conv1", activation=None)
        return keras.Model(inputs, x, name="decoder")

    def _load_encoder_weights(self, path):
        if path.endswith(".weights.h5"):
            self.encoder.load_weights(path)
            return
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            names = {n.decode() if isinstance(n, bytes) else n
                     for n in group.attrs.get("layer_names", [])}
        missing = [name for name, _ in VGG19_LAYERS if name != "pool" and name not in names]
        if missing:
            raise ValueError(
                f"VGG-19 weights file {path} lacks the layers {missing}; expected Keras's "
                "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 or a .weights.h5 saved from "
                f"this encoder. Received: encoder_weights={self.encoder_weights!r}"
            )
        self.encoder.load_weights(path, by_name=True)

    def build(self, input_shape):
        self.built = True

    # ------------------------------------------------------------------------------ pieces
    def encode(self, images):
        """Encoder features of RGB [0, 255] images.

        Returns:
            list of 4 float32 tensors: relu1_1 (B, H, W, C1), relu2_1 (B, H/2, W/2, C2),
            relu3_1 (B, H/4, W/4, C3), relu4_1 (B, H/8, W/8, C4).
        """
        features = self.encoder(normalize_images(images, "caffe"), training=False)
        return [ops.cast(f, "float32") for f in features]

    def decode(self, features, training=None):
        """relu4_1-shaped features -> image on a [0, 255] scale, not clipped (for training)."""
        return 255.0 * ops.cast(self.decoder(features, training=training), "float32")

    def style_code(self, images):
        """ALADIN-style code: per-channel mean and std at relu1_1..relu4_1, concatenated.

        Args:
            images: (B, H, W, 3) RGB in [0, 255].

        Returns:
            float32 tensor (B, D) with D = 2 · (C1 + C2 + C3 + C4), ordered
            [mean_1, std_1, mean_2, std_2, ...].
        """
        parts = []
        for features in self.encode(images):
            mean, std = _moments(features)
            parts += [ops.reshape(mean, (-1, mean.shape[-1])), ops.reshape(std, (-1, std.shape[-1]))]
        return ops.concatenate(parts, axis=-1)

    @staticmethod
    def code_distance(code_a, code_b):
        """Euclidean distance between style codes, broadcasting over leading axes.

        ``code_distance(a[:, None], b[None])`` gives the (N, M) matrix used to pick style
        references.
        """
        difference = ops.cast(code_a, "float32") - ops.cast(code_b, "float32")
        return ops.sqrt(ops.sum(ops.square(difference), axis=-1))

    def style_distance(self, a, b):
        """Distance between the style codes of two image batches, pair by pair: (B,)."""
        return self.code_distance(self.style_code(a), self.style_code(b))

    # ------------------------------------------------------------------------------ forward
    def _target(self, content, style, alpha):
        content_features = self.encode(content)[-1]
        style_features = self.encode(style)
        target = adaptive_instance_normalization(content_features, style_features[-1])
        alpha = ops.convert_to_tensor(alpha, "float32")
        if len(alpha.shape) == 1:
            alpha = ops.reshape(alpha, (-1, 1, 1, 1))
        return alpha * target + (1.0 - alpha) * content_features, style_features

    def call(self, inputs, alpha=1.0, training=None):
        content, style = inputs
        target, _ = self._target(content, style, alpha)
        return ops.clip(self.decode(target, training=training), 0.0, 255.0)

    def stylize(self, content, style, alpha=1.0):
        """Restyles `content` with the style of `style` (inference): (B, H, W, 3) in [0, 255]."""
        return self([content, style], alpha=alpha, training=False)

    def content_preservation(self, content, style, alpha=1.0):
        """Mean `edge_correlation` between content images and their restyling (a float).

        A restyling that scores low (< 0.3: below two unrelated images of the embedded benchmark
        at 0.18 plus a margin) no longer shows the pose its labels describe; training a pose
        network on it teaches noise. Typical cause: no ImageNet VGG-19 encoder weights (the
        encoder is then random) and few decoder steps.

        Args:
            content: (B, H, W, 3) RGB [0, 255].
            style: (B', H', W', 3) RGB [0, 255], image i takes style ``i mod B'``.
            alpha: float. AdaIN strength. Defaults to 1.0.
        """
        content = ops.cast(content, "float32")
        style = ops.cast(style, "float32")
        index = ops.mod(ops.arange(ops.shape(content)[0]), ops.shape(style)[0])
        restyled = self.stylize(content, ops.take(style, index, axis=0), alpha)
        return float(ops.convert_to_numpy(ops.mean(edge_correlation(content, restyled))))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def compute_losses(self, content, style, training=True):
        """AdaIN training losses for a batch (`AdaINContentLoss`, `AdaINStyleLoss`).

        Both are mean-reduced `keras.losses.Loss` objects: under `tf.distribute` they are
        already divided by the number of replicas (`synpose_keras.losses.scaling`), so the
        returned values can be differentiated as they are; multiply by
        `num_replicas_in_sync()` to log the global-batch value.

        Args:
            content: (B, H, W, 3) RGB [0, 255].
            style: (B, H', W', 3) RGB [0, 255].
            training: bool. Forwarded to the decoder.

        Returns:
            dict of float32 scalars: "loss" = content_loss + style_weight · style_loss,
            "content_loss", "style_loss".
        """
        target, style_features = self._target(content, style, 1.0)
        generated_features = self.encode(self.decode(target, training=training))
        content_loss = self.content_loss(target, generated_features[-1])
        style_loss = self.style_loss(style_features, generated_features)
        return {
            "loss": content_loss + self.style_weight * style_loss,
            "content_loss": content_loss,
            "style_loss": style_loss,
        }

    # ------------------------------------------------------------------------ serialisation
    def get_config(self):
        config = super().get_config()
        config.update(
            encoder_weights=self.encoder_weights,
            width_multiplier=self.width_multiplier,
            style_weight=self.style_weight,
        )
        return config

    @classmethod
    def from_config(cls, config):
        # The archive holds every weight: never re-read (or download) the encoder weights.
        config = dict(config)
        encoder_weights = config.pop("encoder_weights", None)
        model = cls(encoder_weights=None, **config)
        model.encoder_weights = encoder_weights
        return model
