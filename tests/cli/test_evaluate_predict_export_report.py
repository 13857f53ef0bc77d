"""`synpose evaluate`, `predict`, `export` and `report` through the CLI (typer CliRunner)."""

import json
import math
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from synpose_keras.cli.app import app
from synpose_keras.skeletons import BODY16, HAND21
from synpose_keras.training.evaluation import evaluate_predictor
from tests.cli.inference_helpers import (
    block_model,
    tiny_predictor,
    write_dataset,
    write_json,
)

runner = CliRunner()


def _invoke(args):
    return runner.invoke(app, [str(a) for a in args])


def _flat(output: str) -> str:
    """The output on one line, without the error box's borders (it wraps long messages)."""
    return " ".join(output.replace("│", " ").split())


@pytest.fixture(scope="module")
def hand_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hand")
    write_dataset(root / "data", skeleton="hand21", n=5, seed=1)
    return root / "data"


@pytest.fixture(scope="module")
def hand_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "hand.keras"
    model = tiny_predictor(21, seed=0)
    model.save(path)
    return path, model


# ============================================================================ evaluate
def test_evaluate_prints_table_a_and_writes_the_result_as_json(hand_data, hand_model, tmp_path):
    path, model = hand_model
    out = tmp_path / "eval.json"
    result = _invoke(["evaluate", path, "--data", hand_data, "--split", "test", "--json", out,
                      "--batch-size", 2])
    assert result.exit_code == 0, result.output
    header = [line for line in result.output.splitlines() if line.startswith("Model")][0]
    assert header.split() == ["Model", "MCP", "PIP", "DIP", "Fin", "All"]
    assert "(test, 5 samples)" in result.output
    written = json.loads(out.read_text())
    expected = evaluate_predictor(model, str(hand_data), "test", batch_size=2)
    assert written["count"] == 5
    assert written["skeleton"] == "hand21"
    assert written["keypoint_names"] == list(HAND21.keypoint_names)
    assert list(written["table"]) == list(HAND21.columns)
    for column, value in expected["table"].items():
        assert written["table"][column] == pytest.approx(value, abs=1e-9)
    # every per-keypoint PCK is a whole number of the 5 samples
    for value in written["per_keypoint"]:
        assert value * 5 / 100 == pytest.approx(round(value * 5 / 100), abs=1e-9)
    row = [line for line in result.output.splitlines() if line.startswith("hand ")][0]
    assert row.split()[-1] == f"{expected['table']['All']:.1f}"
    assert written["inversion_rate"] == pytest.approx(expected["inversion_rate"])
    assert (f"Inversions: {expected['inversion_rate']:.1f}% of samples predicted as the "
            "mirror-image pose (finger order swapped" in result.output)


def test_evaluate_with_rotation_ensembling_says_it_is_not_the_protocol(hand_data, hand_model,
                                                                       tmp_path):
    path, model = hand_model
    out = tmp_path / "eval4.json"
    result = _invoke(["evaluate", path, "--data", hand_data, "--rotations", 4, "--json", out])
    assert result.exit_code == 0, result.output
    assert "NOT the protocol: heatmaps averaged over 4 rotations" in result.output
    written = json.loads(out.read_text())
    assert written["rotations"] == 4
    expected = evaluate_predictor(model, str(hand_data), "test", rotations=4)
    single = evaluate_predictor(model, str(hand_data), "test")
    assert single["rotations"] == 1
    assert written["per_keypoint"] == pytest.approx(expected["per_keypoint"], nan_ok=True)
    assert written["per_keypoint"] != pytest.approx(single["per_keypoint"], nan_ok=True)
    result = _invoke(["evaluate", path, "--data", hand_data, "--rotations", 3])
    assert result.exit_code == 2 and "rotations must be one of [1, 2, 4]" in result.output
    assert "rotations=3" in result.output


