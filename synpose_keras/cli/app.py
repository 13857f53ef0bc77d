"""The ``synpose`` command line: thin typer wrappers around library functions."""

from __future__ import annotations

import typer

from synpose_keras.cli.convert import convert_app

app = typer.Typer(
    name="synpose",
    help="Synthetic-to-real pose adaptation with geometric reconstruction (Keras 3).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(convert_app, name="convert")


def main() -> None:  # console-script entry point
    app()
