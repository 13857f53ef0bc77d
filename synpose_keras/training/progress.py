"""Training progress that reads well in a log file, and the wall-time table of a run.

Keras's progress bar redraws one line with carriage returns and ANSI codes; written to a file
(``synpose train ... > train.log``) it becomes one line of tens of kilobytes. When standard output
is not a terminal (or ``synpose train --progress-every N`` is given), each stage prints one plain
line every N steps instead::

    [adapt] epoch 2/3 step 40/100 loss=0.0123 pose=0.0041 | 3.21 step/s, ETA 0:01:20
    [adapt] epoch 2/3 done in 0:00:31: loss=0.0119 pose=0.0040 target_pck_all=0.412

The ETA is the rest of the stage at the rate measured since its first step (the first step,
which traces the step function, is not counted).
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import Callable, Optional

import keras


def use_line_progress(progress_every: Optional[int], stream=None) -> bool:
    """Plain lines (True) or Keras's bar (False): lines when ``progress_every`` is given or the
    stream (standard output by default) is not a terminal."""
    if progress_every:
        return True
    stream = sys.stdout if stream is None else stream
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


def default_every(iterations: int) -> int:
    """About ten lines per epoch."""
    return max(1, int(iterations) // 10)


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``0:00:31``)."""
    return str(datetime.timedelta(seconds=int(round(max(0.0, seconds)))))


def _format_logs(logs: dict) -> str:
    parts = []
    for key, value in (logs or {}).items():
        if key == "epoch":
            continue
        try:
            parts.append(f"{key}={float(value):.4g}")
        except (TypeError, ValueError):
            continue
    return " ".join(parts)


class LineProgress(keras.callbacks.Callback):
    """One plain line every ``every`` steps and one per epoch end (see the module docstring).

    Args:
        name: str. The stage, printed as ``[name]``.
        epochs: int. Epochs of the stage.
        iterations: int. Steps per epoch.
        first_step: int. Step inside the first epoch this ``fit`` starts at (a resumed epoch).
        every: int. Steps between lines; the last step of an epoch always prints.
        log: callable(str) that prints a line.
        history: optional list of the stage's epoch rows (``{"epoch": e, ...}``); the epoch-end
            line shows the row's values (they include the epoch-end evaluation).
        clock: callable() -> seconds (tests pass a fake clock).
    """

    def __init__(self, name: str, epochs: int, iterations: int, first_step: int = 0,
                 every: int = 10, log: Callable = print, history: Optional[list] = None,
                 clock: Callable = time.perf_counter):
        super().__init__()
        self.name = name
        self.epochs = int(epochs)
        self.iterations = int(iterations)
        self.first_step = int(first_step)
        self.every = max(1, int(every))
        self.log = log
        self.history = history
        self.clock = clock
        self.epoch = 0
        self.steps_done = 0  # steps of this fit
        self.t_first = None  # end of this fit's first step
        self.t_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = int(epoch)
        self.t_epoch = self.clock()

    def _rate(self, now: float) -> Optional[float]:
        if self.t_first is None or self.steps_done < 2 or now <= self.t_first:
            return None
        return (self.steps_done - 1) / (now - self.t_first)

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        self.steps_done += 1
        if self.t_first is None:
            self.t_first = now
        step = self.first_step + int(batch) + 1
        if step % self.every and step != self.iterations:
            return
        line = (f"[{self.name}] epoch {self.epoch + 1}/{self.epochs} "
                f"step {step}/{self.iterations} {_format_logs(logs)}").rstrip()
        rate = self._rate(now)
        if rate:
            remaining = (self.iterations - step) + (self.epochs - self.epoch - 1) * self.iterations
            line += f" | {rate:.3g} step/s, ETA {format_duration(remaining / rate)}"
        self.log(line)

    def on_epoch_end(self, epoch, logs=None):
        self.first_step = 0
        row = None
        if self.history and self.history[-1].get("epoch") == epoch:
            row = self.history[-1]
        values = _format_logs(row if row is not None else logs)
        took = format_duration(self.clock() - self.t_epoch) if self.t_epoch is not None else "?"
        self.log(f"[{self.name}] epoch {epoch + 1}/{self.epochs} done in {took}: {values}".rstrip())


def format_wall_times(times: dict) -> str:
    """The wall-time table printed at the end of ``synpose train``.

    Args:
        times: ``{stage: seconds or None}`` in run order (None: skipped, already completed),
            with ``"total"`` last.
    """
    width = max([len("stage")] + [len(k) for k in times])
    lines = [f"{'stage':<{width}}  wall time", f"{'-' * width}  ---------"]
    for stage, seconds in times.items():
        shown = "skipped (done before)" if seconds is None else format_duration(seconds)
        if stage == "total":
            lines.append(f"{'-' * width}  ---------")
        lines.append(f"{stage:<{width}}  {shown}")
    return "\n".join(lines)
