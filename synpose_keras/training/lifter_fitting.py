"""Fits the 2D -> 3D Lifter on the source domain's 3D labels (part of stage ``pretrain``).

The lifter sees root-relative, scale-normalised 2D keypoints (``Lifter.normalize_2d``) and
predicts root-relative, scale-normalised 3D poses (``Lifter.normalize_3d``); both normalisations
are invariant to image translation and scale, so the fitted lifter applies to keypoints in any
crop of the target images.
"""

from __future__ import annotations

import keras
import numpy as np


def fit_lifter(lifter, keypoints_2d, keypoints_3d, visible=None, epochs=30, batch_size=256,
               lr=1e-3, seed=0, verbose=0):
    """Trains ``lifter`` (MSE on normalised 3D) and returns the Keras history dict.

    Args:
        lifter: Lifter.
        keypoints_2d: (N, K, 2) source keypoints, pixels.
        keypoints_3d: (N, K, 3) source keypoints in camera coordinates.
        visible: optional (N, K). Poses with invisible joints are kept (3D labels of synthetic
            data are complete); the 2D scale uses every joint.
        epochs, batch_size, lr: optimisation settings.
        seed: int. Shuffling seed.
    """
    kp2 = np.asarray(keypoints_2d, np.float32)
    kp3 = np.asarray(keypoints_3d, np.float32)
    if kp2.ndim != 3 or kp3.shape[:2] != kp2.shape[:2] or kp3.shape[-1] != 3:
        raise ValueError(
            "keypoints_2d must be (N, K, 2) and keypoints_3d (N, K, 3) with the same N, K. "
            f"Received: {kp2.shape} and {kp3.shape}"
        )
    if not np.all(np.isfinite(kp3)):
        raise ValueError("keypoints_3d contains NaN or inf; the source's 3D labels are broken.")
    x, _, _ = lifter.normalize_2d(kp2, lifter.root_index)
    y, _ = lifter.normalize_3d(kp3, lifter.root_index)
    x, y = np.asarray(x), np.asarray(y)
    keras.utils.set_random_seed(seed)
    lifter.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    history = lifter.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True,
                         verbose=verbose)
    return history.history
