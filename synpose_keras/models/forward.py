"""``forward_function``: one traced inference function per model, cached for the model's life."""

from __future__ import annotations

import weakref

import keras

_FORWARD = weakref.WeakKeyDictionary()


def forward_function(model):
    """``model(x, training=False)`` as a traced function, built once per model.

    ``model.predict`` builds a data adapter and an iterator on every call (about 0.36 s per
    call for ``PosePredictor.paper()`` on a 2-core CPU, benchmarks/README.md,
    "Changes and findings"), and
    ``predict_on_batch`` under a ``tf.distribute`` strategy replicates the whole batch on every
    replica; this function does neither. It is cached in a weak-keyed dictionary (freed with the
    model) and traced with ``reduce_retracing``, so batches of other sizes reuse one trace. On a
    backend other than TensorFlow it falls back to ``predict_on_batch``.

    Args:
        model: keras.Model.

    Returns:
        callable(x) -> model outputs (tensors) for a batch ``x``.

    Example:

    ```python
    from synpose_keras.models import PosePredictor
    from synpose_keras.models.forward import forward_function

    model = PosePredictor(num_keypoints=21, backbone="resnet18", input_size=64)
    heatmaps = forward_function(model)(images)   # (B, 16, 16, 21)
    ```
    """
    if keras.backend.backend() != "tensorflow":
        return model.predict_on_batch
    import tensorflow as tf

    if model not in _FORWARD:
        # the function holds the model weakly: a strong reference from the cached value would
        # keep its own key (the model) alive for ever
        ref = weakref.ref(model)
        _FORWARD[model] = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True)
    return _FORWARD[model]
