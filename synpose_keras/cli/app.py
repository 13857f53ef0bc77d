"""The ``synpose`` command line: thin typer wrappers around library functions.

Importing this module (and answering ``--help``) does not load TensorFlow or Keras: each command
imports what it needs when it runs.
"""

from __future__ import annotations

import typer

from synpose_keras.cli.ablate import ablate_command
from synpose_keras.cli.convert import convert_app, plain_text
from synpose_keras.cli.diagnose import diagnose_command
from synpose_keras.cli.evaluate import evaluate_command
from synpose_keras.cli.export import export_command
from synpose_keras.cli.predict import predict_command
from synpose_keras.cli.report import report_command
from synpose_keras.cli.train import train_command

app = typer.Typer(
    name="synpose",
    help="Synthetic-to-real pose adaptation with geometric reconstruction (Keras 3).",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", help="Show TensorFlow's start-up and "
                                 "CUDA/oneDNN log lines (hidden by default)."),
) -> None:
    """Synthetic-to-real pose adaptation with geometric reconstruction (Keras 3)."""
    from synpose_keras.cli.quiet import configure_logging

    configure_logging(verbose)


app.add_typer(convert_app, name="convert")


def _help(command) -> str:
    """A command's docstring as the terminal shows it: reflowed, no reStructuredText markup."""
    return "\n\n".join(plain_text(part) for part in (command.__doc__ or "").split("\n\n"))


for _name, _command in (("train", train_command), ("ablate", ablate_command),
                        ("diagnose", diagnose_command), ("evaluate", evaluate_command),
                        ("predict", predict_command), ("export", export_command),
                        ("report", report_command)):
    app.command(_name, help=_help(_command))(_command)


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
