"""Part-group tables: group means by hand, column order, formatting."""

import math

import numpy as np
import pytest

from synpose_keras.metrics import format_table, part_group_table, table_to_markdown
from synpose_keras.skeletons import BODY16, HAND21


def test_hand_groups_by_hand():
    table = part_group_table(np.arange(21) / 20.0, HAND21)
    assert list(table) == ["MCP", "PIP", "DIP", "Fin", "All"]
    # MCP = (1+5+9+13+17)/5/20, PIP = 10/20, DIP = 11/20, Fin = 12/20, All = mean(0..20)/20
    expected = {"MCP": 45.0, "PIP": 50.0, "DIP": 55.0, "Fin": 60.0, "All": 50.0}
    for column, value in expected.items():
        assert table[column] == pytest.approx(value, abs=1e-12)


def test_nan_keypoints_are_ignored():
    acc = np.arange(21) / 20.0
    acc[1] = np.nan
    table = part_group_table(acc, "hand")
    assert table["MCP"] == pytest.approx(100 * (5 + 9 + 13 + 17) / 4 / 20, abs=1e-12)
    assert table["All"] == pytest.approx(100 * 209 / 20 / 20, abs=1e-12)


def test_all_nan_group_is_nan():
    acc = np.ones(21)
    acc[[4, 8, 12, 16, 20]] = np.nan
    table = part_group_table(acc, HAND21)
    assert math.isnan(table["Fin"])
    assert table["All"] == 100.0


def test_body_all_columns():
    acc = np.ones(16)
    acc[[6, 7, 8, 9]] = 0.0  # pelvis, thorax, neck, head wrong; every limb right
    table = part_group_table(acc, BODY16)
    assert list(table) == ["Head", "Sld", "Elb", "Wrist", "Hip", "Knee", "Ankle", "All", "All-16"]
    assert table["Head"] == 0.0
    assert table["All"] == 100.0
    assert table["All-16"] == 75.0
    acc = np.arange(16) / 15.0
    table = part_group_table(acc, "body16")
    assert table["Sld"] == pytest.approx(100 * 12.5 / 15, abs=1e-12)
    assert table["Ankle"] == pytest.approx(100 * 2.5 / 15, abs=1e-12)
    assert table["All"] == pytest.approx(100 * 90 / 12 / 15, abs=1e-12)


def test_wrong_length():
    with pytest.raises(ValueError, match=r"Received: per_keypoint_acc.shape=\(16,\)"):
        part_group_table(np.ones(16), HAND21)


def test_format_table_hand_layout():
    rows = {
        "baseline": part_group_table(np.arange(21) / 20.0, HAND21),
        "+pseudo+rec": np.full(21, 0.841),  # per-keypoint accuracies are converted
    }
    text = format_table(rows, HAND21)
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["Method", "MCP", "PIP", "DIP", "Fin", "All"]
    assert lines[1].split() == ["baseline", "45.0", "50.0", "55.0", "60.0", "50.0"]
    assert lines[2].split() == ["+pseudo+rec", "84.1", "84.1", "84.1", "84.1", "84.1"]
    # right-aligned columns: every line has the same length
    assert len({len(line) for line in lines}) == 1


def test_format_table_body_layout_and_nan():
    acc = np.ones(16)
    acc[9] = np.nan
    text = format_table({"ours": acc}, BODY16)
    lines = text.splitlines()
    assert lines[0].split() == [
        "Method", "Head", "Sld", "Elb", "Wrist", "Hip", "Knee", "Ankle", "All", "All-16"
    ]
    assert lines[1].split() == ["ours", "-"] + ["100.0"] * 8
    assert lines[2].startswith("All = mean of the 12 limb joints")
    assert len(format_table({"ours": acc}, BODY16, footnote=False).splitlines()) == 2


def test_format_table_missing_column():
    with pytest.raises(ValueError, match="lacks the columns"):
        format_table({"x": {"MCP": 1.0}}, HAND21)


def test_table_to_markdown():
    text = table_to_markdown({"baseline": part_group_table(np.arange(21) / 20.0, HAND21)}, "hand")
    assert text.splitlines() == [
        "| Method | MCP | PIP | DIP | Fin | All |",
        "|---|---:|---:|---:|---:|---:|",
        "| baseline | 45.0 | 50.0 | 55.0 | 60.0 | 50.0 |",
    ]
