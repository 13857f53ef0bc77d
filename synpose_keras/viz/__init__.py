"""Pictures: keypoint overlays, PCK bars, pseudo-label and training curves."""

from synpose_keras.viz.overlays import (  # noqa: F401
    add_legend,
    contact_sheet,
    draw_keypoints,
    draw_prediction,
    keypoint_parts,
)
from synpose_keras.viz.plots import (  # noqa: F401
    metric_curves,
    pck_bars,
    pseudo_label_curves,
    training_curves,
)
