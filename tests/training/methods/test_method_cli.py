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
    for path in ("adapt/pose_predictor.keras", "adapt/adversarial_head.keras",
                 "adapt/method.json", "pose_predictor.keras"):
        assert (regda / path).exists(), path
    assert json.loads((regda / "adapt/method.json").read_text())["method"] == "regda"
    history = json.loads((regda / "adapt/history.json").read_text())
    assert {"ground_false", "ground_truth", "gl"} <= set(history[0])

    # the same ERM pre-training, adapted by the other methods (as examples/compare.py does)
    for method, key in (("ccssl", "kept"), ("source-only", "loss"), ("uniframe", "consistency")):
        run = tmp_path / method
        shutil.copytree(regda, run, ignore=shutil.ignore_patterns("adapt", "logs"))
        state = json.loads((run / "state.json").read_text())
        state["completed"] = ["pretrain"]
        (run / "state.json").write_text(json.dumps(state))
        _switch_method(run, method)
        result = _train(["--out", str(run), "--resume", "--stages", "adapt"])
        assert result.exit_code == 0, (method, result.output)
        evaluation = json.loads((run / "evaluation.json").read_text())
        assert evaluation["method"] == method
        assert set(evaluation["rows"]) == {"after pretrain", "after adapt"}
        assert key in json.loads((run / "adapt/history.json").read_text())[0]
        if method == "uniframe":
            assert "restyling is off" in result.output  # no StyleNet in an ERM run
            assert (run / "adapt/student.keras").exists()
    again = _train(["--out", str(tmp_path / "ccssl"), "--resume", "--stages", "adapt"])
    assert again.exit_code == 0 and "already completed" in again.output
