"""synpose-keras: synthetic-to-real 2D pose adaptation with geometric reconstruction.

Reference:
    Lin, Gu, Yang, Yao. "Synthetic-to-Real Pose Estimation with Geometric Reconstruction".
    NeurIPS 2023.
"""

import os

# The data pipeline and the training engine use TensorFlow; the networks themselves only use
# keras.ops, so they also run under JAX when a user sets KERAS_BACKEND before importing us.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# Registers every network, layer, loss and metric with Keras, so that after `import synpose_keras`
# a plain `keras.models.load_model(path)` reloads saved models without `custom_objects`.
from synpose_keras import losses as _losses  # noqa: E402,F401
from synpose_keras import metrics as _metrics  # noqa: E402,F401
from synpose_keras import models as _models  # noqa: E402,F401
