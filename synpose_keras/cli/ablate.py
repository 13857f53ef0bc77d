"""``synpose ablate``: the supplementary Table A ablation over seeds; parses the options and
calls :func:`synpose_keras.training.ablation.run_ablation`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from synpose_keras.cli.choices import Preset, Task


def _split_seeds(items: list) -> list:
    seeds = []
    for item in items:
        for part in re.split(r"[,\s]+", item.strip()):
            if not part:
                continue
            try:
                seeds.append(int(part))
            except ValueError:
                raise typer.BadParameter(
                    f"--seeds expects integers separated by commas or spaces ('0,1,2' or "
                    f"'0 1 2'). Received: {item!r}")
    return seeds


def _split_variants(items: Optional[list]) -> Optional[list]:
    if not items:
        return None
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def ablate_command(
    out: Path = typer.Option(..., "--out", "-o",
                             help="Ablation folder (seed<S>/<variant>/ runs, ablation.json, "
                                  "ablation.md)."),
    task: Task = typer.Option("hand", help="hand (Hand21) or body (Body16)."),
    seeds: list[str] = typer.Option(
        ["0,1,2"], help="Seeds: --seeds 0,1,2, --seeds \"0 1 2\" (quoted) or repeated "
                        "(--seeds 0 --seeds 1)."),
    variants: Optional[list[str]] = typer.Option(
        None, help="Comma-separated or repeated variant names (or folder names): source-only, "
                   "baseline, +pseudo, +rec, '+rec (λ=0)' (plus_rec_lambda0), +pseudo+rec, "
                   "oracle; analysis: oracle-labels, oracle-labels-masked. Default: all but the "
                   "analysis ones."),
    source: Optional[Path] = typer.Option(None, help="Converted source (synthetic) dataset."),
    target: Optional[Path] = typer.Option(None, help="Converted target (real) dataset, with a "
                                                     "labelled test split."),
    preset: Preset = typer.Option("demo", help="demo (CPU-sized), paper (ResNet-101, GPUs) or tiny."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override a config field of every run: --set adapt.epochs=2 "
                            "(repeatable)."),
    coarse: bool = typer.Option(False, "--coarse/--no-coarse",
                                help="Also tabulate PCK@0.2 (coarse localisation)."),
    checkpoint_every: int = typer.Option(50, help="Also checkpoint every N steps in an epoch."),
) -> None:
    """The ablation of supplementary Table A: shared stages once per seed, then each variant's
    adaptation; PCK@0.05 per part group, mean ± std over seeds. Re-running skips finished runs."""
    from synpose_keras.training.ablation import run_ablation

    from synpose_keras.cli.train import exit_on_run_errors, parse_sets

    overrides = parse_sets(set_)
    with exit_on_run_errors():
        run_ablation(task, _split_seeds(seeds), str(out), preset=preset, overrides=overrides,
                     variants=_split_variants(variants),
                     source=None if source is None else str(source),
                     target=None if target is None else str(target),
                     coarse_threshold=0.2 if coarse else None, log=typer.echo,
                     checkpoint_every=checkpoint_every)
    typer.echo("\n" + (out / "ablation.md").read_text())
    typer.echo(f"Tables: {out}/ablation.md   Results: {out}/ablation.json")
