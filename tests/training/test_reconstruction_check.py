"""The held-out reconstruction check that ends stage ``generator`` (tiny data, end to end)."""

import json
import math

import numpy as np
import pytest

from synpose_keras.training.configs import get_preset
from synpose_keras.training.losses import make_reconstruction_loss
from synpose_keras.training.reconstruction_check import (
    CASES,
    check_generator_stage,
    format_table,
    held_out_pairs,
    reconstruction_check,
)
from tests.training import stage_fixtures


def _config(target):
    config = get_preset("tiny")
    config.target = str(target)
    return config


def _models():
    predictor = stage_fixtures.predictor(seed=0)
    warp, gen = stage_fixtures.warping_and_generator()
    return predictor, warp, gen


def test_check_generator_stage_writes_the_json_and_the_table(tiny_domains, tmp_path):
    config = _config(tiny_domains / "target")
    predictor, warp, gen = _models()
    lines = []
    path = tmp_path / "generator" / "reconstruction_check.json"
    result = check_generator_stage(config, predictor, warp, gen, str(path), log=lines.append,
                                   num_batches=3)

    assert sorted(result) == ["batches", "gate", "labelled_pairs", "loss", "output_mode", "pairs",
                              "ratio_predicted_to_copy", "split"]
    assert result["split"] == "test"  # the tiny target has a test split with sequences
    assert result["output_mode"] == "blend"
    assert result["batches"] == 3
    assert result["pairs"] == 3 * config.generator.batch_size
    assert sorted(result["loss"]) == sorted(CASES + ("labels",))  # the tiny target is labelled
    assert 0 < result["labelled_pairs"] <= result["pairs"]
    for case in CASES + ("labels",):
        assert math.isfinite(result["loss"][case]) and result["loss"][case] > 0.0, case
    assert result["ratio_predicted_to_copy"] == pytest.approx(
        result["loss"]["predicted"] / result["loss"]["copy"])
    assert sorted(result["gate"]) == ["below_no_motion", "below_shuffled", "copy_ratio",
                                      "holds", "margin", "predicted_vs_copy"]
    assert result["gate"]["holds"] == (result["gate"]["predicted_vs_copy"]
                                       and result["gate"]["below_no_motion"]
                                       and result["gate"]["below_shuffled"])
    assert json.loads(path.read_text()) == result
    table = lines[0]
    assert len(lines) == 1 and "reconstruction check" in table
    for case in CASES:
        assert f"  {case} " in table
    assert "gate" in table


def test_copy_is_the_loss_of_the_base_image_against_the_driving_image(tiny_domains):
    config = _config(tiny_domains / "target")
    pairs, split = held_out_pairs(config, config.target)
    batches = [{k: np.asarray(v) for k, v in b.items()} for b in pairs.take(2)]
    assert split == "test" and len(batches) == 2
    assert batches[0]["base"].shape == (2, 64, 64, 3)
    predictor, warp, gen = _models()
    result = reconstruction_check(predictor, warp, gen, batches, num_batches=5)
    assert result["batches"] == 2 and result["pairs"] == 4

    loss = make_reconstruction_loss()
    expected = np.mean([float(loss(b["driving"] / 255.0, b["base"] / 255.0)) for b in batches])
    assert result["loss"]["copy"] == pytest.approx(expected, rel=1e-6)
    # the three W+G rows differ from copying (the networks are untrained)
    for case in ("predicted", "no_motion", "shuffled"):
        assert result["loss"][case] != pytest.approx(result["loss"]["copy"], rel=1e-4), case


def test_train_pairs_when_the_target_has_no_test_split_with_sequences(tiny_domains):
    from synpose_keras.datasets.reader import read_meta

    config = _config(tiny_domains / "target")
    meta = read_meta(config.target)
    without_test = {**meta, "counts": {"train": meta["counts"]["train"]}}
    no_sequences = {**meta, "num_sequences": {**meta.get("num_sequences", {}), "test": 0}}
    for changed in (without_test, no_sequences):
        pairs, split = held_out_pairs(config, config.target, meta=changed)
        assert split == "train"
        batch = next(iter(pairs))
        assert tuple(batch["driving"].shape) == (2, 64, 64, 3)
    # a fixed set: two builds give the same batches
    first = next(iter(held_out_pairs(config, config.target, meta=without_test)[0]))
    second = next(iter(held_out_pairs(config, config.target, meta=without_test)[0]))
    np.testing.assert_array_equal(np.asarray(first["base"]), np.asarray(second["base"]))


def test_batches_of_one_pair_are_skipped():
    predictor, warp, gen = _models()
    image = np.zeros((1, 64, 64, 3), np.float32)
    with pytest.raises(ValueError, match="no batch of at least two pairs"):
        reconstruction_check(predictor, warp, gen, [{"base": image, "driving": image}], 1)
    with pytest.raises(ValueError, match="num_batches must be >= 1"):
        reconstruction_check(predictor, warp, gen, [], 0)


def test_labels_row_uses_the_stored_keypoints_and_is_null_without_labels(tiny_domains):
    from synpose_keras.models.reconstruction import reconstruct
    from synpose_keras.ops.warp import normalize_keypoints

    config = _config(tiny_domains / "target")
    pairs, _ = held_out_pairs(config, config.target)
    batch = {k: np.asarray(v) for k, v in next(iter(pairs)).items()}
    assert batch["base_keypoints"].shape[-1] == 2 and batch["base_visible"].any()
    predictor, warp, gen = _models()
    # every keypoint labelled on both frames: the row is W + G with the stored keypoints
    full = {**batch, "base_visible": np.ones_like(batch["base_visible"]),
            "driving_visible": np.ones_like(batch["driving_visible"])}
    result = reconstruction_check(predictor, warp, gen, [full], num_batches=1)
    kb, kd = (normalize_keypoints(full[k].astype(np.float32), (64, 64))
              for k in ("base_keypoints", "driving_keypoints"))
    generated, _ = reconstruct(warp, gen, full["base"] / 255.0, kb, kd, training=False)
    expected = float(make_reconstruction_loss()(full["driving"] / 255.0, generated))
    assert result["loss"]["labels"] == pytest.approx(expected, rel=1e-5)
    assert result["labelled_pairs"] == 2
    assert "labels" in format_table(result)
    # unlabelled footage (zero visibility) or batches without keypoints: no row, no gate change
    for unlabelled in ({**batch, "base_visible": np.zeros_like(batch["base_visible"])},
                       {"base": batch["base"], "driving": batch["driving"]}):
        result = reconstruction_check(predictor, warp, gen, [unlabelled], num_batches=1)
        assert result["loss"]["labels"] is None and result["labelled_pairs"] == 0
        assert "labels" not in format_table(result)
