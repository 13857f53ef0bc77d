"""Base class of the stage models: a ``keras.Model`` whose ``fit`` works under every strategy."""

from __future__ import annotations

import keras


class StageModel(keras.Model):
    """A ``keras.Model`` with a custom ``train_step``, trainable under any ``tf.distribute``
    strategy.

    Created under a multi-worker ``MultiWorkerMirroredStrategy``, it installs
    :func:`synpose_keras.training.multiworker_fixes.install_multiworker_fixes` (two Keras 3 bugs
    that stop ``fit`` before the first step with several workers).

    Subclasses hold models whose weights already exist and set ``self.built = True``: under a
    strategy, ``fit`` then skips Keras's symbolic build (a stage has no ``call``), and only builds
    the optimizer if the subclass has not.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            from synpose_keras.training.multiworker_fixes import (
                install_multiworker_fixes,
                is_multi_worker,
            )

            if is_multi_worker(tf.distribute.get_strategy()):
                install_multiworker_fixes()
