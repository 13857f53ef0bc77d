"""3DPW converter: sequenceFiles/*.pkl (latin1 pickles) + imageFiles/ -> Body16 records."""

import os
import pickle
import shutil
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import fixtures_body as fx  # noqa: E402

from synpose_keras.datasets.converters import load_all  # noqa: E402
from synpose_keras.datasets.converters.base import BadSampleError, DatasetLayoutError  # noqa: E402
from synpose_keras.datasets.converters.threedpw import ThreeDPWConverter, openpose18_to_body16  # noqa: E402

OP = {n: i for i, n in enumerate(fx.OPENPOSE18_NAMES)}
# Body16 keypoints with a direct OpenPose-18 counterpart (by name)
DIRECT = {k: OP["neck" if n == "upper_neck" else n] for k, n in enumerate(fx.BODY16)
          if n in OP or n == "upper_neck"}


@pytest.fixture(scope="module")
def pw3d(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("3dpw") / "3DPW")
    truth = {
        "courtyard_a_00": fx.write_3dpw_sequence(
            root, "train", "courtyard_a_00", 5, 2, seed=1, missing={(1, 2)},
            low_conf={(0, 0): ["r_wrist", "l_hip"], (1, 4): ["r_hip", "l_hip", "l_ear", "r_ear"]}),
        "downtown_b_00": fx.write_3dpw_sequence(root, "test", "downtown_b_00", 3, 1, seed=2),
        "outdoors_c_01": fx.write_3dpw_sequence(root, "validation", "outdoors_c_01", 2, 1, seed=3),
    }
    return root, truth


def test_registered():
    assert load_all()["3dpw"] is ThreeDPWConverter


def test_counts_ids_and_sequences(pw3d):
    root, _ = pw3d
    conv = ThreeDPWConverter(root)
    train = conv.items("train")
    # person 0: frames 0-4; person 1: frames 0-4 except 2 (no detection)
    assert [it.source_id for it in train] == (
        [f"imageFiles/courtyard_a_00/image_{f:05d}.jpg#person0" for f in range(5)]
        + [f"imageFiles/courtyard_a_00/image_{f:05d}.jpg#person1" for f in (0, 1, 3, 4)])
    assert len(conv.items("val")) == 2
    assert len(conv.items("test")) == 3
    assert len(ThreeDPWConverter(root, every=2).items("train")) == 3 + 2
    assert len(ThreeDPWConverter(root, min_keypoints=19).items("train")) == 0
    record = train[6].load()
    assert (record.sequence, record.frame, record.view) == ("courtyard_a_00/person1", 1, "")
    assert record.source_id == "imageFiles/courtyard_a_00/image_00001.jpg#person1"
    assert record.keypoints_3d is None


def test_mapping_colours_and_confidence(pw3d):
    root, truth = pw3d
    conv = ThreeDPWConverter(root)
    n = 0
    for split in conv.splits:
        for item in conv.items(split):
            record = item.load()
            seq = item.source_id.split("/")[1]
            frame = int(item.source_id.split("image_")[1][:5])
            person = int(item.source_id.split("#person")[1])
            pose = truth[seq]["poses2d"][person][frame]
            for k, j in DIRECT.items():
                assert record.visible[k] == float(pose[2, j] > 0.3)
                if record.visible[k]:
                    np.testing.assert_allclose(record.keypoints[k], pose[:2, j], atol=1e-4)
            # pelvis / thorax: midpoints, visible when both ends are
            for k, (a, b) in ((6, ("r_hip", "l_hip")), (7, ("r_shoulder", "l_shoulder"))):
                both = pose[2, OP[a]] > 0.3 and pose[2, OP[b]] > 0.3
                assert record.visible[k] == float(both)
                if both:
                    np.testing.assert_allclose(
                        record.keypoints[k], 0.5 * (pose[:2, OP[a]] + pose[:2, OP[b]]), atol=1e-4)
            assert record.visible[9] == 0  # head top: no OpenPose counterpart
            assert np.all(np.isfinite(record.keypoints))
            assert fx.mismatched_keypoints(record.image, record.keypoints, record.visible) == []
            n += 1
    assert n == 9 + 2 + 3
    low = conv.items("train")[0].load()  # person 0, frame 0: r-wrist and l-hip low confidence
    assert low.visible[10] == 0 and low.visible[3] == 0 and low.visible[6] == 0
    assert int(low.visible.sum()) == 16 - 4


