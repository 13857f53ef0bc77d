"""``synpose report RUN``: figures and a markdown summary in RUN/report/; calls
:func:`synpose_keras.inference.make_report`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def report_command(
    run: Path = typer.Argument(..., help="RUN folder of `synpose train`."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder "
                                       "(default: RUN/report)."),
    overlays: int = typer.Option(8, help="Target test images drawn with the final model "
                                 "(0: none)."),
) -> None:
    """Draw PCK bars, pseudo-label and training curves, overlays; write README.md."""
    from synpose_keras.inference import make_report

    try:
        report = make_report(run, None if out is None else str(out), num_overlays=overlays)
    except (FileNotFoundError, ValueError) as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(code=2)
    for name, path in report["figures"].items():
        typer.echo(f"  {name}: {path}")
    for name, reason in report["skipped"].items():
        typer.echo(f"  {name}: skipped ({reason})")
    typer.echo(f"Wrote {report['readme']}")