def test_evaluate_with_dark_decoding_says_it_is_not_the_protocol(hand_data, hand_model,
                                                                  tmp_path):
    path, model = hand_model
    out = tmp_path / "eval_dark.json"
    result = _invoke(["evaluate", path, "--data", hand_data, "--decoding", "dark", "--json", out])
    assert result.exit_code == 0, result.output
    assert ("NOT the protocol: DARK sub-pixel decoding of the predictions (the protocol: argmax)"
            in " ".join(result.output.split()))
    written = json.loads(out.read_text())
    assert written["decoding"] == "dark"
    expected = evaluate_predictor(model, str(hand_data), "test", decoding="dark")
    assert expected["decoding"] == "dark"
    assert written["per_keypoint"] == pytest.approx(expected["per_keypoint"], nan_ok=True)
    assert evaluate_predictor(model, str(hand_data), "test", limit=1)["decoding"] == "argmax"
    result = _invoke(["evaluate", path, "--data", hand_data, "--decoding", "soft"])
    # refused by the option's choices, before anything is loaded
    assert result.exit_code == 2 and "'soft' is not one of 'argmax', 'dark'" in _flat(result.output)


def test_evaluate_a_run_folder_defaults_to_the_runs_target(hand_data, hand_model, tmp_path):
    path, model = hand_model
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "pose_predictor.keras")
    write_json(run / "config.json", {"task": "hand", "target": str(hand_data)})
    result = _invoke(["evaluate", run, "--limit", 3])
    assert result.exit_code == 0, result.output
    assert "(test, 3 samples)" in result.output
    assert str(run / "pose_predictor.keras") in result.output


def test_evaluate_body_prints_all_and_all16(tmp_path):
    write_dataset(tmp_path / "body", skeleton="body16", n=3, seed=2)
    model = tiny_predictor(16, seed=1)
    model.save(tmp_path / "body.keras")
    result = _invoke(["evaluate", tmp_path / "body.keras", "--data", tmp_path / "body"])
    assert result.exit_code == 0, result.output
    header = [line for line in result.output.splitlines() if line.startswith("Model")][0]
    assert header.split() == ["Model", *BODY16.columns]
    assert header.split()[-2:] == ["All", "All-16"]
    assert "All = mean of the 12 limb joints" in result.output


