"""``synpose report RUN``: the figures and a markdown summary of a training run.

Reads what ``synpose train`` wrote (layout in :mod:`synpose_keras.training.runner`) and writes
into ``RUN/report/`` (or ``out_dir``):

- ``pck.png``: PCK@0.05 per part group for each evaluated stage (``RUN/evaluation.json`` rows);
- ``pseudo_labels.png``: per-epoch pseudo-label statistics (``RUN/adapt/pseudo_labels.json``);
- ``training.png``: the logged losses of each stage (``RUN/<stage>/history.json``);
- ``target_pck.png``: per-epoch PCK (All) on the target test split, when it was monitored;
- ``predictions.png``: the final model's keypoints on a few target test images (protocol crop;
  ground truth in white), when the run's target data is still there;
- ``README.md``: tables (``table_to_markdown``), the integration switch, the final pseudo-label
  statistics and links to the figures. Every number is the one measured in this run.

Anything missing (no adaptation stage, no labelled target, data moved) is skipped and said so in
the README, never an error.
"""

from __future__ import annotations

import json
import math
import os
from typing import Optional

from synpose_keras.training.configs import STAGES

_LOSS_EXCLUDE = ("epoch", "combined", "overlap", "target_pck_all")


def _read_json(path: str):
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _loss_logs(history: list) -> list:
    """Rows restricted to the losses (keys every row has, numeric, not statistics)."""
    if not history:
        return []
    keys = [k for k in history[0] if k not in _LOSS_EXCLUDE and not k.startswith("pl_")
            and all(_number(r.get(k)) for r in history)]
    if not keys:
        return []
    return [{"epoch": r["epoch"], **{k: float(r[k]) for k in keys}} for r in history]


def integration_switch(pseudo_history: Optional[list],
                       adapt_history: Optional[list]) -> Optional[dict]:
    """When the integrated schedule switched to the combined mask.

    Returns:
        None when neither history has a ``combined`` entry, else a dict ``switched`` (bool),
        ``epoch`` (1-based adaptation epoch after which it switched, or None), ``overlap`` (that
        epoch's M_2D/M_3D overlap, or the largest seen when it never switched).
    """
    # the adapt history holds the training-time overlap that the schedule compared
    for history in (adapt_history, pseudo_history):
        rows = [r for r in (history or []) if "combined" in r]
        if not rows:
            continue
        overlaps = [r.get("overlap") for r in rows if _number(r.get("overlap"))
                    and math.isfinite(r["overlap"])]
        for r in rows:
            if bool(r["combined"]):
                overlap = r.get("overlap")
                return {"switched": True, "epoch": int(r["epoch"]) + 1,
                        "overlap": overlap if _number(overlap) else None}
        return {"switched": False, "epoch": None, "overlap": max(overlaps) if overlaps else None}
    return None


