"""Progress that reads well in a log file: plain lines every N steps when stdout is not a
terminal, and the wall-time table at the end of `synpose train`."""

import io
import re

from typer.testing import CliRunner

from synpose_keras.training.progress import (
    LineProgress,
    default_every,
    format_wall_times,
    use_line_progress,
)


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_line_progress_lines_rate_and_eta():
    lines, clock, history = [], _Clock(), []
    cb = LineProgress("adapt", epochs=2, iterations=4, every=2, log=lines.append,
                      history=history, clock=clock)
    cb.on_epoch_begin(0)
    for batch in range(4):
        clock.now += 2.0  # 0.5 step/s
        cb.on_train_batch_end(batch, {"loss": 0.5, "pose": 0.25})
    history.append({"epoch": 0, "loss": 0.4, "target_pck_all": 0.3})
    cb.on_epoch_end(0, {"loss": 0.5})
    assert lines == [
        "[adapt] epoch 1/2 step 2/4 loss=0.5 pose=0.25 | 0.5 step/s, ETA 0:00:12",
        "[adapt] epoch 1/2 step 4/4 loss=0.5 pose=0.25 | 0.5 step/s, ETA 0:00:08",
        "[adapt] epoch 1/2 done in 0:00:08: loss=0.4 target_pck_all=0.3",
    ]


def test_resumed_epoch_counts_from_its_step():
    lines = []
    cb = LineProgress("pretrain", epochs=1, iterations=10, first_step=6, every=5,
                      log=lines.append, clock=_Clock())
    cb.on_epoch_begin(0)
    for batch in range(4):
        cb.on_train_batch_end(batch, {})
    assert lines == ["[pretrain] epoch 1/1 step 10/10"]


def test_mode_and_defaults():
    assert use_line_progress(None, io.StringIO())  # a file or pipe: lines
    assert use_line_progress(5, None)  # asked for
    assert default_every(1000) == 100 and default_every(3) == 1
    table = format_wall_times({"style": None, "pretrain": 75.2, "total": 3700.0})
    assert table.splitlines()[2:4] == ["style     skipped (done before)", "pretrain  0:01:15"]
    assert table.splitlines()[-1] == "total     1:01:40"


def test_train_in_a_log_file_prints_plain_lines_and_times(tiny_domains, tmp_path):
    from synpose_keras.cli.app import app

    result = CliRunner().invoke(app, [
        "train", "--preset", "tiny", "--stages", "pretrain", "--method", "source-only",
        "--source", str(tiny_domains / "source"), "--target", str(tiny_domains / "target"),
        "--out", str(tmp_path / "run"), "--progress-every", "1"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "\x1b" not in out and "━" not in out and "\r" not in out
    steps = [line for line in out.splitlines() if re.match(r"\[pretrain\] epoch 1/1 step \d/2 ", line)]
    assert len(steps) == 2, out
    assert "loss=" in steps[0] and "ETA" in steps[1]
    assert re.search(r"\[pretrain\] epoch 1/1 done in \d:\d\d:\d\d: ", out)
    assert re.search(r"^pretrain +\d:\d\d:\d\d$", out, re.M)
    assert re.search(r"^total +\d:\d\d:\d\d$", out, re.M)
    assert max(len(line) for line in out.splitlines()) < 400
    # TensorBoard: the target PCK and prediction overlays of each epoch (same run, to save time)
    from tests.training.test_tensorboard_extras import event_tags

    tags = event_tags(tmp_path / "run" / "logs" / "pretrain" / "diagnostics")
    assert tags.get("epoch_target_pck_all") == 1 and tags.get("predictions") == 1, tags
