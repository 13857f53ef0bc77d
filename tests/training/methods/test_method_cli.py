"""``synpose train --method ...`` end to end on tiny data: routing, outputs, resume."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from synpose_keras.cli.app import app

runner = CliRunner()


def _train(args):
    return runner.invoke(app, ["train", "--preset", "tiny", "--quiet", *args])


def _switch_method(run, method):
    config = json.loads((run / "config.json").read_text())
    config["method"] = method
    (run / "config.json").write_text(json.dumps(config))


@pytest.mark.slow
def test_methods_run_from_the_cli_and_share_a_pretraining(tiny_domains, tmp_path):
    regda = tmp_path / "regda"
    result = _train(["--method", "regda", "--stages", "pretrain,adapt", "--source",
                     str(tiny_domains / "source"), "--target", str(tiny_domains / "target"),
                     "--out", str(regda)])
    assert result.exit_code == 0, result.output
    assert "after adapt" in result.output
    assert "restyling is off" not in result.output  # ERM pre-training never looks for a StyleNet
    assert "Adaptation gain over source-only" in result.output
    for path in ("adapt/pose_predictor.keras", "adapt/adversarial_head.keras",
                 "adapt/method.json", "pose_predictor.keras"):
        assert (regda / path).exists(), path
    assert json.loads((regda / "adapt/method.json").read_text())["method"] == "regda"
    history = json.loads((regda / "adapt/history.json").read_text())
    assert {"ground_false", "ground_truth", "gl"} <= set(history[0])

    # the same ERM pre-training, adapted by the other methods (as examples/compare.py does)
    for method, key in (("ccssl", "kept"), ("source-only", "loss"), ("uniframe", "consistency")):
        run = tmp_path / method
        shutil.copytree(regda, run, ignore=shutil.ignore_patterns("adapt", "logs", "source_only"))
        state = json.loads((run / "state.json").read_text())
        state["completed"] = ["pretrain"]
        (run / "state.json").write_text(json.dumps(state))
        _switch_method(run, method)
        result = _train(["--out", str(run), "--resume", "--stages", "adapt"])
        assert result.exit_code == 0, (method, result.output)
        evaluation = json.loads((run / "evaluation.json").read_text())
        assert evaluation["method"] == method
        if method == "source-only":  # its adaptation is the source-only continuation itself
            assert set(evaluation["rows"]) == {"after pretrain", "source-only"}
            assert not (run / "source_only").exists()
        else:  # adapting methods also train and evaluate the source-only reference
            assert set(evaluation["rows"]) == {"after pretrain", "source-only", "after adapt"}
            assert (run / "source_only/pose_predictor.keras").exists()
            assert "Adaptation gain over source-only" in result.output
            rows = evaluation["rows"]
            assert evaluation["gain_over_source_only"] == pytest.approx(
                rows["after adapt"]["table"]["All"] - rows["source-only"]["table"]["All"])
        assert key in json.loads((run / "adapt/history.json").read_text())[0]
        if method == "uniframe":
            assert "restyling is off" in result.output  # no StyleNet in an ERM run
            assert (run / "adapt/student.keras").exists()
    again = _train(["--out", str(tmp_path / "ccssl"), "--resume", "--stages", "adapt"])
    assert again.exit_code == 0 and "already completed" in again.output


@pytest.mark.slow
def test_oracle_trains_on_the_target_labels(tiny_domains, tmp_path):
    run = tmp_path / "oracle"
    result = _train(["--method", "oracle", "--source", str(tiny_domains / "source"),
                     "--target", str(tiny_domains / "target"), "--out", str(run)])
    assert result.exit_code == 0, result.output
    state = json.loads((run / "state.json").read_text())
    assert state["completed"] == ["pretrain", "adapt"]  # no style, generator or reference
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["method"] == "oracle"
    assert set(evaluation["rows"]) == {"after pretrain", "oracle"}
    assert not (run / "pretrain/lifter.keras").exists()  # no source 3D labels are used
    assert not (run / "source_only").exists()


def test_oracle_pretraining_reads_the_target(tiny_domains, tmp_path):
    from synpose_keras.training.configs import apply_overrides, get_preset
    from synpose_keras.training.train import Trainer

    config = apply_overrides(get_preset("tiny"), {
        "method": "oracle", "source": str(tiny_domains / "source"),
        "target": str(tiny_domains / "target")})
    trainer = Trainer(config, str(tmp_path / "run"), verbose=0, log=lambda m: None)
    trainer.resolve_data()
    assert trainer.training_source == str(tiny_domains / "target")
    config = apply_overrides(config, {"method": "ours"})
    trainer = Trainer(config, str(tmp_path / "run2"), verbose=0, log=lambda m: None)
    assert trainer.training_source == str(tiny_domains / "source")


def test_oracle_is_refused_on_an_unlabelled_target(tiny_domains, tmp_path):
    from tests.training.tiny_data import write_tiny

    write_tiny(tmp_path / "footage", n=8, seed=1, labelled=False)
    run = tmp_path / "oracle"
    result = _train(["--method", "oracle", "--source", str(tiny_domains / "source"),
                     "--target", str(tmp_path / "footage"), "--out", str(run)])
    assert result.exit_code == 2
    assert "--method oracle" in result.output and "no labels" in result.output
    assert str(tmp_path / "footage") in result.output
    assert not (run / "pretrain").exists()  # refused before any training
