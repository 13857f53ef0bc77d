"""The loss-scaling convention of synpose-keras under ``tf.distribute`` (written once).

Under ``MirroredStrategy`` / ``MultiWorkerMirroredStrategy`` every replica computes the gradient of
its own loss on its own slice of the global batch, and the gradients are all-reduced with a **SUM**.
For the summed gradient to equal the gradient of the *global-batch mean* loss, each replica must
minimise ``per_replica_mean_loss / num_replicas_in_sync``.

Convention:

1. Every loss in ``synpose_keras.losses`` is a ``keras.losses.Loss`` with a mean reduction
   (``"sum_over_batch_size"`` or ``"mean_with_sample_weight"``); Keras already divides those by
   the number of replicas. Use them as they are: **do not** scale them again.
2. A loss you average yourself in a custom ``train_step`` (``ops.mean(...)``, a sum of tracked
   terms not computed by a mean-reduced Keras ``Loss``, a regulariser) is a per-replica mean: pass
   it through ``scale_loss_for_distribution`` before taking gradients, once.
3. Log the *unscaled* value (trackers see the per-replica mean; Keras averages metrics across
   replicas itself).

With one device (or no strategy, or a non-TensorFlow backend) the function is the identity, so the
same ``train_step`` runs everywhere. Test a custom step on two logical CPUs against the one-device
run (``tests/losses/test_scaling.py`` does so for this convention): a bare ``ops.mean`` loss that
skips this scaling gives N times the gradient on N replicas.
"""

from __future__ import annotations

import keras
from keras import ops


def num_replicas_in_sync() -> int:
    """Number of replicas of the current ``tf.distribute`` strategy (1 outside one / non-TF)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def scale_loss_for_distribution(loss):
    """Divides a per-replica *mean* loss by the number of replicas in sync.

    Use it in a custom ``train_step`` on a loss that was not produced by a mean-reduced
    ``keras.losses.Loss`` (those are already scaled by Keras, see the module docstring), just before
    computing gradients. Identity with a single replica.

    Args:
        loss: scalar tensor. The loss averaged over this replica's batch.

    Returns:
        ``loss / num_replicas_in_sync`` (same dtype).

    Example:

    ```python
    from synpose_keras.losses import scale_loss_for_distribution

    with tf.GradientTape() as tape:
        supervised = heatmap_mse(gt, pred, sample_weight=weights)     # Keras Loss: already scaled
        rec = scale_loss_for_distribution(ops.mean(ops.abs(image - target)))  # hand-made mean
        total = supervised + rec
    ```
    """
    replicas = num_replicas_in_sync()
    if replicas == 1:
        return loss
    loss = ops.convert_to_tensor(loss)
    return ops.multiply(loss, ops.cast(1.0 / replicas, loss.dtype))
