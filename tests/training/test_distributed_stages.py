"""Every custom stage step under MirroredStrategy on two logical CPUs = the one-device step.

StyleStage, PretrainStage (without, and with a StyleNet restyling the source images),
GeneratorStage and AdaptStage (reconstruction on, integrated 2D/3D pseudo-labels on) each train
one step with ``stage.fit`` on the same global batch of 4, from the same initial weights (the
models are built under each run's ``strategy.scope()`` from the same seed; the test checks that
the initial weights coincide). The two-replica run must log the same loss and make the same
update of every trained model: the predictor (student), the teacher (EMA), the StyleNet decoder,
the WarpingModule W and the Generator G. Every replica's copy of every variable must also agree
at the end (a variable updated in replica context must not drift apart between devices).

Logical CPU devices must be configured before TensorFlow touches a device, so each run is a fresh
subprocess (a script written to tmp_path): one with the default strategy, one with
``MirroredStrategy`` over two logical CPUs.

Conventions that make the two runs comparable, and why they are not scaling bugs:

- BatchNorm is frozen (``layer.trainable = False``, hence inference mode) in every model: Keras
  BatchNormalization computes batch statistics per replica (as PyTorch DDP without SyncBatchNorm),
  which is a genuinely different model on two devices.
- AdaptStage's M_2D (the most confident ``mask_fraction`` of the batch's keypoint instances) and
  the masked consistency normaliser (number of selected instances) are per-replica quantities,
  as with UniFrame's per-GPU batches (see the AdaptStage docstring). The test keeps every instance
  (``mask_fraction=1.0``, an M_3D agreement radius larger than the image, an identity teacher ->
  student affine so that every label stays inside the heatmap) and checks that both masks are
  all ones, so the per-replica and global normalisers coincide.
- SGD, not Adam: Adam's first step is nearly invariant to the gradient's scale and would hide a
  missing 1/num_replicas.

Each comparison can fail: the two-replica run also trains every stage with the loss-scaling
convention switched off (``scale_loss_for_distribution`` replaced by the identity, both ours and
the one inside mean-reduced Keras losses); its updates must come out twice as large.
"""

import os
import textwrap

import numpy as np
import pytest

from tests.training.replica_runs import STRATEGY_SETUP, result, start