def test_evaluate_errors_name_the_problem(hand_data, hand_model, tmp_path):
    path, _ = hand_model
    missing = tmp_path / "nope.keras"
    result = _invoke(["evaluate", missing, "--data", hand_data])
    assert result.exit_code == 2
    assert "Model file not found" in result.output and str(missing) in result.output

    empty_run = tmp_path / "unfinished"
    empty_run.mkdir()
    result = _invoke(["evaluate", empty_run, "--data", hand_data])
    assert result.exit_code == 2
    assert str(empty_run / "pose_predictor.keras") in result.output

    result = _invoke(["evaluate", path, "--data", hand_data, "--split", "val"])
    assert result.exit_code == 2
    assert "split='val'" in result.output and "['test', 'train']" in result.output

    write_dataset(tmp_path / "body", skeleton="body16", n=1)
    result = _invoke(["evaluate", path, "--data", tmp_path / "body"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "predicts 21 keypoints" in message and "'body16' (16 keypoints)" in message
    assert str(path) in message and str(tmp_path / "body") in message

    result = _invoke(["evaluate", path, "--data", tmp_path / "no-data"])
    assert result.exit_code == 2 and "meta.json" in result.output

    result = _invoke(["evaluate", path])
    assert result.exit_code == 2 and "--data" in result.output


# ============================================================================ predict
def _block_image(path, width=128, height=96, x=(40, 48), y=(32, 40), colour=(255, 0, 0)):
    image = np.zeros((height, width, 3), np.uint8)
    image[y[0]:y[1], x[0]:x[1]] = colour
    Image.fromarray(image).save(path)
    return path


def test_predict_maps_keypoints_back_to_original_pixels_exactly(tmp_path):
    # 128x96 -> letterboxed into 64x64 at scale 1/2: the 8x8 block x in [40, 48), y in [32, 40)
    # fills input pixels [20, 24) x [24, 28), i.e. heatmap cell (5, 6), decoded at input
    # (20, 24); back in the original: x = (20 - 31.5) * 2 + 63.5, y = (24 - 31.5) * 2 + 47.5.
    model = block_model(21)
    model.save(tmp_path / "block.keras")
    image = _block_image(tmp_path / "photo.png")
    result = _invoke(["predict", tmp_path / "block.keras", image, "--out", tmp_path / "out"])
    assert result.exit_code == 0, result.output
    pred = json.loads((tmp_path / "out" / "photo.json").read_text())
    assert pred["keypoints"] == [[40.5, 32.5]] * 21
    assert pred["width"] == 128 and pred["height"] == 96
    assert pred["skeleton"] == "hand21"
    assert pred["keypoint_names"] == list(HAND21.keypoint_names)
    assert pred["region"] == {"center": [63.5, 47.5], "side": 128.0}
    # the heatmap maximum: the block's cell, slightly blurred at its edges by the antialiasing
    assert len(set(pred["scores"])) == 1 and 0.8 < pred["scores"][0] <= 1.0
    # the overlay is enlarged to 512 px on the longer side
    assert Image.open(tmp_path / "out" / "photo.png").size == (512, 384)
    index = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [row["image"] for row in index["images"]] == [str(image)]


def test_predict_crop_refines_on_the_protocol_crop(tmp_path):
    # keypoints 0..10 follow a red block, 11..20 a green one; the second pass runs on the
    # 1.5x square around the first pass's keypoints, where the blocks are 2x larger.
    channels = [0] * 11 + [1] * 10
    model = block_model(21, channels)
    model.save(tmp_path / "block.keras")
    image = np.zeros((96, 128, 3), np.uint8)
    image[32:40, 40:48] = (255, 0, 0)
    image[56:64, 72:80] = (0, 255, 0)
    Image.fromarray(image).save(tmp_path / "two.png")
    result = _invoke(["predict", tmp_path / "block.keras", tmp_path / "two.png", "--out",
                      tmp_path / "out", "--crop", "--decoding", "argmax"])
    assert result.exit_code == 0, result.output
    pred = json.loads((tmp_path / "out" / "two.json").read_text())
    # first pass: red at (40.5, 32.5), green at (72.5, 56.5); box 32 x 24 -> side 48 around
    # (56.5, 44.5); the integer crop of `synpose convert --crop` (writer.crop_box) starts at
    # left = round(32.5) = 32, top = round(20.5) = 20 -> pixel centres 32..79, 20..67.
    assert pred["crop"] is True
    assert pred["region"] == {"center": [55.5, 43.5], "side": 48.0}
    kp = np.array(pred["keypoints"])
    # second pass at 48 -> 64 (4/3 up): the decoded cell corners lie inside each block
    red, green = kp[0], kp[11]
    assert np.all(kp[:11] == red) and np.all(kp[11:] == green)
    assert 40 - 0.5 <= red[0] < 48 and 32 - 0.5 <= red[1] < 40
    assert 72 - 0.5 <= green[0] < 80 and 56 - 0.5 <= green[1] < 64
    # exact: input corner (4i, 4j) -> x = (4i - 31.5) * 48 / 64 + 55.5
    xs = {(4 * i - 31.5) * 0.75 + 55.5 for i in range(16)}
    assert red[0] in xs and green[0] in xs


def test_predict_records_its_decoding_dark_by_default(tmp_path, hand_model):
    path, _ = hand_model
    image = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(8).integers(0, 256, (64, 64, 3), dtype=np.uint8)
                    ).save(image)
    result = _invoke(["predict", path, image, "--out", tmp_path / "dark", "--no-overlays"])
    assert result.exit_code == 0, result.output
    assert "dark decoding" in result.output
    dark = json.loads((tmp_path / "dark" / "noise.json").read_text())
    assert dark["decoding"] == "dark"
    assert json.loads((tmp_path / "dark" / "predictions.json").read_text())["decoding"] == "dark"
    result = _invoke(["predict", path, image, "--out", tmp_path / "argmax", "--no-overlays",
                      "--decoding", "argmax"])
    assert result.exit_code == 0, result.output
    argmax = json.loads((tmp_path / "argmax" / "noise.json").read_text())
    assert argmax["decoding"] == "argmax"
    # a 64 x 64 image is the model's input as is: argmax = 4 x cell, DARK within one cell of it
    kp_dark, kp_argmax = np.array(dark["keypoints"]), np.array(argmax["keypoints"])
    assert np.all(kp_argmax % 4 == 0)
    assert np.abs(kp_dark - kp_argmax).max() <= 4.0 + 1e-6
    assert np.abs(kp_dark - kp_argmax).max() > 0.01  # the refinement did something
    assert dark["scores"] == pytest.approx(argmax["scores"])
    result = _invoke(["predict", path, image, "--out", tmp_path / "bad", "--decoding", "soft"])
    assert result.exit_code == 2 and "'soft' is not one of 'argmax', 'dark'" in _flat(result.output)


def test_predict_folder_with_several_sizes(tmp_path, hand_model):
    path, _ = hand_model
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(3)
    sizes = {"a.png": (50, 70), "b.jpg": (64, 64), "c.png": (120, 40)}
    for name, (w, h) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    result = _invoke(["predict", path, folder, "--out", out, "--batch-size", 2])
    assert result.exit_code == 0, result.output
    assert "Predicted 3 image(s) (hand21)" in result.output
    for name, (w, h) in sizes.items():
        stem = name.split(".")[0]
        pred = json.loads((out / f"{stem}.json").read_text())
        assert (pred["width"], pred["height"]) == (w, h)
        kp = np.array(pred["keypoints"])
        assert kp.shape == (21, 2) and len(pred["scores"]) == 21
        # letterboxed: every decoded keypoint lies inside the padded square around the image
        side = max(w, h)
        assert np.all(kp[:, 0] >= (w - side) / 2 - 0.5) and np.all(kp[:, 0] <= (w + side) / 2)
        scale = 512 / max(w, h)  # overlays: at least 512 px on the longer side
        assert Image.open(out / f"{stem}.png").size == (round(w * scale), round(h * scale))
    index = json.loads((out / "predictions.json").read_text())
    assert [os.path.basename(r["image"]) for r in index["images"]] == ["a.png", "b.jpg", "c.png"]


def test_predict_corrupt_image_is_named_or_skipped(tmp_path, hand_model):
    path, _ = hand_model
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(good)
    bad = tmp_path / "bad.jpg"
    data = good.read_bytes()
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 20)
    result = _invoke(["predict", path, good, bad, "--out", tmp_path / "out"])
    assert result.exit_code == 2
    assert f"Cannot read image {bad}" in " ".join(result.output.split())

    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    result = _invoke(["predict", path, good, bad, truncated, "--out", tmp_path / "out2",
                      "--skip-bad", "--no-progress"])
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "out2" / "predictions.json").read_text())
    assert [os.path.basename(r["image"]) for r in index["images"]] == ["good.png"]
    assert [os.path.basename(r["image"]) for r in index["skipped"]] == ["bad.jpg", "truncated.png"]

    result = _invoke(["predict", path, tmp_path / "missing.png", "--out", tmp_path / "out3"])
    assert result.exit_code == 2 and "Image not found" in result.output


