"""RHD converter: official layout -> Hand21 records (TLlib filter, right-hand flip, 3D, errors)."""

import os
import pathlib
import pickle
import shutil

import numpy as np
import pytest

from synpose_keras.datasets import convert, load_records, read_meta
from synpose_keras.datasets.converters import load_all
from synpose_keras.datasets.converters.base import BadSampleError, DatasetLayoutError
from synpose_keras.datasets.converters.rhd import RHDConverter, keep_hand

_spec_path = pathlib.Path(__file__).with_name("fixtures_hand.py")
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("_fixtures_hand_rhd", _spec_path)
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)

SIZE = 320


@pytest.fixture(scope="module")
def rhd(tmp_path_factory):
    root = tmp_path_factory.mktemp("rhd_src")
    expected = F.write_rhd(str(root), size=SIZE, seed=0)
    return str(root), expected


def _expected(expected, source_id, flip_right=True):
    folder, sample, hand = source_id.split("/")
    e = expected[folder][int(sample)][hand]
    uv, xyz = e["uv"].copy(), e["xyz"].copy()
    if hand == "right" and flip_right:
        uv[:, 0] = SIZE - 1 - uv[:, 0]
        xyz[:, 0] = -xyz[:, 0]
    return uv, e["visible"], xyz


def test_registered():
    assert load_all()["rhd"] is RHDConverter


def test_items_follow_tllib_filter(rhd):
    root, _ = rhd
    conv = RHDConverter(root)
    assert [it.source_id for it in conv.items("train")] == F.RHD_KEPT["train"]
    assert [it.source_id for it in conv.items("test")] == F.RHD_KEPT["test"]


def test_without_filter_every_hand_is_kept(rhd):
    root, _ = rhd
    conv = RHDConverter(root, tllib_filter=False)
    assert [it.source_id for it in conv.items("train")] == F.RHD_ALL["train"]
    assert [it.source_id for it in conv.items("test")] == F.RHD_ALL["test"]


def test_accepts_release_folder_or_its_parent(rhd):
    root, _ = rhd
    a = RHDConverter(root).items("test")
    b = RHDConverter(os.path.join(root, "RHD_published_v2")).items("test")
    assert [i.source_id for i in a] == [i.source_id for i in b]


@pytest.mark.parametrize("flip_right", [True, False])
def test_records_are_hand21_flipped_and_projectable(rhd, flip_right):
    root, expected = rhd
    conv = RHDConverter(root, flip_right=flip_right)
    for split in ("train", "test"):
        for item in conv.items(split):
            rec = item.load()
            hand = item.source_id.split("/")[2]
            uv, vis, xyz = _expected(expected, item.source_id, flip_right)
            assert rec.image.shape == (SIZE, SIZE, 3) and rec.image.dtype == np.uint8
            np.testing.assert_allclose(rec.keypoints, uv, atol=1e-3)
            np.testing.assert_array_equal(rec.visible, vis)
            np.testing.assert_allclose(rec.keypoints_3d, xyz, atol=1e-5)
            colours = F.LEFT_COLOURS if hand == "left" else F.RIGHT_COLOURS
            F.assert_on_colours(rec.image, rec.keypoints, np.ones(21), colours, item.source_id)
            reproj = F.project(rec.keypoints_3d, rec.intrinsics)
            assert np.max(np.abs(reproj - rec.keypoints)) < 0.5
            assert rec.sequence == ""
            assert rec.frame == int(item.source_id.split("/")[1])
            assert rec.view == hand
            assert rec.source_id == item.source_id


def test_flipped_right_hand_thumb_is_mirrored(rhd):
    """A right hand mirrored must look like a left hand: x reflected about the image centre."""
    root, expected = rhd
    rec = {i.source_id: i for i in RHDConverter(root).items("train")}["training/00000/right"].load()
    raw = expected["training"][0]["right"]["uv"]
    np.testing.assert_allclose(rec.keypoints[:, 0] + raw[:, 0], SIZE - 1, atol=1e-3)
    np.testing.assert_allclose(rec.keypoints[:, 1], raw[:, 1], atol=1e-3)


def _hand(lo, hi, n_visible=21):
    """21 points whose box is exactly [lo, hi] (2-vectors)."""
    t = np.linspace(0, 1, 21)
    pts = np.stack([lo[0] + t * (hi[0] - lo[0]), lo[1] + t[::-1] * (hi[1] - lo[1])], axis=1)
    vis = np.zeros(21)
    vis[:n_visible] = 1
    return pts, vis


def test_keep_hand_thresholds():
    far = _hand((300, 300), (310, 310))[0]
    # longer side 44 -> 1.5x box side round(66) -> right-left = 65 > 64: kept; 43 -> 64: dropped
    assert keep_hand(*_hand((100, 100), (144, 120)), far)
    assert not keep_hand(*_hand((100, 100), (143, 120)), far)
    # 17 visible kept, 16 dropped
    assert keep_hand(*_hand((100, 100), (160, 160), 17), far)
    assert not keep_hand(*_hand((100, 100), (160, 160), 16), far)
    # box side 60 -> square [85, 174]^2 (8100 px); the other hand's box covers 26 or 27 columns
    pts, vis = _hand((100, 100), (160, 160))
    assert keep_hand(pts, vis, _hand((85, 85), (110, 174))[0])  # 26 * 90 / 8100 = 0.289
    assert not keep_hand(pts, vis, _hand((85, 85), (111, 174))[0])  # 27 * 90 / 8100 = 0.3


