import json
import os

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from synpose_keras.cli.app import app
from tests.training.tiny_data import write_tiny

runner = CliRunner()


def _train(args):
    return runner.invoke(app, ["train", "--preset", "tiny", "--quiet", *args])


@pytest.mark.slow
def test_train_end_to_end_then_resume_is_a_no_op(tiny_domains, tmp_path):
    out = tmp_path / "run"
    result = _train(["--source", str(tiny_domains / "source"), "--target",
                     str(tiny_domains / "target"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "after adapt" in result.output
    for path in ("config.json", "state.json", "evaluation.json", "pose_predictor.keras",
                 "pretrain/pose_predictor.keras", "pretrain/lifter.keras",
                 "generator/generator.keras", "adapt/pseudo_labels.json",
                 "style/style_net.keras", "style/quality.json"):
        assert (out / path).exists(), path
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert set(evaluation["rows"]) == {"after pretrain", "source-only", "after adapt"}
    assert evaluation["rows"]["after adapt"]["count"] == 8
    assert "Adaptation gain over source-only" in result.output
    assert (out / "source_only/pose_predictor.keras").exists()
    state = json.loads((out / "state.json").read_text())
    assert state["completed"] == ["style", "pretrain", "generator", "adapt", "source-only"]
    stats = json.loads((out / "adapt/pseudo_labels.json").read_text())
    assert len(stats) == 1 and 0.0 <= stats[0]["overlap"] <= 1.0
    assert 0.0 <= stats[0]["inversion"] <= 1.0
    model = keras.models.load_model(out / "pose_predictor.keras")
    assert model.predict(np.zeros((1, 64, 64, 3), np.uint8), verbose=0).shape == (1, 16, 16, 21)
    # a second call without --resume refuses to overwrite; with --resume nothing is re-run
    again = _train(["--source", str(tiny_domains / "source"), "--target",
                    str(tiny_domains / "target"), "--out", str(out)])
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = _train(["--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.count("already completed") == 5
    _check_gap_diagnostics(out, tmp_path / "gap.json")


def _check_gap_diagnostics(run, path):
    """examples/gap_diagnostics.py on the trained run: the breakdown and the teacher's labels."""
    import runpy
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "gap_diagnostics.py")
    argv = sys.argv
    sys.argv = [script, str(run), "--batches", "1", "--teacher-rotations", "4", "--json", str(path)]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv = argv
    result = json.loads(path.read_text())
    for split in ("source test", "target test"):
        row = result["breakdown"][split]
        assert row["samples"] == 8
        assert 0.0 <= row["pck@0.05"] <= row["pck@0.1"] <= row["pck@0.2"] <= 100.0
    teacher = result["teacher_on_target_train"]
    assert teacher["samples"] == 8
    assert teacher["masks"]["M_2D"]["selected"] == pytest.approx(0.5, abs=0.05)
    assert (teacher["masks"]["M_2D and M_3D"]["selected"]
            <= min(teacher["masks"]["M_2D"]["selected"], teacher["masks"]["M_3D"]["selected"]))


def test_mismatched_skeletons_are_refused_before_training(tiny_domains, tmp_path):
    write_tiny(tmp_path / "body", skeleton="body16", n=2)
    result = _train(["--source", str(tiny_domains / "source"), "--target",
                     str(tmp_path / "body"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "skeleton 'body16'" in result.output
    assert not (tmp_path / "run" / "pretrain").exists()


def test_target_without_sequences_needs_a_fallback_for_rec(tiny_domains, tmp_path):
    write_tiny(tmp_path / "single", n=4, frames=0)
    result = _train(["--source", str(tiny_domains / "source"), "--target",
                     str(tmp_path / "single"), "--out", str(tmp_path / "run"),
                     "--set", "adapt.pair_fallback=none"])
    assert result.exit_code == 2
    assert "no sequences" in result.output


def test_3d_pseudo_labels_need_3d_source(tiny_domains, tmp_path):
    write_tiny(tmp_path / "flat", n=4, with_3d=False)
    result = _train(["--source", str(tmp_path / "flat"), "--target",
                     str(tiny_domains / "target"), "--out", str(tmp_path / "run"),
                     "--pseudo", "3d"])
    assert result.exit_code == 2
    assert "keypoints_3d" in result.output


def test_bad_override_is_reported(tmp_path):
    result = _train(["--out", str(tmp_path / "run"), "--set", "adapt.nope=1"])
    assert result.exit_code == 2
    assert "adapt.nope" in result.output


def test_bad_teacher_rotations_are_refused_before_training(tmp_path):
    result = _train(["--out", str(tmp_path / "run"), "--set", "adapt.teacher_rotations=3"])
    assert result.exit_code == 2
    assert "adapt.teacher_rotations must be one of [1, 2, 4]" in result.output
    assert not (tmp_path / "run" / "state.json").exists()
