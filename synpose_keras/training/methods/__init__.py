"""The comparison methods of the paper's Figure A in the same harness as ours.

``synpose train --method source-only|uniframe|regda|ccssl`` runs them with the same data,
backbone, presets, checkpoints and evaluation (see :mod:`.registry` for the stages each uses).

- :class:`UniFrameStage` (Kim et al., ECCV 2022): mean teacher with AdaIN restyling both ways,
  50% confidence mask, keypoint-guided occlusion.
- :class:`RegDAStage` (Jiang et al., CVPR 2021): adversarial regressor with ground-false targets.
- :class:`CCSSLStage` (Mu et al., CVPR 2020): consistency-constrained self-training.
- source-only (TLlib ERM): :class:`~synpose_keras.training.pretrain_stage.PretrainStage` without
  restyling, continued for the adaptation epochs.
"""

from synpose_keras.training.methods.adversarial_head import AdversarialHead  # noqa: F401
from synpose_keras.training.methods.ccssl_stage import CCSSLStage  # noqa: F401
from synpose_keras.training.methods.harness import (  # noqa: F401
    adapt_dataset_fn,
    build_adapt_stage,
    run_method_adapt,
)
from synpose_keras.training.methods.inverse_decay_schedule import InverseDecaySchedule  # noqa: F401
from synpose_keras.training.methods.regda_stage import RegDAStage, regda_optimizers  # noqa: F401
from synpose_keras.training.methods.registry import (  # noqa: F401
    ADAPTING_METHODS,
    METHODS,
    method_stages,
    pretrain_settings,
    pretraining_kind,
)
from synpose_keras.training.methods.uniframe_stage import UniFrameStage  # noqa: F401
