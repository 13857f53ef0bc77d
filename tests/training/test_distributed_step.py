"""SupervisedPoseTrainer: the loss, and the step under MirroredStrategy on two logical CPUs.

Logical CPU devices must be configured before TensorFlow touches a device, so every run happens in
a fresh subprocess (a script written to tmp_path): one with the default (single-device)
strategy, one with `MirroredStrategy` over two logical CPUs, on the same global batch and the
same initial weights. They must report the same loss and make the same update.

BatchNorm layers are frozen in both runs: Keras BatchNormalization computes its batch statistics
per replica (like PyTorch DDP without SyncBatchNorm), which is a different model on two devices,
not a scaling bug. Frozen, the network is a per-sample function and the two runs must agree to
float precision. SGD, not Adam: Adam's first step is nearly invariant to the gradient's scale
and would hide a missing 1/num_replicas.

The two-device run also trains a deliberately broken trainer that forgets the 1/num_replicas
scaling; its update must come out twice as large, which shows the comparison can fail.
"""

import json
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.losses.heatmap_mse import HeatmapMSE
from synpose_keras.models import PosePredictor
from synpose_keras.ops.heatmaps import encode_heatmaps
from synpose_keras.training.supervised_trainer import SupervisedPoseTrainer

from tests.training.replica_runs import STRATEGY_SETUP, result, start

K = 4
TINY = dict(num_keypoints=K, backbone="resnet18", input_size=64, width_multiplier=0.125,
            deconv_filters=16)
