"""The ``coco`` converter on COCO-style fixtures written here."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from synpose_keras.datasets import convert, load_records
from synpose_keras.datasets.converters.base import BadSampleError, DatasetLayoutError
from synpose_keras.datasets.converters.coco import COCO17_NAMES, COCOConverter
from synpose_keras.skeletons import BODY16

B = {name: i for i, name in enumerate(BODY16.keypoint_names)}


def _coco17(seed, v=None):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(10, 50, (17, 2)).round(1)
    vis = np.full(17, 2) if v is None else np.asarray(v)
    return xy, vis


def _flat(xy, vis):
    return [float(t) for row in np.concatenate([xy, vis[:, None]], 1) for t in row]


def _image(path, w=64, h=48, colour=(90, 90, 90)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((h, w, 3), colour, np.uint8)).save(path)


@pytest.fixture()
def coco(tmp_path):
    root = tmp_path / "coco"
    os.makedirs(root / "annotations")
    _image(str(root / "train2017" / "000001.jpg"))
    _image(str(root / "train2017" / "000002.jpg"))
    _image(str(root / "val2017" / "000010.jpg"))
    xy1, v1 = _coco17(1)
    v2 = np.full(17, 2)
    v2[[11]] = 0  # left hip unlabelled -> pelvis invisible
    v2[[5]] = 1  # labelled but occluded -> visible
    xy2, _ = _coco17(2)
    xy3, v3 = _coco17(3, v=[0] * 16 + [2])  # one visible keypoint: filtered by min_keypoints=2
    cats = [{"id": 1, "name": "person", "keypoints": list(COCO17_NAMES)}]
    train = {
        "images": [{"id": 2, "file_name": "000002.jpg"}, {"id": 1, "file_name": "000001.jpg"}],
        "annotations": [
            {"id": 11, "image_id": 1, "keypoints": _flat(xy1, v1), "iscrowd": 0},
            {"id": 12, "image_id": 2, "keypoints": _flat(xy2, v2), "iscrowd": 0},
            {"id": 13, "image_id": 1, "keypoints": _flat(xy3, v3), "iscrowd": 0},
            {"id": 14, "image_id": 2, "keypoints": _flat(xy1, v1), "iscrowd": 1},
        ],
        "categories": cats,
    }
    val = {
        "images": [{"id": 10, "file_name": "000010.jpg"}],
        "annotations": [{"id": 20, "image_id": 10, "keypoints": _flat(xy2, np.full(17, 2))}],
        "categories": cats,
    }
    (root / "annotations" / "person_keypoints_train2017.json").write_text(json.dumps(train))
    (root / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(val))
    return {"root": str(root), "xy1": xy1, "xy2": xy2, "v2": v2}


def test_builtin_body16_mapping(coco):
    conv = COCOConverter(coco["root"], min_keypoints=2)
    assert conv.splits == ("train", "test") and conv.skeleton == "body16"
    items = conv.items("train")
    # image order of the JSON's images list (image 2 first), crowd and sparse instances dropped
    assert [it.source_id for it in items] == ["000002.jpg#12", "000001.jpg#11"]
    rec = items[1].load()
    xy = coco["xy1"]
    c = {name: i for i, name in enumerate(COCO17_NAMES)}
    np.testing.assert_allclose(rec.keypoints[B["r_ankle"]], xy[c["right_ankle"]], atol=1e-5)
    np.testing.assert_allclose(rec.keypoints[B["l_wrist"]], xy[c["left_wrist"]], atol=1e-5)
    np.testing.assert_allclose(rec.keypoints[B["r_shoulder"]], xy[c["right_shoulder"]], atol=1e-5)
    np.testing.assert_allclose(rec.keypoints[B["pelvis"]], (xy[c["left_hip"]] + xy[c["right_hip"]]) / 2, atol=1e-5)
    np.testing.assert_allclose(rec.keypoints[B["thorax"]],
                               (xy[c["left_shoulder"]] + xy[c["right_shoulder"]]) / 2, atol=1e-5)
    np.testing.assert_allclose(rec.keypoints[B["head_top"]], xy[c["nose"]], atol=1e-5)
    expected_vis = np.ones(16, np.float32)
    expected_vis[[B["upper_neck"], B["head_top"]]] = 0
    np.testing.assert_array_equal(rec.visible, expected_vis)
    assert rec.image.shape == (48, 64, 3) and rec.sequence == "" and rec.source_id == "000001.jpg#11"

    rec2 = items[0].load()
    assert rec2.visible[B["pelvis"]] == 0 and rec2.visible[B["l_hip"]] == 0
    assert rec2.visible[B["l_shoulder"]] == 1  # v = 1 counts as labelled
    assert rec2.visible.sum() == 16 - 2 - 2
    assert [it.source_id for it in COCOConverter(coco["root"], min_keypoints=0).items("train")] == [
        "000002.jpg#12", "000001.jpg#11", "000001.jpg#13"]
    assert len(COCOConverter(coco["root"], include_crowd=True, min_keypoints=2).items("train")) == 3


def test_convert_with_crop_and_describe(coco, tmp_path):
    out = str(tmp_path / "out")
    meta = convert(COCOConverter(coco["root"], min_keypoints=2), out, crop=True, image_format="png",
                   progress=False)
    assert meta["counts"] == {"train": 2, "test": 1}
    assert meta["converter"]["not_derivable"] == ["head_top", "upper_neck"]
    assert meta["converter"]["joint_mapping"]["pelvis"] == ["left_hip", "right_hip"]
    recs = list(load_records(out, "test"))
    assert recs[0]["image"].shape[0] == recs[0]["image"].shape[1]
    assert recs[0]["source_id"].numpy() == b"000010.jpg#20"


def test_user_mapping_file_dict_and_list(coco, tmp_path):
    mapping = {"r_ankle": "left_ankle", "pelvis": [11, 12], "head_top": "nose", "thorax": None}
    path = tmp_path / "map.json"
    path.write_text(json.dumps(mapping))
    rec = COCOConverter(coco["root"], mapping=str(path), test_json="").items("train")[1].load()
    xy = coco["xy1"]
    np.testing.assert_allclose(rec.keypoints[B["r_ankle"]], xy[15], atol=1e-5)
    np.testing.assert_allclose(rec.keypoints[B["pelvis"]], (xy[11] + xy[12]) / 2, atol=1e-5)
    np.testing.assert_allclose(rec.keypoints[B["head_top"]], xy[0], atol=1e-5)
    assert rec.visible.sum() == 3  # unmapped targets are invisible

    lst = [16, 14, 12, 11, 13, 15, None, None, None, 0, 10, 8, 6, 5, 7, 9]
    path.write_text(json.dumps(lst))
    rec = COCOConverter(coco["root"], mapping=str(path)).items("train")[1].load()
    np.testing.assert_allclose(rec.keypoints[B["l_elbow"]], xy[7], atol=1e-5)
    assert rec.visible.sum() == 13

    path.write_text(json.dumps({"r_toe": "left_ankle"}))
    with pytest.raises(ValueError, match=r"unknown target joint name\(s\) \['r_toe'\]"):
        COCOConverter(coco["root"], mapping=str(path)).items("train")
    path.write_text(json.dumps({"r_ankle": "left_toe"}))
    with pytest.raises(ValueError, match="source joint 'left_toe' not in categories"):
        COCOConverter(coco["root"], mapping=str(path)).items("train")


def test_hand21_identity_sequences_and_3d(tmp_path):
    root = tmp_path / "mv"
    os.makedirs(root / "imgs")
    rng = np.random.default_rng(0)
    images, anns = [], []
    # two captures x two cameras, listed out of order
    for n, (seq, frame, cam) in enumerate([("b", 0, "c1"), ("a", 1, "c0"), ("a", 0, "c1"), ("a", 0, "c0")]):
        name = f"{seq}_{frame}_{cam}.png"
        _image(str(root / "imgs" / name), 40, 40)
        images.append({"id": n, "file_name": name, "sequence": seq, "frame_id": frame, "camera": cam,
                       "intrinsics": [[50, 0, 20], [0, 50, 20], [0, 0, 1]]})
        p3 = np.concatenate([rng.uniform(-1, 1, (21, 2)), rng.uniform(4, 6, (21, 1))], 1)
        uv = p3[:, :2] / p3[:, 2:] * 50 + 20
        anns.append({"id": 100 + n, "image_id": n, "keypoints": _flat(uv, np.full(21, 2)),
                     "keypoints_3d": p3.ravel().tolist()})
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "hand", "keypoints": [f"j{i}" for i in range(21)]}]}
    (root / "hand.json").write_text(json.dumps(data))
    conv = COCOConverter(str(root), task="hand", train_json="hand.json", test_json="", train_images="imgs",
                         with_3d=True)
    assert conv.splits == ("train",) and conv.skeleton == "hand21" and conv.has_3d
    items = conv.items("train")
    assert [it.source_id.split("#")[0] for it in items] == ["a_0_c0.png", "a_0_c1.png", "a_1_c0.png", "b_0_c1.png"]
    rec = items[0].load()
    assert (rec.sequence, rec.frame, rec.view) == ("a", 0, "c0")
    proj = rec.keypoints_3d @ rec.intrinsics.T
    np.testing.assert_allclose(proj[:, :2] / proj[:, 2:], rec.keypoints, atol=1e-3)
    meta = convert(conv, str(tmp_path / "out"), progress=False)
    assert meta["has_3d"] is True and meta["num_sequences"] == {"train": 2}


def test_layout_errors_and_bad_samples(coco, tmp_path):
    with pytest.raises(DatasetLayoutError, match="missing.json"):
        COCOConverter(coco["root"], train_json="missing.json")
    with pytest.raises(DatasetLayoutError, match="no COCO annotation file found"):
        COCOConverter(str(tmp_path))
    with pytest.raises(ValueError, match="Received: task='foot'"):
        COCOConverter(coco["root"], task="foot")
    with pytest.raises(DatasetLayoutError, match="no built-in mapping.*--mapping"):
        COCOConverter(coco["root"], task="hand").items("train")
    # a malformed keypoint list and a missing image are bad samples
    path = os.path.join(coco["root"], "annotations", "person_keypoints_val2017.json")
    val = json.load(open(path))
    val["annotations"].append({"id": 21, "image_id": 10, "keypoints": [1.0, 2.0, 2]})
    val["images"].append({"id": 11, "file_name": "gone.jpg"})
    val["annotations"].append({"id": 22, "image_id": 11, "keypoints": val["annotations"][0]["keypoints"]})
    json.dump(val, open(path, "w"))
    with pytest.raises(BadSampleError, match="000010.jpg#21.*--skip-bad"):
        convert(COCOConverter(coco["root"]), str(tmp_path / "o"), splits=["test"], progress=False)
    meta = convert(COCOConverter(coco["root"]), str(tmp_path / "o"), splits=["test"], skip_bad=True,
                   progress=False)
    reasons = {s["source_id"]: s["reason"] for s in meta["skipped"]["test"]}
    assert sorted(reasons) == ["000010.jpg#21", "gone.jpg#22"]
    assert "expected 17 keypoints, flat (51 values" in reasons["000010.jpg#21"]
    assert "not found" in reasons["gone.jpg#22"]
