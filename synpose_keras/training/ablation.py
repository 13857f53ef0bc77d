"""The ablation of the paper's supplementary Table A over seeds (``synpose ablate``).

For each seed the shared stages of our method (``style``, ``pretrain``, ``generator``) run once
into ``OUT/seed<S>/shared``; each variant then copies that run into its own folder and trains
only the ``adapt`` stage, so the variants differ in the adaptation alone. ``oracle`` is the
exception: the predictor trained on the target's labelled train split with the same schedule and
seed (``synpose train --method oracle``), in its own run ``OUT/seed<S>/oracle``.

=====================  ======================  ============================================
variant                folder                  adaptation
=====================  ======================  ============================================
source-only            source-only             L_src only (same iterations; the target's
                                               student views still pass through the
                                               student's BatchNorm, without a loss —
                                               ``synpose train``'s source-only reference
                                               sees no target image)
baseline               baseline                + 2D pseudo-labels (M_2D: the 50% most
                                               confident), no reconstruction
+pseudo                plus_pseudo             + integrated 2D/3D pseudo-labels, no rec
+rec                   plus_rec                baseline + geometric reconstruction
+rec (λ=0)             plus_rec_lambda0        +rec with ``adapt.lambda_rec=0``: the same
                                               batches through the student's BatchNorm,
                                               no reconstruction gradient
+pseudo+rec            plus_pseudoplus_rec     integrated pseudo-labels + reconstruction (the
                                               full method)
oracle                 oracle                  ``--method oracle``: trained on the target's
                                               labels (the ceiling)
=====================  ======================  ============================================

Analysis variants, run only when named (they feed the target's labels into the pseudo-label
path, ``adapt.oracle_labels``, so they are ceilings of that path, never adaptation results):
``oracle-labels`` (every keypoint labelled, ``adapt.mask_fraction=1``) and
``oracle-labels-masked`` (only the teacher's 50% mask).

Outputs in ``OUT``: ``ablation.json`` (``{variant: {seed: {column: PCK@0.05}}}``, seeds as
strings, the part-group table of the variant's final model on the target test split; the extra
row ``pretrain`` is the shared pre-trained model), ``ablation.md`` (mean ± std over seeds per part
group, the number of seeds and the per-seed All values), ``ablation_settings.json`` (task,
preset, overrides, data) and, with ``coarse_threshold``, ``ablation_pck<t>.json`` (the same at a
looser threshold, e.g. PCK@0.2). Re-running the same call skips every finished run.

Example:

```python
from synpose_keras.training.ablation import run_ablation

results = run_ablation("hand", seeds=[0, 1, 2], out="runs/ablation-hand",
                       variants=["source-only", "+rec", "+rec (λ=0)", "oracle"])
results["+rec"]["0"]["All"]  # PCK@0.05 All (%) of seed 0's +rec model
```

Reference:
    Lin, Gu, Yang, Yao, "Synthetic-to-Real Pose Estimation with Geometric Reconstruction",
    NeurIPS 2023, supplementary Table A.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from typing import Callable, Optional, Sequence

import numpy as np

from synpose_keras.skeletons import get_skeleton
from synpose_keras.training.configs import (
    TrainConfig,
    apply_overrides,
    get_preset,
    load_config,
    save_config,
)
from synpose_keras.training.runner import RunConfigError, _read_json, _write_json
from synpose_keras.training.train import train

SHARED_STAGES = ("style", "pretrain", "generator")
#: keys the ablation sets itself; ``--set`` may not change them
RESERVED_KEYS = ("task", "seed", "method", "stages", "adapt.source_only_reference")
#: name of the row of the shared pre-trained model in the tables
PRETRAIN_ROW = "pretrain"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the ablation table.

    Args:
        name: str. Row name (``+rec (λ=0)``).
        folder: str. Filesystem-safe folder name of its runs (``OUT/seed<S>/<folder>``).
        overrides: dict. Config overrides of its run (dotted paths, as ``--set``).
        description: str. One line for the table's legend.
        method: str. ``ours`` (a copy of the shared run that trains ``adapt`` only) or ``oracle``
            (its own run of ``--method oracle``: pretrain + adapt on the target's labels).
            Defaults to "ours".
    """

    name: str
    folder: str
    overrides: dict
    description: str
    method: str = "ours"

    @property
    def row(self) -> str:
        """The row of the run's ``evaluation.json`` that holds its final model."""
        return "oracle" if self.method == "oracle" else "after adapt"


