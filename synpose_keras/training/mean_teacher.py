"""Mean teacher: the teacher's weights are an exponential moving average of the student's.

Every weight is averaged, the BatchNorm moving statistics included, so the teacher's
normalisation follows the student's data without ever running in training mode. (UniFrame
averages parameters and lets the teacher's BatchNorm keep statistics of its own; averaging the
moving statistics is the closest equivalent that keeps the teacher purely in inference mode.)

Under ``tf.distribute``, :func:`ema_update` is called inside the replicated train step (replica
context). Keras weights are mirrored variables with aggregation NONE, which TensorFlow updates
per replica there: each replica assigns its own copy, from its own copies of the teacher and the
student. The optimizer keeps the student's trained weights identical on every replica, so the
teacher's copies stay identical too (``tests/training/test_distributed_stages.py`` checks it);
no cross-replica synchronisation (``merge_call``) is needed. Non-trainable student weights that a
replica updates from its own batch (BatchNorm moving statistics) differ between replicas, and so
do the teacher's averages of them.

Reference:
    Tarvainen & Valpola, "Mean teachers are better role models", NeurIPS 2017; UniFrame
    (Kim et al., ECCV 2022), EMA 0.999: docs/protocol.md, "Comparison methods".
"""

from __future__ import annotations

import keras
from keras import ops


def _pairs(teacher: keras.Model, student: keras.Model):
    t_weights, s_weights = teacher.weights, student.weights
    if len(t_weights) != len(s_weights):
        raise ValueError(
            "Teacher and student must have the same architecture. Received: "
            f"{len(t_weights)} teacher weights and {len(s_weights)} student weights."
        )
    for t, s in zip(t_weights, s_weights):
        if tuple(t.shape) != tuple(s.shape):
            raise ValueError(
                f"Teacher weight {t.path} has shape {t.shape}, student weight {s.path} has {s.shape}."
            )
    return zip(t_weights, s_weights)


def copy_weights(teacher: keras.Model, student: keras.Model) -> None:
    """Sets every teacher weight to the student's value."""
    for t, s in _pairs(teacher, student):
        t.assign(s)


def ema_update(teacher: keras.Model, student: keras.Model, decay) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, for every weight (keras.ops)."""
    for t, s in _pairs(teacher, student):
        if not keras.backend.is_float_dtype(t.dtype):  # e.g. integer counters: copy
            t.assign(s)
            continue
        d = ops.cast(decay, t.dtype)
        t.assign(d * t + (1.0 - d) * ops.cast(s, t.dtype))
