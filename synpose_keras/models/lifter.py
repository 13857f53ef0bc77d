"""The 2D -> 3D lifter behind the 3D pseudo-labels (Martinez et al. 2017 residual MLP)."""

from __future__ import annotations

import numpy as np
import keras
from keras import layers, ops

_EPSILON = 1e-8


@keras.saving.register_keras_serializable(package="synpose_keras")
class Lifter(keras.Model):
    """Lifts normalised 2D keypoints to a root-relative, scale-normalised 3D pose.

    Architecture (Martinez, Hossain, Romero, Little 2017): Dense(hidden) - BN - ReLU - Dropout,
    then ``num_blocks`` residual blocks of two [Dense(hidden) - BN - ReLU - Dropout] with an
    identity skip, then Dense(3K). The predicted root is subtracted, so the root joint of the
    output is exactly 0.

    Normalisation (use the static helpers for inputs *and* targets, so both agree):

    - 2D input, `normalize_2d`: subtract the root joint, divide by the pose's scale
      s2 = sqrt(mean_k ||p_k - p_root||²) (RMS distance of the joints from the root, over the
      visible joints when `visible` is given). The result is invariant to translation and
      image scale; it keeps the in-plane rotation, which carries depth cues.
    - 3D target, `normalize_3d`: subtract the root joint, divide by
      s3 = sqrt(mean_k ||P_k - P_root||²). The lifter therefore predicts the *shape* of the
      pose up to scale; the 3D pseudo-labels fit scale and translation again when they project
      it back to the image (`synpose_keras.ops.geometry.fit_scale_translation`).

    Args:
        num_keypoints: int. K. Defaults to 21.
        hidden_units: int. Width of the MLP. Defaults to 1024 (Martinez et al.).
        num_blocks: int. Number of residual blocks. Defaults to 2.
        dropout: float. Dropout rate in [0, 1). Defaults to 0.5.
        root_index: int. Index of the root joint (0 = wrist for Hand21, 6 = pelvis for Body16).
            Defaults to 0.
        **kwargs: forwarded to `keras.Model`.

    Shapes:
        B batch, K keypoints.
        call: keypoints_2d (B, K, 2) normalised -> keypoints_3d (B, K, 3) normalised.

    Example:
    >>> from synpose_keras.models import Lifter
    >>> lifter = Lifter(num_keypoints=21, hidden_units=256)
    >>> x, root, scale = Lifter.normalize_2d(keypoints_px, root_index=0)
    >>> pose_3d = lifter(x)  # (B, 21, 3), root at 0, RMS joint distance ~1

    Reference:
        Lin et al., NeurIPS 2023, §3 (3D pseudo-labelling); Martinez et al., "A simple yet
        effective baseline for 3d human pose estimation", ICCV 2017.
    """

    def __init__(self, num_keypoints=21, hidden_units=1024, num_blocks=2, dropout=0.5,
                 root_index=0, **kwargs):
        if not isinstance(num_keypoints, (int, np.integer)) or num_keypoints < 1:
            raise ValueError(
                f"`num_keypoints` must be a positive int. Received: num_keypoints={num_keypoints!r}"
            )
        if not isinstance(hidden_units, (int, np.integer)) or hidden_units < 1:
            raise ValueError(
                f"`hidden_units` must be a positive int. Received: hidden_units={hidden_units!r}"
            )
        if not isinstance(num_blocks, (int, np.integer)) or num_blocks < 0:
            raise ValueError(
                f"`num_blocks` must be a non-negative int. Received: num_blocks={num_blocks!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout!r}")
        if not isinstance(root_index, (int, np.integer)) or not 0 <= root_index < num_keypoints:
            raise ValueError(
                f"`root_index` must be an int in [0, {num_keypoints}). "
                f"Received: root_index={root_index!r}"
            )
        super().__init__(**kwargs)
        self.num_keypoints = int(num_keypoints)
        self.hidden_units = int(hidden_units)
        self.num_blocks = int(num_blocks)
        self.dropout = float(dropout)
        self.root_index = int(root_index)

        def unit(name):
            return [
                layers.Dense(hidden_units, kernel_initializer="he_normal", name=f"{name}_dense"),
                layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn"),
                layers.ReLU(name=f"{name}_relu"),
                layers.Dropout(dropout, name=f"{name}_dropout"),
            ]

        self.flatten = layers.Flatten(name="flatten")
        self.input_layers = unit("input")
        self.blocks = [unit(f"block{b + 1}_a") + unit(f"block{b + 1}_b")
                       for b in range(self.num_blocks)]
        self.output_dense = layers.Dense(3 * num_keypoints, name="output")
        self.build((None, self.num_keypoints, 2))

    def build(self, input_shape):
        if self.built:
            return
        shape = (input_shape[0], 2 * self.num_keypoints)
        for layer in self.input_layers + [lay for block in self.blocks for lay in block]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.output_dense.build(shape)
        self.built = True

    def call(self, keypoints_2d, training=None):
        x = self.flatten(ops.cast(keypoints_2d, self.compute_dtype))
        for layer in self.input_layers:
            x = layer(x, training=training)
        for block in self.blocks:
            y = x
            for layer in block:
                y = layer(y, training=training)
            x = x + y
        x = ops.cast(self.output_dense(x), "float32")
        pose = ops.reshape(x, (-1, self.num_keypoints, 3))
        return pose - pose[:, self.root_index : self.root_index + 1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_keypoints, 3)

    def lift(self, keypoints_2d, visible=None, training=False):
        """Normalises pixel keypoints and lifts them.

        Args:
            keypoints_2d: (B, K, 2) keypoints in any pixel frame.
            visible: optional (B, K) weights for the scale (see `normalize_2d`).
            training: bool. Forwarded to the call.

        Returns:
            tensor (B, K, 3): root-relative, scale-normalised 3D pose.
        """
        normalized, _, _ = self.normalize_2d(keypoints_2d, self.root_index, visible)
        return self(normalized, training=training)

    @staticmethod
    def _root_scale(points, root_index, visible):
        points = ops.cast(points, "float32")
        root = points[..., root_index : root_index + 1, :]
        centered = points - root
        squared = ops.sum(ops.square(centered), axis=-1)
        if visible is None:
            mean_squared = ops.mean(squared, axis=-1, keepdims=True)
        else:
            visible = ops.cast(visible, "float32")
            mean_squared = ops.sum(squared * visible, axis=-1, keepdims=True) / ops.maximum(
                ops.sum(visible, axis=-1, keepdims=True), 1.0)
        scale = ops.sqrt(mean_squared)[..., None]
        return centered, root, scale

    @staticmethod
    def normalize_2d(keypoints_2d, root_index=0, visible=None):
        """Root-relative, scale-normalised 2D keypoints (the lifter's input).

        Args:
            keypoints_2d: (..., K, 2) in pixels (any frame).
            root_index: int. Index of the root joint.
            visible: optional (..., K). When given, the scale is the RMS over visible joints.

        Returns:
            tuple: normalised (..., K, 2), root (..., 1, 2) and scale (..., 1, 1), with
            keypoints_2d = normalised · scale + root.
        """
        centered, root, scale = Lifter._root_scale(keypoints_2d, root_index, visible)
        return centered / ops.maximum(scale, _EPSILON), root, scale

    @staticmethod
    def denormalize_2d(normalized, root, scale):
        """Inverse of `normalize_2d`."""
        return ops.cast(normalized, "float32") * scale + root

    @staticmethod
    def normalize_3d(keypoints_3d, root_index=0, visible=None):
        """Root-relative, scale-normalised 3D pose (the lifter's target).

        Args:
            keypoints_3d: (..., K, 3), e.g. camera coordinates in metres or millimetres.
            root_index: int. Index of the root joint.
            visible: optional (..., K) weights for the scale.

        Returns:
            tuple: normalised (..., K, 3) and scale (..., 1, 1).
        """
        centered, _, scale = Lifter._root_scale(keypoints_3d, root_index, visible)
        return centered / ops.maximum(scale, _EPSILON), scale

    def get_config(self):
        config = super().get_config()
        config.update(
            num_keypoints=self.num_keypoints,
            hidden_units=self.hidden_units,
            num_blocks=self.num_blocks,
            dropout=self.dropout,
            root_index=self.root_index,
        )
        return config
