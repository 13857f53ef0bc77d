"""Stage ``pretrain``: the pose predictor on labelled source images, restyled with target styles.

Each source image is replaced, with probability ``restyle_prob``, by its AdaIN restyling with a
random target image's style and a random strength alpha ~ U(0, 1) (UniFrame; docs/protocol.md,
"Comparison methods").

Reference:
    UniFrame (Kim et al., ECCV 2022), source pre-training with restyling.
"""

from __future__ import annotations

import keras
from keras import ops

from synpose_keras.losses.scaling import num_replicas_in_sync, scale_loss_for_distribution
from synpose_keras.training import restyling
from synpose_keras.training.losses import heatmap_mse
from synpose_keras.training.stage_model import StageModel


class PretrainStage(StageModel):
    """Supervised source training with optional restyling.

    Args:
        predictor: PosePredictor. Trained.
        style_net: optional StyleNet (frozen). None disables restyling.
        restyle_prob: float. Probability of restyling each source image.
        seed: optional int. Seed of the restyling draws.

    Batch format: ``{"source": {"image", "heatmaps", "weights"}, "style": (B,S,S,3)}``
    (``style`` target images are only needed with a style_net).

    Under ``tf.distribute`` the random draws are those of the one-device run on the same global
    batch: every replica draws the numbers of the whole global batch (its seed state is the same
    on every replica) and keeps its own slice, so replicas do not repeat each other's draws.
    """

    def __init__(self, predictor, style_net=None, restyle_prob=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= restyle_prob <= 1.0:
            raise ValueError(f"restyle_prob must be in [0, 1]. Received: restyle_prob={restyle_prob}")
        self.predictor = predictor
        self.style_net = style_net
        self.restyle_prob = float(restyle_prob)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {"loss": keras.metrics.Mean(name="loss")}
        # holds built models only; under tf.distribute, fit must not try a symbolic build
        self.built = True

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        # only the predictor is trained (else Keras would build it over the StyleNet's decoder)
        if not self.optimizer.built:
            self.optimizer.build(self.predictor.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def restyle(self, images, styles):
        """Restyles a random subset of ``images`` (probability restyle_prob, alpha ~ U(0,1)).

        Image i takes style i. Only the drawn images go through the StyleNet
        (:func:`synpose_keras.training.restyling.restyle`); under XLA (``jit_compile``) every
        image is restyled and the drawn ones are kept. The result carries no gradient.

        Args:
            images: (B, S, S, 3) float32 source images in [0, 255].
            styles: (B', S, S, 3) float32 target images, B' >= B.
        """
        batch = ops.shape(images)[0]
        draw = self._uniform(batch)
        alpha = self._uniform(batch)
        return restyling.restyle(self.style_net, images, styles, draw, alpha, self.restyle_prob,
                                 subset=not self.jit_compile)

    def _uniform(self, batch):
        """U(0, 1) per sample, this replica's slice of the draws for the global batch."""
        replicas = num_replicas_in_sync()
        if replicas == 1:
            return keras.random.uniform((batch,), seed=self.seed_generator)
        import tensorflow as tf

        values = keras.random.uniform((batch * replicas,), seed=self.seed_generator)
        start = tf.distribute.get_replica_context().replica_id_in_sync_group * batch
        return ops.slice(values, (start,), (batch,))

    def train_step(self, data):
        import tensorflow as tf

        source = data["source"]
        images = ops.cast(source["image"], "float32")
        if self.style_net is not None and self.restyle_prob > 0:
            images = self.restyle(images, ops.cast(data["style"], "float32"))  # no gradient
        variables = self.predictor.trainable_variables
        with tf.GradientTape() as tape:
            heatmaps = self.predictor(images, training=True)
            loss = heatmap_mse(source["heatmaps"], heatmaps, source["weights"])
            scaled = scale_loss_for_distribution(loss)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        self.trackers["loss"].update_state(loss)
        return {"loss": self.trackers["loss"].result()}