STAGES = ("style", "pretrain", "pretrain_restyle", "generator", "adapt")

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import tensorflow as tf

    devices, out_dir, variants = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
    stages = sys.argv[4].split(",")
    """
) + STRATEGY_SETUP + textwrap.dedent(
    """

    import keras
    import keras.src.losses.loss as keras_loss
    from synpose_keras.models import StyleNet
    from synpose_keras.skeletons import HAND21
    from synpose_keras.training import (adapt_stage, generator_stage, pretrain_stage,
                                        style_stage)
    from tests.training.stage_fixtures import (adapt_batch, bone_ratios, lifter, predictor,
                                               warping_and_generator)

    # one SGD step, sized so that the largest update is ~1% of the weights
    LEARNING_RATE = {"style": 1e-6, "pretrain": 1e-3, "pretrain_restyle": 1e-3,
                     "generator": 0.5, "adapt": 1e-3}
    HEAD_SCALE = 100.0
    STAGE_MODULES = (adapt_stage, generator_stage, pretrain_stage, style_stage)

    def freeze_batchnorm(*models):
        for model in models:
            for layer in model._flatten_layers():
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False

    def style_net():
        keras.utils.set_random_seed(7)
        return StyleNet(width_multiplier=0.125)

    def warp_and_gen():
        keras.utils.set_random_seed(8)
        warp, gen = warping_and_generator()
        freeze_batchnorm(warp, gen)
        return warp, gen

    def frozen_predictor(seed):
        model = predictor(seed)
        freeze_batchnorm(model)
        # The head's N(0, 0.001) initialisation leaves the backbone's gradients below float32
        # resolution; a larger head makes every layer's update, and any error in it, visible.
        for layer in model._flatten_layers():
            if layer.name.startswith("deconv") or layer.name == "heatmaps":
                for weight in layer.trainable_weights:
                    weight.assign(weight * HEAD_SCALE)
        return model

    def build(name):
        sgd = keras.optimizers.SGD(LEARNING_RATE[name])
        raw = adapt_batch(0, n=4)
        if name == "style":
            net = style_net()
            stage = style_stage.StyleStage(net)
            stage.compile(optimizer=sgd)
            batch = {"source": raw["source"]["image"], "target": raw["target"]["teacher_image"]}
            return stage, batch, {"style_net": net}
        if name in ("pretrain", "pretrain_restyle"):
            model = frozen_predictor(0)
            restyle = name == "pretrain_restyle"
            stage = pretrain_stage.PretrainStage(
                model, style_net=style_net() if restyle else None, restyle_prob=0.5, seed=3)
            stage.compile(optimizer=sgd)
            batch = {"source": raw["source"]}
            if restyle:
                batch["style"] = raw["target"]["teacher_image"]
            return stage, batch, {"predictor": model}
        if name == "generator":
            model = frozen_predictor(0)
            model.trainable = False
            warp, gen = warp_and_gen()
            stage = generator_stage.GeneratorStage(model, warp, gen)
            stage.compile(optimizer=sgd)
            return stage, dict(raw["pairs"]), {"warp": warp, "gen": gen}
        if name == "adapt":
            student, teacher = frozen_predictor(0), frozen_predictor(1)
            lift = lifter()
            lift.trainable = False
            warp, gen = warp_and_gen()
            stage = adapt_stage.AdaptStage(
                student, teacher, HAND21, lifter=lift, bone_ratios=bone_ratios(),
                warping_module=warp, generator=gen, pseudo="integrated", rec=True,
                mask_fraction=1.0, agreement_px=1e4, ema_decay=0.5)
            stage.compile(optimizer=sgd,
                          generator_optimizer=keras.optimizers.SGD(LEARNING_RATE["generator"]))
            stage.build_all(64)
            stage.initialize_teacher()
            batch = dict(raw)
            batch["target"] = dict(raw["target"])
            batch["target"]["affine"] = np.tile(np.eye(3, dtype=np.float32), (4, 1, 1))
            return stage, batch, {"student": student, "teacher": teacher, "warp": warp,
                                  "gen": gen}
        raise ValueError(name)

    def numpy_weights(models):
        return {f"{key}/{i}": keras.ops.convert_to_numpy(w)
                for key, model in models.items() for i, w in enumerate(model.weights)}

    def replica_spread(models):
        # largest difference between the replicas' copies of any variable
        spread = 0.0
        for model in models.values():
            for w in model.weights:
                copies = getattr(w.value, "values", None)
                if copies is None or len(copies) < 2:
                    continue
                first = copies[0].numpy()
                for copy in copies[1:]:
                    spread = max(spread, float(np.max(np.abs(copy.numpy() - first))))
        return spread

    identity = lambda loss: loss  # noqa: E731
    originals = {m: m.scale_loss_for_distribution for m in STAGE_MODULES
                 if hasattr(m, "scale_loss_for_distribution")}
    keras_original = keras_loss.scale_loss_for_distribution
    results = {"replicas": int(strategy.num_replicas_in_sync)}
    for variant in variants:
        unscaled = variant == "unscaled"
        for module, function in originals.items():
            module.scale_loss_for_distribution = identity if unscaled else function
        keras_loss.scale_loss_for_distribution = identity if unscaled else keras_original
        for name in stages:
            with strategy.scope():
                stage, batch, models = build(name)
            initial = numpy_weights(models)
            dataset = tf.data.Dataset.from_tensors(batch).repeat()
            history = stage.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)
            final = numpy_weights(models)
            key = f"{variant}_{name}"
            results[key] = {k: float(v[0]) for k, v in history.history.items()}
            results[key]["replica_spread"] = replica_spread(models)
            np.savez(os.path.join(out_dir, f"{key}_{devices}.npz"),
                     **{f"initial:{k}": v for k, v in initial.items()},
                     **{f"final:{k}": v for k, v in final.items()})
    print(json.dumps(results))
    """
)


def _run(out_dir, devices, variants):
    script = os.path.join(out_dir, "stages.py")
    with open(script, "w") as f:
        f.write(SCRIPT)
    return start(script, [devices, out_dir, ",".join(variants), ",".join(STAGES)])


def _wait(process):
    return result(process, timeout=900)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The one-device run and the two-replica run (correct and unscaled), in parallel."""
    out = str(tmp_path_factory.mktemp("distributed_stages"))
    single = _run(out, 1, ["correct"])
    double = _run(out, 2, ["correct", "unscaled"])
    return out, _wait(single), _wait(double)


