"""`synpose train --config FILE`: JSON (or YAML with PyYAML) with the fields of RUN/config.json,
options and --set on top; RUN/config.json passed back reproduces the run's config."""

import json

import pytest
from typer.testing import CliRunner

from synpose_keras.cli.app import app
from synpose_keras.training import train as train_module
from synpose_keras.training.configs import load_config, read_config_file, save_config

runner = CliRunner()


@pytest.fixture
def fake_train(monkeypatch):
    """Replaces the training by writing RUN/config.json as the Trainer does (with a
    resume_overrides record); returns the calls."""
    calls = []

    def fake(config, run_dir, resume=False, overrides=None, **kwargs):
        calls.append({"config": config, "resume": resume, "overrides": overrides})
        save_config(config, f"{run_dir}/config.json")
        raw = json.loads(open(f"{run_dir}/config.json").read())
        raw["resume_overrides"] = [{"changes": {"adapt.lr": [1e-3, 5e-4]}}]
        with open(f"{run_dir}/config.json", "w") as f:
            json.dump(raw, f)
        return {"rows": {}, "skipped": "not trained in this test"}

    monkeypatch.setattr(train_module, "train", fake)
    return calls


def _fields(path):
    data = json.loads(open(path).read())
    data.pop("resume_overrides", None)
    return data


def test_config_json_round_trip_with_overrides(tmp_path, fake_train):
    first = tmp_path / "A"
    result = runner.invoke(app, ["train", "--preset", "tiny", "--set", "adapt.lr=0.002",
                                 "--seed", "3", "--out", str(first)])
    assert result.exit_code == 0, result.output
    # passed back as is: the same config
    same = tmp_path / "B"
    result = runner.invoke(app, ["train", "--config", str(first / "config.json"),
                                 "--out", str(same)])
    assert result.exit_code == 0, result.output
    assert _fields(same / "config.json") == _fields(first / "config.json")
    assert fake_train[-1]["config"].preset == "tiny"
    # options and --set apply on top of the file
    changed = tmp_path / "C"
    result = runner.invoke(app, ["train", "--config", str(first / "config.json"),
                                 "--pseudo", "union", "--set", "adapt.epochs=3",
                                 "--set", "pretrain.lr_milestones=1,2", "--out", str(changed)])
    assert result.exit_code == 0, result.output
    expected = _fields(first / "config.json")
    expected["adapt"]["epochs"] = 3
    expected["adapt"]["pseudo"] = "union"
    expected["pretrain"]["lr_milestones"] = [1, 2]
    assert _fields(changed / "config.json") == expected
    assert expected["adapt"]["lr"] == 0.002 and expected["seed"] == 3


def test_partial_file_nested_and_dotted_keys(tmp_path, fake_train):
    path = tmp_path / "my.json"
    path.write_text(json.dumps({"preset": "tiny", "adapt": {"lr": 0.5}, "pretrain.epochs": 2,
                                "task": "body"}))
    assert read_config_file(str(path)) == {"preset": "tiny", "adapt.lr": 0.5,
                                           "pretrain.epochs": 2, "task": "body"}
    result = runner.invoke(app, ["train", "--config", str(path), "--task", "hand",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    config = fake_train[-1]["config"]
    assert (config.preset, config.adapt.lr, config.pretrain.epochs) == ("tiny", 0.5, 2)
    assert config.task == "hand"  # the option wins over the file
    assert config.adapt.iterations == 2  # the rest from the tiny preset


def test_resume_with_the_runs_own_config_changes_only_what_is_set(tmp_path, fake_train):
    from synpose_keras.training.resume_overrides import resolve_resume_overrides

    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "--preset", "tiny", "--out", str(run)]).exit_code == 0
    saved = load_config(str(run / "config.json"))
    result = runner.invoke(app, ["train", "--config", str(run / "config.json"), "--resume",
                                 "--set", "adapt.lr=1e-5", "--out", str(run)])
    assert result.exit_code == 0, result.output
    overrides = fake_train[-1]["overrides"]
    assert "resume_overrides" not in overrides and overrides["adapt.lr"] == "1e-5"
    _, changes, _ = resolve_resume_overrides(saved, overrides, [], ("pretrain", "adapt"), {})
    assert list(changes) == ["adapt.lr"]


@pytest.mark.parametrize("content, expected", [
    ("", "is empty"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "must hold a mapping"),
    ('{"adapt": {"learning_rate": 1}}', "Unknown config field"),
])
def test_bad_config_files_are_one_line_errors(tmp_path, content, expected, fake_train):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = runner.invoke(app, ["train", "--config", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert expected in result.output and str(path) in result.output
    assert not fake_train


def test_yaml_config(tmp_path, fake_train):
    path = tmp_path / "run.yaml"
    path.write_text("preset: tiny\nadapt:\n  lr: 0.25\n  pseudo: union\n")
    result = runner.invoke(app, ["train", "--config", str(path), "--out", str(tmp_path / "r")])
    try:
        import yaml  # noqa: F401
    except ImportError:
        assert result.exit_code == 2
        assert "needs PyYAML" in result.output and str(path) in result.output
        return
    assert result.exit_code == 0, result.output
    config = fake_train[-1]["config"]
    assert (config.adapt.lr, config.adapt.pseudo) == (0.25, "union")