VARIANTS = {v.name: v for v in (
    Variant("source-only", "source-only", {"adapt.pseudo": "none", "adapt.rec": False},
            "L_src only for the same iterations (target images pass through the student's "
            "BatchNorm without a loss; synpose train's source-only reference sees none)"),
    Variant("baseline", "baseline", {"adapt.pseudo": "2d", "adapt.rec": False},
            "+ 2D pseudo-labels (M_2D, the 50% most confident), no reconstruction"),
    Variant("+pseudo", "plus_pseudo", {"adapt.pseudo": "integrated", "adapt.rec": False},
            "+ integrated 2D/3D pseudo-labels, no reconstruction"),
    Variant("+rec", "plus_rec", {"adapt.pseudo": "2d", "adapt.rec": True},
            "baseline + geometric reconstruction"),
    Variant("+rec (λ=0)", "plus_rec_lambda0",
            {"adapt.pseudo": "2d", "adapt.rec": True, "adapt.lambda_rec": 0.0},
            "+rec's batches (base and driving images through the student's BatchNorm) without "
            "the reconstruction gradient: the BatchNorm confound"),
    Variant("+pseudo+rec", "plus_pseudoplus_rec",
            {"adapt.pseudo": "integrated", "adapt.rec": True},
            "integrated pseudo-labels + reconstruction (the full method)"),
    Variant("oracle", "oracle", {}, "trained on the target's labelled train split with the "
            "same schedule (--method oracle): the ceiling", method="oracle"),
)}
ANALYSIS_VARIANTS = {v.name: v for v in (
    Variant("oracle-labels", "oracle_labels",
            {"adapt.pseudo": "2d", "adapt.rec": False, "adapt.oracle_labels": True,
             "adapt.mask_fraction": 1.0},
            "analysis: the target's stored labels for every keypoint in the pseudo-label path"),
    Variant("oracle-labels-masked", "oracle_labels_masked",
            {"adapt.pseudo": "2d", "adapt.rec": False, "adapt.oracle_labels": True},
            "analysis: the target's stored labels at the positions of the teacher's 50% mask"),
)}
#: the default variants, in table order
DEFAULT_VARIANTS = tuple(VARIANTS)


def resolve_variants(names: Optional[Sequence[str]] = None) -> list:
    """The :class:`Variant` objects of ``names`` (row or folder names), duplicates dropped.

    Args:
        names: optional sequence of str. Defaults to every variant of :data:`DEFAULT_VARIANTS`.

    Example:
    >>> [v.folder for v in resolve_variants(["+rec (λ=0)", "plus_rec"])]
    ['plus_rec_lambda0', 'plus_rec']
    """
    known = {**VARIANTS, **ANALYSIS_VARIANTS}
    by_folder = {v.folder: v for v in known.values()}
    out = []
    for name in names or DEFAULT_VARIANTS:
        variant = known.get(name.strip()) or by_folder.get(name.strip())
        if variant is None:
            raise ValueError(
                f"Unknown ablation variant {name!r}. Expected one of {list(known)} (or their "
                f"folder names {list(by_folder)}). Received: variants={list(names)!r}")
        if variant not in out:
            out.append(variant)
    return out


