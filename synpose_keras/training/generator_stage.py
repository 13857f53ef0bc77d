"""Stage ``generator``: pre-trains the WarpingModule and the Generator on target base/driving
pairs, with keypoints from the frozen pre-trained pose predictor (reconstruction loss only).

Reference:
    Lin et al., NeurIPS 2023, supplementary A ("G is pre-trained with predicted keypoints before
    the reconstruction stage"); FOMM (Siarohin et al., NeurIPS 2019) for W and G.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from synpose_keras.losses.scaling import scale_loss_for_distribution
from synpose_keras.models.reconstruction import reconstruct
from synpose_keras.ops.warp import normalize_keypoints
from synpose_keras.training.losses import make_reconstruction_loss
from synpose_keras.training.stage_model import StageModel


class GeneratorStage(StageModel):
    """Trains W and G to generate the driving image from the base image and keypoints.

    Args:
        predictor: PosePredictor. Frozen; gives the keypoints of base and driving through its
            differentiable readout (`PosePredictor.soft_keypoints`: the local soft-argmax,
            which agrees with the argmax, by default).
        warping_module: WarpingModule. Trained.
        generator: Generator. Trained.
        vgg_weights: optional str. VGG-19 weights for the perceptual loss; None uses the L1 + SSIM
            pyramid.

    Batch format: ``{"base": (B,S,S,3) [0,255], "driving": (B,S,S,3) [0,255]}``.
    """

    def __init__(self, predictor, warping_module, generator, vgg_weights=None, **kwargs):
        super().__init__(**kwargs)
        self.predictor = predictor
        self.warping_module = warping_module
        self.generator = generator
        self.vgg_weights = vgg_weights
        self.reconstruction_loss = make_reconstruction_loss(vgg_weights)
        self.trackers = {"loss": keras.metrics.Mean(name="loss")}
        if not (warping_module.built and generator.built):  # subclassed W and G build lazily
            size = predictor.input_size
            kp = np.zeros((1, predictor.num_keypoints, 2), np.float32)
            reconstruct(warping_module, generator, np.zeros((1, size, size, 3), np.float32),
                        kp, kp)
        # holds built models only; under tf.distribute, fit must not try a symbolic build
        self.built = True

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        if not self.optimizer.built:
            self.optimizer.build(self._trained_variables())

    def _trained_variables(self):
        return self.warping_module.trainable_variables + self.generator.trainable_variables

    @property
    def metrics(self):
        return list(self.trackers.values())

    def keypoints(self, base, driving):
        size = ops.shape(base)[1]
        images = ops.concatenate([base, driving], axis=0)
        heatmaps = self.predictor(images, training=False)
        kp = self.predictor.soft_keypoints(heatmaps, (None, size, size, 3))
        kp = ops.stop_gradient(normalize_keypoints(kp, (size, size)))
        n = ops.shape(base)[0]
        return kp[:n], kp[n:]

    def train_step(self, data):
        import tensorflow as tf

        base = ops.cast(data["base"], "float32")
        driving = ops.cast(data["driving"], "float32")
        kp_base, kp_driving = self.keypoints(base, driving)
        with tf.GradientTape() as tape:
            generated, _ = reconstruct(self.warping_module, self.generator, base / 255.0,
                                       kp_base, kp_driving, training=True)
            variables = self._trained_variables()
            loss = self.reconstruction_loss(driving / 255.0, generated)
            scaled = scale_loss_for_distribution(loss)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        self.trackers["loss"].update_state(loss)
        return {"loss": self.trackers["loss"].result()}
