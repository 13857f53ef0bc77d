"""Batch statistics that must not depend on how the batch is split across replicas.

The comparison methods select pseudo-labels by rank inside the batch (UniFrame keeps the most
confident 50% of keypoint instances, CC-SSL a rising fraction). Under ``MirroredStrategy`` each
replica sees only its slice of the global batch; ranking inside the slice would make the
selection, hence the training, depend on the number of devices. Here the scores of all replicas
are gathered first, so one device and N devices select the same instances.

Shapes: B per-replica batch, K keypoints.
"""

from __future__ import annotations

import keras
from keras import ops

from synpose_keras.losses.scaling import num_replicas_in_sync


def gather_across_replicas(values):
    """Concatenates ``values`` (B, ...) of every replica along axis 0 (identity on one device)."""
    if num_replicas_in_sync() == 1 or keras.backend.backend() != "tensorflow":
        return values
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: values are already global
        return values
    return context.all_gather(values, axis=0)


def global_top_fraction_mask(scores, fraction):
    """The most confident ``fraction`` of keypoint instances of the *global* batch.

    Same rule as :func:`synpose_keras.pseudo_labels.masks.top_fraction_mask` (ties at the
    threshold are kept), with the threshold taken over the scores of every replica.

    Args:
        scores: (B, K) confidences.
        fraction: float or scalar tensor in (0, 1].

    Returns:
        (B, K) float32 mask in {0, 1}.
    """
    scores = ops.convert_to_tensor(scores, "float32")
    flat = ops.reshape(gather_across_replicas(scores), (-1,))
    n = ops.shape(flat)[0]
    fraction = ops.cast(fraction, "float32")
    k = ops.cast(ops.round(ops.cast(n, "float32") * fraction), "int32")
    k = ops.clip(k, 1, n)
    threshold = ops.sort(flat)[n - k]
    return ops.cast(scores >= threshold, "float32")