# ============================================================================== running
def run_ablation(task: str, seeds: Sequence[int], out: str, preset: str = "demo",
                 overrides: Optional[dict] = None, variants: Optional[Sequence[str]] = None,
                 source: Optional[str] = None, target: Optional[str] = None,
                 coarse_threshold: Optional[float] = None, log: Callable = print,
                 checkpoint_every: int = 50) -> dict:
    """Runs the ablation (or what is missing of it) and writes its tables into ``out``.

    Args:
        task: str. "hand" or "body".
        seeds: sequence of int. Run seeds; each seed has its own shared stages.
        out: str. Output folder (``OUT/seed<S>/<variant folder>``, the tables).
        preset: str. Config preset ("demo", "paper", "tiny"). Defaults to "demo".
        overrides: optional dict. Config overrides for every run (``{"adapt.epochs": "2"}``);
            a variant's own settings win over them. ``task``, ``seed``, ``method``, ``stages``
            and ``adapt.source_only_reference`` are set by the ablation and refused here.
        variants: optional sequence of str. Row or folder names; defaults to
            :data:`DEFAULT_VARIANTS`.
        source, target: optional str. Converted datasets; both None: the embedded benchmark.
        coarse_threshold: optional float. Also tabulate PCK at this threshold (e.g. 0.2) in
            ``OUT/ablation_pck<t>.json`` and the markdown. Defaults to None.
        log: callable for messages.
        checkpoint_every: int. Checkpoint every N steps within an epoch.

    Returns:
        dict: ``{row: {str(seed): {column: PCK@0.05 (%)}}}``, rows ``pretrain`` then the
        variants in order (what ``OUT/ablation.json`` holds).

    Raises:
        ValueError: an unknown variant or override, a reserved override, or ``out`` holding an
            ablation with other settings (all before any training).
        RunConfigError: data that cannot work (e.g. a target without a labelled test split).
    """
    overrides = {str(k): v for k, v in (overrides or {}).items()}
    chosen = resolve_variants(variants)
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise ValueError("The ablation needs at least one seed. Received: seeds=[]")
    reserved = sorted(set(overrides) & set(RESERVED_KEYS))
    if reserved:
        raise ValueError(
            f"The ablation sets {reserved} itself (use --task and --seeds; every variant fixes "
            f"its method and stages). Received: overrides={overrides!r}")
    if (source is None) != (target is None):
        raise RunConfigError("Pass both --source and --target, or neither (embedded benchmark).")
    if target is not None:
        _check_labelled_target(target, [v.name for v in chosen if v.name.startswith("oracle")])
    # every config is built once before any training, so a bad override fails fast
    for seed in seeds:
        _shared_config(task, seed, preset, overrides, source, target)
        for variant in chosen:
            _variant_config(variant, task, seed, preset, overrides, source, target)
    # as ablation_settings.json will read back (tuples as lists), so the comparison is exact
    settings = json.loads(json.dumps({"task": task, "preset": preset, "overrides": overrides,
                                      "source": source, "target": target}))
    _check_settings(out, settings)
    settings["coarse_threshold"] = coarse_threshold
    os.makedirs(out, exist_ok=True)

    results = {PRETRAIN_ROW: {}}
    results.update({v.name: {} for v in chosen})
    coarse = {name: {} for name in results} if coarse_threshold else None
    for seed in seeds:
        key = str(seed)
        shared_dir = os.path.join(out, f"seed{seed}", "shared")
        shared = _run_shared(task, seed, preset, overrides, source, target, shared_dir, log,
                             checkpoint_every)
        data_source, data_target = shared["source"], shared["target"]
        settings["data"] = {"source": data_source, "target": data_target}
        results[PRETRAIN_ROW][key] = _ordered(shared["rows"]["after pretrain"]["table"], task)
        if coarse is not None:
            coarse[PRETRAIN_ROW][key] = _ordered(pck_table(
                os.path.join(shared_dir, "pretrain", "pose_predictor.keras"), data_target,
                coarse_threshold), task)
        for variant in chosen:
            run_dir = os.path.join(out, f"seed{seed}", variant.folder)
            config = _variant_config(variant, task, seed, preset, overrides, data_source,
                                     data_target)
            evaluation = _run_variant(variant, config, shared_dir, run_dir, seed, log,
                                      checkpoint_every)
            results[variant.name][key] = _ordered(evaluation["rows"][variant.row]["table"], task)
            if coarse is not None:
                coarse[variant.name][key] = _ordered(pck_table(
                    os.path.join(run_dir, "pose_predictor.keras"), data_target,
                    coarse_threshold), task)
            write_tables(out, results, settings, coarse)
    write_tables(out, results, settings, coarse)
    return results


def _ordered(table: dict, task: str) -> dict:
    """The table's columns in the skeleton's order (``evaluation.json`` stores them sorted)."""
    columns = get_skeleton(task).columns
    return {**{c: table[c] for c in columns if c in table},
            **{c: v for c, v in table.items() if c not in columns}}


def _base_overrides(task, seed, overrides, source, target) -> dict:
    base = {"task": task, "seed": seed, **overrides, "adapt.source_only_reference": False}
    if source is not None:
        base["source"], base["target"] = str(source), str(target)
    return base


