"""A NaN loss stops the run, names the stage and step range, and keeps the last good checkpoint."""

import json

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.training import pretrain_stage
from synpose_keras.training.configs import apply_overrides, get_preset
from synpose_keras.training.runner import TrainingDivergedError
from synpose_keras.training.train import train
from tests.training.tiny_data import write_tiny


def test_nan_loss_stops_with_step_range_and_keeps_checkpoint(tmp_path, monkeypatch):
    write_tiny(tmp_path / "source", n=8, seed=0)
    write_tiny(tmp_path / "target", n=8, seed=1)
    config = apply_overrides(get_preset("tiny"), {
        "source": str(tmp_path / "source"), "target": str(tmp_path / "target"),
        "stages": ("pretrain",), "pretrain.iterations": 5})
    calls = tf.Variable(0, dtype=tf.int64, trainable=False)
    real = pretrain_stage.heatmap_mse

    def poisoned(*args):
        calls.assign_add(1)
        return real(*args) + tf.where(calls > 3, float("nan"), 0.0)

    monkeypatch.setattr(pretrain_stage, "heatmap_mse", poisoned)
    with pytest.raises(TrainingDivergedError) as info:
        train(config, str(tmp_path / "run"), verbose=0, checkpoint_every=2)
    message = str(info.value)
    assert "Stage 'pretrain'" in message
    assert "between step 2 and step 4 of epoch 1" in message
    progress = json.loads((tmp_path / "run" / "pretrain" / "progress.json").read_text())
    assert (progress["epoch"], progress["step"]) == (0, 2)
    reader = tf.train.load_checkpoint(str(tmp_path / "run" / "pretrain" / progress["checkpoint"]))
    values = [reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
              if "model" in name and "OPTIMIZER" not in name]
    assert values and all(np.all(np.isfinite(v)) for v in values if v.dtype.kind == "f")
    assert not (tmp_path / "run" / "pretrain" / "pose_predictor.keras").exists()
