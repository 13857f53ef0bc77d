"""Plots for reports: PCK bars per part group, pseudo-label curves, training curves."""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def pck_bars(tables: dict, path: str, title: str = "PCK@0.05", errors: dict = None) -> str:
    """Grouped bars: one group per PCK column, one bar per row of ``tables``.

    Args:
        tables: {name: {column: value in %}} (e.g. "after pretrain", "after adapt").
        path: output PNG.
        errors: optional {name: {column: std}} drawn as error bars.
    """
    names = list(tables)
    if not names:
        raise ValueError("pck_bars needs at least one table.")
    columns = list(tables[names[0]])
    x = np.arange(len(columns))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(1.1 * len(columns) + 2, 3.6))
    for i, name in enumerate(names):
        values = [tables[name].get(c, math.nan) for c in columns]
        err = None if errors is None else [errors.get(name, {}).get(c, 0.0) for c in columns]
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, yerr=err,
                      label=name, capsize=2)
        for bar, v in zip(bars, values):
            if np.isfinite(v):
                ax.annotate(f"{v:.1f}", (bar.get_x() + bar.get_width() / 2, v),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, columns)
    ax.set_ylabel("PCK@0.05 (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def pseudo_label_curves(history: list, path: str, threshold: float = None) -> str:
    """Per-epoch pseudo-label statistics (overlap, accuracy, saturation, coincidence,
    inversion rate where measured)."""
    if not history:
        raise ValueError("pseudo_label_curves needs at least one epoch of statistics.")
    epochs = [row["epoch"] + 1 for row in history]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for key, label in (("overlap", "M2D/M3D overlap (IoU)"), ("accuracy", "label accuracy"),
                       ("saturation", "saturation (ever correct)"),
                       ("coincidence", "coincidence of wrong labels"),
                       ("inversion", "inverted (mirror-image) poses")):
        values = [row.get(key, math.nan) for row in history]
        if key == "inversion" and all(v is None or math.isnan(v) for v in values):
            continue  # not measured (statistics of earlier versions)
        ax.plot(epochs, values, marker="o", label=label)
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", linewidth=1, label="switch threshold")
    ax.set_xlabel("adaptation epoch")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("Pseudo-label statistics")
    return _save(fig, path)


def training_curves(logs: dict, path: str) -> str:
    """One panel per stage: its logged losses against the epoch."""
    stages = [s for s in logs if logs[s]]
    if not stages:
        raise ValueError("training_curves needs the logs of at least one stage.")
    fig, axes = plt.subplots(1, len(stages), figsize=(3.6 * len(stages), 3.0), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        rows = logs[stage]
        keys = [k for k in rows[0] if k not in ("epoch",) and isinstance(rows[0][k], (int, float))]
        for key in keys:
            ax.plot([r["epoch"] + 1 for r in rows], [r[key] for r in rows], marker=".", label=key)
        ax.set_title(stage)
        ax.set_xlabel("epoch")
        ax.set_yscale("log") if all(r[k] > 0 for r in rows for k in keys) else None
        ax.legend(fontsize=7)
    return _save(fig, path)
