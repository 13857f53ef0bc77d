"""A stage checkpoint holds every variable of the stage: restoring it into freshly built stage
models gives back every model variable and every optimizer variable after one training step.

Keras 3 on TensorFlow does not make layers kept in Python lists (nor seed generators)
dependencies of a ``tf.train.Checkpoint``; before ``StageRunner`` listed every variable,
checkpoints silently missed the BatchNorm statistics of the PosePredictor head, W and G, the whole
head of the mean teacher and the restyling seed state (resumed runs then drifted away from
uninterrupted ones), and the style stage's Adam slots (its optimizer was built after the restore).
"""

import json
import shutil

import keras
import numpy as np
import pytest

from synpose_keras.training import runner as runner_module
from synpose_keras.training.configs import STAGES, apply_overrides, get_preset
from synpose_keras.training.train import Trainer


def _config(root, method):
    return apply_overrides(get_preset("tiny"), {
        "source": str(root / "source"), "target": str(root / "target"), "method": method,
        "stages": STAGES, "style.steps": 1, "adapt.iterations": 1, "pretrain.iterations": 1,
        "generator.iterations": 1,
        # restyle whatever the 1-step StyleNet's quality, so the restyling state is covered too
        "style.min_quality": 0.0,
    })


def _optimizers(model):
    found = []
    for value in vars(model).values():
        if isinstance(value, keras.optimizers.Optimizer) and all(value is not o for o in found):
            found.append(value)
    return found


def _state(runner):
    """Every variable of the stage model and of its optimizers: (label, value) in order."""
    state = [(f"model {v.path}", np.array(v)) for v in runner.model.variables]
    for i, optimizer in enumerate(_optimizers(runner.model)):
        state += [(f"optimizer {i} {v.path}", np.array(v)) for v in optimizer.variables]
    return state


def _run_stages(config, run_dir, stages, resume, states):
    """Runs ``stages`` as ``Trainer.run`` does, each stage's runner replaced by: one training step
    then a checkpoint (``resume=False``), or a restore of that checkpoint (``resume=True``)."""
    original = runner_module.StageRunner.run

    def one_step_or_restore(self, resume_now):
        if resume_now:
            assert self.restore() == (0, 1)
        else:
            before = _state(self)
            self.model.fit(self.make_dataset(0).take(1), steps_per_epoch=1, epochs=1,
                           verbose=0, shuffle=False)
            self.save(0, 1)
            changed = [label for (label, a), (_, b) in zip(before, _state(self))
                       if not np.array_equal(a, b)]
            assert any(label.startswith("optimizer") for label in changed), self.name
        states[self.name] = _state(self)
        return []

    trainer = Trainer(config, str(run_dir), resume=resume, verbose=0, log=lambda *a: None)
    trainer.resolve_data()
    trainer.strategy = runner_module.make_strategy("default")
    runner_module.StageRunner.run = one_step_or_restore
    try:
        for stage in stages:
            keras.utils.set_random_seed(config.seed + STAGES.index(stage))
            with trainer.strategy.scope():
                getattr(trainer, f"stage_{stage}")()
    finally:
        runner_module.StageRunner.run = original


def _assert_restored(saved, restored, stage):
    assert [label.split(" ")[0] for label, _ in restored] == \
        [label.split(" ")[0] for label, _ in saved], stage
    for (label, a), (_, b) in zip(saved, restored):
        assert a.shape == b.shape, (stage, label)
        np.testing.assert_array_equal(b, a, err_msg=f"stage {stage}: {label} not restored")


@pytest.fixture(scope="module")
def ours_run(tiny_domains, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("coverage_ours")
    config = _config(tiny_domains, "ours")
    saved, restored = {}, {}
    _run_stages(config, run_dir, STAGES, False, saved)
    _run_stages(config, run_dir, STAGES, True, restored)
    return run_dir, saved, restored


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_checkpoint_restores_every_variable_of_our_stages(ours_run, stage):
    _, saved, restored = ours_run
    _assert_restored(saved[stage], restored[stage], stage)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["source-only", "uniframe", "ccssl", "regda"])
def test_checkpoint_restores_every_variable_of_method_adapt_stages(ours_run, tiny_domains, method,
                                                                   tmp_path):
    ours_dir, _, _ = ours_run
    for stage in ("style", "pretrain"):  # the trained inputs of the adapt stage
        shutil.copytree(ours_dir / stage, tmp_path / stage,
                        ignore=shutil.ignore_patterns("ckpt-*", "progress.json"))
    config = _config(tiny_domains, method)
    saved, restored = {}, {}
    _run_stages(config, tmp_path, ["adapt"], False, saved)
    _run_stages(config, tmp_path, ["adapt"], True, restored)
    _assert_restored(saved["adapt"], restored["adapt"], f"adapt ({method})")


def test_checkpoint_of_an_older_version_is_refused(tmp_path):
    """A checkpoint without the list of every variable would resume a different run."""
    import tensorflow as tf

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    runner = runner_module.StageRunner("stage", str(tmp_path), model, None, 1, 1, log=lambda m: 0)
    old = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    path = old.write(str(tmp_path / "stage" / "ckpt-e000-s000001"))
    (tmp_path / "stage" / "progress.json").write_text(json.dumps(
        {"epoch": 0, "step": 1, "checkpoint": path.split("/")[-1]}))
    with pytest.raises(runner_module.RunConfigError, match="older synpose_keras"):
        runner.restore()
    runner.save(0, 1)
    assert runner.restore() == (0, 1)
