"""Tiny networks and fixed batches shared by the stage tests."""

import numpy as np

from synpose_keras.models import Generator, Lifter, PosePredictor, WarpingModule
from synpose_keras.ops.heatmaps import encode_heatmaps
from synpose_keras.pseudo_labels import reference_bone_ratios
from synpose_keras.skeletons import HAND21

SIZE = 64
K = HAND21.num_keypoints


def predictor(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return PosePredictor(num_keypoints=K, backbone="resnet18", input_size=SIZE,
                         width_multiplier=0.125, deconv_filters=16)


def lifter():
    return Lifter(num_keypoints=K, hidden_units=16, num_blocks=1, dropout=0.0)


def warping_and_generator():
    return (WarpingModule(num_keypoints=K, block_expansion=4, num_blocks=2, max_features=16),
            Generator(block_expansion=4, max_features=16, num_residual_blocks=1))


def random_poses(n, rng):
    base = rng.uniform(16, 48, size=(n, 1, 2))
    return (base + rng.normal(scale=6, size=(n, K, 2))).astype(np.float32)


def adapt_batch(seed=0, n=2):
    rng = np.random.default_rng(seed)
    kp = random_poses(n, rng)
    heatmaps, weights = encode_heatmaps(kp, np.ones((n, K), np.float32), SIZE, SIZE // 4)
    image = lambda: rng.uniform(0, 255, size=(n, SIZE, SIZE, 3)).astype(np.float32)  # noqa: E731
    target = image()
    shift = np.tile(np.array([[1, 0, 2.0], [0, 1, -1.0], [0, 0, 1]], np.float32), (n, 1, 1))
    return {
        "source": {"image": image(), "heatmaps": np.asarray(heatmaps),
                   "weights": np.asarray(weights)},
        "target": {"teacher_image": target, "student_image": np.roll(target, (-1, 2), (1, 2)),
                   "affine": shift, "teacher_index": np.tile(np.arange(K), (n, 1))},
        "pairs": {"base": image(), "driving": image()},
    }


def bone_ratios(seed=0):
    rng = np.random.default_rng(seed)
    poses = np.cumsum(rng.normal(size=(32, K, 3)), axis=1).astype(np.float32)
    return reference_bone_ratios(poses, HAND21)
