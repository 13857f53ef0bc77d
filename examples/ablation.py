"""The ablation of supplementary Table A on the embedded benchmark, over several seeds.

For each seed, the shared stages (style, pretrain, generator) run once; each variant then copies
that run and trains only the ``adapt`` stage, so the variants differ in the adaptation alone:

==================  =====================================================================
variant             adaptation
==================  =====================================================================
source-only         L_src only (same iterations, no target data): source-only with restyling
baseline            + UniFrame-style pseudo-labels (M_2D: 50% most confident), no rec
+pseudo             + integrated 2D/3D pseudo-labels, no rec
+rec                baseline + geometric reconstruction
+pseudo+rec         integrated pseudo-labels + reconstruction (the full method)
==================  =====================================================================

Analysis variants (not run by default; name them with ``--variants``; they use the target's
labels, so they are ceilings, never adaptation results):

==================  =====================================================================
oracle              source loss + the target's stored labels for every keypoint in the
                    pseudo-label path (``adapt.oracle_labels``, ``mask_fraction=1``): what
                    correct target labels would give with the same iterations
oracle-masked       the same with the teacher's 50% mask (only the label positions are true)
==================  =====================================================================

The tables (mean ± std over seeds of PCK@0.05 per part group on the target test split, the
protocol; and the same at PCK@0.2, which shows coarse localisation) are written to
``OUT/ablation.md`` and ``OUT/ablation.json``; ``pretrain`` is the model after pre-training.

Usage::

    python examples/ablation.py --task hand --seeds 0 1 2 --out runs/ablation-hand [--preset demo]
        [--set adapt.epochs=2 ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time

import numpy as np

VARIANTS = {
    "source-only": {"adapt.pseudo": "none", "adapt.rec": False},
    "baseline": {"adapt.pseudo": "2d", "adapt.rec": False},
    "+pseudo": {"adapt.pseudo": "integrated", "adapt.rec": False},
    "+rec": {"adapt.pseudo": "2d", "adapt.rec": True},
    "+pseudo+rec": {"adapt.pseudo": "integrated", "adapt.rec": True},
}
ANALYSIS_VARIANTS = {
    "oracle": {"adapt.pseudo": "2d", "adapt.rec": False, "adapt.oracle_labels": True,
               "adapt.mask_fraction": 1.0},
    "oracle-masked": {"adapt.pseudo": "2d", "adapt.rec": False, "adapt.oracle_labels": True},
}


def _parse_sets(items):
    out = {}
    for item in items or []:
        key, value = item.split("=", 1)
        out[key] = value
    return out


def coarse_table(model_path, target, threshold=0.2):
    """PCK at a looser threshold of a saved model, cached beside it (``*.pck<t>.json``)."""
    import keras

    import synpose_keras  # noqa: F401  (registers the custom objects)
    from synpose_keras.training.evaluation import evaluate_predictor

    cache = f"{model_path[:-len('.keras')]}.pck{int(round(threshold * 100))}.json"
    if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(model_path):
        with open(cache) as f:
            return json.load(f)
    table = evaluate_predictor(keras.models.load_model(model_path), target, "test",
                               threshold=threshold)["table"]
    with open(cache + ".tmp", "w") as f:
        json.dump(table, f)
    os.replace(cache + ".tmp", cache)
    return table


def run(task, seeds, out, preset="demo", sets=None, variants=None, log=print):
    from synpose_keras.training.configs import apply_overrides, get_preset, save_config
    from synpose_keras.training.train import train

    variants = variants or list(VARIANTS)
    results = {}
    for seed in seeds:
        base_dir = os.path.join(out, f"seed{seed}", "shared")
        overrides = {"task": task, "seed": seed, **(sets or {})}
        config = apply_overrides(get_preset(preset), {**overrides,
                                                      "stages": ("style", "pretrain", "generator")})
        t0 = time.time()
        resume = os.path.exists(os.path.join(base_dir, "state.json"))
        shared = train(config, base_dir, resume=resume, verbose=0, log=log)
        log(f"seed {seed}: shared stages in {time.time() - t0:.0f} s")
        results.setdefault("pretrain", []).append(shared["rows"]["after pretrain"]["table"])
        coarse = results.setdefault("@0.2", {})
        coarse.setdefault("pretrain", []).append(coarse_table(
            os.path.join(base_dir, "pretrain", "pose_predictor.keras"), shared["target"]))
        for name in variants:
            run_dir = os.path.join(out, f"seed{seed}", name.replace("+", "plus_"))
            if not os.path.exists(os.path.join(run_dir, "evaluation.json")):
                if os.path.exists(run_dir) and not os.path.exists(
                        os.path.join(run_dir, "adapt", "progress.json")):
                    shutil.rmtree(run_dir)
                if not os.path.exists(run_dir):
                    shutil.copytree(base_dir, run_dir,
                                    ignore=shutil.ignore_patterns("evaluation.json", "logs"))
                settings = {**VARIANTS, **ANALYSIS_VARIANTS}[name]
                config = apply_overrides(get_preset(preset), {**overrides, **settings,
                                                              "stages": ("adapt",)})
                config.source, config.target = shared["source"], shared["target"]
                # a resumed run keeps its saved config: the variant's settings are written there
                save_config(config, os.path.join(run_dir, "config.json"))
                t0 = time.time()
                train(config, run_dir, resume=True, verbose=0, log=log)
                log(f"seed {seed}: {name} in {time.time() - t0:.0f} s")
            with open(os.path.join(run_dir, "evaluation.json")) as f:
                table = json.load(f)["rows"]["after adapt"]["table"]
            results.setdefault(name, []).append(table)
            coarse.setdefault(name, []).append(coarse_table(
                os.path.join(run_dir, "pose_predictor.keras"), shared["target"]))
            write_tables(results, task, seeds, out, preset, sets)
    return results


def summarize(results):
    summary = {}
    for name, tables in results.items():
        if name.startswith("@"):
            summary[name] = summarize(tables)
            continue
        columns = list(tables[0])
        summary[name] = {
            c: (float(np.mean([t[c] for t in tables])),
                float(np.std([t[c] for t in tables])) if len(tables) > 1 else math.nan,
                len(tables))
            for c in columns}
    return summary


def write_tables(results, task, seeds, out, preset, sets):
    from synpose_keras.skeletons import get_skeleton

    summary = summarize(results)
    columns = list(get_skeleton(task).columns)
    lines = [f"Task {task}, preset {preset}, overrides {sets or {}}, seeds {list(seeds)}; "
             "PCK@0.05 (%) on the target test split, mean ± std over seeds (n = runs).", ""]
    lines += _table(summary, columns)
    if "@0.2" in summary:
        lines += ["", "PCK@0.2 (%), same runs:", ""] + _table(summary["@0.2"], columns)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "ablation.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "ablation.json"), "w") as f:
        json.dump({"results": results, "summary": summary}, f, indent=2)


def _table(summary, columns):
    lines = ["| variant | " + " | ".join(columns) + " | n |",
             "|---|" + "---|" * (len(columns) + 1)]
    for name, row in summary.items():
        if name.startswith("@"):
            continue
        cells = [f"{row[c][0]:.1f} ± {row[c][1]:.1f}" if not math.isnan(row[c][1])
                 else f"{row[c][0]:.1f}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {next(iter(row.values()))[2]} |")
    return lines


def rewrite(out):
    """Rewrites OUT/ablation.md from OUT/ablation.json (e.g. after a partial run)."""
    with open(os.path.join(out, "ablation.json")) as f:
        data = json.load(f)
    with open(os.path.join(out, "ablation.md")) as f:
        header = f.readline()
    task = "body" if "Task body" in header else "hand"
    seeds = sorted({i for name, tables in data["results"].items() if not name.startswith("@")
                    for i in range(len(tables))})
    preset = header.split("preset ")[1].split(",")[0] if "preset " in header else "demo"
    write_tables(data["results"], task, seeds, out, preset, None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="hand", choices=("hand", "body"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", required=True)
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--set", dest="sets", action="append", help="config override KEY=VALUE")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS) + list(ANALYSIS_VARIANTS))
    parser.add_argument("--rewrite", action="store_true",
                        help="only rewrite OUT/ablation.md from OUT/ablation.json")
    args = parser.parse_args()
    if args.rewrite:
        rewrite(args.out)
        with open(os.path.join(args.out, "ablation.md")) as f:
            print(f.read())
        return
    run(args.task, args.seeds, args.out, args.preset, _parse_sets(args.sets), args.variants)
    with open(os.path.join(args.out, "ablation.md")) as f:
        print(f.read())


if __name__ == "__main__":
    main()
