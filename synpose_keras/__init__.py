"""synpose-keras: synthetic-to-real 2D pose adaptation with geometric reconstruction.

Reference:
    Lin, Gu, Yang, Yao. "Synthetic-to-Real Pose Estimation with Geometric Reconstruction".
    NeurIPS 2023.
"""

import importlib
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


_REGISTERED = False


def _register_keras_objects() -> None:
    """Registers every network, layer, loss and metric with Keras, so that a plain
    ``keras.models.load_model(path)`` reloads saved models without ``custom_objects``."""
    global _REGISTERED
    _REGISTERED = True
    from synpose_keras import losses as _losses  # noqa: F401
    from synpose_keras import metrics as _metrics  # noqa: F401
    from synpose_keras import models as _models  # noqa: F401


def _initializing(name: str) -> bool:
    module = sys.modules.get(name)
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _register_when_possible(finished: str) -> None:
    """Registers once Keras is loaded and no module of this package is half-imported (a module
    that imports Keras is; registering inside it would import it again, circularly).
    ``finished``: the module whose code has just run (its import is not marked done yet)."""
    if _REGISTERED or "keras" not in sys.modules:
        return
    busy = [name for name in list(sys.modules) if name != finished
            and (name == "keras" or name == __name__ or name.startswith(__name__ + "."))
            and _initializing(name)]
    if busy:
        return
    for finder in [f for f in sys.meta_path if isinstance(f, _RegisterWhenKerasIsImported)]:
        sys.meta_path.remove(finder)
    _register_keras_objects()


class _RegisterWhenKerasIsImported(importlib.abc.MetaPathFinder):
    """Registers the Keras classes (:func:`_register_keras_objects`) once Keras is imported.

    ``import synpose_keras`` stays light (the ``synpose`` command line answers ``--help`` without
    loading TensorFlow), and ``import synpose_keras; import keras; keras.models.load_model(...)``
    still finds every registered class. The registration runs right after the import of ``keras``
    (or of the module of this package that imported it) has finished.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" and not fullname.startswith(__name__ + "."):
            return None
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_when_possible(fullname)

        loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    _register_keras_objects()
else:
    sys.meta_path.insert(0, _RegisterWhenKerasIsImported())


_SUBPACKAGES = ("cli", "datasets", "inference", "losses", "metrics", "models", "ops",
                "pseudo_labels", "skeletons", "training", "viz", "locking")


def __getattr__(name):
    """``synpose_keras.models`` and the other sub-packages, imported on first access."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
