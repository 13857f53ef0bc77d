"""Every comparison method's step under MirroredStrategy on two logical CPUs against one device.

Logical CPUs must be configured before TensorFlow touches a device, so each run is a fresh
subprocess (as ``tests/training/test_distributed_step.py``): the same initial weights, the same
global batch (4 target + 4 source images, 2 + 2 per replica), one ``fit`` step. BatchNorm layers
are frozen (Keras computes batch statistics per replica, which is a different model on two
devices) and the optimisers are plain SGD with a large rate (Adam's first step would hide a
missing 1/num_replicas). The runs must log the same loss and make the same update.

Randomness cannot differ between the runs: UniFrame's and CC-SSL's draws travel in the batch,
and the batch-level selections (UniFrame's 50% mask, CC-SSL's curriculum) are taken over the
global batch (``methods/batch_sync.py``).

The two-device run also trains two deliberately broken UniFrame steps: one that forgets the
1/num_replicas loss scaling (its update must come out twice as large) and one that ranks the
confidences per replica; both must differ from the one-device update, which shows the
comparison can fail.
"""

import textwrap

import numpy as np
import pytest

from tests.training.replica_runs import STRATEGY_SETUP, result, start

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    devices, data_path, out_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    """
) + STRATEGY_SETUP + textwrap.dedent(
    """

    import keras
    from synpose_keras.models import PosePredictor, StyleNet
    from synpose_keras.pseudo_labels.masks import top_fraction_mask
    from synpose_keras.training.methods import (CCSSLStage, RegDAStage, UniFrameStage,
                                                regda_optimizers)
    from synpose_keras.training.methods import uniframe_stage
    from synpose_keras.training.pretrain_stage import PretrainStage

    TINY = dict(num_keypoints=21, backbone="resnet18", input_size=64, width_multiplier=0.125,
                deconv_filters=16)

    def tiny(seed):
        keras.utils.set_random_seed(seed)
        model = PosePredictor(**TINY)
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        return model

    def build(name):
        sgd = lambda: keras.optimizers.SGD(50.0)
        if name == "source-only":
            stage = PretrainStage(tiny(0), style_net=None, restyle_prob=0.0)
            stage.compile(optimizer=sgd())
            stage.built = True
            return stage, {"student": stage.predictor}
        if name == "regda":
            stage = RegDAStage(tiny(0))
            stage.compile(**regda_optimizers(lr=1.0, weight_decay=0.0))
            stage.build_all(64)
            return stage, {"student": stage.predictor, "adversarial": stage.adversarial_head}
        if name.startswith("uniframe"):
            keras.utils.set_random_seed(5)
            style = StyleNet(width_multiplier=0.125)
            stage = UniFrameStage(tiny(0), tiny(1), style_net=style, occlusion_threshold=0.0,
                                  ema_decay=0.5)
        else:
            stage = CCSSLStage(tiny(0), tiny(1), keep_start=0.5)
        stage.compile(optimizer=sgd())
        stage.build_all(64)
        stage.initialize_teacher()
        return stage, {"student": stage.student, "teacher": stage.teacher}

    with np.load(data_path, allow_pickle=True) as f:
        batches = f["batches"].item()
    names = ["source-only", "regda", "uniframe", "ccssl"]
    if devices > 1:
        names += ["uniframe-unscaled", "uniframe-local-mask"]
    results = {"replicas": int(strategy.num_replicas_in_sync)}
    for name in names:
        if name == "uniframe-unscaled":
            uniframe_stage.scale_loss_for_distribution = lambda loss: loss
        if name == "uniframe-local-mask":
            uniframe_stage.scale_loss_for_distribution = original_scale
            uniframe_stage.global_top_fraction_mask = top_fraction_mask
        if name == "uniframe":
            original_scale = uniframe_stage.scale_loss_for_distribution
        batch = batches[name.split("-")[0] if name.startswith("uniframe") else name]
        size = len(batch["source"]["image"])
        dataset = tf.data.Dataset.from_tensor_slices(batch).batch(size)
        with strategy.scope():
            stage, parts = build(name)
        history = stage.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
        results[name] = float(history.history["loss"][0])
        for part, model in parts.items():
            np.savez(f"{out_dir}/{name}_{part}_{devices}.npz",
                     *[keras.ops.convert_to_numpy(v) for v in model.weights])
    print(json.dumps(results))
    """
)


def _batches():
    from synpose_keras.ops.heatmaps import encode_heatmaps

    rng = np.random.default_rng(0)
    n, k, size = 4, 21, 64

    def images():
        return rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)

    kp = rng.uniform(12, 52, (n, k, 2)).astype(np.float32)
    heatmaps, weights = encode_heatmaps(kp, (rng.random((n, k)) > 0.2).astype(np.float32),
                                        size, 16)
    source = {"image": images(), "heatmaps": np.asarray(heatmaps), "weights": np.asarray(weights)}
    teacher = images()
    shift = np.tile(np.array([[1, 0, 2.0], [0, 1, -1.0], [0, 0, 1]], np.float32), (n, 1, 1))
    index = np.tile(np.arange(k), (n, 1)).astype(np.int32)
    index[1] = index[1][::-1]  # one flipped view
    target = {"teacher_image": teacher, "student_image": np.roll(teacher, (-1, 2), (1, 2)),
              "affine": shift, "teacher_index": index}
    uniframe = {k_: rng.uniform(size=(n,)).astype(np.float32)
                for k_ in ("source_restyle", "source_alpha", "teacher_restyle", "teacher_alpha",
                           "occlude_choice", "patch_x", "patch_y")}
    uniframe["occlude"] = np.array([0.1, 0.9, 0.2, 0.3], np.float32)
    ccssl_target = dict(target, neighbor_image=np.roll(teacher, 1, axis=2),
                        has_neighbor=np.array([1.0, 1.0, 0.0, 1.0], np.float32))
    ccssl = {"scale": rng.normal(size=(n, 2)).astype(np.float32),
             "rotation": rng.normal(size=(n, 2)).astype(np.float32),
             "gains": rng.uniform(size=(n, 2, 3)).astype(np.float32)}
    return {
        "source-only": {"source": source},
        "regda": {"source": source, "target": target},
        "uniframe": {"source": source, "target": target, "draws": uniframe},
        "ccssl": {"source": source, "target": ccssl_target, "draws": ccssl},
    }


def _run_both(tmp_path):
    """The one-device and the two-replica runs, side by side (independent processes)."""
    script = tmp_path / "step.py"
    script.write_text(SCRIPT)
    processes = {devices: start(script, [devices, tmp_path / "batches.npz", tmp_path])
                 for devices in (1, 2)}
    results = {devices: result(process, timeout=1200) for devices, process in processes.items()}
    return results[1], results[2]


def _load(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


@pytest.mark.slow
def test_each_method_matches_on_two_replicas(tmp_path):
    np.savez(tmp_path / "batches.npz", batches=np.array(_batches(), dtype=object))
    single, double = _run_both(tmp_path)
    assert single["replicas"] == 1 and double["replicas"] == 2
    import synpose_keras.models  # noqa: F401
    from synpose_keras.models import PosePredictor

    parts = {"source-only": ["student"], "regda": ["student", "adversarial"],
             "uniframe": ["student", "teacher"], "ccssl": ["student"]}
    for method, names in parts.items():
        assert np.isfinite(single[method]), method
        assert double[method] == pytest.approx(single[method], rel=1e-5), method
        for part in names:
            one = _load(tmp_path / f"{method}_{part}_1.npz")
            two = _load(tmp_path / f"{method}_{part}_2.npz")
            assert len(one) == len(two) > 0
            for a, b in zip(one, two):
                np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6,
                                           err_msg=f"{method} {part}")

    # the updates are real, and the broken steps are caught
    import keras

    keras.utils.set_random_seed(0)
    start = [keras.ops.convert_to_numpy(v) for v in PosePredictor(
        num_keypoints=21, backbone="resnet18", input_size=64, width_multiplier=0.125,
        deconv_filters=16).weights]
    delta = {name: [w - s for w, s in zip(_load(tmp_path / f"{name}_student_{d}.npz"), start)]
             for name, d in (("uniframe", 1), ("uniframe-unscaled", 2),
                             ("uniframe-local-mask", 2))}
    largest = max(np.abs(d).max() for d in delta["uniframe"])
    assert largest > 1e-4
    total = sum(np.abs(d).sum() for d in delta["uniframe"])
    assert sum(np.abs(d).sum() for d in delta["uniframe-unscaled"]) == pytest.approx(2 * total,
                                                                                     rel=1e-3)
    local = max(np.abs(a - b).max() for a, b in zip(delta["uniframe-local-mask"],
                                                     delta["uniframe"]))
    assert local > 1e-3 * largest
