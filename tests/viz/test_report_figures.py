"""Report figures people can read: part groups in table order, legends outside the data,
linear PCK axes, losses and mask fractions on separate panels, integer epoch ticks, the overlay
legend and overlays from different sequences."""

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from synpose_keras.skeletons import BODY16, HAND21
from synpose_keras.viz import add_legend
from synpose_keras.viz.plots import (
    metric_figure,
    pck_bars_figure,
    pseudo_label_figure,
    training_figure,
)


def _legend_outside(fig, ax):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    axes = ax.get_window_extent(renderer)
    return legend.x0 >= axes.x1 or legend.y1 <= axes.y0


def _integer_ticks(ax):
    ax.figure.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    return all(float(t).is_integer() for t in ticks)


def test_pck_bars_follow_the_table_order_with_the_legend_outside():
    # evaluation.json stores tables with sorted keys: All, DIP, Fin, MCP, PIP
    row = dict(sorted(zip(HAND21.columns, [70.0, 65.0, 60.0, 50.0, 62.0])))
    fig = pck_bars_figure({"after pretrain": row, "after adapt": row}, columns=HAND21.columns)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["MCP", "PIP", "DIP", "Fin", "All"]
    assert ax.get_yscale() == "linear" and _legend_outside(fig, ax)
    plt.close(fig)
    body = dict(sorted(zip(BODY16.columns, range(len(BODY16.columns)))))
    fig = pck_bars_figure({"x": body}, columns=BODY16.columns)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(BODY16.columns)
    plt.close(fig)


def test_losses_and_mask_fractions_on_separate_panels_integer_epochs():
    adapt = [{"epoch": e, "loss": 0.5 - 0.1 * e, "rec": 0.2, "mask_2d": 0.5, "mask_3d": 0.4}
             for e in range(3)]
    style = [{"epoch": e, "loss": 2.0 - e} for e in range(2)]
    fig = training_figure({"style": style, "adapt": adapt})
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["style: losses", "adapt: losses", "adapt: mask fractions"]
    by_title = {ax.get_title(): ax for ax in fig.axes}
    loss_labels = [line.get_label() for line in by_title["adapt: losses"].get_lines()]
    mask_labels = [line.get_label() for line in by_title["adapt: mask fractions"].get_lines()]
    assert loss_labels == ["loss", "rec"] and mask_labels == ["mask_2d", "mask_3d"]
    assert by_title["adapt: mask fractions"].get_yscale() == "linear"
    for ax in fig.axes:
        if ax.get_visible():
            assert _integer_ticks(ax) and _legend_outside(fig, ax)
    plt.close(fig)


def test_target_pck_is_linear_and_pseudo_label_legend_outside():
    fig = metric_figure({"adapt": [{"epoch": e, "target_pck_all": 60.0 + e} for e in range(3)]})
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear" and _integer_ticks(ax)
    plt.close(fig)
    hist = [{"epoch": e, "overlap": 0.4 + 0.1 * e, "accuracy": 0.7} for e in range(3)]
    fig = pseudo_label_figure(hist, threshold=0.8)
    assert _legend_outside(fig, fig.axes[0]) and _integer_ticks(fig.axes[0])
    plt.close(fig)


def test_overlay_legend_is_inside_the_image():
    sheet = Image.new("RGB", (200, 100), (0, 0, 0))
    out = add_legend(sheet, [((255, 255, 255), "ground truth"), (None, "prediction")])
    assert out.size == (200, 116)
    strip = np.asarray(out)[100:]
    assert (strip == 255).all(axis=-1).mean() > 0.5  # a white strip ...
    assert (strip != 255).any()  # ... with dots and text


def test_overlays_come_from_different_sequences(tmp_path):
    from synpose_keras.datasets import convert
    from synpose_keras.datasets.converters.base import Converter, Item, Record
    from synpose_keras.inference.report import _spread_over_sequences

    class Clips(Converter):
        name, skeleton, splits = "clips", "hand21", ("test",)

        def items(self, split):
            def load(seq, frame):
                return Record(image=np.full((32, 32, 3), 80, np.uint8),
                              keypoints=np.full((21, 2), 16.0, np.float32),
                              visible=np.ones(21, np.float32), sequence=f"s{seq}", frame=frame,
                              source_id=f"s{seq}/{frame}")
            return [Item(f"s{q}/{f}", lambda q=q, f=f: load(q, f))
                    for q in range(3) for f in range(4)]

    convert(Clips(str(tmp_path)), str(tmp_path / "d"), progress=False, image_format="png")
    chosen = _spread_over_sequences(str(tmp_path / "d"), "test", 4)
    assert sorted(chosen) == [0, 1, 4, 8] and chosen.sequences == 3
