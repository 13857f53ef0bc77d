"""The methods of ``synpose train --method``: what each trains in which stage.

=============  ==================  =====================  ====================================
method         stages              pretrain               adapt
=============  ==================  =====================  ====================================
ours           all four            restyled (UniFrame)    :class:`AdaptStage`
uniframe       style, pretrain,    restyled               :class:`UniFrameStage`
               adapt
source-only    pretrain, adapt     ERM (no restyling)     ERM continued (same total schedule)
regda          pretrain, adapt     ERM                    :class:`RegDAStage`
ccssl          pretrain, adapt     ERM                    :class:`CCSSLStage`
oracle         pretrain, adapt     ERM on the TARGET's    ERM continued on the target's labels
                                   labelled train split   (the ceiling; needs target labels)
=============  ==================  =====================  ====================================

Two pre-trainings exist, so a comparison can share them (``examples/compare.py``): the
*restyled* one (source images restyled with target styles, ``pretrain.lr``), used by ours and
UniFrame, and the *ERM* one (plain supervised source training at ``source_only.lr``, TLlib's
source-only model), used by source-only, RegDA and CC-SSL. Every method then runs
``adapt.epochs`` x ``adapt.iterations`` iterations, on the same data, backbone and evaluation.
"""

from __future__ import annotations

from synpose_keras.training.configs import STAGES

#: name -> (title, reference, pretraining kind, stages used)
METHODS = {
    "ours": ("Geometric reconstruction + integrated 2D/3D pseudo-labels",
             "Lin, Gu, Yang, Yao, NeurIPS 2023", "restyled", STAGES),
    "source-only": ("Supervised on the source (TLlib ERM)",
                    "Jiang et al., TLlib; Xiao et al., ECCV 2018", "erm", ("pretrain", "adapt")),
    "uniframe": ("Mean teacher with AdaIN restyling and keypoint-guided occlusion",
                 "Kim, Wang, Sclaroff, Saenko, ECCV 2022", "restyled",
                 ("style", "pretrain", "adapt")),
    "regda": ("Adversarial regressor with ground-false targets",
              "Jiang, Ji, Wang, Long, CVPR 2021", "erm", ("pretrain", "adapt")),
    "ccssl": ("Consistency-constrained self-training",
              "Mu, Qiu, Hager, Yuille, CVPR 2020", "erm", ("pretrain", "adapt")),
    "oracle": ("Target-only: supervised on the target's labelled train split (the ceiling)",
               "the 'oracle' / target-only row of TLlib's tables", "erm", ("pretrain", "adapt")),
}

#: methods that adapt to the target without its labels (they get a source-only reference row)
ADAPTING_METHODS = ("ours", "uniframe", "regda", "ccssl")


def _check(method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}. Received: method={method!r}")


def method_stages(method, requested=STAGES):
    """The stages of ``requested`` that ``method`` uses, in run order.

    Example:
    >>> method_stages("regda")
    ('pretrain', 'adapt')
    """
    _check(method)
    used = METHODS[method][3]
    return tuple(s for s in STAGES if s in requested and s in used)


def pretraining_kind(method):
    """``"restyled"`` (ours, UniFrame) or ``"erm"`` (source-only, RegDA, CC-SSL)."""
    _check(method)
    return METHODS[method][2]


def pretrain_settings(config):
    """``(restyle_prob, lr)`` of the ``pretrain`` stage for ``config.method``."""
    if pretraining_kind(config.method) == "erm":
        return 0.0, float(config.source_only.lr)
    return float(config.pretrain.restyle_prob), float(config.pretrain.lr)
