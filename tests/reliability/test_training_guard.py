"""Issue 18, items 1-3, 10 (checkpoints) and 11 (history): the NaN guard, finite checkpoints,
overrides given with --resume, unreadable checkpoints and progress files."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.training.configs import apply_overrides, get_preset
from synpose_keras.training.resume_overrides import (
    ResumeOverrideError,
    resolve_resume_overrides,
)
from synpose_keras.training.runner import (
    RunConfigError,
    StageRunner,
    TrainingDivergedError,
    nonfinite_checkpoint_tensors,
)
from tests.reliability.helpers import invoke, tree_hashes


def _train(*args):
    return invoke("train", "--preset", "tiny", "--quiet", "--checkpoint-every", "2", *args)


def _data(tiny_domains):
    return ["--source", tiny_domains / "source", "--target", tiny_domains / "target"]


def _kept_checkpoints(stage_dir):
    progress = json.loads((stage_dir / "progress.json").read_text())
    names = [progress["checkpoint"]]
    if progress.get("previous"):
        names.append(progress["previous"]["checkpoint"])
    return [str(stage_dir / name) for name in names]


# ------------------------------------------------------------------ a stage model for the runner
class _Boom(keras.callbacks.Callback):
    """Sets the learning rate to 1e39 (inf in float32) before step ``at`` (1-based): that step's
    loss is computed before the update and is finite, the weights after it are not."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_begin(self, batch, logs=None):
        if batch + 1 == self.at:
            self.model.optimizer.learning_rate.assign(1e39)


def _tiny_runner(tmp_path, iterations=6, checkpoint_every=1):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.optimizer.build(model.trainable_variables)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)

    def make_dataset(epoch):
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(4)

    return StageRunner("toy", str(tmp_path), model, make_dataset, epochs=1, iterations=iterations,
                       checkpoint_every=checkpoint_every, verbose=0, log=lambda *a: None)


def test_a_checkpoint_is_never_written_with_nonfinite_weights(tmp_path, monkeypatch):
    """Item 2: the update of step 3 poisons the weights while its loss is finite; the old guard
    wrote that checkpoint as the 'last good' one."""
    runner = _tiny_runner(tmp_path)
    real_fit = runner.model.fit

    def fit(*args, callbacks=(), **kwargs):
        return real_fit(*args, callbacks=[_Boom(3), *callbacks], **kwargs)

    monkeypatch.setattr(runner.model, "fit", fit)
    with pytest.raises(TrainingDivergedError) as info:
        runner.run(resume=False)
    assert "between step 2 and step 3 of epoch 1" in str(info.value)
    assert "--resume --set toy.lr=" in str(info.value)
    progress = json.loads((tmp_path / "toy" / "progress.json").read_text())
    assert (progress["epoch"], progress["step"]) == (0, 2)
    assert progress["previous"]["step"] == 1  # the one before is kept as a fallback
    for path in _kept_checkpoints(tmp_path / "toy"):
        reader = tf.train.load_checkpoint(path)
        floats = [n for n, d in reader.get_variable_to_dtype_map().items() if d.is_floating]
        assert floats and nonfinite_checkpoint_tensors(path) == [], path


@pytest.mark.slow
def test_pretrain_lr_1e39_exits_3_and_keeps_no_nonfinite_checkpoint(tiny_domains, tmp_path):
    """Items 1-2 (probe: --set pretrain.lr=1e39): the guard's message, exit 3, and whatever
    checkpoint is kept holds only finite tensors."""
    run = tmp_path / "run"
    result = _train(*_data(tiny_domains), "--out", run, "--stages", "pretrain",
                    "--set", "pretrain.lr=1e39", "--set", "pretrain.iterations=6")
    assert result.exit_code == 3, result.output
    assert "Stage 'pretrain'" in result.output and "between step" in result.output
    assert "Traceback" not in result.output
    assert "--resume --set pretrain.lr=" in result.output
    if (run / "pretrain" / "progress.json").exists():
        for path in _kept_checkpoints(run / "pretrain"):
            assert nonfinite_checkpoint_tensors(path) == [], path
    assert not [f for f in os.listdir(run / "pretrain") if f.startswith("ckpt-")
                and not any(f.startswith(os.path.basename(p)) for p in
                            (_kept_checkpoints(run / "pretrain")
                             if (run / "pretrain" / "progress.json").exists() else []))]


