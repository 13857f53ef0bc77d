"""Plots for reports: PCK bars per part group, pseudo-label curves, training curves.

Every figure keeps its legend outside the data (to the right, or under the panel), epochs on
integer ticks, and PCK on a linear axis; losses (log axis when positive) and mask fractions
(linear, 0-1) are on separate panels. The ``*_figure`` functions return the matplotlib figure
(tests read its axes); the others write a PNG.
"""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# keys of a stage's history that are fractions of keypoint instances (0-1), not losses
FRACTION_PREFIXES = ("mask", "fraction")


def _integer_epochs(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _legend_right(ax, **kwargs):
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def _legend_below(ax, **kwargs):
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), borderaxespad=0.0,
                     ncol=2, **kwargs)


def is_fraction_key(key: str) -> bool:
    """Whether a history key is a mask fraction (``mask_2d``, ``mask_3d``, ...)."""
    return key.startswith(FRACTION_PREFIXES)


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def pck_bars(tables: dict, path: str, title: str = "PCK@0.05", errors: dict = None,
             columns=None) -> str:
    """Grouped bars: one group per PCK column, one bar per row of ``tables``.

    Args:
        tables: {name: {column: value in %}} (e.g. "after pretrain", "after adapt").
        path: output PNG.
        errors: optional {name: {column: std}} drawn as error bars.
        columns: optional column order, e.g. ``skeleton.columns`` (MCP, PIP, DIP, Fin, All);
            columns missing from the tables are left out. Defaults to the first table's order.
    """
    return _save(pck_bars_figure(tables, title, errors, columns), path)


def pck_bars_figure(tables: dict, title: str = "PCK@0.05", errors: dict = None, columns=None):
    """The figure of :func:`pck_bars` (legend to the right of the bars)."""
    names = list(tables)
    if not names:
        raise ValueError("pck_bars needs at least one table.")
    present = list(tables[names[0]])
    columns = present if columns is None else [c for c in columns if c in present]
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
    _legend_right(ax, fontsize=8)
    return fig


def pseudo_label_curves(history: list, path: str, threshold: float = None) -> str:
    """Per-epoch pseudo-label statistics (overlap, accuracy, saturation, coincidence,
    inversion rate where measured)."""
    return _save(pseudo_label_figure(history, threshold), path)


def pseudo_label_figure(history: list, threshold: float = None):
    """The figure of :func:`pseudo_label_curves`."""
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
    _integer_epochs(ax)
    ax.set_ylim(0, 1.02)
    _legend_right(ax, fontsize=8)
    ax.set_title("Pseudo-label statistics")
    return fig


def training_curves(logs: dict, path: str) -> str:
    """One column per stage: its losses against the epoch (log axis when all are positive) and,
    under them, its mask fractions (``mask_2d``, ``mask_3d``; linear, 0-1) when it logs any."""
    return _save(training_figure(logs), path)


def training_figure(logs: dict):
    """The figure of :func:`training_curves`: row 0 the losses, row 1 (when a stage logs mask
    fractions) the fractions; one column per stage."""
    stages = [s for s in logs if logs[s]]
    if not stages:
        raise ValueError("training_curves needs the logs of at least one stage.")

    def numeric(rows):
        return [k for k in rows[0] if k != "epoch" and isinstance(rows[0][k], (int, float))]

    fractions = {s: [k for k in numeric(logs[s]) if is_fraction_key(k)] for s in stages}
    n_rows = 2 if any(fractions.values()) else 1
    fig, axes = plt.subplots(n_rows, len(stages), figsize=(3.8 * len(stages), 3.4 * n_rows),
                             squeeze=False)
    for column, stage in enumerate(stages):
        rows = logs[stage]
        epochs = [r["epoch"] + 1 for r in rows]
        losses = [k for k in numeric(rows) if not is_fraction_key(k)]
        ax = axes[0][column]
        for key in losses:
            ax.plot(epochs, [r[key] for r in rows], marker=".", label=key)
        ax.set_title(f"{stage}: losses")
        ax.set_xlabel("epoch")
        _integer_epochs(ax)
        if losses and all(r[k] > 0 for r in rows for k in losses):
            ax.set_yscale("log")
        if losses:
            _legend_below(ax, fontsize=7)
        if n_rows == 2:
            ax = axes[1][column]
            if not fractions[stage]:
                ax.set_visible(False)
                continue
            for key in fractions[stage]:
                ax.plot(epochs, [r[key] for r in rows], marker=".", label=key)
            ax.set_title(f"{stage}: mask fractions")
            ax.set_xlabel("epoch")
            ax.set_ylim(0, 1.02)
            _integer_epochs(ax)
            _legend_below(ax, fontsize=7)
    fig.tight_layout()
    return fig


def metric_curves(logs: dict, path: str, key: str = "target_pck_all",
                  label: str = "target PCK@0.05 All (%)") -> str:
    """One panel per stage: ``key`` against the epoch, on a linear axis (PCK)."""
    return _save(metric_figure(logs, key, label), path)


def metric_figure(logs: dict, key: str = "target_pck_all",
                  label: str = "target PCK@0.05 All (%)"):
    """The figure of :func:`metric_curves`."""
    stages = [s for s in logs if logs[s]]
    if not stages:
        raise ValueError("metric_curves needs the logs of at least one stage.")
    fig, axes = plt.subplots(1, len(stages), figsize=(3.6 * len(stages), 3.0), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        rows = logs[stage]
        ax.plot([r["epoch"] + 1 for r in rows], [r[key] for r in rows], marker="o")
        ax.set_title(stage)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        _integer_epochs(ax)
    fig.tight_layout()
    return fig
