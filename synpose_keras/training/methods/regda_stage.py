"""Stage ``adapt`` of ``--method regda``: Regressive Domain Adaptation (Jiang et al., CVPR 2021).

One iteration (``RegDAStage.train_step``), as TLlib's ``regda.py``::

    A. source:  KL(main(F(x_s)), y_s; w_s) + margin * trade_off * KL(adv(GL(F(x_s))), GT(main); w_s)
                -> feature extractor, main head and adversarial head
    B. target:  trade_off * KL(adv(GL(F(x_t))), GF(main(F(x_t))))
                -> adversarial head only (it learns to put mass on the *other* keypoints)
    C. target:  trade_off * KL(adv(GL(F(x_t))), GT(main(F(x_t))))
                -> feature extractor only, through the warm-start gradient layer GL

GT / GF are the ground-truth and ground-false maps of :mod:`.regda`. Three SGD optimisers
(Nesterov momentum 0.9, weight decay 1e-4): the feature extractor at ``lr * feature_lr_mult``
(0.01), each head at ``lr`` (0.1), all decayed per iteration by ``(1 + 1e-4 i) ** -0.75``
(:class:`InverseDecaySchedule`). The feature optimiser steps twice per iteration (A and C), the
adversarial one twice (A and B), the main head once.

Our choices where TLlib differs or is silent:

- The main head is our predictor's single 1x1 conv (TLlib: conv3x3-BN-ReLU + 1x1 for both heads);
  the adversarial head mirrors ours by default (``head_layers=1``; TLlib's shape with 2).
- Keras's SGD applies weight decay decoupled from momentum (torch adds it to the gradient).
- Pre-training: the ERM stage of the harness (no restyling), shared with source-only and
  CC-SSL; TLlib pre-trains for 70 epochs with Adam 1e-3 (Adam at the backbone's 0.1x rate when it
  starts from ImageNet weights).
- Target images are the augmented (student) views of the harness's target pipeline.

Batch format: the ``adapt`` dataset (``{"source": {...}, "target": {"student_image", ...}}``).

Reference:
    Jiang, Ji, Wang, Long, "Regressive Domain Adaptation for Unsupervised Keypoint Detection",
    CVPR 2021, Sec. 4 and Algorithm 1; docs/protocol.md, "Comparison methods"; docs/methods.md.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from synpose_keras.losses.scaling import scale_loss_for_distribution
from synpose_keras.training.methods.adversarial_head import AdversarialHead
from synpose_keras.training.methods.inverse_decay_schedule import InverseDecaySchedule
from synpose_keras.training.methods.regda import (
    feature_variables,
    ground_truth_and_false,
    head_variables,
    joints_kl_loss,
    main_head,
    predictor_features,
    scale_gradient,
    warm_start_coefficient,
)


class RegDAStage(keras.Model):
    """RegDA's three-step iteration as a Keras model whose ``fit`` runs it.

    Args:
        predictor: PosePredictor (pre-trained on the source). Feature extractor + main head.
        adversarial_head: optional AdversarialHead. Built from the predictor when None.
        margin: float. TLlib ``--margin``. Defaults to 4.
        trade_off: float. TLlib ``--trade-off``. Defaults to 1.
        gl_max: float. Final warm-start coefficient. Defaults to 0.1.
        gl_alpha: float. Defaults to 1.
        gl_max_iters: int. Defaults to 1000.
        head_layers: int. Layers of the adversarial head built when none is given. Defaults to 1.

    Shapes: B batch, S input side, K keypoints, h = S / 4.

    Example:

    ```python
    stage = RegDAStage(predictor)
    stage.compile(**regda_optimizers(lr=0.1))
    stage.build_all(64)
    stage.fit(dataset, steps_per_epoch=100)
    ```
    """

    def __init__(self, predictor, adversarial_head=None, margin=4.0, trade_off=1.0, gl_max=0.1,
                 gl_alpha=1.0, gl_max_iters=1000, head_layers=1, **kwargs):
        super().__init__(**kwargs)
        if margin < 0 or trade_off < 0:
            raise ValueError(f"margin and trade_off must be >= 0. Received: margin={margin}, "
                             f"trade_off={trade_off}")
        self.predictor = predictor
        if adversarial_head is None:
            adversarial_head = AdversarialHead(predictor.num_keypoints,
                                               filters=predictor.deconv_filters,
                                               num_layers=head_layers, name="adversarial_head")
        self.adversarial_head = adversarial_head
        self.margin = float(margin)
        self.trade_off = float(trade_off)
        self.gl_max = float(gl_max)
        self.gl_alpha = float(gl_alpha)
        self.gl_max_iters = float(gl_max_iters)
        names = ["loss", "source", "source_disparity", "ground_false", "ground_truth", "gl"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.head_optimizer = None
        self.adversarial_optimizer = None

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def student(self):
        """The adapted predictor (what the harness evaluates and saves)."""
        return self.predictor

    def compile(self, optimizer, head_optimizer=None, adversarial_optimizer=None, **kwargs):
        """``optimizer`` trains the feature extractor; the heads get their own optimisers."""
        super().compile(optimizer=optimizer, **kwargs)
        self.head_optimizer = head_optimizer or keras.optimizers.SGD(0.1)
        self.adversarial_optimizer = adversarial_optimizer or keras.optimizers.SGD(0.1)

    def build_all(self, input_size):
        """Creates every weight and optimiser slot before a checkpoint restore."""
        dummy = np.zeros((1, input_size, input_size, 3), np.float32)
        features = predictor_features(self.predictor, dummy)
        self.predictor(dummy)
        self.adversarial_head(features)
        self.optimizer.build(feature_variables(self.predictor))
        self.head_optimizer.build(head_variables(self.predictor))
        self.adversarial_optimizer.build(self.adversarial_head.trainable_variables)
        self.built = True

    # ------------------------------------------------------------------------ pieces
    def gl_coefficient(self):
        """Warm-start coefficient of this iteration (main-head optimiser = iteration count)."""
        return warm_start_coefficient(self.head_optimizer.iterations, hi=self.gl_max,
                                      alpha=self.gl_alpha, max_iters=self.gl_max_iters)

    def _forward(self, images, coefficient):
        features = predictor_features(self.predictor, images, training=True)
        heatmaps = main_head(self.predictor, features)
        adversarial = self.adversarial_head(scale_gradient(features, coefficient), training=True)
        return heatmaps, adversarial

    def source_step(self, source, coefficient):
        """Step A: supervised KL + margin * source disparity; updates all three parts."""
        import tensorflow as tf

        images = ops.cast(source["image"], "float32")
        f_vars = feature_variables(self.predictor)
        h_vars = head_variables(self.predictor)
        a_vars = self.adversarial_head.trainable_variables
        with tf.GradientTape() as tape:
            heatmaps, adversarial = self._forward(images, coefficient)
            supervised = joints_kl_loss(heatmaps, source["heatmaps"], source["weights"])
            truth, _ = ground_truth_and_false(heatmaps)
            disparity = joints_kl_loss(adversarial, truth, source["weights"])
            loss = supervised + self.margin * self.trade_off * disparity
            scaled = scale_loss_for_distribution(loss)
        grads = tape.gradient(scaled, f_vars + h_vars + a_vars)
        nf, nh = len(f_vars), len(h_vars)
        self.optimizer.apply_gradients(zip(grads[:nf], f_vars))
        self.head_optimizer.apply_gradients(zip(grads[nf:nf + nh], h_vars))
        self.adversarial_optimizer.apply_gradients(zip(grads[nf + nh:], a_vars))
        return loss, supervised, disparity

    def adversarial_step(self, target_images, coefficient):
        """Step B: the adversarial head fits the ground-false maps; updates it only."""
        import tensorflow as tf

        images = ops.cast(target_images, "float32")
        a_vars = self.adversarial_head.trainable_variables
        with tf.GradientTape() as tape:
            heatmaps, adversarial = self._forward(images, coefficient)
            _, false = ground_truth_and_false(heatmaps)
            loss = self.trade_off * joints_kl_loss(adversarial, false)
            scaled = scale_loss_for_distribution(loss)
        grads = tape.gradient(scaled, a_vars)
        self.adversarial_optimizer.apply_gradients(zip(grads, a_vars))
        return loss

    def feature_step(self, target_images, coefficient):
        """Step C: the features pull the adversarial head back to the main head's argmax;
        updates the feature extractor only (gradient scaled by the warm-start layer)."""
        import tensorflow as tf

        images = ops.cast(target_images, "float32")
        f_vars = feature_variables(self.predictor)
        with tf.GradientTape() as tape:
            heatmaps, adversarial = self._forward(images, coefficient)
            truth, _ = ground_truth_and_false(heatmaps)
            loss = self.trade_off * joints_kl_loss(adversarial, truth)
            scaled = scale_loss_for_distribution(loss)
        grads = tape.gradient(scaled, f_vars)
        self.optimizer.apply_gradients(zip(grads, f_vars))
        return loss

    # ------------------------------------------------------------------------ the iteration
    def train_step(self, data):
        coefficient = self.gl_coefficient()
        loss, supervised, disparity = self.source_step(data["source"], coefficient)
        target = data["target"]["student_image"]
        false_loss = self.adversarial_step(target, coefficient)
        truth_loss = self.feature_step(target, coefficient)
        values = {"loss": loss, "source": supervised, "source_disparity": disparity,
                  "ground_false": false_loss, "ground_truth": truth_loss, "gl": coefficient}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}


def regda_optimizers(lr=0.1, feature_lr_mult=0.1, momentum=0.9, weight_decay=1e-4,
                     lr_gamma=1e-4, lr_decay=0.75):
    """The three SGD optimisers of TLlib's RegDA, as ``compile`` keyword arguments."""

    def sgd(rate, steps):
        return keras.optimizers.SGD(
            InverseDecaySchedule(rate, gamma=lr_gamma, power=lr_decay, steps_per_iteration=steps),
            momentum=momentum, nesterov=True, weight_decay=weight_decay or None)

    return {"optimizer": sgd(lr * feature_lr_mult, 2), "head_optimizer": sgd(lr, 1),
            "adversarial_optimizer": sgd(lr, 2)}
