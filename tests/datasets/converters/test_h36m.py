"""Human3.6M converter: JSON release (I2L-MeshNet/Pose2Mesh annotations) -> Body16 records."""

import os
import random
import shutil
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import fixtures_body as fx  # noqa: E402

from synpose_keras.datasets.converters import load_all  # noqa: E402
from synpose_keras.datasets.converters._image import project  # noqa: E402
from synpose_keras.datasets.converters.base import BadSampleError, DatasetLayoutError  # noqa: E402
from synpose_keras.datasets.converters.h36m import H36MConverter  # noqa: E402

SUBJECTS = "train_subjects", "test_subjects"


@pytest.fixture(scope="module")
def h36m(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("h36m") / "Human36M")
    truth = {
        1: fx.write_h36m_subject(root, 1, seed=1, actions=((2, 1), (3, 2)), num_frames=7),
        5: fx.write_h36m_subject(root, 5, seed=5, actions=((2, 1),), num_frames=6),
        9: fx.write_h36m_subject(root, 9, seed=9, actions=((4, 1),), num_frames=11),
    }
    return root, truth


def _conv(root, **kw):
    kw.setdefault("train_subjects", "1,5")
    kw.setdefault("test_subjects", "9")
    return H36MConverter(root, **kw)


def _parse(file_name):
    stem = os.path.basename(file_name)[:-4]
    parts = stem.split("_")
    return int(parts[1]), int(parts[3]), int(parts[5]), int(parts[7]), int(parts[8]) - 1


def test_registered():
    assert load_all()["h36m"] is H36MConverter


def test_counts_every_frame_and_ids(h36m):
    root, _ = h36m
    conv = _conv(root)
    train = conv.items("train")
    # S1: 2 (action, subaction) x 2 cams x frames {0, 5} of 7; S5: 1 x 2 x {0, 5} of 6
    assert len(train) == 8 + 4
    test = conv.items("test")
    assert [it.source_id for it in test] == [
        fx.h36m_file_name(9, 4, 1, cam, f) for cam in (1, 2) for f in (0, 5, 10)]
    assert len(_conv(root, every=1).items("test")) == 22
    assert len(_conv(root, every=2).items("test")) == 12
    record = test[4].load()
    assert (record.sequence, record.view, record.frame) == ("S9_a4_s1", "2", 5)
    assert record.source_id == fx.h36m_file_name(9, 4, 1, 2, 5)
    # views of one frame share sequence and frame (multi-view pairs)
    a, b = test[1].load(), test[4].load()
    assert (a.sequence, a.frame) == (b.sequence, b.frame) and a.view != b.view


def test_sample_by_list_is_tllib_rule(h36m):
    root, truth = h36m
    conv = _conv(root, sample_by="list")
    expected = [im["file_name"] for s in (1, 5) for i, im in enumerate(truth[s]["images"]) if i % 5 == 0]
    assert [it.source_id for it in conv.items("train")] == expected
    assert len(expected) == 6 + 3  # 28 and 12 images per subject


def test_keypoints_on_colours_and_projection(h36m):
    root, truth = h36m
    conv = _conv(root, every=1)
    n = 0
    for split in conv.splits:
        for item in conv.items(split):
            record = item.load()
            subject, action, subaction, cam, frame = _parse(item.source_id)
            target = truth[subject]["targets"][(action, subaction, frame, cam)]
            np.testing.assert_allclose(record.keypoints, target, atol=1e-3)
            assert fx.mismatched_keypoints(record.image, record.keypoints) == []
            r, t, k = truth[subject]["cameras"][cam]
            np.testing.assert_allclose(record.intrinsics, k, atol=1e-5)
            err = np.abs(project(record.keypoints_3d, record.intrinsics) - record.keypoints).max()
            assert err < 1e-3
            # camera frame, mm: depths as written (~4500 mm)
            assert np.all((record.keypoints_3d[:, 2] > 4000) & (record.keypoints_3d[:, 2] < 5000))
            np.testing.assert_array_equal(record.visible, np.ones(16, np.float32))
            n += 1
    assert n == 28 + 12 + 22


def test_thorax_is_midpoint_of_the_shoulders(h36m):
    root, _ = h36m
    record = _conv(root).items("test")[0].load()
    np.testing.assert_allclose(
        record.keypoints_3d[7], 0.5 * (record.keypoints_3d[12] + record.keypoints_3d[13]), atol=1e-3)