GLOBAL_BATCH = 4
LEARNING_RATE = 50.0  # heatmap-MSE gradients are tiny; a large step makes updates measurable

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    devices, init_path, data_path, out_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    config = json.loads(sys.argv[5])
    """
) + STRATEGY_SETUP + textwrap.dedent(
    """

    import keras
    from synpose_keras.losses.scaling import num_replicas_in_sync
    from synpose_keras.models import PosePredictor
    from synpose_keras.training.supervised_trainer import SupervisedPoseTrainer

    class UnscaledTrainer(SupervisedPoseTrainer):
        # The bug the test must catch: gradients of the per-replica mean, not divided by N.
        def _loss(self, images, heatmaps, weights, training):
            scaled, loss = super()._loss(images, heatmaps, weights, training)
            return loss, loss

    data = np.load(data_path)
    dataset = tf.data.Dataset.from_tensor_slices(
        (data["images"], data["heatmaps"], data["weights"])).batch(len(data["images"]))
    results = {"replicas": None}
    trainers = {"correct": SupervisedPoseTrainer, "unscaled": UnscaledTrainer}
    for name in (["correct", "unscaled"] if devices > 1 else ["correct"]):
        with strategy.scope():
            predictor = PosePredictor(**config["model"])
            predictor.load_weights(init_path)
            for layer in predictor._flatten_layers():
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False
            trainer = trainers[name](predictor)
            trainer.compile(optimizer=keras.optimizers.SGD(config["learning_rate"]))
        history = trainer.fit(dataset, epochs=1, verbose=0, shuffle=False)
        results["replicas"] = int(strategy.num_replicas_in_sync)
        results[name + "_loss"] = float(history.history["loss"][0])
        np.savez(f"{out_dir}/{name}_{devices}.npz",
                 *[keras.ops.convert_to_numpy(v) for v in predictor.weights])
    print(json.dumps(results))
    """
)


def _batch(seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (GLOBAL_BATCH, 64, 64, 3)).astype("uint8")
    keypoints = rng.uniform(4, 60, (GLOBAL_BATCH, K, 2)).astype("float32")
    visible = (rng.random((GLOBAL_BATCH, K)) > 0.25).astype("float32")
    heatmaps, weights = encode_heatmaps(keypoints, visible, 64, 16)
    return images, keras.ops.convert_to_numpy(heatmaps), keras.ops.convert_to_numpy(weights)


def _run(tmp_path, devices):
    script = tmp_path / "step.py"
    script.write_text(SCRIPT)
    config = json.dumps({"model": TINY, "learning_rate": LEARNING_RATE})
    return result(start(script, [devices, tmp_path / "init.weights.h5", tmp_path / "batch.npz",
                                 tmp_path, config]), timeout=600)


def _load(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


@pytest.mark.slow
def test_two_replicas_match_one_device(tmp_path):
    keras.utils.set_random_seed(0)
    PosePredictor(**TINY).save_weights(tmp_path / "init.weights.h5")
    images, heatmaps, weights = _batch(seed=1)
    np.savez(tmp_path / "batch.npz", images=images, heatmaps=heatmaps, weights=weights)

    single = _run(tmp_path, devices=1)
    double = _run(tmp_path, devices=2)
    assert single["replicas"] == 1 and double["replicas"] == 2

    initial = PosePredictor(**TINY)
    initial.load_weights(tmp_path / "init.weights.h5")
    start = [keras.ops.convert_to_numpy(v) for v in initial.weights]
    delta_1 = [w - s for w, s in zip(_load(tmp_path / "correct_1.npz"), start)]
    delta_2 = [w - s for w, s in zip(_load(tmp_path / "correct_2.npz"), start)]
    delta_bad = [w - s for w, s in zip(_load(tmp_path / "unscaled_2.npz"), start)]

    # The step really moves the weights.
    largest = max(np.abs(d).max() for d in delta_1)
    assert largest > 1e-3
    # Same loss, same update (to float precision, relative to the update's size).
    assert double["correct_loss"] == pytest.approx(single["correct_loss"], rel=1e-5)
    for d1, d2 in zip(delta_1, delta_2):
        np.testing.assert_allclose(d2, d1, rtol=1e-4, atol=1e-5 * largest)
    # Without the 1/num_replicas scaling the update doubles: the comparison above can fail.
    total_1 = sum(np.sum(np.abs(d)) for d in delta_1)
    total_bad = sum(np.sum(np.abs(d)) for d in delta_bad)
    assert total_bad == pytest.approx(2.0 * total_1, rel=1e-3)
    assert double["unscaled_loss"] == pytest.approx(single["correct_loss"], rel=1e-5)


def test_loss_is_the_visibility_weighted_heatmap_mse():
    keras.utils.set_random_seed(2)
    predictor = PosePredictor(**TINY)
    trainer = SupervisedPoseTrainer(predictor)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0))
    images, heatmaps, weights = _batch(seed=3)
    logs = trainer.test_step((images, heatmaps, weights))
    predicted = keras.ops.convert_to_numpy(predictor(images, training=False))
    expected = 0.5 * np.mean(np.mean((predicted - heatmaps) ** 2, axis=(1, 2)) * weights)
    assert float(logs["loss"]) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(
        float(HeatmapMSE()(heatmaps, predicted, sample_weight=weights)), expected, rtol=1e-5)
    # A dict batch gives the same loss.
    trainer.loss_tracker.reset_state()
    logs = trainer.test_step({"image": images, "heatmaps": heatmaps, "weights": weights})
    assert float(logs["loss"]) == pytest.approx(expected, rel=1e-5)


def test_fit_updates_weights_and_logs_a_nonzero_loss():
    keras.utils.set_random_seed(4)
    trainer = SupervisedPoseTrainer(PosePredictor(**TINY))
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = [keras.ops.convert_to_numpy(v).copy() for v in trainer.predictor.trainable_variables]
    images, heatmaps, weights = _batch(seed=5)
    dataset = tf.data.Dataset.from_tensor_slices((images, heatmaps, weights)).batch(2)
    history = trainer.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert history.history["loss"][0] > 0
    after = [keras.ops.convert_to_numpy(v) for v in trainer.predictor.trainable_variables]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


def test_bad_batch_is_rejected():
    trainer = SupervisedPoseTrainer(PosePredictor(**TINY))
    with pytest.raises(ValueError, match="must be \\(images, heatmaps, weights\\)"):
        trainer.unpack((np.zeros((1, 64, 64, 3)), np.zeros((1, 16, 16, K))))


def test_trainer_saves_and_restores_predictor_and_optimizer(tmp_path):
    keras.utils.set_random_seed(6)
    trainer = SupervisedPoseTrainer(PosePredictor(**TINY))
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    images, heatmaps, weights = _batch(seed=6)
    trainer.train_step((images, heatmaps, weights))
    trainer.save(tmp_path / "trainer.keras")
    reloaded = keras.models.load_model(tmp_path / "trainer.keras")
    assert isinstance(reloaded.predictor, PosePredictor)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(reloaded(images)),
                                  keras.ops.convert_to_numpy(trainer(images)))
    assert int(reloaded.optimizer.iterations) == 1
    assert len(reloaded.optimizer.variables) == len(trainer.optimizer.variables) > 2
    for a, b in zip(trainer.optimizer.variables, reloaded.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