@pytest.mark.slow
def test_adapt_lr_1e39_stops_with_the_guard_then_resume_applies_a_lower_rate(tiny_domains,
                                                                             tmp_path):
    """Item 1 (probe: --set adapt.lr=1e39 crashed in the warping module's gather) and item 3
    (--resume --set is applied and recorded, never ignored); the finished pretrain stage is not
    touched."""
    run = tmp_path / "run"
    first = _train(*_data(tiny_domains), "--out", run, "--stages", "pretrain",
                   "--set", "adapt.iterations=4")
    assert first.exit_code == 0, first.output
    pretrain = tree_hashes(run / "pretrain")

    diverged = _train("--out", run, "--resume", "--stages", "pretrain,adapt",
                      "--set", "adapt.lr=1e39")
    assert diverged.exit_code == 3, diverged.output
    assert "Stage 'adapt'" in diverged.output and "between step" in diverged.output
    assert "InvalidArgument" not in diverged.output and "Traceback" not in diverged.output
    assert "--resume --set adapt.lr=" in diverged.output
    assert tree_hashes(run / "pretrain") == pretrain

    resumed = _train("--out", run, "--resume", "--stages", "pretrain,adapt",
                     "--set", "adapt.lr=1e-4")
    assert resumed.exit_code == 0, resumed.output
    assert "adapt.lr 1e+39 -> 0.0001" in resumed.output
    config = json.loads((run / "config.json").read_text())
    assert config["adapt"]["lr"] == 1e-4
    last = config["resume_overrides"][-1]
    assert last["changes"] == {"adapt.lr": [1e39, 1e-4]}
    assert config["resume_overrides"][0]["changes"] == {"adapt.lr": [3e-4, 1e39]}
    assert (run / "adapt" / "pose_predictor.keras").exists()
    assert tree_hashes(run / "pretrain") == pretrain


@pytest.mark.slow
def test_resume_set_epochs_extends_a_finished_stage_or_is_refused(tiny_domains, tmp_path):
    """Item 3 (probe: --resume --set adapt.epochs=3 printed 'already completed; skipped')."""
    run = tmp_path / "run"
    assert _train(*_data(tiny_domains), "--out", run, "--stages", "pretrain").exit_code == 0
    before = tree_hashes(run)
    for args, expected in ((["--set", "model.input_size=32"], "cannot change model.input_size"),
                           (["--set", "pretrain.epochs=0"], "cannot shorten pretrain.epochs"),
                           (["--set", "pretrain.lr=1e-4"], "would change nothing"),
                           (["--seed", "3"], "cannot change seed"),
                           (["--preset", "demo"], "cannot change preset")):
        refused = _train("--out", run, "--resume", "--stages", "pretrain", *args)
        assert refused.exit_code == 2, (args, refused.output)
        assert expected in refused.output, (args, refused.output)
        assert tree_hashes(run) == before, args
    extended = _train("--out", run, "--resume", "--stages", "pretrain",
                      "--set", "pretrain.epochs=2", "--set", "pretrain.lr=5e-4")
    assert extended.exit_code == 0, extended.output
    assert "already completed" not in extended.output
    history = json.loads((run / "pretrain" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]
    config = json.loads((run / "config.json").read_text())
    assert config["pretrain"]["epochs"] == 2
    entry = config["resume_overrides"][-1]
    assert entry["changes"] == {"pretrain.epochs": [1, 2], "pretrain.lr": [1e-3, 5e-4]}
    assert entry["extended"] == ["pretrain"]
    assert entry["from"]["pretrain"] == {"epoch": 1, "step": 0}


def test_resume_override_rules():
    """Item 3, the policy without training: later stages block extending an earlier one."""
    saved = get_preset("tiny")
    run_stages = ("pretrain", "generator", "adapt", "source-only")
    done = ["pretrain", "generator", "adapt", "source-only"]
    positions = {"pretrain": (1, 0), "adapt": (1, 0)}
    with pytest.raises(ResumeOverrideError, match="later stage"):
        resolve_resume_overrides(saved, {"pretrain.epochs": 3}, done, run_stages, positions)
    config, changes, reopen = resolve_resume_overrides(saved, {"adapt.epochs": 3}, done,
                                                       run_stages, positions)
    assert config.adapt.epochs == 3 and reopen == ["adapt", "source-only"]
    assert changes == {"adapt.epochs": [1, 3]}
    # unchanged values are no changes; unknown fields are refused by name
    assert resolve_resume_overrides(saved, {"adapt.lr": saved.adapt.lr}, done, run_stages,
                                    positions)[1] == {}
    with pytest.raises(ResumeOverrideError, match="adapt.nope"):
        resolve_resume_overrides(saved, {"adapt.nope": 1}, done, run_stages, positions)
    with pytest.raises(ResumeOverrideError, match="adapt.batch_size"):
        resolve_resume_overrides(saved, {"adapt.batch_size": 3}, [], run_stages, {})


# ------------------------------------------------------------------ item 10: unreadable files
def _finished_toy(tmp_path):
    runner = _tiny_runner(tmp_path, iterations=4, checkpoint_every=2)
    runner.run(resume=False)
    return tmp_path / "toy"


@pytest.mark.parametrize("damage", ["truncate", "empty-index", "no-index", "empty-progress",
                                    "garbage-progress"])
def test_unreadable_checkpoint_or_progress_is_one_clear_error(tmp_path, damage):
    stage = _finished_toy(tmp_path)
    progress = json.loads((stage / "progress.json").read_text())
    prefix = stage / progress["checkpoint"]
    data = next(p for p in stage.iterdir() if p.name.startswith(progress["checkpoint"] + ".data"))
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:10])
    elif damage == "empty-index":
        (stage / (progress["checkpoint"] + ".index")).write_bytes(b"")
    elif damage == "no-index":
        os.remove(str(prefix) + ".index")
    elif damage == "empty-progress":
        (stage / "progress.json").write_text("")
    else:
        (stage / "progress.json").write_text('{"epoch": 1, "st')
    before = tree_hashes(stage)
    with pytest.raises(RunConfigError) as info:
        _tiny_runner(tmp_path, iterations=4, checkpoint_every=2).restore()
    message = str(info.value)
    assert "\n" not in message
    if damage.endswith("progress"):
        assert str(stage / "progress.json") in message and "JSON" in message
    else:
        assert str(prefix) in message
        # how to recover: the previous checkpoint is kept and named
        assert progress["previous"]["checkpoint"] in message and "--resume" in message
    assert tree_hashes(stage) == before