def test_convert_end_to_end_with_crop(rhd, tmp_path):
    root, expected = rhd
    out = str(tmp_path / "rhd")
    meta = convert(RHDConverter(root), out, crop=True, image_format="png", progress=False)
    assert meta["counts"] == {"train": 4, "test": 3}
    assert read_meta(out)["has_3d"] is True
    for split in ("train", "test"):
        ids = []
        for r in load_records(out, split).as_numpy_iterator():
            sid = r["source_id"].decode()
            ids.append(sid)
            hand = sid.split("/")[2]
            colours = F.LEFT_COLOURS if hand == "left" else F.RIGHT_COLOURS
            assert r["image"].shape[0] == r["image"].shape[1] < SIZE  # cropped square
            F.assert_on_colours(r["image"], r["keypoints"], np.ones(21), colours, sid)
            reproj = F.project(r["keypoints_3d"], r["intrinsics"])
            assert np.max(np.abs(reproj - r["keypoints"])) < 0.5
            _, vis, xyz = _expected(expected, sid)
            np.testing.assert_allclose(r["keypoints_3d"], xyz, atol=1e-5)
            np.testing.assert_array_equal(r["visible"], vis)
            assert r["sequence"] == b""
        assert ids == F.RHD_KEPT[split]


def test_bad_samples_stop_or_are_skipped_and_nothing_is_lost(tmp_path):
    root = str(tmp_path / "src")
    # training sample 1: truncated PNG (its left hand is kept); sample 3 (normally filtered out):
    # NaN in its left hand's uv -> the left hand becomes an item whose load raises BadSampleError
    # naming the left hand; the right hand is judged by the filter on its own (issue 18).
    F.write_rhd(root, size=SIZE, seed=1, nan_sample=("training", 3),
                truncate_sample=("training", 1))
    conv = RHDConverter(root)
    ids = [it.source_id for it in conv.items("train")]
    assert ids == ["training/00000/left", "training/00000/right", "training/00001/left",
                   "training/00002/right", "training/00003/left"]
    out = str(tmp_path / "out")
    with pytest.raises(BadSampleError, match=r"color[/\\]00001\.png"):
        convert(conv, out, records_per_shard=1, image_format="png", progress=False)
    # the two shards finished before the bad sample are kept on disk
    done = sorted(p for p in os.listdir(out) if p.endswith(".tfrecord"))
    assert done == ["train-00000-of-00005.tfrecord", "train-00001-of-00005.tfrecord"]
    assert not os.path.exists(os.path.join(out, "meta.json"))

    meta = convert(conv, out, records_per_shard=1, image_format="png", skip_bad=True,
                   progress=False)
    assert meta["counts"] == {"train": 3, "test": 3}
    skipped = {s["source_id"]: s["reason"] for s in meta["skipped"]["train"]}
    assert sorted(skipped) == ["training/00001/left", "training/00003/left"]
    assert "00001.png" in skipped["training/00001/left"]
    assert "NaN" in skipped["training/00003/left"]
    assert "left hand" in skipped["training/00003/left"]
    assert "right hand" not in skipped["training/00003/left"]
    got = [r["source_id"].decode() for r in load_records(out, "train").as_numpy_iterator()]
    assert sorted(got) == ["training/00000/left", "training/00000/right", "training/00002/right"]


def test_truncated_image_and_nan_raise_bad_sample(tmp_path):
    root = str(tmp_path)
    F.write_rhd(root, size=SIZE, seed=2, nan_sample=("evaluation", 0),
                truncate_sample=("training", 0))
    conv = RHDConverter(root)
    with pytest.raises(BadSampleError, match=r"training[/\\]color[/\\]00000\.png"):
        conv.items("train")[0].load()
    bad = [it for it in conv.items("test") if it.source_id.startswith("evaluation/00000")]
    assert [it.source_id for it in bad] == ["evaluation/00000/left", "evaluation/00000/right"]
    with pytest.raises(BadSampleError, match=r"NaN.*left hand"):
        bad[0].load()
    assert bad[1].load().view == "right"  # the NaN is in the left hand only (issue 18)


def test_missing_annotation_file_is_named(rhd, tmp_path):
    root, _ = rhd
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    os.remove(copy / "RHD_published_v2" / "evaluation" / "anno_evaluation.pickle")
    with pytest.raises(DatasetLayoutError, match="anno_evaluation.pickle") as err:
        RHDConverter(str(copy))
    assert "RHD_published_v2" in str(err.value)


def test_wrong_folder(rhd, tmp_path):
    root, _ = rhd
    with pytest.raises(DatasetLayoutError, match="anno_training.pickle"):
        RHDConverter(os.path.join(root, "RHD_published_v2", "training"))
    with pytest.raises(DatasetLayoutError, match="training/ and evaluation/"):
        RHDConverter(str(tmp_path))


def test_unreadable_pickle_is_a_layout_error(rhd, tmp_path):
    root, _ = rhd
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    with open(copy / "RHD_published_v2" / "training" / "anno_training.pickle", "wb") as f:
        f.write(pickle.dumps({0: 1})[:5])
    conv = RHDConverter(str(copy))
    with pytest.raises(DatasetLayoutError, match="anno_training.pickle"):
        conv.items("train")


def test_unknown_option():
    with pytest.raises(ValueError, match="flip"):
        RHDConverter("/nonexistent", flip=True)
