"""Part-group PCK tables in the layout of the paper's supplementary Table A.

Columns come from the skeleton (``Skeleton.columns``):

- Hand21: ``MCP PIP DIP Fin All`` (All = the 21 keypoints, wrist included);
- Body16: ``Head Sld Elb Wrist Hip Knee Ankle All All-16``, where "All" is TLlib's mean over the
  12 limb joints and "All-16" the mean over every keypoint (the figure the paper's "All" column
  matches; docs/protocol.md, "Evaluation protocol").

A column is the mean of its keypoints' accuracies, ignoring keypoints without a valid sample (NaN);
it is NaN when none of its keypoints has one. Values are percentages.

Example:

```python
from synpose_keras.metrics import part_group_table, format_table, pck
from synpose_keras.skeletons import HAND21

table = part_group_table(pck(pred, gt, visible).per_keypoint, HAND21)  # {"MCP": 81.2, ...}
print(format_table({"baseline": table}, HAND21))
```

Reference:
    Lin et al., NeurIPS 2023, supplementary Table A.
"""

from __future__ import annotations

from typing import Optional

import collections
import math
from typing import Mapping

import numpy as np

from synpose_keras.skeletons import Skeleton, get_skeleton

__all__ = ["part_group_table", "format_table", "table_to_markdown"]

_FOOTNOTES = {
    "All-16": "All = mean of the 12 limb joints (TLlib protocol); All-16 = mean of all 16 "
    "keypoints (the paper's All).",
}


def _as_skeleton(skeleton) -> Skeleton:
    if isinstance(skeleton, Skeleton):
        return skeleton
    return get_skeleton(skeleton)


def part_group_table(per_keypoint_acc, skeleton) -> "collections.OrderedDict[str, float]":
    """Part-group accuracies (in %) from per-keypoint accuracies (in [0, 1]).

    Args:
        per_keypoint_acc: array-like (K,). Per-keypoint accuracy in [0, 1], NaN where a keypoint
            had no valid sample (as returned by ``pck(...).per_keypoint``).
        skeleton: ``Skeleton`` or its name/task ("hand21", "body", ...).

    Returns:
        OrderedDict column -> percentage, columns in ``skeleton.columns`` order. NaN for a column
        whose keypoints are all NaN.
    """
    skeleton = _as_skeleton(skeleton)
    acc = np.asarray(per_keypoint_acc, dtype=np.float64)
    if acc.shape != (skeleton.num_keypoints,):
        raise ValueError(
            f"`per_keypoint_acc` must have shape ({skeleton.num_keypoints},) for skeleton "
            f"{skeleton.name!r}. Received: per_keypoint_acc.shape={acc.shape}"
        )
    table = collections.OrderedDict()
    for column, indices in {**skeleton.groups, **skeleton.all_columns}.items():
        values = acc[list(indices)]
        values = values[~np.isnan(values)]
        table[column] = float(100.0 * values.mean()) if values.size else float("nan")
    return table


def _rows_to_tables(rows, skeleton):
    if not isinstance(rows, Mapping):
        raise ValueError(
            "`rows` must be a dict name -> table (or per-keypoint accuracies). "
            f"Received: rows={type(rows).__name__}"
        )
    tables = collections.OrderedDict()
    for name, table in rows.items():
        if not isinstance(table, Mapping):
            table = part_group_table(table, skeleton)
        missing = [c for c in skeleton.columns if c not in table]
        if missing:
            raise ValueError(
                f"Row {name!r} lacks the columns {missing} of skeleton {skeleton.name!r}. "
                f"Received: columns={list(table)}"
            )
        tables[str(name)] = table
    return tables


def _format_value(value, precision):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.{precision}f}"


def format_table(rows, skeleton, name_header: str = "Method", precision: int = 1,
                 footnote: bool = True) -> str:
    """Plain-text table, one row per method, in the paper's Table A layout.

    Args:
        rows: dict name -> table. A table is a mapping column -> percentage (as returned by
            ``part_group_table``) or per-keypoint accuracies in [0, 1] (converted here).
        skeleton: ``Skeleton`` or its name/task.
        name_header: str. Header of the first column. Defaults to "Method".
        precision: int. Decimals. Defaults to 1.
        footnote: bool. Append a line explaining "All" vs "All-16" for bodies. Defaults to True.

    Returns:
        str: header line, one line per row; values right-aligned, NaN shown as "-".

    Example:

    ```
    Method       MCP   PIP   DIP   Fin   All
    baseline    81.2  79.0  75.3  70.1  80.2
    ```
    """
    skeleton = _as_skeleton(skeleton)
    tables = _rows_to_tables(rows, skeleton)
    columns = skeleton.columns
    cells = [[_format_value(t[c], precision) for c in columns] for t in tables.values()]
    first = max([len(name_header)] + [len(n) for n in tables])
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join([name_header.ljust(first)] + [c.rjust(w) for c, w in zip(columns, widths)])]
    for name, row in zip(tables, cells):
        lines.append("  ".join([name.ljust(first)] + [v.rjust(w) for v, w in zip(row, widths)]))
    if footnote:
        lines += [_FOOTNOTES[c] for c in columns if c in _FOOTNOTES]
    return "\n".join(lines)


def table_to_markdown(rows, skeleton, name_header: str = "Method", precision: int = 1) -> str:
    """Markdown table with the same content as ``format_table`` (no footnote).

    Args:
        rows: dict name -> table (or per-keypoint accuracies), as in ``format_table``.
        skeleton: ``Skeleton`` or its name/task.
        name_header: str. Header of the first column. Defaults to "Method".
        precision: int. Decimals. Defaults to 1.

    Returns:
        str: a GitHub-flavoured markdown table, numbers right-aligned.
    """
    skeleton = _as_skeleton(skeleton)
    tables = _rows_to_tables(rows, skeleton)
    columns = skeleton.columns
    lines = [
        "| " + " | ".join((name_header,) + columns) + " |",
        "|---|" + "|".join("---:" for _ in columns) + "|",
    ]
    for name, table in tables.items():
        values = [_format_value(table[c], precision) for c in columns]
        lines.append("| " + " | ".join([name] + values) + " |")
    return "\n".join(lines)


def gain_line(evaluation: dict) -> Optional[str]:
    """One sentence on the adaptation's gain over the source-only reference (PCK@0.05 All, in
    points), from an ``evaluation.json`` dict; None when the run has no such pair of rows."""
    rows = evaluation.get("rows") or {}
    if "after adapt" not in rows or "source-only" not in rows:
        return None
    adapted = rows["after adapt"]["table"]["All"]
    reference = rows["source-only"]["table"]["All"]
    gain = adapted - reference
    verdict = "above" if gain > 0 else ("below" if gain < 0 else "level with")
    text = (f"Adaptation gain over source-only: {gain:+.1f} points PCK@0.05 All "
            f"(after adapt {adapted:.1f} vs source-only {reference:.1f}: {verdict} the reference "
            "trained on the source alone for as many iterations).")
    if "oracle" in rows:
        text += f" Oracle (target labels): {rows['oracle']['table']['All']:.1f}."
    return text
