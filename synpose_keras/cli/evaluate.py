"""``synpose evaluate MODEL_OR_RUN --data DIR``: PCK@0.05 in the Table-A layout; calls
:func:`synpose_keras.inference.evaluate_model`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from synpose_keras.cli.choices import Decoding


def evaluate_command(
    model: Path = typer.Argument(..., help="A .keras model, or a RUN folder of `synpose train` "
                                 "(uses RUN/pose_predictor.keras)."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Converted dataset folder "
                                        "(default: the run's target)."),
    split: str = typer.Option("test", help="Split to evaluate."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the result here."),
    batch_size: int = typer.Option(32, help="Images per forward pass."),
    limit: Optional[int] = typer.Option(None, help="Evaluate the first N samples only."),
    rotations: int = typer.Option(1, help="1: the protocol (one pass). 2 or 4: test-time "
                                  "ensembling over the image turned by 0/180 or 0/90/180/270 "
                                  "degrees (not the protocol; printed as such)."),
    decoding: Decoding = typer.Option("argmax", help="argmax: the protocol (integer heatmap cells, "
                                 "comparable with TLlib). dark: predictions refined to "
                                 "sub-pixel precision (Zhang et al. CVPR 2020; not the "
                                 "protocol; printed as such)."),
) -> None:
    """PCK@0.05 per part group and All (bodies: All = 12 limbs, All-16 = every keypoint)."""
    from synpose_keras.inference.evaluate import evaluate_model, write_json
    from synpose_keras.metrics import format_table

    try:
        result = evaluate_model(model, None if data is None else str(data), split=split,
                                batch_size=batch_size, limit=limit, rotations=rotations,
                                decoding=decoding)
    except (FileNotFoundError, ValueError) as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(code=2)
    name = os.path.basename(os.path.dirname(result["model"])) if model.is_dir() else model.stem
    not_protocol = []
    if result["rotations"] > 1:
        not_protocol.append(f"heatmaps averaged over {result['rotations']} rotations")
    if result.get("decoding", "argmax") != "argmax":
        not_protocol.append("DARK sub-pixel decoding of the predictions (the protocol: argmax)")
    typer.echo(f"PCK@{result['threshold']:g} of {result['model']} on {result['data']} "
               f"({result['split']}, {result['count']} samples"
               + (f"; NOT the protocol: {', '.join(not_protocol)}" if not_protocol else "")
               + "):")
    typer.echo(format_table({name: result["table"]}, result["skeleton"], name_header="Model"))
    rate = result.get("inversion_rate")
    if rate is not None and rate == rate:  # not NaN
        what = ("finger order swapped: palm read as back" if result["skeleton"] == "hand21"
                else "left and right swapped")
        typer.echo(f"Inversions: {rate:.1f}% of samples predicted as the mirror-image pose "
                   f"({what})")
    if json_path is not None:
        typer.echo(f"Wrote {write_json(result, json_path)}")