def test_a_deleted_checkpoint_falls_back_to_the_previous_one(tmp_path):
    stage = _finished_toy(tmp_path)
    progress = json.loads((stage / "progress.json").read_text())
    for path in stage.iterdir():
        if path.name.startswith(progress["checkpoint"] + "."):
            os.remove(path)
    runner = _tiny_runner(tmp_path, iterations=4, checkpoint_every=2)
    previous = progress["previous"]
    assert runner.restore() == (previous["epoch"], previous["step"])


def test_interrupted_epoch_history_averages_every_step(tmp_path):
    """Item 11: the resumed epoch's loss is the mean over all its steps, not only those after
    the resume."""
    straight = _tiny_runner(tmp_path / "a", iterations=6, checkpoint_every=2)
    history = straight.run(resume=False)

    class Stop(Exception):
        pass

    broken = _tiny_runner(tmp_path / "b", iterations=6, checkpoint_every=2)
    real_fit = broken.model.fit

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 == 5:
                raise Stop()

    def fit(*args, callbacks=(), **kwargs):
        return real_fit(*args, callbacks=[*callbacks, Crash()], **kwargs)

    broken.model.fit = fit
    with pytest.raises(Stop):
        broken.run(resume=False)
    resumed = _tiny_runner(tmp_path / "b", iterations=6, checkpoint_every=2)
    again = resumed.run(resume=True)
    assert again[0]["loss"] == pytest.approx(history[0]["loss"], rel=1e-5)


@pytest.mark.parametrize("name", ["state.json", "config.json"])
def test_an_empty_run_file_names_itself(tmp_path, name):
    """Item 10: a 0-byte state.json / config.json was a bare JSON error naming no file."""
    from synpose_keras.training.configs import save_config

    run = tmp_path / "run"
    run.mkdir()
    save_config(get_preset("tiny"), str(run / "config.json"))
    (run / "state.json").write_text(json.dumps({"completed": []}))
    (run / name).write_text("")
    before = tree_hashes(run)
    result = invoke("train", "--out", run, "--resume", "--quiet")
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    assert str(run / name) in line and "empty (0 bytes)" in line
    assert tree_hashes(run) == before