def _shared_config(task, seed, preset, overrides, source, target) -> TrainConfig:
    return apply_overrides(get_preset(preset), {
        **_base_overrides(task, seed, overrides, source, target), "method": "ours",
        "stages": SHARED_STAGES})


def _variant_config(variant, task, seed, preset, overrides, source, target) -> TrainConfig:
    stages = ("pretrain", "adapt") if variant.method == "oracle" else ("adapt",)
    return apply_overrides(get_preset(preset), {
        **_base_overrides(task, seed, overrides, source, target), **variant.overrides,
        "method": variant.method, "stages": stages})


def _check_labelled_target(target: str, oracles: list) -> None:
    """The target's labels the ablation needs: the test split (every row) and the train split
    (the ``oracle*`` variants), checked before any training."""
    from synpose_keras.datasets import read_meta
    from synpose_keras.training.train import _has_labelled_split

    meta = read_meta(str(target))
    found = f"meta.json labels: {meta.get('labels', '?')!r}, counts: {meta.get('counts')}"
    if not _has_labelled_split(meta, "test"):
        raise RunConfigError(
            f"The ablation scores every variant on the target's labelled test split, but "
            f"{target} has none ({found}). Pass a labelled target (--target DIR).")
    if oracles and not _has_labelled_split(meta, "train"):
        raise RunConfigError(
            f"The variants {oracles} train on the target's labelled train split, but {target} "
            f"has none ({found}). Leave them out of --variants.")


def _check_settings(out: str, settings: dict) -> None:
    """Refuses to mix runs of different settings in one folder."""
    saved = _read_json(os.path.join(out, "ablation_settings.json"))
    if saved is None:
        return
    differ = [k for k in settings if saved.get(k) != settings[k]]
    if differ:
        raise ValueError(
            f"{out} holds an ablation with other settings ({', '.join(differ)}: "
            f"{ {k: saved.get(k) for k in differ} } there, { {k: settings[k] for k in differ} } "
            "now; see ablation_settings.json). Re-run with the same options to continue it, or "
            "choose another --out.")


def _completed(run_dir: str) -> list:
    return _read_json(os.path.join(run_dir, "state.json"), {"completed": []})["completed"]


def _run_shared(task, seed, preset, overrides, source, target, shared_dir, log,
                checkpoint_every) -> dict:
    """The shared stages of one seed (skipped when finished); returns their evaluation."""
    evaluation = _read_json(os.path.join(shared_dir, "evaluation.json"))
    if (evaluation is not None and set(SHARED_STAGES) <= set(_completed(shared_dir))
            and "after pretrain" in evaluation.get("rows", {})):
        log(f"seed {seed}: shared stages already finished in {shared_dir}; skipped")
        return evaluation
    config = _shared_config(task, seed, preset, overrides, source, target)
    t0 = time.time()
    resume = os.path.exists(os.path.join(shared_dir, "state.json"))
    evaluation = train(config, shared_dir, resume=resume, verbose=0, log=log,
                       checkpoint_every=checkpoint_every)
    if "after pretrain" not in evaluation["rows"]:
        raise RunConfigError(
            f"The ablation scores every variant on the target's labelled test split, but the "
            f"shared run {shared_dir} could not be evaluated: "
            f"{evaluation.get('skipped', 'no after-pretrain row')}.")
    log(f"seed {seed}: shared stages in {time.time() - t0:.0f} s")
    return evaluation


