"""2D and 3D pseudo-labels, their masks, the integration schedule and their statistics."""

from synpose_keras.pseudo_labels.kinematics import (  # noqa: F401
    bone_lengths,
    project_to_skeleton,
    reference_bone_ratios,
    reproject,
)
from synpose_keras.pseudo_labels.masks import (  # noqa: F401
    MODES,
    IntegrationSchedule,
    agreement_mask,
    mask_overlap,
    strategy_masks,
    threshold_mask,
    top_fraction_mask,
)
from synpose_keras.pseudo_labels.statistics import PseudoLabelStatistics  # noqa: F401
