"""Image backbones of the pose predictor, and the input normalisation each one expects.

Three backbones, all with an output stride of 32 and NHWC inputs of any size divisible by 32:

- ``"resnet101"`` (the paper's) and ``"resnet50"``: `keras.applications` ResNet v1, without the
  classification top. Their ImageNet weights were converted from Caffe, so they expect **Caffe
  preprocessing**: RGB in [0, 255] turned into BGR, minus the per-channel BGR mean
  (103.939, 116.779, 123.68), no scaling (`keras.applications.resnet.preprocess_input`).
- ``"resnet18"``: ours, a basic-block ResNet-18 written with Keras layers, channel widths
  64-128-256-512 times ``width_multiplier`` (0.25 gives 16-32-64-128 for tests and the demo).
  There are no official Keras ImageNet weights for it; it uses the **torchvision ("torch")
  normalisation**: RGB / 255, then (x - mean) / std with the ImageNet mean (0.485, 0.456, 0.406)
  and std (0.229, 0.224, 0.225), the protocol of docs/protocol.md ("Evaluation protocol").

`normalize_images(images, mode)` applies either normalisation with `keras.ops`; the pose predictor
calls it inside its graph, so users feed raw RGB.

Weights: ``None`` (random), ``"imagenet"`` (Keras's files; fetched into ``~/.keras/models/`` on
first use, or found there when copied by hand) or the path to a local ``.h5`` / ``.weights.h5``
file. A machine that cannot reach the download host gets a `PretrainedWeightsUnavailableError`
naming the file to copy and the option to pass instead.
"""

from __future__ import annotations

import os

import keras
from keras import layers, ops

BACKBONES = ("resnet101", "resnet50", "resnet18")

# Normalisation of raw RGB [0, 255] expected by each backbone (see the module docstring).
BACKBONE_NORMALIZATION = {"resnet101": "caffe", "resnet50": "caffe", "resnet18": "torch"}

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

RESNET18_WIDTHS = (64, 128, 256, 512)

# Keras's ImageNet "notop" weight files: (file name, url, sha256/md5 hash as keras.applications).
_KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
IMAGENET_WEIGHT_FILES = {
    "resnet50": (
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _KERAS_WEIGHTS_URL + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "4d473c1dd8becc155b73f8504c6f6626",
    ),
    "resnet101": (
        "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _KERAS_WEIGHTS_URL + "resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "88cf7a10940856eca736dc7b7e228a21",
    ),
    "vgg19": (
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        _KERAS_WEIGHTS_URL + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "253f8cb515780f3b799900260a226db6",
    ),
}


class PretrainedWeightsUnavailableError(RuntimeError):
    """ImageNet weights were requested but could not be fetched or found in the Keras cache."""


def normalize_images(images, mode):
    """Normalises raw RGB images in [0, 255] for a backbone.

    Args:
        images: tensor (B, H, W, 3), uint8 or float, RGB in [0, 255].
        mode: str. "caffe" (BGR minus the Caffe mean; keras.applications ResNet/VGG) or "torch"
            (RGB / 255, minus ImageNet mean, divided by ImageNet std).

    Returns:
        float32 tensor (B, H, W, 3).
    """
    images = ops.cast(images, "float32")
    if mode == "caffe":
        bgr = ops.flip(images, axis=-1)
        out = bgr - ops.convert_to_tensor(CAFFE_MEAN_BGR, "float32")
    elif mode == "torch":
        mean = ops.convert_to_tensor(IMAGENET_MEAN_RGB, "float32")
        std = ops.convert_to_tensor(IMAGENET_STD_RGB, "float32")
        out = (images / 255.0 - mean) / std
    else:
        raise ValueError(f"`mode` must be 'caffe' or 'torch'. Received: mode={mode!r}")
    return out


def fetch_imagenet_weights(name, option="backbone_weights"):
    """Returns the local path of Keras's ImageNet "notop" weight file for `name`.

    The file is looked up in (or downloaded into) ``~/.keras/models/`` with
    `keras.utils.get_file`. When that fails (no network), raises
    `PretrainedWeightsUnavailableError` that names the file and how to pass it instead.

    Args:
        name: str. "resnet50", "resnet101" or "vgg19".
        option: str. Name of the user-facing option, used in the error message.
    """
    file_name, origin, file_hash = IMAGENET_WEIGHT_FILES[name]
    try:
        return keras.utils.get_file(file_name, origin, cache_subdir="models", file_hash=file_hash)
    except Exception as error:  # network errors come as URLError, HTTPError, OSError, ...
        cache = os.path.join(os.path.expanduser("~"), ".keras", "models", file_name)
        raise PretrainedWeightsUnavailableError(
            f"Could not fetch the ImageNet weights of {name} ({file_name}) from {origin}: "
            f"{type(error).__name__}: {error}. This machine cannot download them. Download "
            f"{file_name} on a machine with internet access and either copy it to {cache} or "
            f"pass its path: `{option}=/path/to/{file_name}` (or {option}=None to start from "
            "random weights)."
        ) from error


