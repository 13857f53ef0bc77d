"""Stage ``style``: trains the StyleNet decoder in both directions (source <-> target).

Reference:
    Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance
    Normalization", ICCV 2017; UniFrame's restyling (Kim et al., ECCV 2022: both directions,
    style weight 0.1; docs/protocol.md, "Comparison methods").
"""

from __future__ import annotations

import keras

from synpose_keras.losses.scaling import num_replicas_in_sync
from synpose_keras.training.stage_model import StageModel


class StyleStage(StageModel):
    """AdaIN decoder training: ``L = L_AdaIN(src -> tgt style) + L_AdaIN(tgt -> src style)``.

    Args:
        style_net: StyleNet. Its encoder is frozen; its decoder is trained.

    Batch format: ``{"source": (B,H,W,3) [0,255], "target": (B,H,W,3) [0,255]}``.

    The AdaIN losses are mean-reduced ``keras.losses.Loss`` objects, which Keras already divides
    by the number of replicas under ``tf.distribute``: they are differentiated as they are, and
    multiplied back by the replica count for logging (``synpose_keras.losses.scaling``, rule 1).
    """

    def __init__(self, style_net, **kwargs):
        super().__init__(**kwargs)
        self.style_net = style_net
        self.trackers = {n: keras.metrics.Mean(name=n) for n in ("loss", "content", "style")}
        # holds built models only; under tf.distribute, fit must not try a symbolic build
        self.built = True

    def compile(self, optimizer, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        # built now, so that a checkpoint restore before the first step finds its slots
        if not self.optimizer.built:
            self.optimizer.build(self.style_net.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def train_step(self, data):
        import tensorflow as tf

        source, target = data["source"], data["target"]
        variables = self.style_net.trainable_variables
        with tf.GradientTape() as tape:
            forward = self.style_net.compute_losses(source, target, training=True)
            backward = self.style_net.compute_losses(target, source, training=True)
            # already scaled by 1/num_replicas inside the Keras losses: not scaled again
            loss = forward["loss"] + backward["loss"]
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        replicas = float(num_replicas_in_sync())  # log the per-replica mean, unscaled
        self.trackers["loss"].update_state(loss * replicas)
        self.trackers["content"].update_state(
            (forward["content_loss"] + backward["content_loss"]) * replicas)
        self.trackers["style"].update_state(
            (forward["style_loss"] + backward["style_loss"]) * replicas)
        return {n: t.result() for n, t in self.trackers.items()}
