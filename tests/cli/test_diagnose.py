import json
import math
import shutil

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from synpose_keras.cli.app import app
from synpose_keras.training import diagnose
from synpose_keras.training.configs import get_preset, save_config

runner = CliRunner()

SIZE, SIGMA = 48, 6.0
TRUE_BASE = np.array([[[12.0, 12.0], [35.0, 14.0], [14.0, 34.0], [34.0, 33.0]],
                      [[20.0, 10.0], [10.0, 28.0], [36.0, 24.0], [24.0, 38.0]]], np.float32)
MOTION = np.array([[[2.0, 1.0], [-1.0, 2.0], [1.5, -1.0], [0.0, 0.0]],
                   [[-2.0, 0.0], [1.0, 1.0], [0.0, -2.5], [2.0, 1.0]]], np.float32)
TRUE_DRIVING = TRUE_BASE + MOTION
BRIGHTNESS = np.array([1.0, 0.8, 0.6, 0.4], np.float32)


def _render(centres):
    """Gaussian blobs (B, K, 2) -> (B, S, S, 3) images in [0, 1], one brightness per keypoint."""
    grid = tf.cast(tf.stack(tf.meshgrid(tf.range(SIZE), tf.range(SIZE)), -1), tf.float32)
    d2 = tf.reduce_sum((grid[None, :, :, None, :] - centres[:, None, None]) ** 2, -1)
    image = tf.reduce_sum(BRIGHTNESS * tf.exp(-d2 / (2 * SIGMA ** 2)), -1, keepdims=True)
    return tf.tile(image, (1, 1, 1, 3))


def _analytic_reconstruct(base_images, kp_base, kp_driving):
    """An ideal zero-order warper: each keypoint's blob of the base image moves by the keypoint
    motion kp_driving - kp_base, so the loss is lowest where that motion is the true one."""
    return _render(tf.convert_to_tensor(TRUE_BASE) + kp_driving - kp_base)


def _mse(target, generated):
    return tf.reduce_mean(tf.square(target - generated))


def _experiment(offsets=(4.0,), steps=30):
    base = _render(tf.convert_to_tensor(TRUE_BASE)).numpy()
    driving = _render(tf.convert_to_tensor(TRUE_DRIVING)).numpy()
    result = diagnose.correction_experiment(_analytic_reconstruct, _mse, base, driving,
                                            TRUE_BASE, TRUE_DRIVING, offsets=offsets,
                                            steps=steps, lr=0.5, seed=3)
    return {(r["case"], r["offset_px"]): r for r in result["rows"]}, result


def test_correction_with_an_analytic_warper():
    rows, result = _experiment(offsets=(4.0, 8.0))
    assert len(result["rows"]) == 6
    for offset in (4.0, 8.0):
        independent = rows[("independent", offset)]
        shared = rows[("shared", offset)]
        exact = rows[("base_exact", offset)]
        assert independent["keypoints"] == 8
        assert independent["error_before"] == pytest.approx(offset, rel=1e-4)
        # frame-specific errors: the gradient points toward the truth (2/pi on average for an
        # ideal warper) and the loss falls
        assert independent["cos_to_truth"] > 0.2
        assert independent["loss_after"] < 0.2 * independent["loss_before"]
        # shared error: the loss does not see it (no gradient), nothing useful happens
        assert shared["cos_to_consistent"] is None
        assert shared["gradient_norm"] < 1e-3 * independent["gradient_norm"]
        assert abs(shared["reduction"]) < 0.05
        # base keypoints on the truth: the driving keypoints go to the truth
        assert exact["cos_to_truth"] > 0.6
        assert exact["reduction"] > 0.7
        # the path of the error: recorded after steps 1, 5, 10, 20 and the last; its minimum
        assert sorted(exact["error_path"], key=int) == ["1", "5", "10", "20", "30"]
        assert exact["error_path"]["30"] == pytest.approx(exact["error_after"])
        assert exact["error_path"]["1"] < offset
        assert exact["min_error"] <= min(exact["error_path"].values())
        assert 1 <= exact["min_error_step"] <= 30
    # at 4 px the frame-specific case ends at the point consistent with the base's offset, as
    # far from the truth as it started: the gate's 25% cannot be met even by an ideal warper
    independent = rows[("independent", 4.0)]
    assert independent["cos_to_truth"] == pytest.approx(2 / math.pi, abs=0.1)
    assert independent["cos_to_consistent"] > 0.7
    assert independent["consistent_error_after"] < 0.3 * independent["consistent_error_before"]
    assert independent["reduction"] < 0.05
    assert result["loss_at_labels"] < 1e-9
    gate = result["gate"]
    assert gate["shared_4px"] == {"control_passes": True}
    assert gate["base_exact_4px"]["holds"] is True
    assert gate["independent_4px"] == {"cos": True, "reduction": False, "holds": False}


