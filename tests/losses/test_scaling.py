"""The loss-scaling convention on two logical CPUs against one device.

Under ``MirroredStrategy`` gradients are all-reduced with a SUM and only mean-reduced
``keras.losses.Loss`` objects are divided by the replica count, so a custom step must scale its own
mean losses once (``synpose_keras.losses.scaling``).

Logical devices must be configured before TensorFlow touches a device, so the check runs in a fresh
interpreter.
"""

import subprocess
import sys
import textwrap

from synpose_keras.losses import num_replicas_in_sync, scale_loss_for_distribution

SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from keras import ops
    from synpose_keras.losses import HeatmapMSE, num_replicas_in_sync, scale_loss_for_distribution

    rng = np.random.default_rng(0)
    x = rng.random((8, 3)).astype("float32")
    y = rng.random((8, 1)).astype("float32")
    gt = rng.random((8, 4, 4, 2)).astype("float32")
    weights = (rng.random((8, 2)) > 0.3).astype("float32")

    def grads(w, xb, yb, gtb, wb):
        with tf.GradientTape() as tape:
            pred = ops.matmul(xb, w)
            hand_made = scale_loss_for_distribution(ops.mean(ops.square(pred - yb)))
            maps = gtb * ops.reshape(ops.sum(w), (1, 1, 1, 1))
            keras_loss = HeatmapMSE()(gtb, maps, sample_weight=wb)  # already scaled by Keras
            total = hand_made + keras_loss
        return tape.gradient(total, w)

    w0 = np.array([[0.5], [-1.0], [2.0]], "float32")
    single = grads(tf.Variable(w0), x, y, gt, weights).numpy()

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        w = tf.Variable(w0)
    dataset = tf.data.Dataset.from_tensor_slices((x, y, gt, weights)).batch(8)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    per_replica = strategy.run(lambda xb, yb, gb, wb: grads(w, xb, yb, gb, wb), args=batch)
    summed = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()
    print("REPLICAS", strategy.num_replicas_in_sync)
    # without scale_loss_for_distribution the hand-made term's gradient would be doubled
    np.testing.assert_allclose(summed, single, rtol=1e-5, atol=1e-6)
    inside = strategy.run(lambda: tf.constant(float(num_replicas_in_sync())))
    assert [float(v) for v in strategy.experimental_local_results(inside)] == [2.0, 2.0]
    print("OK")
    """
)


def test_identity_on_one_device():
    assert num_replicas_in_sync() == 1
    assert scale_loss_for_distribution(3.0) == 3.0


def test_two_replicas_sum_of_gradients_equals_single_device():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REPLICAS 2" in result.stdout
    assert result.stdout.strip().endswith("OK")
