"""Losses of synpose-keras, all ``keras.losses.Loss`` subclasses with mean reductions.

Loss scaling under ``tf.distribute`` follows one convention, see ``synpose_keras.losses.scaling``:
these losses are already divided by the number of replicas; hand-made per-replica means go through
``scale_loss_for_distribution``.
"""

from synpose_keras.losses.adain_content_loss import AdaINContentLoss
from synpose_keras.losses.adain_style_loss import AdaINStyleLoss
from synpose_keras.losses.consistency_loss import ConsistencyLoss
from synpose_keras.losses.heatmap_mse import HeatmapMSE
from synpose_keras.losses.perceptual_pyramid_loss import PerceptualPyramidLoss
from synpose_keras.losses.scaling import num_replicas_in_sync
from synpose_keras.losses.scaling import scale_loss_for_distribution
from synpose_keras.losses.ssim import ssim

__all__ = [
    "AdaINContentLoss",
    "AdaINStyleLoss",
    "ConsistencyLoss",
    "HeatmapMSE",
    "PerceptualPyramidLoss",
    "num_replicas_in_sync",
    "scale_loss_for_distribution",
    "ssim",
]