def _weights(path):
    with np.load(path) as data:
        initial = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("initial:")}
        final = {k.split(":", 1)[1]: data[k] for k in data.files if k.startswith("final:")}
    return initial, final


def _deltas(path):
    initial, final = _weights(path)
    return initial, {k: final[k] - initial[k] for k in final}


def _group(deltas, prefix):
    return {k: v for k, v in deltas.items() if k.startswith(prefix + "/")}


TRAINED = {"style": ["style_net"], "pretrain": ["predictor"], "pretrain_restyle": ["predictor"],
           "generator": ["warp", "gen"], "adapt": ["student", "teacher", "warp", "gen"]}


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_two_replicas_match_one_device(runs, stage):
    out, single, double = runs
    assert single["replicas"] == 1 and double["replicas"] == 2
    init_1, delta_1 = _deltas(os.path.join(out, f"correct_{stage}_1.npz"))
    init_2, delta_2 = _deltas(os.path.join(out, f"correct_{stage}_2.npz"))
    init_bad, delta_bad = _deltas(os.path.join(out, f"unscaled_{stage}_2.npz"))

    # Same models from the same seed under both strategies.
    assert init_1.keys() == init_2.keys() == init_bad.keys()
    for key in init_1:
        np.testing.assert_array_equal(init_2[key], init_1[key], err_msg=key)
        np.testing.assert_array_equal(init_bad[key], init_1[key], err_msg=key)

    # Same logged losses.
    logs_1, logs_2 = single[f"correct_{stage}"], double[f"correct_{stage}"]
    assert logs_1.keys() == logs_2.keys()
    for name in logs_1:
        if name != "replica_spread":
            assert logs_2[name] == pytest.approx(logs_1[name], rel=1e-4, abs=1e-7), name
    assert logs_1["loss"] > 0
    # The replicas' copies of every variable agree after the step.
    assert double[f"correct_{stage}"]["replica_spread"] == 0.0
    assert double[f"unscaled_{stage}"]["replica_spread"] == 0.0

    for model in TRAINED[stage]:
        d1, d2, bad = (_group(d, model) for d in (delta_1, delta_2, delta_bad))
        # The step really moves this model's weights.
        largest = max(float(np.abs(d).max()) for d in d1.values())
        assert largest > 1e-5, (model, largest)
        # Same update of every variable, to float precision relative to its own update.
        for key in d1:
            tolerance = _tolerance(d1[key], largest, init_1[key])
            np.testing.assert_allclose(d2[key], d1[key], rtol=0, atol=tolerance, err_msg=key)
        # Without the 1/num_replicas scaling the update doubles: the comparison can fail.
        total_1 = sum(float(np.sum(np.abs(d))) for d in d1.values())
        total_bad = sum(float(np.sum(np.abs(d))) for d in bad.values())
        assert total_bad == pytest.approx(2.0 * total_1, rel=2e-2), model


def _tolerance(delta, largest, weight):
    """1e-3 of a variable's update, plus floors: 1e-5 of the model's largest update (a few
    variables, e.g. W's mask head at initialisation, barely move) and a few float32 steps of the
    weight's magnitude (an update is a difference of rounded weights)."""
    return (1e-3 * float(np.abs(delta).max()) + 1e-5 * largest
            + 4 * float(np.finfo(np.float32).eps) * float(np.abs(weight).max()))


@pytest.mark.slow
def test_restyling_changes_the_update(runs):
    """The restyled run differs from the plain one beyond the tolerance above, so the random
    restyling draws (identical on one and two devices) are really compared."""
    out, _, _ = runs
    initial, plain = _deltas(os.path.join(out, "correct_pretrain_1.npz"))
    _, restyled = _deltas(os.path.join(out, "correct_pretrain_restyle_1.npz"))
    largest = max(float(np.abs(d).max()) for d in plain.values())
    assert any(float(np.abs(restyled[k] - plain[k]).max())
               > 10 * _tolerance(plain[k], largest, initial[k]) for k in plain)


@pytest.mark.slow
def test_adapt_keeps_every_instance_so_per_replica_masks_coincide(runs):
    _, single, double = runs
    for logs in (single["correct_adapt"], double["correct_adapt"]):
        assert logs["mask_2d"] == 1.0
        assert logs["mask_3d"] == 1.0
