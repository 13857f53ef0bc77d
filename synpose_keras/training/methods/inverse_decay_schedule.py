"""InverseDecaySchedule: TLlib's per-iteration learning-rate decay ``lr0 (1 + gamma i)^-power``."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="synpose_keras")
class InverseDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``initial_learning_rate * (1 + gamma * i) ** (-power)`` with ``i`` the training iteration.

    TLlib's RegDA decays every optimiser once per iteration with
    ``LambdaLR(lambda x: lr * (1 + 1e-4 x) ** -0.75)``. A Keras optimiser counts its own
    ``apply_gradients`` calls; one that is applied several times per iteration (RegDA's feature
    extractor: steps A and C) passes ``steps_per_iteration`` so the rate still follows iterations.

    Args:
        initial_learning_rate: float. Rate at iteration 0.
        gamma: float. Defaults to 1e-4 (TLlib ``--lr-gamma``).
        power: float. Defaults to 0.75 (TLlib ``--lr-decay``).
        steps_per_iteration: int. Optimiser steps per training iteration. Defaults to 1.

    Example:

    ```python
    from synpose_keras.training.methods import InverseDecaySchedule
    sgd = keras.optimizers.SGD(InverseDecaySchedule(0.1), momentum=0.9, nesterov=True)
    ```

    Reference:
        Jiang et al., "Regressive Domain Adaptation for Unsupervised Keypoint Detection",
        CVPR 2021; TLlib ``examples/domain_adaptation/keypoint_detection/regda.py``.
    """

    def __init__(self, initial_learning_rate, gamma=1e-4, power=0.75, steps_per_iteration=1):
        if not initial_learning_rate > 0:
            raise ValueError("initial_learning_rate must be positive. "
                             f"Received: initial_learning_rate={initial_learning_rate}")
        if int(steps_per_iteration) < 1:
            raise ValueError("steps_per_iteration must be >= 1. "
                             f"Received: steps_per_iteration={steps_per_iteration}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.gamma = float(gamma)
        self.power = float(power)
        self.steps_per_iteration = int(steps_per_iteration)

    def __call__(self, step):
        iteration = ops.floor(ops.cast(step, "float32") / float(self.steps_per_iteration))
        return self.initial_learning_rate * ops.power(1.0 + self.gamma * iteration, -self.power)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "gamma": self.gamma,
                "power": self.power, "steps_per_iteration": self.steps_per_iteration}
