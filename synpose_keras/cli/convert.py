"""``synpose convert <dataset> SRC --out DIR``: one sub-command per registered converter.

Each converter declares its own options (``Converter.OPTIONS``); the common options (splits,
limit, skip-bad, crop, max side, shards) are shared. The command builds the converter and calls
:func:`synpose_keras.datasets.writer.convert`; there is no logic here beyond parsing.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import shlex
import sys
import warnings
from pathlib import Path
from typing import Literal, Optional

import typer

from synpose_keras.cli.choices import Task

from synpose_keras.datasets.converters import load_all

convert_app = typer.Typer(
    help="Convert a benchmark's official release (or your own data) into synpose TFRecords.",
    no_args_is_help=True,
)

_P = inspect.Parameter


def _common_parameters() -> list:
    return [
        _P("out", _P.KEYWORD_ONLY, annotation=Path,
           default=typer.Option(..., "--out", "-o", help="Output folder (meta.json + shards).")),
        _P("split", _P.KEYWORD_ONLY, annotation=Optional[list[str]],
           default=typer.Option(None, "--split", help="Split(s) to convert; default: all.")),
        _P("limit", _P.KEYWORD_ONLY, annotation=Optional[int],
           default=typer.Option(None, help="At most N samples per split.")),
        _P("skip_bad", _P.KEYWORD_ONLY, annotation=bool,
           default=typer.Option(False, help="Skip and record corrupt or inconsistent samples.")),
        _P("crop", _P.KEYWORD_ONLY, annotation=bool,
           default=typer.Option(False, help="Store a square crop around the subject.")),
        _P("crop_scale", _P.KEYWORD_ONLY, annotation=float,
           default=typer.Option(1.5, help="Crop side = this x the keypoint box's longer side.")),
        _P("crop_policy", _P.KEYWORD_ONLY, annotation=Literal["tllib", "pad"],
           default=typer.Option("tllib", help="With --crop: tllib caps the side at the image's "
                                "shorter side and shifts the crop inside the image, as TLlib's "
                                "scale_box; pad never caps it and pads the overhang with "
                                "zeros.")),
        _P("max_side", _P.KEYWORD_ONLY, annotation=Optional[int],
           default=typer.Option(None, help="Downscale stored images to this longest side.")),
        _P("shards", _P.KEYWORD_ONLY, annotation=Optional[int],
           default=typer.Option(None, help="Shards per split (default: by size).")),
        _P("progress", _P.KEYWORD_ONLY, annotation=bool,
           default=typer.Option(True, help="Show a progress bar.")),
        _P("overwrite", _P.KEYWORD_ONLY, annotation=bool,
           default=typer.Option(False, help="Replace a dataset of another kind or source "
                                "folder already in --out (refused otherwise).")),
    ]


def _option_parameter(option) -> inspect.Parameter:
    kind = Literal[tuple(option.choices)] if option.choices else option.type
    annotation = kind if option.default is not None else Optional[kind]
    return _P(option.name, _P.KEYWORD_ONLY, annotation=annotation,
              default=typer.Option(option.default, help=option.help))


def _make_command(cls):
    option_names = [o.name for o in cls.OPTIONS]

    def command(src: Path, **kwargs) -> None:
        from synpose_keras.datasets.converters.base import DatasetLayoutError
        from synpose_keras.datasets.writer import convert
        from synpose_keras.locking import FolderLockedError

        options = {name: kwargs.pop(name) for name in option_names}
        # every expected failure (layout, annotation files, bad samples, --out) is one line
        # naming the file and what was expected, exit code 2
        try:
            converter = cls(str(src), **options)
            with _warnings_as_lines():
                meta = convert(
                    converter,
                    str(kwargs["out"]),
                    splits=kwargs["split"] or None,
                    limit=kwargs["limit"],
                    skip_bad=kwargs["skip_bad"],
                    crop=kwargs["crop"],
                    crop_scale=kwargs["crop_scale"],
                    crop_policy=kwargs["crop_policy"],
                    max_side=kwargs["max_side"],
                    num_shards=kwargs["shards"],
                    progress=kwargs["progress"],
                    command=shlex.join(["synpose"] + sys.argv[1:]),
                    overwrite=kwargs["overwrite"],
                )
        except (DatasetLayoutError, ValueError, FolderLockedError) as err:
            typer.echo(f"Error: {_one_line(err)}", err=True)
            raise typer.Exit(code=2)
        typer.echo(_summary(meta, kwargs["out"]))

    params = [_P("src", _P.POSITIONAL_OR_KEYWORD, annotation=Path,
                 default=typer.Argument(..., help=cls.src_help))]
    params += _common_parameters() + [_option_parameter(o) for o in cls.OPTIONS]
    command.__signature__ = inspect.Signature(params)
    command.__name__ = f"convert_{cls.name}"
    doc = inspect.getdoc(cls) or cls.name
    convert_app.command(cls.name, help=plain_text(doc.split("\n\n")[0]))(command)


def plain_text(text: str) -> str:
    """A docstring paragraph without reStructuredText markup, for the terminal:
    ``:func:`x``` and ```x``` -> x, and the line breaks joined."""
    text = re.sub(r":[\w:]+:`~?([^`]+)`", r"\1", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`", r"\1", text)
    return " ".join(text.split())


@contextlib.contextmanager
def _warnings_as_lines():
    """``ConversionWarning``s -> ``Warning: ...`` lines on standard error, as they happen."""
    from synpose_keras.datasets.converters.base import ConversionWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", ConversionWarning)
        shown = warnings.showwarning

        def show(message, category, *args, **kwargs):
            if issubclass(category, ConversionWarning):
                typer.echo(f"Warning: {_one_line(message)}", err=True)
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _summary(meta: dict, out) -> str:
    counts = ", ".join(f"{s}: {n}" for s, n in meta.get("counts", {}).items())
    skipped = sum(len(v) for v in meta.get("skipped", {}).values())
    line = f"Wrote {out} ({counts})"
    if skipped:
        line += f"; skipped {skipped} bad sample(s), listed in meta.json"
    return line


for _name, _cls in sorted(load_all().items()):
    if _name != "synthetic":
        _make_command(_cls)


@convert_app.command("synthetic")
def convert_synthetic(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (source/ and target/)."),
    task: Task = typer.Option("hand", help="hand (Hand21) or body (Body16)."),
    seed: int = typer.Option(0, help="Same seed, same bytes."),
    image_size: int = typer.Option(128, help="Side of the square images."),
    source_train: int = typer.Option(2000, help="Source 'train' images."),
    source_test: int = typer.Option(200, help="Source 'test' images."),
    target_sequences: int = typer.Option(300, help="Target 'train' sequences."),
    target_frames: int = typer.Option(4, help="Frames per target sequence."),
    target_views: int = typer.Option(2, help="Cameras per target sequence."),
    target_test: int = typer.Option(300, help="Target 'test' images."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """The embedded synthetic->real benchmark: OUT/source (synthetic) and OUT/target (real)."""
    from synpose_keras.datasets.synthetic.benchmark import generate_benchmark

    if task not in ("hand", "body"):
        typer.echo(f"Error: --task must be 'hand' or 'body'. Received: {task!r}", err=True)
        raise typer.Exit(code=2)
    result = generate_benchmark(
        str(out), task=task, seed=seed, image_size=image_size, source_train=source_train,
        source_test=source_test, target_sequences=target_sequences, target_frames=target_frames,
        target_views=target_views, target_test=target_test, progress=progress,
        command=shlex.join(["synpose"] + sys.argv[1:]))
    for domain in ("source", "target"):
        typer.echo(_summary(result["meta"][domain], result[domain]))
