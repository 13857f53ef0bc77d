"""synpose-keras: synthetic-to-real 2D pose adaptation with geometric reconstruction.

Reference:
    Lin, Gu, Yang, Yao. "Synthetic-to-Real Pose Estimation with Geometric Reconstruction".
    NeurIPS 2023.
"""

import importlib.abc
import importlib.util
import os
import sys

# The data pipeline and the training engine use TensorFlow; the networks themselves only use
# keras.ops, so they also run under JAX when a user sets KERAS_BACKEND before importing us.
# TF_CPP_MIN_LOG_LEVEL as the user set it (None: not set); `synpose --verbose` lowers our default.
_USER_TF_CPP_MIN_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"


def _register_keras_objects() -> None:
    """Registers every network, layer, loss and metric with Keras, so that a plain
    ``keras.models.load_model(path)`` reloads saved models without ``custom_objects``."""
    from synpose_keras import losses as _losses  # noqa: F401
    from synpose_keras import metrics as _metrics  # noqa: F401
    from synpose_keras import models as _models  # noqa: F401


class _RegisterWhenKerasIsImported(importlib.abc.MetaPathFinder):
    """Runs :func:`_register_keras_objects` right after ``keras`` is first imported.

    ``import synpose_keras`` stays light (the ``synpose`` command line answers ``--help`` without
    loading TensorFlow), and ``import synpose_keras; import keras; keras.models.load_model(...)``
    still finds every registered class.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_keras_objects()

        loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    _register_keras_objects()
else:
    sys.meta_path.insert(0, _RegisterWhenKerasIsImported())
