"""Training on a target without a labelled test split (a user's own footage) finishes: the
evaluation is skipped with a reason instead of failing after training."""

import json

from synpose_keras.datasets.writer import convert
from synpose_keras.training.configs import apply_overrides, get_preset
from synpose_keras.training.train import train
from tests.training.tiny_data import TinyConverter, write_tiny


class TrainOnly(TinyConverter):
    splits = ("train",)


def _run(root, target, tmp_path, name):
    config = apply_overrides(get_preset("tiny"), {
        "source": str(root / "source"), "target": str(target), "stages": ("pretrain",)})
    messages = []
    result = train(config, str(tmp_path / name), verbose=0, log=messages.append)
    saved = json.loads((tmp_path / name / "evaluation.json").read_text())
    return result, saved, messages


def test_target_without_test_split(tmp_path):
    write_tiny(tmp_path / "source", n=8, seed=0)
    convert(TrainOnly(n=8, seed=1, labelled=False), str(tmp_path / "footage"), progress=False)
    result, saved, messages = _run(tmp_path, tmp_path / "footage", tmp_path, "run")
    assert result["rows"] == {} and saved["rows"] == {}
    assert "no labelled 'test' split" in saved["skipped"]
    assert any("No evaluation" in m for m in messages)
    assert (tmp_path / "run" / "pretrain" / "pose_predictor.keras").exists()
    assert (tmp_path / "run" / "pose_predictor.keras").exists()


def test_target_with_unlabelled_test_split(tmp_path):
    write_tiny(tmp_path / "source", n=8, seed=0)
    write_tiny(tmp_path / "footage", n=8, seed=1, labelled=False)
    result, saved, _ = _run(tmp_path, tmp_path / "footage", tmp_path, "run")
    assert saved["rows"] == {}
    assert "no labelled keypoint" in saved["skipped"]


def test_labelled_target_is_still_evaluated(tmp_path):
    write_tiny(tmp_path / "source", n=8, seed=0)
    write_tiny(tmp_path / "target", n=8, seed=1)
    result, saved, _ = _run(tmp_path, tmp_path / "target", tmp_path, "run")
    assert "after pretrain" in saved["rows"] and "skipped" not in saved
