"""Issue 18, items 9, 10 (model files, export, evaluate) and 11 (predict --skip-bad): every PIL
mode is read with its values, and bad inputs are one-line errors naming the file."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from synpose_keras.datasets.converters._image import load_image, to_rgb8
from synpose_keras.inference.predict import read_image
from tests.cli.inference_helpers import tiny_predictor
from tests.reliability.helpers import invoke, tree_hashes
from tests.training.tiny_data import write_tiny

GRADIENT = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))  # (8, 64), 0..252


def _mode_image(mode):
    """``GRADIENT`` in PIL mode ``mode``, and the 8-bit gray values expected back."""
    g = GRADIENT
    if mode == "1":
        return Image.fromarray(g >= 128), np.where(g >= 128, 255, 0)
    if mode == "I;16":
        return Image.fromarray(g.astype(np.uint16) * 257), g
    if mode == "I":
        return Image.fromarray(g.astype(np.int32) * 257), g
    if mode == "F":
        return Image.fromarray(g.astype(np.float32) / 255.0), g
    if mode == "P":
        return Image.fromarray(g, "L").convert("P"), g
    if mode == "CMYK":
        return Image.fromarray(np.stack([g] * 3, -1), "RGB").convert("CMYK"), g
    base = Image.fromarray(g, "L")
    return base.convert(mode), g


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_pil_mode_becomes_8_bit_rgb_with_its_values(mode):
    image, expected = _mode_image(mode)
    assert image.mode == mode
    rgb = np.asarray(to_rgb8(image))
    assert rgb.dtype == np.uint8 and rgb.shape == GRADIENT.shape + (3,)
    assert np.abs(rgb.astype(int) - expected[..., None]).max() <= 2, mode


@pytest.mark.parametrize("bits", [8, 16])
def test_16_bit_png_is_scaled_not_clamped_to_white(tmp_path, bits):
    """Item 9 probe: a 16-bit grayscale PNG read by predict (and by the converters) was 99%
    white."""
    path = str(tmp_path / "gray.png")
    if bits == 16:
        Image.fromarray(GRADIENT.astype(np.uint16) * 257).save(path)
    else:
        Image.fromarray(GRADIENT, "L").save(path)
    for rgb in (np.asarray(read_image(path)), load_image(path)):
        assert np.abs(rgb.astype(int) - GRADIENT[..., None]).max() <= 1
        assert (rgb == 255).mean() < 0.05


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "hand.keras"
    tiny_predictor(21, seed=0).save(path)
    return path


def test_predict_16_bit_png_end_to_end(tmp_path, model_path):
    image = tmp_path / "gray16.png"
    Image.fromarray(np.tile(GRADIENT, (8, 1)).astype(np.uint16) * 257).save(image)
    result = invoke("predict", model_path, image, "--out", tmp_path / "out", "--no-progress")
    assert result.exit_code == 0, result.output
    overlay = np.asarray(Image.open(tmp_path / "out" / "gray16.png").convert("L"))
    assert (overlay == 255).mean() < 0.2  # was 99% white


def test_predict_skip_bad_skips_a_missing_input_too(tmp_path, model_path):
    """Item 11: with --skip-bad a missing file among several inputs no longer aborts."""
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(good)
    missing = tmp_path / "missing.png"
    result = invoke("predict", model_path, good, missing, "--out", tmp_path / "out",
                    "--skip-bad", "--no-progress")
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [os.path.basename(r["image"]) for r in index["images"]] == ["good.png"]
    assert index["skipped"] == [{"image": str(missing), "reason": f"Image not found: {missing}"}]
    # nothing readable at all: refused, not an empty result with exit 0
    result = invoke("predict", model_path, missing, "--out", tmp_path / "out2", "--skip-bad",
                    "--no-progress")
    assert result.exit_code == 2 and "None of the 1 input(s)" in result.output


def _one_line_error(result):
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert lines[-1].startswith("Error: ") and "Traceback" not in result.output, result.output
    return " ".join(" ".join(lines).split())


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_an_empty_or_truncated_keras_file_is_named(tmp_path, model_path, damage):
    """Item 10 probe: Keras said 'File not found' for an existing, damaged file."""
    data = model_path.read_bytes()
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(image)
    before = tree_hashes(tmp_path)
    for args in (["predict", bad, image, "--out", tmp_path / "p"],
                 ["export", bad, "--out", tmp_path / "e"]):
        line = _one_line_error(invoke(*args))
        assert str(bad) in line and "File not found" not in line
        assert ("empty (0 bytes)" if damage == "empty" else "truncated") in line
    assert tree_hashes(tmp_path) == before


def test_export_to_a_path_under_a_file_is_named(tmp_path, model_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    line = _one_line_error(invoke("export", model_path, "--out", blocker / "sub" / "model"))
    assert f"{blocker} is a file" in line and "Errno" not in line
    assert blocker.read_text() == "x"


def test_evaluate_on_an_unlabelled_split_explains_instead_of_a_table_of_dashes(tmp_path,
                                                                              model_path):
    data = tmp_path / "unlabelled"
    write_tiny(data, n=2, seed=0, labelled=False)
    line = _one_line_error(invoke("evaluate", model_path, "--data", data))
    assert "no visible (labelled) keypoint" in line and str(data) in line
