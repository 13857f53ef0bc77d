"""Fixtures shared by the inference tests: tiny models, a tiny converted dataset, a fake RUN."""

import json
import os

import keras
import numpy as np

from synpose_keras.datasets.converters.base import Converter, Item, Record
from synpose_keras.datasets.writer import convert
from synpose_keras.models import PosePredictor
from synpose_keras.skeletons import get_skeleton

SIZE = 64


def tiny_predictor(num_keypoints=21, seed=0):
    """A tiny PosePredictor (resnet18 x 0.125, 16 deconv filters, 64 px input) whose weights are
    re-drawn at a He scale, so that its heatmaps vary by O(1) (the default head initialisation
    gives ~1e-8, which would make output comparisons vacuous)."""
    keras.utils.set_random_seed(seed)
    model = PosePredictor(num_keypoints=num_keypoints, backbone="resnet18", input_size=SIZE,
                          width_multiplier=0.125, deconv_filters=16)
    rng = np.random.default_rng(seed)
    for var in model.weights:
        shape, name = tuple(var.shape), var.path
        if "moving_variance" in name or "gamma" in name:
            value = rng.uniform(0.5, 1.5, shape)
        elif "moving_mean" in name or "beta" in name or "bias" in name:
            value = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            value = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        var.assign(value.astype("float32"))
    return model


def block_model(num_keypoints=21, channels=None):
    """A stride-4 'pose model' whose heatmap k is the 4x4 average of colour channel
    ``channels[k]`` (default: red for every keypoint): its argmax is a bright block's cell."""
    channels = [0] * num_keypoints if channels is None else list(channels)
    inputs = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(num_keypoints, 1, use_bias=False, name="pick")
    x = keras.layers.AveragePooling2D(4, name="pool")(conv(inputs))
    model = keras.Model(inputs, x)
    kernel = np.zeros((1, 1, 3, num_keypoints), "float32")
    for k, c in enumerate(channels):
        kernel[0, 0, c, k] = 1.0 / 255.0
    conv.set_weights([kernel])
    return model


class TinyPoseConverter(Converter):
    """A handful of 64x64 images: dark noise with a bright 3x3 dot at each keypoint."""

    name = "tiny-inference"
    skeleton = "hand21"
    splits = ("train", "test")

    def __init__(self, src="", skeleton="hand21", n=4, seed=0):
        super().__init__(src)
        self.skeleton = skeleton
        self.n, self.seed = n, seed

    def items(self, split):
        offset = 0 if split == "train" else 1000
        return [Item(f"{split}/{i}", lambda i=i: self._record(offset + i)) for i in range(self.n)]

    def _record(self, i):
        k = get_skeleton(self.skeleton).num_keypoints
        rng = np.random.default_rng(self.seed * 10_000 + i)
        kp = rng.uniform(12, 52, (k, 2)).astype(np.float32)
        image = rng.integers(0, 50, (SIZE, SIZE, 3)).astype(np.uint8)
        for x, y in np.round(kp).astype(int):
            image[y - 1:y + 2, x - 1:x + 2] = (230, 200, 40)
        return Record(image=image, keypoints=kp, visible=np.ones(k, np.float32),
                      sequence=f"seq{i // 2}", frame=i % 2, source_id=str(i))


def write_dataset(out_dir, skeleton="hand21", n=4, seed=0):
    return convert(TinyPoseConverter(skeleton=skeleton, n=n, seed=seed), str(out_dir),
                   progress=False, image_format="png")


def write_json(path, data):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
