"""Every method of ``synpose train --method`` on the embedded benchmark, over several seeds.

    python examples/compare.py --seeds 0 1 2 --out runs/compare \
        --doc docs/compare.md --figure docs/img/compare_figure.png

For each seed the two pre-trainings are run once and shared (docs/methods.md; the methods' settings:
docs/protocol.md, "Comparison methods"):

- ``erm``: supervised source training without restyling (TLlib's source-only model), the start
  of source-only, RegDA and CC-SSL;
- ``restyled``: the AdaIN style network, source training with restyling and the generator
  pre-training, the start of ours and UniFrame.

Each method's run folder is a copy of its pre-training's, with ``config.json``'s ``method``
switched, resumed with ``--stages adapt`` (exactly what ``synpose train --resume`` would do).
Runs that already finished are skipped, so the script can be stopped and started again.

Outputs: ``OUT/results.json`` (every run's PCK@0.05 and PCK@0.2 tables), a Markdown report
(mean ± std over seeds per part group, PCK@0.05 and PCK@0.2) and a figure in the spirit of the
paper's Figure A (the same target test images, each method's keypoints drawn on them).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import shutil
import sys
import time

import numpy as np

METHOD_ORDER = ("source-only", "regda", "ccssl", "uniframe", "ours")

#: The CPU comparison configuration, pinned so that every seed of a comparison trains the same
#: models whatever the presets become: a quarter-width ResNet-18 on 64 px crops (16 x 16
#: heatmaps), 4 x 100 pre-training iterations, 2 x 100 adaptation iterations for every method.
#: ``--no-pin`` uses the preset as it is (e.g. ``--preset paper --no-pin`` on GPUs).
CPU_COMPARISON = {
    "model.input_size": 64, "model.width_multiplier": 0.25, "model.deconv_filters": 64,
    "model.output_stride": 32, "model.num_deconv_layers": 3,
    "style.steps": 300, "style.batch_size": 8, "style.lr": 1e-4, "style.width_multiplier": 0.25,
    "pretrain.epochs": 4, "pretrain.iterations": 100, "pretrain.batch_size": 32,
    "pretrain.lr": 1e-3,
    "generator.epochs": 2, "generator.iterations": 100, "generator.batch_size": 16,
    "lifter.epochs": 100, "lifter.batch_size": 256, "lifter.hidden_units": 256,
    "adapt.epochs": 2, "adapt.iterations": 100, "adapt.batch_size": 16,
    "adapt.target_batch_size": 16, "adapt.lr": 3e-4, "adapt.ema_decay": 0.99,
    "adapt.lambda_rec": 0.01,
    # UniFrame's augmentation (the demo preset now uses a milder one; the comparison keeps this)
    "augment.rotation": None, "augment.shear": 30.0, "augment.translate": 0.05,
    "augment.scale_min": 0.6, "augment.scale_max": 1.3, "augment.color_jitter": 0.25,
}
LABELS = {"source-only": "Source-only", "regda": "RegDA", "ccssl": "CC-SSL",
          "uniframe": "UniFrame", "ours": "Ours",
          "pretrain:erm": "ERM pre-training (start of source-only, RegDA, CC-SSL)",
          "pretrain:restyled": "Restyled pre-training (start of UniFrame, ours)"}
PRETRAININGS = ("pretrain:erm", "pretrain:restyled")
BASE_OF = {"source-only": "erm", "regda": "erm", "ccssl": "erm", "uniframe": "restyled",
           "ours": "restyled"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="hand", choices=("hand", "body"))
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHOD_ORDER),
                        choices=METHOD_ORDER)
    parser.add_argument("--out", default="runs/compare")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="Config override for every run, e.g. --set adapt.epochs=2.")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="Use the preset as it is instead of CPU_COMPARISON.")
    parser.add_argument("--doc", default=None, help="Write the Markdown report here.")
    parser.add_argument("--figure", default=None, help="Write the qualitative figure here.")
    parser.add_argument("--figure-images", type=int, default=6)
    parser.add_argument("--machine", default=None, help="Machine description for the report.")
    parser.add_argument("--date", default=None, help="Date for the report (default: today).")
    parser.add_argument("--note", default=None,
                        help="A paragraph for the report (e.g. what could not be run).")
    parser.add_argument("--report-only", action="store_true",
                        help="Only rebuild the report and figure from finished runs.")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


# =============================================================================== runs
def base_config(args, seed, method):
    from synpose_keras.training.configs import apply_overrides, get_preset

    overrides = dict(CPU_COMPARISON) if args.pin else {}
    overrides.update({"task": args.task, "seed": seed, "method": method})
    for item in args.overrides:
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    return apply_overrides(get_preset(args.preset), overrides)


def _train(config, run_dir, resume, verbose):
    import keras

    from synpose_keras.training.train import train

    started = time.time()
    result = train(config, run_dir, resume=resume, verbose=verbose, log=print)
    keras.backend.clear_session()
    gc.collect()
    return result, time.time() - started


def _finished(run_dir, label):
    path = os.path.join(run_dir, "evaluation.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return label in json.load(f).get("rows", {})


def run_base(args, seed, kind, timings):
    """The shared pre-training ``kind`` ("erm" or "restyled") of ``seed``."""
    run_dir = os.path.join(args.out, f"seed{seed}", kind)
    if _finished(run_dir, "after pretrain"):
        return run_dir
    if kind == "erm":
        config = base_config(args, seed, "source-only")
        config.stages = ("pretrain",)
    else:
        config = base_config(args, seed, "ours")
        config.stages = ("style", "pretrain", "generator")
    resume = os.path.exists(os.path.join(run_dir, "state.json"))
    print(f"== seed {seed}: {kind} pre-training -> {run_dir}", flush=True)
    _, seconds = _train(config, run_dir, resume, 0 if args.quiet else 1)
    timings[f"seed{seed}/{kind}"] = seconds
    return run_dir


def run_method(args, seed, method, timings):
    """Copies the method's pre-training and runs its ``adapt`` stage (resumable)."""
    from synpose_keras.training.configs import load_config, save_config

    base = os.path.join(args.out, f"seed{seed}", BASE_OF[method])
    run_dir = os.path.join(args.out, f"seed{seed}", method)
    if _finished(run_dir, "after adapt"):
        return run_dir
    if not os.path.exists(run_dir):
        tmp = run_dir + ".copying"
        shutil.rmtree(tmp, ignore_errors=True)
        top_level = {"evaluation.json", "pose_predictor.keras", "logs"}
        shutil.copytree(base, tmp, ignore=lambda folder, names: (
            [n for n in names if n in top_level] if os.path.samefile(folder, base) else []))
        config = load_config(os.path.join(tmp, "config.json"))
        fresh = base_config(args, seed, method)
        config.method = method
        # the method's own settings and the adaptation schedule come from this comparison
        for field in ("adapt", "source_only", "uniframe", "regda", "ccssl"):
            setattr(config, field, getattr(fresh, field))
        save_config(config, os.path.join(tmp, "config.json"))
        os.replace(tmp, run_dir)
    config = base_config(args, seed, method)
    config.stages = ("adapt",)
    print(f"== seed {seed}: {method} adapt -> {run_dir}", flush=True)
    _, seconds = _train(config, run_dir, True, 0 if args.quiet else 1)
    timings[f"seed{seed}/{method}"] = seconds
    return run_dir


