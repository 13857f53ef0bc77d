"""Work-arounds that let Keras 3 ``fit`` train under a multi-worker ``MultiWorkerMirroredStrategy``.

With two or more workers, ``Model.fit`` of Keras 3 (checked with 3.15 and TF 2.21) fails before
the first step, for any model, in two places of ``keras/src/backend/tensorflow/trainer.py``:

1. ``TensorFlowTrainer._maybe_symbolic_build`` reduces the first distributed batch with
   ``strategy.reduce("MEAN", batch, axis=None)``; the collective implementation cannot reduce a
   nested batch (a dict, or an ``(x, y)`` tuple): "Attempt to convert a value ({...PerReplica...})
   ... to a Tensor" (keras-team/keras#20329). The build needs only shapes and dtypes: the fix
   hands it the first local replica's values.
2. ``reduce_per_replica(..., "mean")`` reduces every log with ``strategy.reduce("MEAN", v,
   axis=0)``; the logs are scalars: "Invalid reduction dimension 0 for input with 0 dimensions"
   (tensorflow/tensorflow#72388). The fix reduces scalars with ``axis=None`` (the mean over the
   replicas of values that Keras metrics already keep in sync).

:func:`install_multiworker_fixes` patches both, once per process; the patched code behaves as
Keras's own except under a multi-worker strategy. Call it when a multi-worker strategy is made
(the stage models also call it when they are built under one, see
:class:`synpose_keras.training.stage_model.StageModel`). Remove it once Keras fixes the two issues.
"""

from __future__ import annotations

_INSTALLED = False


def is_multi_worker(strategy) -> bool:
    """Whether ``strategy`` is a ``MultiWorkerMirroredStrategy`` spanning several workers."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return bool(strategy.extended._in_multi_worker_mode())


def install_multiworker_fixes() -> None:
    """Patches Keras's TensorFlow trainer for multi-worker ``fit`` (idempotent, see module doc)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = getattr(self, "_distribute_strategy", None)
        if iterator is None or data_batch is not None or strategy is None \
                or not is_multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)

        def local(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(local, next(batches))
            break
        return original_build(self, data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not is_multi_worker(strategy):
            return original_reduce(values, strategy, reduction)

        def reduce(value):
            rank = value.shape.rank if hasattr(value, "shape") else None
            return strategy.reduce("MEAN", value, axis=0 if rank else None)

        return tf.nest.map_structure(reduce, values)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    _INSTALLED = True
