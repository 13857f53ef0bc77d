"""Numerical building blocks: heatmap codec, warping and geometry (keras.ops / NumPy).

- :mod:`synpose_keras.ops.heatmaps`: keypoints <-> protocol heatmaps, argmax, DARK and the
  differentiable readouts (local and global soft-argmax).
- :mod:`synpose_keras.ops.warp`: ``grid_sample``, coordinate grids, keypoint Gaussians,
  displacement fields, anti-aliased downsampling (FOMM conventions).
- :mod:`synpose_keras.ops.geometry`: 3×3 affine helpers, camera projection, alignment fits.
"""

from synpose_keras.ops.geometry import apply_affine
from synpose_keras.ops.geometry import compose
from synpose_keras.ops.geometry import crop_matrix
from synpose_keras.ops.geometry import fit_scale_translation
from synpose_keras.ops.geometry import hflip_matrix
from synpose_keras.ops.geometry import invert_affine
from synpose_keras.ops.geometry import procrustes
from synpose_keras.ops.geometry import procrustes_align
from synpose_keras.ops.geometry import project
from synpose_keras.ops.geometry import rotation_matrix
from synpose_keras.ops.geometry import scale_matrix
from synpose_keras.ops.geometry import shear_matrix
from synpose_keras.ops.geometry import to_transform_params
from synpose_keras.ops.geometry import translation_matrix
from synpose_keras.ops.heatmaps import LOCAL_SOFT_ARGMAX_BETA
from synpose_keras.ops.heatmaps import LOCAL_SOFT_ARGMAX_WINDOW
from synpose_keras.ops.heatmaps import READOUTS
from synpose_keras.ops.heatmaps import SOFT_ARGMAX_BETA
from synpose_keras.ops.heatmaps import HeatmapCodec
from synpose_keras.ops.heatmaps import decode_heatmaps
from synpose_keras.ops.heatmaps import encode_heatmaps
from synpose_keras.ops.heatmaps import local_soft_argmax
from synpose_keras.ops.heatmaps import soft_argmax
from synpose_keras.ops.warp import anti_alias_downsample
from synpose_keras.ops.warp import denormalize_keypoints
from synpose_keras.ops.warp import displacement_field
from synpose_keras.ops.warp import grid_sample
from synpose_keras.ops.warp import keypoints_to_gaussians
from synpose_keras.ops.warp import make_coordinate_grid
from synpose_keras.ops.warp import normalize_keypoints

__all__ = [
    "HeatmapCodec",
    "LOCAL_SOFT_ARGMAX_BETA",
    "LOCAL_SOFT_ARGMAX_WINDOW",
    "READOUTS",
    "SOFT_ARGMAX_BETA",
    "anti_alias_downsample",
    "apply_affine",
    "compose",
    "crop_matrix",
    "decode_heatmaps",
    "denormalize_keypoints",
    "displacement_field",
    "encode_heatmaps",
    "fit_scale_translation",
    "grid_sample",
    "hflip_matrix",
    "invert_affine",
    "keypoints_to_gaussians",
    "local_soft_argmax",
    "make_coordinate_grid",
    "normalize_keypoints",
    "procrustes",
    "procrustes_align",
    "project",
    "rotation_matrix",
    "scale_matrix",
    "shear_matrix",
    "soft_argmax",
    "to_transform_params",
    "translation_matrix",
]