def test_correction_measures_only_the_labelled_keypoints():
    base = _render(tf.convert_to_tensor(TRUE_BASE)).numpy()
    driving = _render(tf.convert_to_tensor(TRUE_DRIVING)).numpy()
    measured = np.zeros((2, 4), bool)
    measured[0, :2] = True
    row = diagnose.keypoint_correction(_analytic_reconstruct, _mse, base, driving, TRUE_BASE,
                                       TRUE_DRIVING, measured, offset_px=4.0, case="base_exact",
                                       steps=2, seed=0)
    assert row["keypoints"] == 2
    assert row["consistent_error_before"] == pytest.approx(4.0, rel=1e-4)
    with pytest.raises(ValueError, match="case must be one of"):
        diagnose.keypoint_correction(_analytic_reconstruct, _mse, base, driving, TRUE_BASE,
                                     TRUE_DRIVING, case="both")


def test_not_a_run_folder_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["diagnose", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a run folder" in result.output
    assert "synpose train --out RUN" in result.output
    assert not (tmp_path / "diagnose.json").exists()


def test_run_without_stages_skips_every_item_with_a_reason(tiny_domains, tmp_path):
    config = get_preset("tiny")
    config.target = str(tiny_domains / "target")
    save_config(config, str(tmp_path / "config.json"))
    result = runner.invoke(app, ["diagnose", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "diagnose.json").read_text())
    for key in ("keypoint_correction", "lambda_rec", "readout_gate", "error_split",
                "pair_statistics", "reconstruction_check"):
        assert report[key]["status"] == "skipped", key
    assert "run the pretrain stage" in report["error_split"]["reason"]
    assert "run the generator stage" in report["keypoint_correction"]["reason"]
    assert "run the pretrain stage" in report["lambda_rec"]["reason"]
    assert "run the pretrain stage" in report["readout_gate"]["reason"]
    assert "pairs.json not found" in report["pair_statistics"]["reason"]
    assert "skipped: " in result.output


def _finite(value):
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return value is None or isinstance(value, (bool, str)) or math.isfinite(value)


@pytest.mark.slow
def test_diagnose_end_to_end(tiny_domains, tmp_path):
    from tests.training.tiny_data import write_tiny

    run = tmp_path / "run"
    trained = runner.invoke(app, ["train", "--preset", "tiny", "--quiet", "--stages",
                                  "style,pretrain,generator", "--source",
                                  str(tiny_domains / "source"), "--target",
                                  str(tiny_domains / "target"), "--out", str(run)])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["diagnose", str(run), "--pairs", "4", "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert "1. keypoint correction" in result.output
    report = json.loads((run / "diagnose.json").read_text())
    assert set(report) == {"run", "target", "keypoint_correction", "lambda_rec", "readout_gate",
                           "error_split", "pair_statistics", "reconstruction_check"}
    assert "4. what the loss can see" in result.output
    split = report["error_split"]
    assert split["status"] == "ok" and split["keypoints"] > 0
    assert 0.0 <= split["shared_energy_fraction"] <= 1.0
    assert split["motion_error"]["mean"] == pytest.approx(2 * split["independent"]["mean"])
    correction = report["keypoint_correction"]
    assert correction["status"] == "ok"
    assert correction["steps"] == 3 and correction["pairs"] == 4
    assert math.isfinite(correction["loss_at_labels"])
    assert [(r["case"], r["offset_px"]) for r in correction["rows"]] == [
        (case, offset) for offset in (4.0, 8.0) for case in diagnose.CASES]
    for row in correction["rows"]:
        assert row["keypoints"] > 0
        assert all(_finite(v) for v in row.values()), row
        assert -1.0 <= row["cos_to_truth"] <= 1.0
        assert row["error_before"] == pytest.approx(row["offset_px"], rel=1e-3)
        assert sorted(row["error_path"], key=int) == ["1", "3"]
    lam = report["lambda_rec"]
    assert lam["status"] == "ok" and lam["keypoints"] == 21
    assert lam["g_rec"] > 0 and lam["g_pl"] > 0 and lam["lambda_rec_matched"] > 0
    assert lam["lambda_rec_configured"] == 0.003
    assert all(_finite(v) for v in lam.values())
    gate = report["readout_gate"]
    assert gate["status"] == "ok" and gate["images"] == 8
    assert gate["local"]["median"] >= 0 and isinstance(gate["gate_passed"], bool)
    assert gate["local"]["count"] == 8 * 21 and gate["global"]["count"] == 8 * 21
    assert 0 < gate["local_visible"]["count"] <= 8 * 21
    assert gate["local"]["median"] <= gate["local"]["p90"] and 0 <= gate["peak"]["p10"]
    assert report["pair_statistics"]["status"] == "ok"
    check = report["reconstruction_check"]
    assert check["status"] == "ok" and set(check["loss"]) == {"predicted", "copy", "no_motion",
                                                              "shuffled", "labels"}
    assert check["loss"]["labels"] > 0  # the tiny target is labelled

    # --json: the numbers go there and the run folder is left alone
    (run / "diagnose.json").unlink()
    elsewhere = tmp_path / "elsewhere" / "diag.json"
    again = runner.invoke(app, ["diagnose", str(run), "--pairs", "2", "--steps", "1",
                                "--json", str(elsewhere)])
    assert again.exit_code == 0, again.output
    assert json.loads(elsewhere.read_text())["keypoint_correction"]["pairs"] == 2
    assert not (run / "diagnose.json").exists()

    # an unlabelled target: the items that need labels are skipped with the reason
    write_tiny(tmp_path / "unlabelled", n=8, seed=2, labelled=False)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    config["target"] = str(tmp_path / "unlabelled")
    (copy / "config.json").write_text(json.dumps(config))
    unlabelled = runner.invoke(app, ["diagnose", str(copy), "--pairs", "2", "--steps", "1"])
    assert unlabelled.exit_code == 0, unlabelled.output
    report = json.loads((copy / "diagnose.json").read_text())
    assert report["keypoint_correction"]["status"] == "skipped"
    assert "needs stored labels" in report["keypoint_correction"]["reason"]
    assert report["error_split"]["status"] == "skipped"
    assert "needs stored labels" in report["error_split"]["reason"]
    assert report["lambda_rec"]["status"] == "ok"


def test_error_split_separates_what_both_frames_share_from_what_differs():
    rng = np.random.default_rng(0)
    true_base = rng.uniform(10, 100, (4, 21, 2))
    true_driving = true_base + rng.normal(0, 3, (4, 21, 2))
    offset = rng.normal(0, 5, (4, 21, 2))
    measured = np.ones((4, 21), bool)
    # the same error on both frames: all of it is shared, the predicted motion is exact
    same = diagnose.error_split(true_base + offset, true_driving + offset, true_base,
                                true_driving, measured)
    assert same["shared_energy_fraction"] == pytest.approx(1.0)
    assert same["independent"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert same["motion_error"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert same["error"]["mean"] == pytest.approx(np.linalg.norm(offset, axis=-1).mean())
    # opposite errors: nothing is shared, the motion is off by twice the offset
    opposite = diagnose.error_split(true_base - offset, true_driving + offset, true_base,
                                    true_driving, measured)
    assert opposite["shared_energy_fraction"] == pytest.approx(0.0, abs=1e-12)
    assert opposite["motion_error"]["mean"] == pytest.approx(
        2 * np.linalg.norm(offset, axis=-1).mean())
    assert opposite["motion"]["mean"] == pytest.approx(
        np.linalg.norm(true_driving - true_base, axis=-1).mean())
    # only the measured keypoints count
    measured[:, 1:] = False
    one = diagnose.error_split(true_base + offset, true_driving + offset, true_base,
                               true_driving, measured)
    assert one["keypoints"] == 4
    assert one["error"]["mean"] == pytest.approx(np.linalg.norm(offset[:, 0], axis=-1).mean())
    none = diagnose.error_split(true_base, true_driving, true_base, true_driving,
                                np.zeros((4, 21), bool))
    assert none["keypoints"] == 0 and none["shared_energy_fraction"] is None