def _run_variant(variant, config, shared_dir, run_dir, seed, log, checkpoint_every) -> dict:
    """One variant of one seed (skipped when finished); returns its evaluation."""
    _refuse_foreign_run(variant, run_dir)
    evaluation = _read_json(os.path.join(run_dir, "evaluation.json"))
    if (evaluation is not None and "adapt" in _completed(run_dir)
            and variant.row in evaluation.get("rows", {})):
        log(f"seed {seed}: {variant.name} already finished in {run_dir}; skipped")
        return evaluation
    t0 = time.time()
    if variant.method == "oracle":
        resume = os.path.exists(os.path.join(run_dir, "state.json"))
        evaluation = train(config, run_dir, resume=resume, verbose=0, log=log,
                           checkpoint_every=checkpoint_every)
    else:
        if os.path.exists(run_dir) and not os.path.exists(
                os.path.join(run_dir, "adapt", "progress.json")):
            shutil.rmtree(run_dir)  # a copy whose adaptation never started: copy afresh
        if not os.path.exists(run_dir):
            tmp = run_dir + ".copying"
            if os.path.exists(tmp):
                shutil.rmtree(tmp)
            shutil.copytree(shared_dir, tmp, ignore=_top_level(shared_dir, (
                "evaluation.json", "logs", "pose_predictor.keras")))
            os.replace(tmp, run_dir)
        # a resumed run keeps its saved config: the variant's settings are written there
        save_config(config, os.path.join(run_dir, "config.json"))
        evaluation = train(config, run_dir, resume=True, verbose=0, log=log,
                           checkpoint_every=checkpoint_every)
    log(f"seed {seed}: {variant.name} in {time.time() - t0:.0f} s")
    return evaluation


def _top_level(root: str, names: tuple) -> Callable:
    """A ``copytree`` ignore function that leaves out ``names`` directly under ``root`` only
    (the shared run's results; ``pretrain/pose_predictor.keras`` is copied)."""
    root = os.path.abspath(root)

    def ignore(folder, entries):
        return [e for e in entries if e in names] if os.path.abspath(folder) == root else []

    return ignore