def test_head_top_estimate():
    xy = np.zeros((18, 2))
    xy[OP["neck"]] = (30, 40)
    xy[OP["r_ear"]], xy[OP["l_ear"]] = (26, 30), (34, 32)
    xy[OP["nose"]] = (30, 33)
    vis = np.ones(18, np.float32)
    vis[[OP["r_eye"], OP["l_eye"]]] = 0
    kp, v = openpose18_to_body16(xy, vis, head_top="estimate")
    np.testing.assert_allclose(kp[9], (30, 22))  # neck + 2 * (mean of ears - neck)
    assert v[9] == 1
    vis[[OP["r_ear"], OP["l_ear"]]] = 0
    kp, v = openpose18_to_body16(xy, vis, head_top="estimate")
    np.testing.assert_allclose(kp[9], (30, 26))  # from the nose when no ear or eye is seen
    vis[OP["neck"]] = 0
    kp, v = openpose18_to_body16(xy, vis, head_top="estimate")
    assert v[9] == 0


def test_layout_errors(pw3d, tmp_path):
    root, _ = pw3d
    with pytest.raises(DatasetLayoutError, match="sequenceFiles"):
        ThreeDPWConverter(str(tmp_path))
    with pytest.raises(DatasetLayoutError, match="sequenceFiles"):
        ThreeDPWConverter(os.path.join(root, "imageFiles"))
    part = tmp_path / "part"
    shutil.copytree(os.path.join(root, "sequenceFiles"), part / "sequenceFiles")
    with pytest.raises(DatasetLayoutError, match="imageFiles"):
        ThreeDPWConverter(str(part))
    (part / "imageFiles").mkdir()
    shutil.rmtree(part / "sequenceFiles" / "validation")
    with pytest.raises(DatasetLayoutError, match="validation"):
        ThreeDPWConverter(str(part)).items("val")
    (part / "sequenceFiles" / "test" / "downtown_b_00.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DatasetLayoutError, match="downtown_b_00.pkl"):
        ThreeDPWConverter(str(part)).items("test")
    with pytest.raises(ValueError, match="head_top"):
        ThreeDPWConverter(root, head_top="guess")


def test_bad_samples(pw3d, tmp_path):
    root, _ = pw3d
    part = tmp_path / "bad"
    shutil.copytree(root, part)
    fx.truncate_file(str(part / "imageFiles" / "downtown_b_00" / "image_00001.jpg"), keep=0.4)
    pkl = part / "sequenceFiles" / "test" / "downtown_b_00.pkl"
    with open(pkl, "rb") as f:
        data = pickle.load(f, encoding="latin1")
    data["poses2d"][0][2, 0, 4] = np.nan
    with open(pkl, "wb") as f:
        pickle.dump(data, f, protocol=2)
    items = ThreeDPWConverter(str(part)).items("test")
    assert len(items) == 3
    items[0].load()
    with pytest.raises(BadSampleError, match="image_00001.jpg"):
        items[1].load()
    with pytest.raises(BadSampleError, match="image_00002.jpg.*NaN"):
        items[2].load()


def test_convert_and_read_back(pw3d, tmp_path):
    from synpose_keras.datasets import convert, load_records

    root, _ = pw3d
    conv = ThreeDPWConverter(root)
    out = str(tmp_path / "out")
    meta = convert(conv, out, image_format="png", progress=False)
    assert meta["counts"] == {"train": 9, "val": 2, "test": 3}
    assert meta["num_sequences"] == {"train": 2, "val": 1, "test": 1}
    for split in conv.splits:
        expected = {it.source_id: it.load() for it in conv.items(split)}
        got = list(load_records(out, split, num_parallel_reads=None).as_numpy_iterator())
        assert [r["source_id"].decode() for r in got] == list(expected)
        for r in got:
            e = expected[r["source_id"].decode()]
            np.testing.assert_array_equal(r["keypoints"], e.keypoints)
            np.testing.assert_array_equal(r["visible"], e.visible)
            assert r["sequence"].decode() == e.sequence and int(r["frame"]) == e.frame
            assert fx.mismatched_keypoints(r["image"], r["keypoints"], r["visible"]) == []
