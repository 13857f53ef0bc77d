"""A run killed mid-epoch and resumed ends in the same state as an uninterrupted run."""

import json

import keras
import numpy as np
import pytest

from synpose_keras.training import runner as runner_module
from synpose_keras.training.configs import apply_overrides, get_preset
from synpose_keras.training.train import train


class Interrupt(Exception):
    pass


def _config(root):
    return apply_overrides(get_preset("tiny"), {
        "source": str(root / "source"), "target": str(root / "target"),
        "stages": ("pretrain", "generator", "adapt"),
        "adapt.iterations": 4, "adapt.epochs": 2, "pretrain.iterations": 2,
    })


def _weights(path):
    return [np.array(w) for w in keras.models.load_model(path).weights]


@pytest.mark.slow
def test_resume_mid_epoch_matches_uninterrupted_run(tiny_domains, tmp_path, monkeypatch):
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    straight = tmp_path / "straight"
    train(_config(tiny_domains), str(straight), verbose=0, checkpoint_every=2)

    # the same run, killed at adapt step 3 of epoch 2 (after the step-2 checkpoint)
    original = runner_module._StageCallback.on_train_batch_end

    def crash(self, batch, logs=None):
        original(self, batch, logs)
        if self.runner.name == "adapt" and self.epoch == 1 and self.first_step + batch + 1 == 3:
            raise Interrupt()

    monkeypatch.setattr(runner_module._StageCallback, "on_train_batch_end", crash)
    broken = tmp_path / "broken"
    with pytest.raises(Interrupt):
        train(_config(tiny_domains), str(broken), verbose=0, checkpoint_every=2)
    progress = json.loads((broken / "adapt" / "progress.json").read_text())
    assert (progress["epoch"], progress["step"]) == (1, 2)
    assert not (broken / "evaluation.json").exists()
    monkeypatch.setattr(runner_module._StageCallback, "on_train_batch_end", original)

    train(_config(tiny_domains), str(broken), resume=True, verbose=0, checkpoint_every=2)
    start = _weights(straight / "pretrain/pose_predictor.keras")
    for name in ("adapt/student.keras", "adapt/pose_predictor.keras"):  # student and teacher
        a_all, b_all = _weights(straight / name), _weights(broken / name)
        moved = max(float(np.max(np.abs(a - s))) for a, s in zip(a_all, start))
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(a_all, b_all))
        # the adaptation moved the weights; resuming changes them by float reordering only
        # (a lost optimizer state or teacher would differ by a sizeable part of the movement)
        assert moved > 0
        assert diff < 0.02 * moved, (name, diff, moved)
    h1 = json.loads((straight / "adapt" / "history.json").read_text())
    h2 = json.loads((broken / "adapt" / "history.json").read_text())
    assert [r["epoch"] for r in h2] == [0, 1]
    assert h2[0]["loss"] == pytest.approx(h1[0]["loss"])
    # the interrupted epoch's row averages all its steps, before and after the resume (issue 18)
    assert h2[1]["loss"] == pytest.approx(h1[1]["loss"], rel=1e-2)
