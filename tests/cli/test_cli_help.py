"""`synpose --help` and every sub-command's --help answer without importing TensorFlow or Keras;
the options with fixed values show them as choices; TensorFlow's C++ start-up lines are filtered
from standard error unless --verbose. (Times are measured in benchmarks/cli_help.py, not here.)"""

import os
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

ENV = {**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}


def _run(script: str, text: bool = True):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=text, timeout=120, env=ENV)


def test_every_help_without_tensorflow():
    result = _run("""
        import sys
        from typer.testing import CliRunner
        from synpose_keras.cli.app import app
        from synpose_keras.datasets.converters import load_all

        runner = CliRunner()
        commands = [[], ["train"], ["ablate"], ["diagnose"], ["evaluate"], ["predict"],
                    ["export"], ["report"], ["convert"]]
        commands += [["convert", name] for name in sorted(load_all())]
        for args in commands:
            res = runner.invoke(app, args + ["--help"], terminal_width=200)
            assert res.exit_code == 0, (args, res.output)
            assert "Usage" in res.output, args
        loaded = [m for m in ("tensorflow", "keras") if m in sys.modules]
        assert not loaded, loaded
        print("ok", len(commands))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok ")


def test_console_help_is_plain_and_quiet():
    for args in ([], ["train"]):
        result = subprocess.run([sys.executable, "-m", "synpose_keras.cli.app", *args, "--help"],
                                capture_output=True, text=True, timeout=120, env=ENV)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "0000" not in result.stderr and "absl" not in result.stderr
    out = result.stdout
    for shown in ("<demo|paper|tiny>", "<hand|body>", "<integrated|independent|union|2d|3d|none>",
                  "<default|mirrored|multiworker>"):
        assert shown in out, shown
    assert "ours|source-only|uniframe|ccssl|regda|oracle" in out.replace(" ", "").replace("│", "")


@pytest.mark.parametrize("args", [
    ["train", "--out", "x", "--preset", "huge"],
    ["train", "--out", "x", "--method", "magic"],
    ["export", "m.keras", "--out", "x", "--format", "onnx"],
    ["convert", "lsp", "src", "--out", "x", "--split-rule", "random"],
])
def test_wrong_choice_is_refused_with_the_list(args, tmp_path):
    from synpose_keras.cli.app import app

    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 2
    assert "is not one of" in result.output


def test_choices_equal_the_library_constants():
    from synpose_keras.cli import choices
    from synpose_keras.inference.export import FORMATS
    from synpose_keras.ops.heatmaps import DECODINGS
    from synpose_keras.skeletons import SKELETONS, TASK_SKELETON
    from synpose_keras.training.configs import METHODS, PRESETS, PSEUDO_MODES, STRATEGIES

    assert set(choices.PRESETS) == set(PRESETS)
    assert choices.METHODS == METHODS
    assert choices.PSEUDO_MODES == PSEUDO_MODES
    assert choices.STRATEGIES == STRATEGIES
    assert choices.DECODINGS == DECODINGS
    assert choices.EXPORT_FORMATS == FORMATS
    assert set(choices.SKELETONS) == set(SKELETONS)
    assert set(choices.TASKS) == set(TASK_SKELETON)


def test_stderr_filter_drops_tensorflow_log_lines_only():
    result = _run(r"""
        import os, sys
        from synpose_keras.cli.quiet import StderrFilter

        f = StderrFilter()
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1796621814.416809   23924 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"E0000 00:00:1796621814.417327   23924 cuda_executor.cc:1228] failed call to cuInit\n")
        os.write(2, b"\rconvert: 50%")
        os.write(2, b"\rconvert: 100%\n")
        print("Error: something the user must see", file=sys.stderr)
        os.write(2, b"I0 is not a log line\n")
        f.close()
        print("done", file=sys.stderr)
    """, text=False)
    assert result.returncode == 0
    assert result.stderr == (b"\rconvert: 50%\rconvert: 100%\nError: something the user must see\n"
                             b"I0 is not a log line\ndone\n")


def test_verbose_keeps_the_log_level_the_user_set(monkeypatch):
    import synpose_keras
    from synpose_keras.cli import quiet

    monkeypatch.setattr(synpose_keras, "_USER_TF_CPP_MIN_LOG_LEVEL", None)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet.configure_logging(verbose=True)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    quiet.configure_logging(verbose=False)  # under pytest stderr is captured: no filter
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert quiet._FILTER is None
    monkeypatch.setattr(synpose_keras, "_USER_TF_CPP_MIN_LOG_LEVEL", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    quiet.configure_logging(verbose=True)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