def test_test_draws_with_replacement(h36m):
    root, _ = h36m
    base = [it.source_id for it in _conv(root).items("test")]
    conv = _conv(root, test_draws=9, draw_seed=42)
    drawn = [it.source_id for it in conv.items("test")]
    picks = random.Random(42).choices(range(len(base)), k=9)
    assert drawn == [f"{base[i]}@draw{j}" for j, i in enumerate(picks)]
    assert len(set(picks)) < 9  # with replacement: duplicates with 6 candidates
    record = conv.items("test")[0].load()
    assert record.source_id == drawn[0]
    assert len(conv.items("train")) == 12  # draws only affect the test split
    assert [it.source_id for it in _conv(root, test_draws=9, draw_seed=1).items("test")] != drawn


def test_layout_errors(h36m, tmp_path):
    root, _ = h36m
    with pytest.raises(DatasetLayoutError, match="annotations"):
        H36MConverter(str(tmp_path))
    with pytest.raises(DatasetLayoutError, match="annotations"):
        H36MConverter(os.path.join(root, "images"))
    # default subjects: S6/S7/S8/S11 are not there; the error names the missing file
    conv = H36MConverter(root)
    with pytest.raises(DatasetLayoutError, match="Human36M_subject6_data.json"):
        conv.items("train")
    part = tmp_path / "part"
    shutil.copytree(root, part)
    os.remove(part / "annotations" / "Human36M_subject9_camera.json")
    with pytest.raises(DatasetLayoutError, match="Human36M_subject9_camera.json"):
        _conv(str(part)).items("test")
    shutil.rmtree(part / "images")
    with pytest.raises(DatasetLayoutError, match="images"):
        _conv(str(part))
    with pytest.raises(ValueError, match="sample_by"):
        _conv(root, sample_by="index")


def test_bad_samples(h36m, tmp_path):
    import json

    root, _ = h36m
    part = tmp_path / "bad"
    shutil.copytree(root, part)
    trunc = fx.h36m_file_name(9, 4, 1, 1, 5)
    fx.truncate_file(str(part / "images" / trunc), keep=0.4)
    path = part / "annotations" / "Human36M_subject9_joint_3d.json"
    joints = json.loads(path.read_text())
    joints["4"]["1"]["10"][3][0] = float("nan")
    del joints["4"]["1"]["0"]
    path.write_text(json.dumps(joints))
    items = {it.source_id: it for it in _conv(str(part)).items("test")}
    with pytest.raises(BadSampleError, match=trunc.replace("/", ".")):
        items[trunc].load()
    with pytest.raises(BadSampleError, match="NaN"):
        items[fx.h36m_file_name(9, 4, 1, 2, 10)].load()
    with pytest.raises(BadSampleError, match="frame 0"):
        items[fx.h36m_file_name(9, 4, 1, 1, 0)].load()


def test_convert_and_read_back(h36m, tmp_path):
    from synpose_keras.datasets import convert, load_records

    root, _ = h36m
    conv = _conv(root)
    out = str(tmp_path / "out")
    meta = convert(conv, out, image_format="png", progress=False)
    assert meta["counts"] == {"train": 12, "test": 6}
    assert meta["num_sequences"] == {"train": 3, "test": 1}
    for split in conv.splits:
        expected = {it.source_id: it.load() for it in conv.items(split)}
        got = list(load_records(out, split, num_parallel_reads=None).as_numpy_iterator())
        assert [r["source_id"].decode() for r in got] == list(expected)
        for r in got:
            e = expected[r["source_id"].decode()]
            np.testing.assert_array_equal(r["keypoints"], e.keypoints)
            np.testing.assert_array_equal(r["keypoints_3d"], e.keypoints_3d)
            assert r["view"].decode() == e.view and int(r["frame"]) == e.frame
            assert fx.mismatched_keypoints(r["image"], r["keypoints"]) == []


def test_convert_crop_keeps_keypoints_on_colours(h36m, tmp_path):
    from synpose_keras.datasets import convert, load_records

    root, _ = h36m
    out = str(tmp_path / "crop")
    convert(_conv(root), out, splits=["test"], crop=True, image_format="png", progress=False)
    for r in load_records(out, "test").as_numpy_iterator():
        assert fx.mismatched_keypoints(r["image"], r["keypoints"]) == []
        err = np.abs(project(r["keypoints_3d"], r["intrinsics"]) - r["keypoints"]).max()
        assert err < 1e-2


def test_convert_skip_bad_records_truncated_image(h36m, tmp_path):
    from synpose_keras.datasets import convert

    root, _ = h36m
    part = tmp_path / "bad"
    shutil.copytree(root, part)
    trunc = fx.h36m_file_name(9, 4, 1, 2, 0)
    fx.truncate_file(str(part / "images" / trunc), keep=0.4)
    meta = convert(_conv(str(part)), str(tmp_path / "out"), splits=["test"], skip_bad=True, progress=False)
    assert meta["counts"] == {"test": 5}
    assert [s["source_id"] for s in meta["skipped"]["test"]] == [trunc]
    assert trunc.split("/")[-1] in meta["skipped"]["test"][0]["reason"]
