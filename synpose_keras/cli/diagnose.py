"""``synpose diagnose``: can the reconstruction loss correct keypoints? Parses the options and
calls :func:`synpose_keras.training.diagnose.diagnose_run`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def diagnose_command(
    run: Path = typer.Argument(..., help="Run folder written by `synpose train --out RUN`."),
    pairs: int = typer.Option(16, min=1, help="Held-out target pairs for the keypoint-correction "
                                              "experiment and the lambda_rec estimate."),
    steps: int = typer.Option(40, min=1, help="Adam steps (0.5 px each) on the driving "
                                              "keypoints."),
    json_path: Optional[Path] = typer.Option(
        None, "--json", help="Write the numbers here instead of RUN/diagnose.json (the run "
                             "folder is then left untouched)."),
) -> None:
    """Diagnoses a run's reconstruction path: keypoint correction through the frozen W + G
    (offsets of 4 and 8 px, frame-specific vs shared), the lambda_rec that matches a
    pseudo-label loss's pull at the keypoints, the readout gate, how much of the pre-trained
    predictor's error both frames of a pair share (invisible to the loss), and the generator
    stage's pairs.json and reconstruction_check.json. Gates are printed, never enforced."""
    from synpose_keras.training.diagnose import DiagnoseError, diagnose_run

    try:
        diagnose_run(str(run), pairs=pairs, steps=steps,
                     json_path=None if json_path is None else str(json_path), log=typer.echo)
    except (DiagnoseError, FileNotFoundError) as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(code=2)
