"""`pretrain.lr_milestones`: the pre-training rate drops x0.1 at each milestone epoch."""

import numpy as np
import pytest

from synpose_keras.training import runner as runner_module
from synpose_keras.training.configs import apply_overrides, get_preset
from synpose_keras.training.train import train


def _rates(tiny_domains, tmp_path, monkeypatch, milestones):
    seen = []
    original = runner_module._StageCallback.on_epoch_begin

    def record(self, epoch, logs=None):
        original(self, epoch, logs)
        if self.runner.name == "pretrain":
            seen.append(float(np.asarray(self.model.optimizer.learning_rate)))

    monkeypatch.setattr(runner_module._StageCallback, "on_epoch_begin", record)
    config = apply_overrides(get_preset("tiny"), {
        "source": str(tiny_domains / "source"), "target": str(tiny_domains / "target"),
        "method": "source-only", "stages": ("pretrain",), "pretrain.epochs": 3,
        "pretrain.iterations": 1, "source_only.lr": 1e-3, "pretrain.lr_milestones": milestones,
    })
    train(config, str(tmp_path / f"run-{milestones or 'none'}"), verbose=0)
    return seen


@pytest.mark.slow
def test_milestones_drop_the_pretraining_rate(tiny_domains, tmp_path, monkeypatch):
    assert _rates(tiny_domains, tmp_path, monkeypatch, "1,2") == pytest.approx([1e-3, 1e-4, 1e-5])


@pytest.mark.slow
def test_no_milestones_keep_the_rate(tiny_domains, tmp_path, monkeypatch):
    assert _rates(tiny_domains, tmp_path, monkeypatch, "") == pytest.approx([1e-3, 1e-3, 1e-3])