# ============================================================================ export
@pytest.mark.slow
def test_export_saved_model_and_tflite_match_the_keras_model(tmp_path, hand_model):
    import tensorflow as tf

    from synpose_keras.inference.export import run_artefact

    path, model = hand_model
    images = np.random.default_rng(5).integers(0, 256, (3, 64, 64, 3)).astype(np.float32)
    expected = np.asarray(model(images, training=False))
    scale = float(np.abs(expected).max())
    assert scale > 1.0  # the comparison is not vacuous

    result = _invoke(["export", path, "--format", "saved_model", "--out", tmp_path / "sm"])
    assert result.exit_code == 0, result.output
    assert "Verified against the Keras model" in result.output
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    got = loaded.signatures["serving_default"](images=tf.constant(images))["heatmaps"].numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)
    meta = json.loads((tmp_path / "sm" / "assets.extra" / "synpose.json").read_text())
    assert (meta["input_size"], meta["heatmap_size"], meta["stride"]) == (64, 16, 4)
    assert meta["skeleton"] == "hand21" and len(meta["keypoint_names"]) == 21
    assert meta["handedness"] is None  # a bare .keras file: no run, no source to read it from

    result = _invoke(["export", path, "--format", "tflite", "--out", tmp_path / "m.tflite"])
    assert result.exit_code == 0, result.output
    got = run_artefact(str(tmp_path / "m.tflite"), "tflite", images[:1])
    np.testing.assert_allclose(got, expected[:1], rtol=0, atol=1e-4 * scale)
    leftovers = [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    assert leftovers == []


def test_export_uint8_signature_refuses_overwrite_and_bad_format(tmp_path, hand_model):
    from synpose_keras.inference import export_model
    from synpose_keras.inference.export import run_artefact

    path, model = hand_model
    info = export_model(path, tmp_path / "sm8", format="saved_model", input_dtype="uint8")
    assert info["max_abs_diff"] is not None and info["input_dtype"] == "uint8"
    images = np.random.default_rng(6).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    expected = np.asarray(model(images.astype(np.float32), training=False))
    got = run_artefact(str(tmp_path / "sm8"), "saved_model", images)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()))
    meta = json.loads((tmp_path / "sm8" / "assets.extra" / "synpose.json").read_text())
    assert info["decoding"] == meta["decoding"] == "dark"  # what `synpose predict` does
    assert meta["protocol_decoding"] == "argmax" and meta["decoding_sigma"] == 2.0
    assert "DARK" in meta["decode"] and "x_in = x_hm * stride" in meta["decode"]

    result = _invoke(["export", path, "--out", tmp_path / "sm8"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = _invoke(["export", path, "--format", "onnx", "--out", tmp_path / "x"])
    assert result.exit_code == 2 and "'onnx' is not one of 'saved_model', 'tflite'" in _flat(result.output)
    assert not (tmp_path / "x").exists()


# ============================================================================ report
def _fake_run(root, data_dir, with_pseudo=True, model=None):
    """A RUN folder in the format written by synpose_keras.training.train.Trainer."""
    run = root / "run"
    run.mkdir()
    write_json(run / "config.json", {
        "task": "hand", "method": "ours", "preset": "tiny", "seed": 0,
        "source": "/data/source", "target": None if data_dir is None else str(data_dir),
        "stages": ["style", "pretrain", "generator", "adapt"],
        "adapt": {"pseudo": "integrated", "rec": True, "overlap_threshold": 0.8},
    })

    def row(values, count=5):
        table = dict(zip(HAND21.columns, values))
        return {"table": table, "per_keypoint": [values[-1]] * 21, "count": count,
                "data": str(data_dir), "split": "test", "threshold": 0.05}

    write_json(run / "evaluation.json", {
        "task": "hand", "method": "ours", "target": str(data_dir), "split": "test",
        "rows": {"after pretrain": row([70.0, 65.5, 60.25, 50.0, 62.0]),
                 "after adapt": row([80.0, 75.5, 70.0, 61.25, 72.5])},
    })
    write_json(run / "pretrain" / "history.json",
               [{"epoch": e, "loss": 1.0 / (e + 1), "target_pck_all": 40.0 + 5 * e}
                for e in range(3)])
    write_json(run / "style" / "history.json",
               [{"epoch": e, "loss": 2.0 - e, "content_loss": 1.5 - e / 2} for e in range(2)])
    write_json(run / "adapt" / "history.json", [
        {"epoch": e, "loss": 0.5 - 0.1 * e, "rec_loss": 0.2, "overlap": o,
         "combined": float(c), "pl_overlap": o, "target_pck_all": 60.0 + e}
        for e, (o, c) in enumerate([(0.41, False), (0.83, True), (0.7, True)])])
    if with_pseudo:
        write_json(run / "adapt" / "pseudo_labels.json", [
            {"epoch": e, "overlap": o, "selected": 100 + e, "accuracy": 0.5 + 0.1 * e,
             "saturation": 0.3 + 0.1 * e, "coincidence": math.nan if e == 0 else 0.25,
             "inversion": 0.2 + 0.05 * e, "combined": c}
            for e, (o, c) in enumerate([(0.40, False), (0.82, True), (0.71, True)])])
    if model is not None:
        model.save(run / "pose_predictor.keras")
    return run


def test_report_draws_every_figure_and_summarises(tmp_path, hand_data, hand_model):
    _, model = hand_model
    run = _fake_run(tmp_path, hand_data, model=model)
    result = _invoke(["report", run, "--overlays", 3])
    assert result.exit_code == 0, result.output
    report = run / "report"
    for name in ("pck.png", "pseudo_labels.png", "training.png", "target_pck.png",
                 "predictions.png"):
        assert Image.open(report / name).format == "PNG", name
    # 3 tiles of 64 px in one row (2 px padding), enlarged 4x, and the 16 px legend strip
    assert Image.open(report / "predictions.png").size == (4 * (3 * 66 + 2), 4 * 68 + 16)
    readme = (report / "README.md").read_text()
    assert "| Stage | MCP | PIP | DIP | Fin | All |" in readme
    assert "| after pretrain | 70.0 | 65.5 | 60.2 | 50.0 | 62.0 |" in readme
    assert "| after adapt | 80.0 | 75.5 | 70.0 | 61.2 | 72.5 |" in readme
    assert "after adaptation epoch 2 (overlap 0.830 ≥ threshold 0.8)" in readme
    assert "| 1 | 0.400 | 100 | 0.500 | 0.300 | - | 0.200 | no |" in readme
    assert "Final epoch: overlap 0.710, label accuracy 0.700, saturation 0.500" in readme
    assert "teacher poses inverted (mirror image) 0.300" in readme
    for name in ("pck.png", "pseudo_labels.png", "training.png", "target_pck.png",
                 "predictions.png"):
        assert f"]({name})" in readme
    assert "3 test images of" in readme


def test_report_skips_what_is_missing(tmp_path):
    run = _fake_run(tmp_path, None, with_pseudo=False)
    result = _invoke(["report", run])
    assert result.exit_code == 0, result.output
    assert "pseudo_labels: skipped (no adapt/pseudo_labels.json)" in result.output
    assert "predictions: skipped (no target dataset in config.json)" in result.output
    readme = (run / "report" / "README.md").read_text()
    # the switch still comes from the adaptation history
    assert "after adaptation epoch 2 (overlap 0.830" in readme
    assert "Skipped: no target dataset in config.json." in readme
    assert not (run / "report" / "pseudo_labels.png").exists()
    assert (run / "report" / "training.png").exists()

    result = _invoke(["report", tmp_path / "empty"])
    assert result.exit_code == 2


def test_export_states_the_handedness_of_a_run_trained_on_left_hands(tmp_path, hand_model):
    import shutil

    from synpose_keras.inference import export_model

    path, _ = hand_model
    source = tmp_path / "rhd"
    source.mkdir()
    (source / "meta.json").write_text(json.dumps(
        {"dataset": "rhd", "skeleton": "hand21", "converter": {"options": {"flip_right": True}}}))
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(path, run / "pose_predictor.keras")
    (run / "config.json").write_text(json.dumps({"task": "hand", "source": str(source)}))
    info = export_model(str(run), tmp_path / "sm", format="saved_model")
    meta = json.loads((tmp_path / "sm" / "assets.extra" / "synpose.json").read_text())
    assert meta["handedness"] == info["handedness"] == "left"


def test_export_and_predict_read_the_handedness_from_a_bare_keras_file(tmp_path):
    from synpose_keras.inference import export_model

    model = tiny_predictor(21, seed=0)
    model.handedness = "left"  # as training sets it from a mirroring hand source
    path = tmp_path / "hand.keras"  # no run folder: only the file states it
    model.save(path)
    info = export_model(str(path), tmp_path / "sm", format="saved_model", verify=False)
    meta = json.loads((tmp_path / "sm" / "assets.extra" / "synpose.json").read_text())
    assert meta["handedness"] == info["handedness"] == "left"

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "x.png")
    result = _invoke(["predict", path, tmp_path / "x.png", "--out", tmp_path / "out",
                      "--no-overlays"])
    assert result.exit_code == 0, result.output
    assert "trained on left hands only" in result.output and "--flip" in result.output