def _overlays(run_dir: str, config: dict, out_dir: str, count: int) -> tuple:
    """predictions.png of the final model on the first ``count`` target test images."""
    import numpy as np

    target = config.get("target")
    model_path = os.path.join(run_dir, "pose_predictor.keras")
    if not target:
        return None, "no target dataset in config.json"
    if not os.path.isfile(model_path):
        return None, f"no final model ({model_path})"
    from synpose_keras.datasets import read_meta

    try:
        meta = read_meta(target)
    except (FileNotFoundError, ValueError) as err:
        return None, f"target data not available ({err})"
    split = "test" if "test" in meta.get("counts", {}) else next(iter(meta.get("counts", {})), None)
    if split is None:
        return None, f"the target {target} has no split"
    from synpose_keras.datasets.pipeline import eval_pipeline
    from synpose_keras.inference.loading import load_pose_model
    from synpose_keras.skeletons import get_skeleton
    from synpose_keras.viz import add_legend, contact_sheet, draw_keypoints

    model, _, _ = load_pose_model(model_path)
    skeleton = get_skeleton(meta["skeleton"])
    chosen = _spread_over_sequences(target, split, count)
    ds = eval_pipeline(target, input_size=int(model.input_size),
                       heatmap_size=int(model.heatmap_size), batch_size=count, split=split)
    picked = [example for index, example in enumerate(ds.unbatch().take(max(chosen) + 1))
              if index in chosen]
    images = np.stack([e["image"].numpy() for e in picked])
    predicted, scores = model.predict_keypoints(images)
    gt = np.stack([e["keypoints"].numpy() for e in picked])
    visible = np.stack([e["visible"].numpy() for e in picked])
    tiles = []
    for image, kp, sc, g, v in zip(images, predicted, scores, gt, visible):
        tile = np.clip(image, 0, 255).astype(np.uint8)
        tile = draw_keypoints(tile, g, skeleton, visible=v, radius=1.5, color=(255, 255, 255))
        tiles.append(draw_keypoints(tile, kp, skeleton, scores=sc, radius=1.5))
    sheet = contact_sheet(tiles, columns=min(4, len(tiles)))
    scale = max(1, 256 // max(1, int(model.input_size)))
    if scale > 1:  # small demo inputs: enlarge so the skeleton is visible
        sheet = sheet.resize((sheet.size[0] * scale, sheet.size[1] * scale), 0)
    sheet = add_legend(sheet, [((255, 255, 255), "ground truth"),
                               (None, "prediction (one colour per keypoint)")])
    out = os.path.join(out_dir, "predictions.png")
    sheet.save(out)
    return out, (f"{len(tiles)} {split} images of {target}"
                 + (f" ({chosen.sequences} sequences)" if chosen.sequences > 1 else ""))


class _Chosen(set):
    """Indices of the records drawn, and how many sequences they come from."""

    sequences = 0


def _spread_over_sequences(target: str, split: str, count: int, scan: int = 5000) -> _Chosen:
    """Indices of ``count`` records of ``split``, one per sequence first (in record order, among
    the first ``scan`` records), then the next records; datasets without sequences give the
    first ``count``."""
    from synpose_keras.datasets import load_records

    sequences = [s.numpy().decode("utf-8", "replace") for s in
                 load_records(target, split).map(lambda r: r["sequence"]).take(scan)]
    first, seen = [], set()
    for index, sequence in enumerate(sequences):
        if sequence and sequence not in seen:
            seen.add(sequence)
            first.append(index)
    chosen = first[:count]
    for index in range(len(sequences)):
        if len(chosen) >= count:
            break
        if index not in chosen:
            chosen.append(index)
    out = _Chosen(chosen)
    out.sequences = len({sequences[i] for i in chosen if sequences[i]})
    return out


def make_report(run_dir, out_dir: Optional[str] = None, num_overlays: int = 8) -> dict:
    """Draws the run's figures and writes ``README.md`` into ``RUN/report/``.

    Args:
        run_dir: str or path. RUN folder of ``synpose train``.
        out_dir: optional str. Where to write; defaults to ``RUN/report``.
        num_overlays: int. Target test images in ``predictions.png`` (0: none). Defaults to 8.

    Returns:
        dict: ``dir`` (the report folder), ``readme`` (path), ``figures`` (name -> path of each
        PNG written), ``skipped`` (name -> reason), ``switch`` (see :func:`integration_switch`).

    Raises:
        FileNotFoundError: ``run_dir`` is not a run folder (no config.json, evaluation.json nor
            stage history).

    Example:

    ```python
    from synpose_keras.inference import make_report
    report = make_report("runs/hand")   # runs/hand/report/README.md and PNGs
    ```
    """
    from synpose_keras.metrics import table_to_markdown
    from synpose_keras.skeletons import get_skeleton
    from synpose_keras.viz import metric_curves, pck_bars, pseudo_label_curves, training_curves

    run_dir = os.path.abspath(os.fspath(run_dir))
    config = _read_json(os.path.join(run_dir, "config.json")) or {}
    evaluation = _read_json(os.path.join(run_dir, "evaluation.json"))
    histories = {s: _read_json(os.path.join(run_dir, s, "history.json")) for s in STAGES}
    histories = {s: h for s, h in histories.items() if h}
    if not (config or evaluation or histories):
        raise FileNotFoundError(
            f"{run_dir} is not a run folder of `synpose train` (no config.json, evaluation.json "
            "or <stage>/history.json)."
        )
    out_dir = os.path.abspath(out_dir or os.path.join(run_dir, "report"))
    os.makedirs(out_dir, exist_ok=True)
    figures, skipped = {}, {}
    task = (evaluation or {}).get("task") or config.get("task")
    skeleton = get_skeleton(task) if task else None
    adapt_cfg = config.get("adapt", {})

    # ---------------------------------------------------------------- PCK per stage
    rows = {name: row["table"] for name, row in ((evaluation or {}).get("rows") or {}).items()}
    if rows:
        split = (evaluation or {}).get("split", "")
        figures["pck"] = pck_bars(rows, os.path.join(out_dir, "pck.png"),
                                  title=f"PCK@0.05 on the target {split} split",
                                  columns=skeleton.columns if skeleton else None)
    else:
        skipped["pck"] = "no evaluation.json rows"

    # ---------------------------------------------------------------- pseudo-labels
    pseudo = _read_json(os.path.join(run_dir, "adapt", "pseudo_labels.json"))
    if pseudo:
        figures["pseudo_labels"] = pseudo_label_curves(
            pseudo, os.path.join(out_dir, "pseudo_labels.png"),
            threshold=adapt_cfg.get("overlap_threshold"))
    else:
        skipped["pseudo_labels"] = ("no adapt/pseudo_labels.json" if pseudo is None else
                                    "no pseudo-label statistics (unlabelled target)")

    # ---------------------------------------------------------------- training curves
    losses = {s: _loss_logs(h) for s, h in histories.items()}
    losses = {s: h for s, h in losses.items() if h}
    if losses:
        figures["training"] = training_curves(losses, os.path.join(out_dir, "training.png"))
    else:
        skipped["training"] = "no <stage>/history.json"
    monitored = {s: [{"epoch": r["epoch"], "target_pck_all": float(r["target_pck_all"])}
                     for r in h if _number(r.get("target_pck_all"))]
                 for s, h in histories.items()}
    monitored = {s: h for s, h in monitored.items() if h}
    if monitored:
        figures["target_pck"] = metric_curves(monitored, os.path.join(out_dir, "target_pck.png"))

    # ---------------------------------------------------------------- overlays
    overlay_note = None
    if num_overlays > 0:
        path, overlay_note = _overlays(run_dir, config, out_dir, num_overlays)
        if path:
            figures["predictions"] = path
        else:
            skipped["predictions"] = overlay_note

    switch = integration_switch(pseudo, histories.get("adapt"))
    readme = os.path.join(out_dir, "README.md")
    text = _readme(run_dir, config, evaluation, rows, skeleton, pseudo, switch, figures, skipped,
                   overlay_note, out_dir, table_to_markdown)
    tmp = readme + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, readme)
    return {"dir": out_dir, "readme": readme, "figures": figures, "skipped": skipped,
            "switch": switch}


