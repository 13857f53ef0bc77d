"""`pretrain.lr_milestones`: the pre-training rate drops x0.1 at each milestone epoch."""

import numpy as np
import pytest

from synpose_keras.training import runner as runner_module
from synpose_keras.training.configs import apply_overrides, get_preset
from synpose_keras.training.train import train


def _stage_rates(tiny_domains, tmp_path, monkeypatch, stage, overrides):
    """The optimiser's rate at the start of each epoch of ``stage`` in a tiny source-only run."""
    seen = []
    original = runner_module._StageCallback.on_epoch_begin

    def record(self, epoch, logs=None):
        original(self, epoch, logs)
        if self.runner.name == stage:
            seen.append(float(np.asarray(self.model.optimizer.learning_rate)))

    monkeypatch.setattr(runner_module._StageCallback, "on_epoch_begin", record)
    config = apply_overrides(get_preset("tiny"), {
        "source": str(tiny_domains / "source"), "target": str(tiny_domains / "target"),
        "method": "source-only", "source_only.lr": 1e-3, **overrides})
    train(config, str(tmp_path / f"run-{len(list(tmp_path.iterdir()))}"), verbose=0)
    return seen


def _rates(tiny_domains, tmp_path, monkeypatch, milestones):
    return _stage_rates(tiny_domains, tmp_path, monkeypatch, "pretrain", {
        "stages": ("pretrain",), "pretrain.epochs": 3, "pretrain.iterations": 1,
        "pretrain.lr_milestones": milestones})


@pytest.mark.slow
def test_milestones_drop_the_pretraining_rate(tiny_domains, tmp_path, monkeypatch):
    assert _rates(tiny_domains, tmp_path, monkeypatch, "1,2") == pytest.approx([1e-3, 1e-4, 1e-5])


@pytest.mark.slow
def test_no_milestones_keep_the_rate(tiny_domains, tmp_path, monkeypatch):
    assert _rates(tiny_domains, tmp_path, monkeypatch, "") == pytest.approx([1e-3, 1e-3, 1e-3])


def test_demo_erm_continuation_starts_at_the_last_pretraining_rate():
    # one step schedule: the continuation (source-only reference of the ERM methods, oracle)
    # does not jump back to the pre-training's first rate after the step
    from synpose_keras.training.runner import lr_with_milestones

    c = get_preset("demo")
    last = lr_with_milestones(c.source_only.lr, c.pretrain.lr_milestones)(c.pretrain.epochs - 1)
    first = lr_with_milestones(c.source_only.lr, c.source_only.lr_milestones)(0)
    assert c.pretrain.lr_milestones  # the demo steps the rate during pre-training
    assert first == pytest.approx(last)
    assert last == pytest.approx(c.source_only.lr * 0.1)


@pytest.mark.slow
def test_milestone_zero_runs_the_erm_continuation_at_the_stepped_rate(tiny_domains, tmp_path,
                                                                        monkeypatch):
    seen = _stage_rates(tiny_domains, tmp_path, monkeypatch, "adapt", {
        "stages": ("pretrain", "adapt"), "pretrain.epochs": 1, "pretrain.iterations": 1,
        "adapt.epochs": 2, "adapt.iterations": 1, "source_only.lr_milestones": "0"})
    assert seen == pytest.approx([1e-4, 1e-4])