def check_weights_argument(weights, option="backbone_weights"):
    """Validates a weights argument: None, "imagenet" or an existing file path.

    Returns:
        the argument, with a path-like turned into a str (so that it serialises in a config).
    """
    if weights is None or weights == "imagenet":
        return weights
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"`{option}` must be None, 'imagenet' or a path to a .h5/.weights.h5 file. "
            f"Received: {option}={weights!r}"
        )
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"Weights file not found: {os.fspath(weights)} (`{option}`). Pass an existing "
            ".h5 or .weights.h5 file, 'imagenet', or None for random weights."
        )
    return os.fspath(weights)


def build_backbone(name, weights=None, input_shape=(None, None, 3), width_multiplier=1.0,
                   output_stride=32):
    """Builds a stride-32 (or, for resnet18, stride-16/8) feature extractor.

    Args:
        name: str. "resnet101", "resnet50" or "resnet18".
        weights: None, "imagenet" or str path to a local ``.h5`` / ``.weights.h5`` file.
            Defaults to None (random initialisation).
        input_shape: tuple (H, W, 3). Defaults to (None, None, 3): any size divisible by 32.
        width_multiplier: float. Channel multiplier of "resnet18" (must be 1.0 for the others).
            Defaults to 1.0.
        output_stride: int. 32, or for "resnet18" also 16 or 8: the last stage(s) keep their
            resolution (stride 1 instead of 2), which suits small CPU inputs (a 64 × 64 image
            keeps 4 × 4 features instead of 2 × 2). Defaults to 32.

    Returns:
        a functional `keras.Model` mapping normalised images (B, H, W, 3) to features
        (B, H/32, W/32, C), C = 2048 for the Keras ResNets, 512 × width_multiplier for resnet18.
        Inputs must be normalised with `normalize_images(x, BACKBONE_NORMALIZATION[name])`.

    Example:
    >>> backbone = build_backbone("resnet18", width_multiplier=0.25)
    >>> backbone.output.shape
    (None, None, None, 128)
    """
    if name not in BACKBONES:
        raise ValueError(f"`backbone` must be one of {BACKBONES}. Received: backbone={name!r}")
    if not width_multiplier > 0:
        raise ValueError(
            f"`width_multiplier` must be positive. Received: width_multiplier={width_multiplier}"
        )
    if name != "resnet18" and width_multiplier != 1.0:
        raise ValueError(
            "`width_multiplier` only applies to backbone='resnet18'. "
            f"Received: backbone={name!r}, width_multiplier={width_multiplier}"
        )
    if output_stride not in (32, 16, 8) or (name != "resnet18" and output_stride != 32):
        raise ValueError(
            "`output_stride` must be 32 (or 16 or 8 for backbone='resnet18'). "
            f"Received: backbone={name!r}, output_stride={output_stride!r}"
        )
    weights = check_weights_argument(weights)
    if name == "resnet18" and weights == "imagenet":
        raise ValueError(
            "There are no official Keras ImageNet weights for resnet18. Use "
            "backbone='resnet50' or 'resnet101' for ImageNet weights, or pass a local "
            "resnet18 weights file. Received: backbone='resnet18', backbone_weights='imagenet'"
        )
    # Resolved before building, so a machine without network fails fast.
    path = fetch_imagenet_weights(name) if weights == "imagenet" else weights
    if name == "resnet18":
        model = _resnet18(input_shape, width_multiplier, output_stride)
    else:
        application = {"resnet50": keras.applications.ResNet50,
                       "resnet101": keras.applications.ResNet101}[name]
        # Always built without weights and loaded here, so that one code path handles the
        # Keras cache, download failures and local files of either format.
        model = application(include_top=False, weights=None, input_shape=input_shape)
    if path is not None:
        model.load_weights(path)
    return model


def _resnet18(input_shape, width_multiplier, output_stride=32):
    """Basic-block ResNet-18 (He et al. 2016), torchvision layout, BN as torch (eps 1e-5)."""
    widths = [max(1, int(round(w * width_multiplier))) for w in RESNET18_WIDTHS]

    def bn(name):
        return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)

    def conv(filters, kernel, stride, name):
        return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                             kernel_initializer="he_normal", name=name)

    inputs = keras.Input(input_shape, name="images")
    x = conv(widths[0], 7, 2, "conv1")(inputs)
    x = layers.ReLU(name="conv1_relu")(bn("conv1_bn")(x))
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    # stages 2-4 halve the resolution; with output_stride 16 (8) the last one (two) do not
    strided_stages = {32: (1, 2, 3), 16: (1, 2), 8: (1,)}[output_stride]
    for stage, filters in enumerate(widths):
        for block in range(2):
            stride = 2 if (stage in strided_stages and block == 0) else 1
            prefix = f"stage{stage + 1}_block{block + 1}"
            shortcut = x
            if stride != 1 or x.shape[-1] != filters:
                shortcut = conv(filters, 1, stride, f"{prefix}_proj")(x)
                shortcut = bn(f"{prefix}_proj_bn")(shortcut)
            y = conv(filters, 3, stride, f"{prefix}_conv1")(x)
            y = layers.ReLU(name=f"{prefix}_relu1")(bn(f"{prefix}_bn1")(y))
            y = conv(filters, 3, 1, f"{prefix}_conv2")(y)
            y = bn(f"{prefix}_bn2")(y)
            x = layers.ReLU(name=f"{prefix}_out")(layers.Add(name=f"{prefix}_add")([shortcut, y]))
    return keras.Model(inputs, x, name="resnet18")