# =============================================================================== results
def evaluate_run(run_dir, target, thresholds=(0.05, 0.2)):
    import keras

    import synpose_keras.models  # noqa: F401  (registers the classes)
    from synpose_keras.training.evaluation import evaluate_predictor

    model = keras.models.load_model(os.path.join(run_dir, "pose_predictor.keras"))
    out = {}
    for threshold in thresholds:
        result = evaluate_predictor(model, target, "test", threshold=threshold)
        out[f"{threshold:g}"] = {"table": result["table"], "count": result["count"]}
    keras.backend.clear_session()
    return out


def summarize(results, skeleton, methods, threshold):
    """method -> column -> (mean, std, n) over seeds."""
    summary = {}
    for method in methods:
        runs = [r[threshold]["table"] for r in results.get(method, {}).values()]
        if not runs:
            continue
        summary[method] = {}
        for column in runs[0]:
            values = np.array([run[column] for run in runs], np.float64)
            std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            summary[method][column] = (float(values.mean()), std, len(values))
    return summary


def markdown_table(summary, methods, columns):
    header = "| Method | " + " | ".join(columns) + " | seeds |"
    lines = [header, "|" + "---|" * (len(columns) + 2)]
    for method in methods:
        if method not in summary:
            continue
        cells = []
        n = 0
        for column in columns:
            mean, std, n = summary[method][column]
            cells.append(f"{mean:.1f} ± {std:.1f}" if np.isfinite(std) else f"{mean:.1f}")
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines)


