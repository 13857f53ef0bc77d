"""`predict --boxes FILE`: a small subject at a known place in a large image, framed by its
detection box, comes back in original pixels; both box formats; bad files are one line."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from synpose_keras.inference.boxes import BoxFileError, boxes_for, read_boxes
from synpose_keras.inference.predict import predict_images
from tests.cli.inference_helpers import block_model


def _scene(path, blocks):
    """A 640x480 black image with 6x6 red blocks at the given top-left corners."""
    image = np.zeros((480, 640, 3), np.uint8)
    for x, y in blocks:
        image[y:y + 6, x:x + 6] = (255, 0, 0)
    Image.fromarray(image).save(path)
    return path


def test_boxes_give_keypoints_in_original_pixels_per_box(tmp_path):
    path = _scene(tmp_path / "000000000042.png", [(400, 300), (100, 60)])
    detections = [
        {"image_id": 42, "bbox": [385, 285, 36, 36], "score": 0.9},
        {"image_id": 42, "bbox": [80, 40, 46, 46], "score": 0.7},
        {"image_id": 42, "bbox": [0, 0, 600, 400], "score": 0.1},  # below --min-box-score
    ]
    (tmp_path / "det.json").write_text(json.dumps(detections))
    model = block_model(21)
    rows = predict_images(model, [path], tmp_path / "out", boxes=tmp_path / "det.json",
                          progress=False)
    instances = rows[0]["instances"]
    assert [inst["box_score"] for inst in instances] == [0.9, 0.7]
    for inst, centre in zip(instances, [(402.5, 302.5), (102.5, 62.5)]):
        kp = np.asarray(inst["keypoints"])
        assert np.abs(kp - centre).max() < 4.0, (kp[0], centre)
    assert rows[0]["keypoints"] == instances[0]["keypoints"]
    written = json.loads((tmp_path / "out" / "000000000042.json").read_text())
    assert len(written["instances"]) == 2
    assert Image.open(tmp_path / "out" / "000000000042.png").size == (640, 480)


def test_per_frame_boxes_flip_and_images_without_boxes(tmp_path):
    a = _scene(tmp_path / "a.png", [(400, 300)])
    b = _scene(tmp_path / "b.png", [(300, 200)])
    (tmp_path / "boxes.json").write_text(json.dumps({"a.png": [[385, 285, 36, 36]]}))
    rows = predict_images(block_model(21), [a, b], tmp_path / "out", overlays=False,
                          boxes=tmp_path / "boxes.json", progress=False, flip=True)
    kp = np.asarray(rows[0]["instances"][0]["keypoints"])
    assert np.abs(kp - (402.5, 302.5)).max() < 4.0
    assert "instances" not in rows[1]  # no entry: framed whole


@pytest.mark.parametrize("content, expected", [
    ("", "not valid JSON"),
    ('[{"bbox": [1, 2, 3, 4]}]', "needs 'image_id' or 'file_name'"),
    ('{"a.png": [[1, 2, 0, 4]]}', "w, h > 0"),
    ('"boxes"', "expected a JSON list"),
])
def test_bad_box_files_are_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(BoxFileError, match=expected):
        read_boxes(path)


def test_cli_boxes_error_and_lookup(tmp_path):
    from synpose_keras.cli.app import app

    boxes = {"7": [{"bbox": [0, 0, 1, 1], "score": 1.0}]}
    assert boxes_for(boxes, "frames/0007.jpg") == boxes["7"]
    assert boxes_for(boxes, "other.jpg") is None
    model = block_model(21)
    model.save(tmp_path / "m.keras")
    image = _scene(tmp_path / "x.png", [(10, 10)])
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "m.keras"), str(image), "--out",
                                      str(tmp_path / "o"), "--boxes", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "Boxes file not found" in result.output