def _refuse_foreign_run(variant, run_dir) -> None:
    """A folder of this name written by another kind of run (before the ``oracle`` variant
    existed, ``OUT/seed<S>/oracle`` held the analysis run now called ``oracle-labels``)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return
    method = load_config(path).method
    if method != variant.method:
        raise RunConfigError(
            f"{run_dir} holds a run of method {method!r}, but the variant {variant.name!r} is "
            f"a run of method {variant.method!r} (an ablation folder of an earlier version: its "
            "'oracle' was the analysis variant now called 'oracle-labels', folder "
            "'oracle_labels'). Move or delete that folder and run again.")


def pck_table(model_path: str, data_dir: str, threshold: float, split: str = "test") -> dict:
    """PCK part-group table of a saved model at ``threshold``, cached beside the model
    (``<model>.pck<t>.json``, recomputed when the model is newer).

    Args:
        model_path: str. A saved ``.keras`` pose predictor.
        data_dir: str. Converted dataset.
        threshold: float. PCK threshold as a fraction of the heatmap size (0.2: PCK@0.2).
        split: str. Defaults to "test".

    Returns:
        dict: column -> PCK (%).
    """
    import keras

    from synpose_keras.training.evaluation import evaluate_predictor

    cache = f"{model_path[:-len('.keras')]}.pck{int(round(threshold * 100))}.json"
    if os.path.exists(cache) and os.path.getmtime(cache) >= os.path.getmtime(model_path):
        with open(cache) as f:
            return json.load(f)
    table = evaluate_predictor(keras.models.load_model(model_path), data_dir, split,
                               threshold=threshold)["table"]
    _write_json(cache, table)
    return table


# ============================================================================== tables
def summarise(results: dict) -> dict:
    """Mean and std over seeds of every column of every row.

    Args:
        results: dict. ``{row: {seed: {column: value}}}`` (``OUT/ablation.json``).

    Returns:
        dict: ``{row: {column: {"mean": float, "std": float, "n": int}}}``; ``std`` is the
        population standard deviation over the ``n`` seeds, NaN for a single seed. Rows
        without seeds are left out.

    Example:
    >>> summarise({"+rec": {"0": {"All": 10.0}, "1": {"All": 12.0}}})
    {'+rec': {'All': {'mean': 11.0, 'std': 1.0, 'n': 2}}}
    """
    summary = {}
    for name, per_seed in results.items():
        tables = list(per_seed.values())
        if not tables:
            continue
        summary[name] = {}
        for column in tables[0]:
            values = [float(t[column]) for t in tables]
            summary[name][column] = {
                "mean": float(np.mean(values)),
                "std": float(np.std(values)) if len(values) > 1 else math.nan,
                "n": len(values)}
    return summary


def markdown_table(results: dict, task: str) -> list:
    """Lines of the markdown table: one row per variant, mean ± std per part group, ``n``
    (seeds) and the per-seed All values."""
    columns = get_skeleton(task).columns
    lines = ["| variant | " + " | ".join(columns) + " | n | All per seed |",
             "|---|" + "---:|" * (len(columns) + 1) + "---|"]
    for name, row in summarise(results).items():
        cells = [_mean_std(row[c]) if c in row else "–" for c in columns]
        per_seed = ", ".join(f"{seed}: {_number(table['All'])}"
                             for seed, table in results[name].items())
        n = next(iter(row.values()))["n"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {n} | {per_seed} |")
    return lines


def _number(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}"


def _mean_std(cell: dict) -> str:
    if math.isnan(cell["std"]):
        return _number(cell["mean"])
    return f"{_number(cell['mean'])} ± {cell['std']:.1f}"


def write_tables(out: str, results: dict, settings: dict, coarse: Optional[dict] = None) -> None:
    """Writes ``OUT/ablation.json``, ``OUT/ablation.md``, ``OUT/ablation_settings.json`` and,
    with ``coarse``, ``OUT/ablation_pck<t>.json`` (``t`` = ``settings["coarse_threshold"]``).

    Args:
        out: str. The ablation folder.
        results: dict. ``{row: {seed: {column: PCK@0.05}}}``.
        settings: dict. ``task``, ``preset``, ``overrides``, ``source``, ``target``, optional
            ``data`` (the resolved datasets) and ``coarse_threshold``.
        coarse: optional dict. The same shape as ``results`` at ``coarse_threshold``.
    """
    from synpose_keras.metrics.table import _FOOTNOTES

    task = settings["task"]
    columns = get_skeleton(task).columns
    seeds = sorted({int(s) for per_seed in results.values() for s in per_seed})
    target = (settings.get("data") or {}).get("target") or settings.get("target")
    overrides = settings.get("overrides") or {}
    known = {**VARIANTS, **ANALYSIS_VARIANTS}
    lines = [f"# Ablation (supplementary Table A): {task}", "",
             f"PCK@0.05 (%) of each variant's final model on the target test split"
             f"{f' ({target})' if target else ''}: mean ± std over seeds (population std; "
             f"n = seeds). Preset `{settings['preset']}`, seeds {', '.join(map(str, seeds))}, "
             "overrides "
             + (", ".join(f"`{k}={v}`" for k, v in overrides.items()) if overrides else "none")
             + ".", ""]
    lines += markdown_table(results, task)
    lines += [_FOOTNOTES[c] for c in columns if c in _FOOTNOTES]
    threshold = settings.get("coarse_threshold")
    if coarse is not None and threshold:
        lines += ["", f"PCK@{threshold:g} (%), the same models:", ""]
        lines += markdown_table(coarse, task)
    lines += ["", "Rows:", "",
              f"- `{PRETRAIN_ROW}`: the shared pre-trained model every variant but `oracle` "
              "starts from."]
    lines += [f"- `{name}`: {known[name].description}." for name in results if name in known]
    os.makedirs(out, exist_ok=True)
    _write_text(os.path.join(out, "ablation.json"), json.dumps(results, indent=2))
    _write_text(os.path.join(out, "ablation_settings.json"), json.dumps(settings, indent=2))
    if coarse is not None and threshold:
        _write_text(os.path.join(out, _coarse_name(threshold)), json.dumps(coarse, indent=2))
    _write_text(os.path.join(out, "ablation.md"), "\n".join(lines) + "\n")


def _write_text(path: str, text: str) -> None:
    """Atomic write (rows and seeds keep their order, unlike ``sort_keys`` JSON)."""
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _coarse_name(threshold: float) -> str:
    return f"ablation_pck{int(round(threshold * 100))}.json"


def rewrite_tables(out: str) -> None:
    """Rewrites ``OUT/ablation.md`` from ``OUT/ablation.json`` and its settings (e.g. after a
    partial run, or after editing the tables' format)."""
    settings = _read_json(os.path.join(out, "ablation_settings.json"))
    results = _read_json(os.path.join(out, "ablation.json"))
    if settings is None or results is None:
        raise FileNotFoundError(
            f"{out} has no ablation.json and ablation_settings.json (written by `synpose "
            "ablate`); run the ablation into it first.")
    threshold = settings.get("coarse_threshold")
    coarse = _read_json(os.path.join(out, _coarse_name(threshold))) if threshold else None
    write_tables(out, results, settings, coarse)