def qualitative_figure(args, target, methods, seed, path, count):
    """The same target test images, one row per method, keypoints drawn (paper's Figure A)."""
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import synpose_keras.models  # noqa: F401
    from synpose_keras.datasets.pipeline import eval_pipeline
    from synpose_keras.ops.heatmaps import decode_heatmaps
    from synpose_keras.skeletons import get_skeleton
    from synpose_keras.viz.overlays import draw_keypoints

    skeleton = get_skeleton(args.task)
    rows = [m for m in methods
            if os.path.exists(os.path.join(args.out, f"seed{seed}", m, "pose_predictor.keras"))]
    first = keras.models.load_model(os.path.join(args.out, f"seed{seed}", rows[0],
                                                 "pose_predictor.keras"))
    size, hm = first.input_size, first.heatmap_size
    batch = next(iter(eval_pipeline(target, input_size=size, heatmap_size=hm, batch_size=512,
                                    split="test")))
    # spread over the test split (neighbouring test images are frames of one sequence)
    pick = np.linspace(0, len(batch["image"]) - 1, count).round().astype(int)
    images = batch["image"].numpy()[pick].astype(np.uint8)
    gt, _ = decode_heatmaps(batch["heatmaps"].numpy()[pick])
    gt = np.asarray(gt) * (size / hm)
    visible = batch["weights"].numpy()[pick]
    scale = max(1, 192 // size)

    def big(image, keypoints, vis=None):
        up = np.kron(image, np.ones((scale, scale, 1), np.uint8))
        return draw_keypoints(up, keypoints * scale + (scale - 1) / 2.0, skeleton, visible=vis,
                              radius=2.5, line_width=2)

    grid = [("Ground truth", [big(im, kp, v) for im, kp, v in zip(images, gt, visible)])]
    for method in rows:
        model = keras.models.load_model(os.path.join(args.out, f"seed{seed}", method,
                                                     "pose_predictor.keras"))
        pred, _ = model.predict_keypoints(images)
        grid.append((LABELS[method], [big(im, kp) for im, kp in zip(images, pred)]))
    fig, axes = plt.subplots(len(grid), count, figsize=(1.6 * count, 1.6 * len(grid)),
                             squeeze=False)
    for r, (label, tiles) in enumerate(grid):
        for c, tile in enumerate(tiles):
            ax = axes[r][c]
            ax.imshow(tile)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(f"Target test images, seed {seed}: each method's argmax keypoints", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    from PIL import Image

    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)  # ~4x smaller
    return path


def write_report(args, results, timings, config, target, path, figure):
    from synpose_keras.skeletons import get_skeleton

    skeleton = get_skeleton(args.task)
    methods = [m for m in METHOD_ORDER if m in results]
    bases = [m for m in PRETRAININGS if m in results]
    stored = next(iter(next(iter(results.values())).values()))["0.05"]["table"]
    columns = [c for c in skeleton.columns if c in stored]
    seeds_done = {m: sorted(int(s) for s in results[m]) for m in methods}
    date = args.date or datetime.date.today().isoformat()
    machine = args.machine or "this machine"
    c = config
    lines = [
        "# Comparison of the methods on the embedded benchmark",
        "",
        f"Measured {date} on {machine} with `examples/compare.py` (numbers below are the "
        "measured ones, nothing else).",
        "",
        f"- Task: {args.task} (embedded synthetic benchmark, source -> target, target test split,"
        f" {next(iter(next(iter(results.values())).values()))['0.05']['count']} images).",
        f"- Preset `{args.preset}`"
        + (" with the pinned `CPU_COMPARISON` settings of `examples/compare.py`" if args.pin
           else "") + f" and overrides {args.overrides or 'none'}: backbone "
        f"{c.model.backbone} (width {c.model.width_multiplier}), input {c.model.input_size} -> "
        f"heatmaps {c.model.heatmap_size}; pre-training {c.pretrain.epochs} x "
        f"{c.pretrain.iterations} iterations (batch {c.pretrain.batch_size}); adaptation "
        f"{c.adapt.epochs} x {c.adapt.iterations} iterations (batch {c.adapt.batch_size} + "
        f"{c.adapt.target_batch_size}) for every method (source-only continues supervised "
        "training for the same iterations).",
        "- Pre-trainings shared per seed: ERM (source-only, RegDA, CC-SSL) and restyled (ours, "
        "UniFrame); see `synpose_keras/training/methods/registry.py`.",
        "- Seeds per method: " + ", ".join(f"{LABELS[m]} {seeds_done[m]}" for m in methods) + ".",
        "- Model reported: the last epoch (no best-checkpoint selection on the test split).",
        "",
    ]
    if args.note:
        lines += [f"**Note.** {args.note}", ""]
    lines += [
        "## PCK@0.05 (the protocol), mean ± std over seeds",
        "",
        markdown_table(summarize(results, skeleton, methods, "0.05"), methods, columns),
        "",
        f"At this preset the heatmaps are {c.model.heatmap_size} x {c.model.heatmap_size}, so the "
        f"0.05 threshold is {0.05 * c.model.heatmap_size:.1f} heatmap pixels: only an exact "
        "argmax pixel counts and every method scores low. PCK@0.2 separates them better:",
        "",
        "## PCK@0.2, mean ± std over seeds",
        "",
        markdown_table(summarize(results, skeleton, methods, "0.2"), methods, columns),
        "",
        "## The shared pre-trainings (before adaptation), mean ± std over seeds",
        "",
        "PCK@0.05:",
        "",
        markdown_table(summarize(results, skeleton, bases, "0.05"), bases, columns),
        "",
        "PCK@0.2:",
        "",
        markdown_table(summarize(results, skeleton, bases, "0.2"), bases, columns),
        "",
    ]
    if figure:
        rel = os.path.relpath(figure, os.path.dirname(os.path.abspath(path)))
        lines += ["## Qualitative comparison", "",
                  f"![The same target test images, each method's keypoints]({rel})", "",
                  f"Seed {min(args.seeds)}; {args.figure_images} target test images spread over "
                  "the split; the top row is the ground truth.", ""]
    if timings:
        lines += ["## Wall-clock time of the runs", "",
                  "| run | minutes |", "|---|---|"]
        lines += [f"| {k} | {v / 60:.1f} |" for k, v in sorted(timings.items())
                  if int(k.split("/")[0][4:]) in args.seeds]
        lines += ["", "The machine was shared with other jobs; times are indicative only.", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


# =============================================================================== main
def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    from synpose_keras.training.runner import ensure_benchmark

    source, target = ensure_benchmark(args.task)
    results_path = os.path.join(args.out, "results.json")
    saved = json.load(open(results_path)) if os.path.exists(results_path) else {}
    results, timings = saved.get("results", {}), saved.get("timings", {})

    def save():
        with open(results_path, "w") as f:
            json.dump({"results": results, "timings": timings}, f, indent=2, sort_keys=True)

    if not args.report_only:
        for seed in args.seeds:
            for kind in sorted({BASE_OF[m] for m in args.methods}):
                run_base(args, seed, kind, timings)
                save()
            for method in args.methods:
                run_dir = run_method(args, seed, method, timings)
                results.setdefault(method, {})[str(seed)] = evaluate_run(run_dir, target)
                save()
    for seed in args.seeds:  # the shared pre-trainings, for reference
        for kind in ("erm", "restyled"):
            run_dir = os.path.join(args.out, f"seed{seed}", kind)
            key = f"pretrain:{kind}"
            if (os.path.exists(os.path.join(run_dir, "pose_predictor.keras"))
                    and str(seed) not in results.get(key, {})):
                results.setdefault(key, {})[str(seed)] = evaluate_run(run_dir, target)
                save()
    figure = None
    if args.figure:
        figure = qualitative_figure(args, target, [m for m in METHOD_ORDER if m in results],
                                    min(args.seeds), args.figure, args.figure_images)
        print(f"figure: {figure}")
    if args.doc:
        config = base_config(args, min(args.seeds), "ours")
        print(f"report: {write_report(args, results, timings, config, target, args.doc, figure)}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
