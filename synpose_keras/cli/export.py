"""``synpose export MODEL --format saved_model|tflite --out PATH``: a serving artefact whose outputs
match the Keras model; calls :func:`synpose_keras.inference.export_model`."""

from __future__ import annotations

from pathlib import Path

import typer

from synpose_keras.cli.choices import ExportFormat, InputDtype


def export_command(
    model: Path = typer.Argument(..., help="A .keras model, or a RUN folder of `synpose train`."),
    format: ExportFormat = typer.Option("saved_model", "--format", "-f",
                               help="saved_model (TensorFlow SavedModel folder) or tflite."),
    out: Path = typer.Option(..., "--out", "-o", help="SavedModel folder or .tflite file."),
    input_dtype: InputDtype = typer.Option("float32", help="Input images: float32 in [0, 255] or uint8 "
                                    "(NHWC RGB, the model's input size)."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out."),
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Compare the artefact's outputs with the Keras model's."),
) -> None:
    """Export a pose model for serving (input: raw RGB images; output: heatmaps)."""
    from synpose_keras.inference import export_model

    try:
        info = export_model(model, out, format=format, input_dtype=input_dtype,
                            overwrite=overwrite, verify=verify)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(code=2)
    typer.echo(f"Wrote {info['format']} {info['path']}: input (batch, {info['input_size']}, "
               f"{info['input_size']}, 3) {info['input_dtype']} RGB [0, 255] -> heatmaps "
               f"(batch, {info['heatmap_size']}, {info['heatmap_size']}, {info['num_keypoints']})")
    if info["max_abs_diff"] is not None:
        typer.echo(f"Verified against the Keras model: max |difference| = "
                   f"{info['max_abs_diff']:.3g}")
