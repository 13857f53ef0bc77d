"""The method registry: stages, pre-training kind, building each adapt stage from a config."""

import numpy as np
import pytest

from synpose_keras.training.configs import apply_overrides, get_preset
from synpose_keras.training.methods import (
    CCSSLStage,
    METHODS,
    RegDAStage,
    UniFrameStage,
    build_adapt_stage,
    method_stages,
    pretrain_settings,
    pretraining_kind,
)
from synpose_keras.training.pretrain_stage import PretrainStage
from tests.training.stage_fixtures import adapt_batch, predictor


def test_every_config_method_is_registered():
    from synpose_keras.training.configs import METHODS as CONFIG_METHODS

    assert set(METHODS) == set(CONFIG_METHODS)


def test_stages_and_pretraining_per_method():
    assert method_stages("ours") == ("style", "pretrain", "generator", "adapt")
    assert method_stages("uniframe") == ("style", "pretrain", "adapt")
    for method in ("source-only", "regda", "ccssl"):
        assert method_stages(method) == ("pretrain", "adapt")
        assert pretraining_kind(method) == "erm"
    assert method_stages("regda", ("style", "adapt")) == ("adapt",)
    with pytest.raises(ValueError, match="method='dann'"):
        method_stages("dann")


def test_pretrain_settings_erm_versus_restyled():
    paper = get_preset("paper")
    assert pretrain_settings(paper) == (0.5, 1e-4)  # ours: UniFrame's restyled pre-training
    regda = apply_overrides(paper, {"method": "regda"})
    assert pretrain_settings(regda) == (0.0, 1e-3)  # TLlib ERM: no restyling, Adam 1e-3
    assert pretrain_settings(apply_overrides(paper, {"method": "uniframe"})) == (0.5, 1e-4)


def test_paper_preset_method_settings_follow_the_references():
    paper = get_preset("paper")
    assert (paper.regda.margin, paper.regda.gl_max, paper.regda.lr,
            paper.regda.feature_lr_mult) == (4.0, 0.1, 0.1, 0.1)
    assert (paper.uniframe.mask_fraction, paper.uniframe.occlusion_prob,
            paper.uniframe.occlusion_threshold,
            paper.uniframe.occlusion_size) == (0.5, 0.5, 0.9, 20)
    assert paper.adapt.ema_decay == 0.999
    ccssl = paper.ccssl
    assert (ccssl.round_epochs, ccssl.gamma, ccssl.num_transforms) == (10, 10.0, 5)
    assert paper.source_only.lr_milestones == (5, 20)  # TLlib's 45 and 60 of 70, after 40


@pytest.mark.parametrize("method,cls", [("source-only", PretrainStage), ("regda", RegDAStage),
                                        ("uniframe", UniFrameStage), ("ccssl", CCSSLStage)])
def test_build_adapt_stage(method, cls):
    config = apply_overrides(get_preset("tiny"), {"method": method})
    stage = build_adapt_stage(method, config, predictor(0), teacher=predictor(1))
    assert isinstance(stage, cls)
    assert stage.optimizer.built
    if method in ("uniframe", "ccssl"):
        for t, s in zip(stage.teacher.weights, stage.student.weights):
            np.testing.assert_array_equal(np.array(t), np.array(s))


def test_build_adapt_stage_refuses_ours_and_missing_teacher():
    config = get_preset("tiny")
    with pytest.raises(ValueError, match="method='ours'"):
        build_adapt_stage("ours", config, predictor(0))
    with pytest.raises(ValueError, match="needs a teacher"):
        build_adapt_stage("ccssl", config, predictor(0))


def test_source_only_step_trains_on_the_source_without_restyling():
    config = apply_overrides(get_preset("tiny"), {"method": "source-only"})
    stage = build_adapt_stage("source-only", config, predictor(0))
    before = [np.array(w) for w in stage.predictor.trainable_weights]
    logs = stage.train_step({"source": adapt_batch(0)["source"]})
    assert np.isfinite(float(logs["loss"])) and float(logs["loss"]) > 0
    assert any(not np.allclose(b, np.array(w))
               for b, w in zip(before, stage.predictor.trainable_weights))
    assert stage.style_net is None and stage.restyle_prob == 0.0
