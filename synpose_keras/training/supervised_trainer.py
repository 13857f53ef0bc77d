"""Supervised heatmap training of a PosePredictor: the core of the ``pretrain`` stage."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from synpose_keras.losses.heatmap_mse import HeatmapMSE
from synpose_keras.losses.scaling import num_replicas_in_sync


@keras.saving.register_keras_serializable(package="synpose_keras")
class SupervisedPoseTrainer(keras.Model):
    """Trains a `PosePredictor` on (images, heatmaps, weights) with a visibility-weighted MSE.

    The step is a custom `train_step` (TensorFlow backend, `tf.GradientTape`):

        loss = HeatmapMSE()(heatmaps, predictor(images), sample_weight=weights)
             = 0.5 / (B·K·h·w) · Σ_{b,k} w_bk Σ_{y,x} (pred − true)²       (TLlib JointsMSELoss)

    Distribution (`synpose_keras.losses.scaling`): `HeatmapMSE` is a mean-reduced
    `keras.losses.Loss`, so under `tf.distribute` Keras already divides each replica's mean by
    ``num_replicas_in_sync``; the SUM all-reduce of the gradients then yields the gradient of the
    global-batch mean. The tracker logs the unscaled per-replica mean (Keras averages metrics over
    replicas), so the logged loss is the global-batch loss on any number of devices.
    BatchNorm statistics are computed per replica (as PyTorch DDP without SyncBatchNorm).

    Args:
        predictor: `PosePredictor` (or any model mapping images to heatmaps (B, h, w, K)).
        **kwargs: forwarded to `keras.Model`.

    Shapes:
        B batch, H × W input, h × w heatmaps, K keypoints.
        batch: (images (B, H, W, 3) RGB [0, 255], heatmaps (B, h, w, K), weights (B, K)), as a
        tuple or as a dict with keys "image", "heatmaps", "weights".

    Example:
    >>> from synpose_keras.models import PosePredictor
    >>> from synpose_keras.training.supervised_trainer import SupervisedPoseTrainer
    >>> trainer = SupervisedPoseTrainer(PosePredictor(num_keypoints=21, input_size=64))
    >>> trainer.compile(optimizer=keras.optimizers.Adam(1e-4))
    >>> trainer.fit(dataset_of_image_heatmap_weight_tuples, epochs=1)

    Reference:
        Lin et al., NeurIPS 2023, §3 (L_src). Loss scaling under ``MirroredStrategy``: gradients
        are all-reduced with a SUM and Keras divides mean-reduced ``keras.losses.Loss`` values by
        the number of replicas (``synpose_keras.losses.scaling``).
    """

    def __init__(self, predictor, **kwargs):
        super().__init__(**kwargs)
        self.predictor = predictor
        self.heatmap_loss = HeatmapMSE()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        if predictor.built:
            # Built with its predictor, so that saving and restoring the optimizer state works.
            self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker]

    def call(self, images, training=None):
        return self.predictor(images, training=training)

    @staticmethod
    def unpack(data):
        """(images, heatmaps, weights) from a tuple or a dict batch."""
        if isinstance(data, dict):
            return data["image"], data["heatmaps"], data["weights"]
        if not isinstance(data, (tuple, list)) or len(data) != 3:
            raise ValueError(
                "A supervised batch must be (images, heatmaps, weights) or a dict with keys "
                f"'image', 'heatmaps', 'weights'. Received: data={data!r}"
            )
        return tuple(data)

    def _loss(self, images, heatmaps, weights, training):
        predicted = self.predictor(images, training=training)
        # Mean-reduced Keras loss: already divided by num_replicas_in_sync under tf.distribute.
        scaled = self.heatmap_loss(heatmaps, predicted, sample_weight=weights)
        return scaled, scaled * ops.cast(num_replicas_in_sync(), scaled.dtype)

    def train_step(self, data):
        images, heatmaps, weights = self.unpack(data)
        with tf.GradientTape() as tape:
            scaled_loss, loss = self._loss(images, heatmaps, weights, training=True)
            optimizer_loss = self.optimizer.scale_loss(scaled_loss)  # mixed-precision scaling
        variables = self.predictor.trainable_variables
        gradients = tape.gradient(optimizer_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        self.loss_tracker.update_state(loss)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        images, heatmaps, weights = self.unpack(data)
        _, loss = self._loss(images, heatmaps, weights, training=False)
        self.loss_tracker.update_state(loss)
        return {metric.name: metric.result() for metric in self.metrics}

    def get_config(self):
        config = super().get_config()
        config["predictor"] = keras.saving.serialize_keras_object(self.predictor)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        predictor = keras.saving.deserialize_keras_object(config.pop("predictor"))
        return cls(predictor=predictor, **config)
