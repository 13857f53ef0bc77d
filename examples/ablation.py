"""The ablation of supplementary Table A over several seeds: a thin wrapper of ``synpose ablate``.

The logic lives in :mod:`synpose_keras.training.ablation` (variants, folders, resume, tables);
``synpose ablate`` is the command. This script keeps the earlier flags and tabulates PCK@0.2
(coarse localisation) beside the protocol's PCK@0.05 by default.

For each seed the shared stages (style, pretrain, generator) run once; each variant copies that
run and trains only the ``adapt`` stage; ``oracle`` is its own ``--method oracle`` run. Variants:
``source-only``, ``baseline``, ``+pseudo``, ``+rec``, ``+rec (λ=0)`` (folder
``plus_rec_lambda0``), ``+pseudo+rec``, ``oracle``; analysis variants, only when named:
``oracle-labels`` and ``oracle-labels-masked`` (called ``oracle`` and ``oracle-masked`` before
``oracle`` became the target-trained ceiling). See the module's docstring for each.

Usage::

    python examples/ablation.py --task hand --seeds 0 1 2 --out runs/ablation-hand [--preset demo]
        [--set adapt.epochs=2 ...] [--variants source-only +rec ...] [--no-coarse]
    python examples/ablation.py --out runs/ablation-hand --rewrite   # tables from ablation.json

The same as ``synpose ablate --task hand --seeds 0,1,2 --out runs/ablation-hand --coarse``.
"""

from __future__ import annotations

import argparse
import os

from synpose_keras.training.ablation import (
    ANALYSIS_VARIANTS,
    VARIANTS,
    rewrite_tables,
    run_ablation,
)


def _parse_sets(items):
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--set expects KEY=VALUE. Received: {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="hand", choices=("hand", "body"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", required=True)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--source", help="converted source dataset (with --target)")
    parser.add_argument("--target", help="converted target dataset, labelled test split")
    parser.add_argument("--set", dest="sets", action="append", help="config override KEY=VALUE")
    parser.add_argument("--variants", nargs="+", metavar="VARIANT",
                        help=f"any of {list(VARIANTS) + list(ANALYSIS_VARIANTS)} or their "
                             "folder names (default: all but the analysis variants)")
    parser.add_argument("--no-coarse", action="store_true", help="no PCK@0.2 table")
    parser.add_argument("--rewrite", action="store_true",
                        help="only rewrite OUT/ablation.md from OUT/ablation.json")
    args = parser.parse_args()
    try:
        if args.rewrite:
            rewrite_tables(args.out)
        else:
            run_ablation(args.task, args.seeds, args.out, preset=args.preset,
                         overrides=_parse_sets(args.sets), variants=args.variants,
                         source=args.source, target=args.target,
                         coarse_threshold=None if args.no_coarse else 0.2)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"Error: {err}")
    with open(os.path.join(args.out, "ablation.md"), encoding="utf-8") as f:
        print(f.read())


if __name__ == "__main__":
    main()
