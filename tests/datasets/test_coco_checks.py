"""COCO converter on real-export shapes: nested keypoints, mapping checks (hand order, swapped
sides), the unlabelled nose, the 21-joint hint; the TLlib crop on an overhanging box; the
converter help texts."""

import json
import os
import warnings

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from synpose_keras.datasets.converters.base import ConversionWarning, DatasetLayoutError, Record
from synpose_keras.datasets.converters.coco import COCO17_NAMES, COCOConverter
from synpose_keras.datasets.writer import transform_record
from synpose_keras.skeletons import BODY16

B = {name: i for i, name in enumerate(BODY16.keypoint_names)}
C = {name: i for i, name in enumerate(COCO17_NAMES)}


def _image(path, w=64, h=48):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path)


def _write(root, names, instances, nested=False):
    """A COCO JSON (train split only) with one image per instance; instances: (K, 3) arrays."""
    images, anns = [], []
    for n, inst in enumerate(instances):
        _image(str(root / "imgs" / f"{n}.png"))
        values = inst.tolist() if nested else inst.ravel().tolist()
        images.append({"id": n, "file_name": f"{n}.png"})
        anns.append({"id": 100 + n, "image_id": n, "keypoints": values})
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "x", "keypoints": list(names)}]}
    (root / "a.json").write_text(json.dumps(data))
    return dict(train_json="a.json", test_json="", train_images="imgs")


def _body(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(10, 40, (17, 2)).round(1), np.full((17, 1), 2.0)], 1)


def _hand(reverse_fingers=False):
    """An open hand: wrist at the bottom, fingers fanned upwards (MCP 12 px, tip 30 px out)."""
    kp = [[32.0, 44.0, 2]]
    for f, angle in enumerate(np.linspace(-0.9, 0.9, 5)):
        direction = np.array([np.sin(angle), -np.cos(angle)])
        joints = [np.array([32.0, 44.0]) + r * direction for r in (12, 18, 24, 30)]
        if reverse_fingers:
            joints = joints[::-1]
        kp += [[*j, 2] for j in joints]
    return np.array(kp)


def test_nested_keypoints_read_like_flat(tmp_path):
    insts = [_body(0), _body(1)]
    flat = COCOConverter(str(tmp_path / "f"), **_write(tmp_path / "f", COCO17_NAMES, insts))
    nested = COCOConverter(str(tmp_path / "n"),
                           **_write(tmp_path / "n", COCO17_NAMES, insts, nested=True))
    a, b = flat.items("train"), nested.items("train")
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        rx, ry = x.load(), y.load()
        np.testing.assert_array_equal(rx.keypoints, ry.keypoints)
        np.testing.assert_array_equal(rx.visible, ry.visible)


def test_hand_mapping_in_another_order_warns(tmp_path):
    names = [f"j{i}" for i in range(21)]
    good = COCOConverter(str(tmp_path / "g"), task="hand",
                         **_write(tmp_path / "g", names, [_hand()] * 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConversionWarning)
        good.items("train")
    bad = COCOConverter(str(tmp_path / "b"), task="hand",
                        **_write(tmp_path / "b", names, [_hand(reverse_fingers=True)] * 3))
    with pytest.warns(ConversionWarning, match="15 of 15 labelled fingers.*nearer the wrist"):
        bad.items("train")
    assert "hand mapping looks wrong" in bad.describe()["mapping_warnings"][0]


def test_body_mapping_that_swaps_sides_warns(tmp_path):
    opts = _write(tmp_path / "c", COCO17_NAMES, [_body()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConversionWarning)
        COCOConverter(str(tmp_path / "c"), **opts).items("train")  # the built-in mapping
    mapping = {"r_ankle": "left_ankle", "l_ankle": "right_ankle", "pelvis": ["left_hip", "right_hip"]}
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    conv = COCOConverter(str(tmp_path / "c"), mapping=str(tmp_path / "map.json"), **opts)
    with pytest.warns(ConversionWarning, match="swaps left and right .*r_ankle <- left_ankle"):
        conv.items("train")


def test_unlabelled_nose_does_not_put_the_head_at_the_origin(tmp_path):
    inst = _body()
    inst[C["nose"]] = (0, 0, 0)  # COCO stores an unlabelled joint as (0, 0, 0)
    rec = COCOConverter(str(tmp_path / "c"), **_write(tmp_path / "c", COCO17_NAMES, [inst])) \
        .items("train")[0].load()
    face = inst[[C["left_eye"], C["right_eye"], C["left_ear"], C["right_ear"]], :2].mean(0)
    np.testing.assert_allclose(rec.keypoints[B["head_top"]], face, atol=1e-4)
    assert rec.visible[B["head_top"]] == 0 and rec.visible[B["upper_neck"]] == 0
    assert np.all(rec.keypoints[B["upper_neck"]] > 1)


def test_21_joints_without_task_hand_are_told_to_pass_it(tmp_path):
    opts = _write(tmp_path / "h", [f"j{i}" for i in range(21)], [_hand()])
    with pytest.raises(DatasetLayoutError, match="look like a hand.*pass --task hand"):
        COCOConverter(str(tmp_path / "h"), **opts).items("train")


def test_tllib_crop_on_an_overhanging_box_has_no_black_band():
    image = np.full((48, 64, 3), 90, np.uint8)
    kp = np.array([[5.0, 4.0], [50.0, 40.0]] + [[30.0, 20.0]] * 19, np.float32)
    record = Record(image=image, keypoints=kp, visible=np.ones(21, np.float32))
    tllib = transform_record(record, crop=True)  # 1.5 x 45 = 68 px > the 48 px shorter side
    assert tllib.image.shape == (48, 48, 3) and tllib.image.min() == 90
    padded = transform_record(record, crop=True, crop_policy="pad")
    assert padded.image.shape[0] == 68 and padded.image.min() == 0


def test_converter_help_texts():
    from synpose_keras.cli.app import app

    runner = CliRunner()
    frames = runner.invoke(app, ["convert", "frames", "--help"], terminal_width=200).output
    assert "official release" not in frames and "your footage" in frames
    lsp = runner.invoke(app, ["convert", "lsp", "--help"], terminal_width=200).output
    assert "``" not in lsp and "LSP (official lsp_dataset)" in lsp
    coco = runner.invoke(app, ["convert", "coco", "--help"], terminal_width=200).output
    assert "tllib|pad" in coco


def test_convert_cli_prints_the_mapping_warning(tmp_path):
    from synpose_keras.cli.app import app

    names = [f"j{i}" for i in range(21)]
    opts = _write(tmp_path / "b", names, [_hand(reverse_fingers=True)] * 3)
    result = CliRunner().invoke(app, [
        "convert", "coco", str(tmp_path / "b"), "--out", str(tmp_path / "out"), "--task", "hand",
        "--train-json", opts["train_json"], "--test-json", "", "--train-images", "imgs",
        "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "Warning: " in result.output and "hand mapping looks wrong" in result.output
