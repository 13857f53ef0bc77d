"""examples/keras_inference.py runs as a script on a saved model and an image."""

import json
import os
import runpy
import subprocess
import sys

import numpy as np
from PIL import Image

from synpose_keras.inference import predict_images
from tests.cli.inference_helpers import block_model, tiny_predictor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "keras_inference.py")


def _run(model_path, image_path, out):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, SCRIPT, str(model_path), str(image_path), "--out",
                           str(out)], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_example_script_runs_as_a_subprocess_like_synpose_predict(tmp_path):
    model = tiny_predictor(21, seed=4)
    image = np.random.default_rng(7).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    model.save(tmp_path / "model.keras")
    Image.fromarray(image).save(tmp_path / "photo.png")
    out = _run(tmp_path / "model.keras", tmp_path / "photo.png", tmp_path / "overlay.png")
    assert out["skeleton"] == "hand21"
    assert Image.open(tmp_path / "overlay.png").size == (80, 60)
    kp = np.array(out["keypoints"])
    assert kp.shape == (21, 2) and len(out["scores"]) == 21
    # the same framing as `synpose predict` (an even padding), so the same keypoints
    expected = predict_images(model, [tmp_path / "photo.png"], tmp_path / "pred",
                              overlays=False, progress=False)[0]
    np.testing.assert_allclose(kp, np.array(expected["keypoints"]), atol=0.006)


def test_example_maps_a_block_back_exactly(tmp_path, capsys):
    # 128x96 padded to 128x128 (16 rows above), resized to 64: the 8x8 block at x [40, 48),
    # y [32, 40) fills heatmap cell (5, 6) -> input (20, 24) -> original (40.5, 32.5)
    block_model(21).save(tmp_path / "block.keras")
    image = np.zeros((96, 128, 3), np.uint8)
    image[32:40, 40:48] = (255, 0, 0)
    Image.fromarray(image).save(tmp_path / "photo.png")
    namespace = runpy.run_path(SCRIPT, run_name="example")
    namespace["main"]([str(tmp_path / "block.keras"), str(tmp_path / "photo.png"), "--out",
                       str(tmp_path / "overlay.png")])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["keypoints"] == [[40.5, 32.5]] * 21
