"""``synpose train``: builds a TrainConfig from a preset and the options, then calls
:func:`synpose_keras.training.train.train`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer

from synpose_keras.cli.choices import Method, Preset, PseudoMode, Strategy, Task


@contextlib.contextmanager
def exit_on_run_errors():
    """Bad configuration or data, or a run folder another process holds -> ``Error: ...`` and
    exit code 2; a diverged run -> code 3."""
    from synpose_keras.locking import FolderLockedError
    from synpose_keras.training.runner import RunConfigError, TrainingDivergedError

    try:
        yield
    except (RunConfigError, ValueError, FileNotFoundError, FolderLockedError) as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(code=2)
    except TrainingDivergedError as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(code=3)


def parse_sets(items) -> dict:
    """``--set KEY=VALUE`` options -> ``{KEY: VALUE}`` (strings; the config parses them)."""
    overrides = {}
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"--set expects KEY=VALUE. Received: {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    return overrides


def train_command(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (checkpoints, logs, results)."),
    task: Optional[Task] = typer.Option(None, help="hand (Hand21, the default) or body (Body16)."),
    source: Optional[Path] = typer.Option(None, help="Converted source (synthetic) dataset."),
    target: Optional[Path] = typer.Option(None, help="Converted target (real) dataset."),
    preset: Optional[Preset] = typer.Option(None, help="demo (CPU-sized, the default), paper "
                                         "(ResNet-101, GPUs) or tiny."),
    method: Optional[Method] = typer.Option(None, help="ours (the default), source-only, uniframe, ccssl, regda, or oracle (trained on the target's labels: the ceiling)."),
    stages: Optional[str] = typer.Option(
        None, help="Comma-separated subset of style,pretrain,generator,adapt (default: all)."),
    pseudo: Optional[PseudoMode] = typer.Option(
        None, help="Pseudo-label masks: integrated, independent, union, 2d, 3d or none."),
    rec: Optional[bool] = typer.Option(None, "--rec/--no-rec",
                                       help="Geometric reconstruction loss (default: on)."),
    seed: Optional[int] = typer.Option(None, help="Run seed (initialisation, data order, "
                                       "augmentation). Default: 0."),
    strategy: Optional[Strategy] = typer.Option(None, help="default (the default), mirrored (several "
                                           "GPUs) or multiworker (several machines, TF_CONFIG)."),
    config_file: Optional[Path] = typer.Option(
        None, "--config", help="JSON or YAML file with config fields (all of RUN/config.json, "
        "which can be passed back, or some: the others come from the preset). The options and "
        "--set given with it apply on top."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoints. "
                                "Options and --set given with it change the saved run from the "
                                "next step on (recorded in config.json), or are refused."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override any config field: --set adapt.lr=3e-4 (repeatable)."),
    checkpoint_every: int = typer.Option(50, help="Also checkpoint every N steps in an epoch."),
    quiet: bool = typer.Option(False, help="No progress bars."),
    progress_every: Optional[int] = typer.Option(
        None, min=1, help="A plain progress line every N steps (stage, epoch, step, losses, rate, "
        "ETA). Default: Keras's bar on a terminal, about ten lines per epoch otherwise "
        "(a log file)."),
) -> None:
    """Train with the staged method (style -> pretrain -> generator -> adapt), then evaluate."""
    from synpose_keras.metrics import format_table
    from synpose_keras.skeletons import get_skeleton
    from synpose_keras.training.configs import apply_overrides, get_preset, read_config_file
    from synpose_keras.metrics.table import gain_line
    from synpose_keras.training.progress import format_wall_times
    from synpose_keras.training.train import train

    # the config file's fields, then the options given explicitly, then --set: with --resume
    # they are the changes asked for (a field equal to the saved run's is no change)
    overrides = {}
    if config_file is not None:
        with exit_on_run_errors():
            overrides = read_config_file(str(config_file))
    file_preset = overrides.pop("preset", None)
    preset = preset or file_preset
    overrides.update({key: value for key, value in (("task", task), ("method", method),
                                                    ("seed", seed), ("strategy", strategy))
                      if value is not None})
    if source is not None:
        overrides["source"] = str(source)
    if target is not None:
        overrides["target"] = str(target)
    if stages is not None:
        overrides["stages"] = tuple(s.strip() for s in stages.split(",") if s.strip())
    if pseudo is not None:
        overrides["adapt.pseudo"] = pseudo
    if rec is not None:
        overrides["adapt.rec"] = rec
    overrides.update(parse_sets(set_))
    with exit_on_run_errors():
        try:
            config = apply_overrides(get_preset(preset or "demo"), overrides)
        except ValueError as err:
            if config_file is None:
                raise
            raise ValueError(f"{config_file} with the options given: {err}") from err
        if preset is not None:  # with --resume, a preset other than the run's is refused
            overrides["preset"] = preset
        result = train(config, str(out), resume=resume, verbose=0 if quiet else 1,
                       log=typer.echo, checkpoint_every=checkpoint_every,
                       overrides=overrides if resume else None, progress_every=progress_every)
    skeleton = get_skeleton(config.task)
    rows = {name: row["table"] for name, row in result["rows"].items()}
    if rows:
        typer.echo(f"\nPCK@0.05 on {result['target']} ({result['split']}):")
        typer.echo(format_table(rows, skeleton))
        line = gain_line(result)
        if line:
            typer.echo("\n" + line)
    elif result.get("skipped"):
        typer.echo(f"\nNot evaluated: {result['skipped']}.")
    if result.get("wall_time_s"):
        typer.echo("\n" + format_wall_times(result["wall_time_s"]))
    typer.echo(f"\nModel: {out}/pose_predictor.keras   Results: {out}/evaluation.json")