def _readme(run_dir, config, evaluation, rows, skeleton, pseudo, switch, figures, skipped,
            overlay_note, out_dir, table_to_markdown) -> str:
    def link(name):
        return os.path.relpath(figures[name], out_dir).replace(os.sep, "/")

    adapt_cfg = config.get("adapt", {})
    lines = [f"# Run report: {os.path.basename(run_dir)}", ""]
    facts = [("task", config.get("task") or (evaluation or {}).get("task")),
             ("method", config.get("method") or (evaluation or {}).get("method")),
             ("preset", config.get("preset")),
             ("source", config.get("source")),
             ("target", (evaluation or {}).get("target") or config.get("target")),
             ("stages", ", ".join(config.get("stages", [])) or None),
             ("pseudo-label masks", adapt_cfg.get("pseudo")),
             ("reconstruction loss", None if "rec" not in adapt_cfg else
              ("on" if adapt_cfg["rec"] else "off")),
             ("seed", config.get("seed"))]
    lines += [f"- {k}: {v}" for k, v in facts if v not in (None, "")]
    lines.append("")

    lines += ["## PCK@0.05", ""]
    if rows and skeleton is not None:
        counts = {n: r.get("count") for n, r in evaluation["rows"].items()}
        split = evaluation.get("split", "test")
        lines.append(f"Target `{split}` split, protocol crop, threshold 0.05 x heatmap size "
                     f"({', '.join(f'{n}: {c} samples' for n, c in counts.items())}).")
        lines += ["", table_to_markdown(rows, skeleton, name_header="Stage"), ""]
        from synpose_keras.metrics.table import gain_line

        gain = gain_line(evaluation)
        if gain:
            lines += [f"**{gain}**", ""]
        if "All-16" in skeleton.columns:
            lines += ["All = mean of the 12 limb joints (TLlib protocol); All-16 = mean of all "
                      "16 keypoints (the paper's All).", ""]
        lines += [f"![PCK per part group]({link('pck')})", ""]
    else:
        lines += ["No evaluation in this run (`evaluation.json` missing or empty).", ""]

    lines += ["## Pseudo-labels", ""]
    mode = adapt_cfg.get("pseudo")
    threshold = adapt_cfg.get("overlap_threshold")
    if switch is None:
        lines.append("No adaptation statistics in this run.")
    elif mode not in (None, "integrated"):
        lines.append(f"Mask strategy `{mode}`: no switch to a combined mask by design.")
    elif switch["switched"]:
        lines.append(f"The integrated schedule switched to the combined mask (M_2D ∪ M_3D) after "
                     f"adaptation epoch {switch['epoch']} (overlap {_fmt(switch['overlap'])}"
                     + (f" ≥ threshold {threshold}" if threshold is not None else "") + ").")
    else:
        lines.append("The integrated schedule did not switch to the combined mask: the largest "
                     f"M_2D/M_3D overlap was {_fmt(switch['overlap'])}"
                     + (f" (threshold {threshold})" if threshold is not None else "") + ".")
    lines.append("")
    if pseudo:
        last = pseudo[-1]
        lines += ["| epoch | overlap | selected | accuracy | saturation | coincidence | inverted "
                  "| combined |",
                  "|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in pseudo:
            lines.append(f"| {r['epoch'] + 1} | {_fmt(r.get('overlap'))} "
                         f"| {r.get('selected', '-')} | {_fmt(r.get('accuracy'))} "
                         f"| {_fmt(r.get('saturation'))} | {_fmt(r.get('coincidence'))} "
                         f"| {_fmt(r.get('inversion'))} "
                         f"| {'yes' if r.get('combined') else 'no'} |")
        lines += ["", f"Final epoch: overlap {_fmt(last.get('overlap'))}, label accuracy "
                  f"{_fmt(last.get('accuracy'))}, saturation {_fmt(last.get('saturation'))}, "
                  f"coincidence of wrong labels {_fmt(last.get('coincidence'))}, teacher poses "
                  f"inverted (mirror image) {_fmt(last.get('inversion'))} (measured on "
                  "labelled target training samples; analysis only).", "",
                  f"![Pseudo-label statistics]({link('pseudo_labels')})", ""]
    elif "pseudo_labels" in skipped:
        lines += [f"Pseudo-label curves skipped: {skipped['pseudo_labels']}.", ""]

    lines += ["## Training", ""]
    if "training" in figures:
        lines += [f"![Training losses]({link('training')})", ""]
    else:
        lines += ["No stage history in this run.", ""]
    if "target_pck" in figures:
        lines += ["Per-epoch PCK (All) on up to 500 target test samples:", "",
                  f"![Target PCK per epoch]({link('target_pck')})", ""]

    lines += ["## Predictions", ""]
    if "predictions" in figures:
        lines += [f"Final model (`pose_predictor.keras`) on {overlay_note}; coloured: predicted, "
                  "white: ground truth.", "", f"![Predictions]({link('predictions')})", ""]
    else:
        lines += [f"Skipped: {overlay_note or 'disabled'}.", ""]
    return "\n".join(lines)
