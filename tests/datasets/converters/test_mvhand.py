"""MVHand converter (generic multi-view JSON layout): ids, joint order, splits, 3D, errors."""

import importlib.util
import json
import os
import pathlib
import random

import numpy as np
import pytest

from synpose_keras.datasets import convert, load_records, read_meta
from synpose_keras.datasets.converters import load_all
from synpose_keras.datasets.converters.base import BadSampleError, DatasetLayoutError
from synpose_keras.datasets.converters.mvhand import MVHandConverter, parse_joint_order

_spec = importlib.util.spec_from_file_location(
    "_fixtures_hand_mvhand", pathlib.Path(__file__).with_name("fixtures_hand.py"))
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)

SIZE = 64
N = len(F.MV_SEQUENCES) * len(F.MV_VIEWS) * F.MV_FRAMES  # 20 entries, 4 per sequence


def _check_records(conv, entries, flip=False):
    by_image = {e["image"]: e for e in entries}
    for split in conv.splits:
        for item in conv.items(split):
            rec = item.load()
            e = by_image[item.source_id]
            uv = np.array(e["_uv"])
            np.testing.assert_allclose(rec.keypoints, uv, atol=1e-4)
            np.testing.assert_array_equal(rec.visible, e["_vis"])
            F.assert_on_colours(rec.image, rec.keypoints, rec.visible, F.LEFT_COLOURS,
                                item.source_id)
            assert (rec.sequence, rec.view, rec.frame) == (e["sequence"], e["view"], e["frame"])
            if conv.has_3d:
                assert np.max(np.abs(F.project(rec.keypoints_3d, rec.intrinsics)
                                     - rec.keypoints)) < 0.5


def test_registered():
    assert load_all()["mvhand"] is MVHandConverter


def test_records_keep_sequence_view_frame_and_3d(tmp_path):
    entries = F.write_mvhand(str(tmp_path), seed=0)
    conv = MVHandConverter(str(tmp_path))
    assert conv.has_3d is True
    _check_records(conv, entries)


def test_tip_first_joint_order(tmp_path):
    entries = F.write_mvhand(str(tmp_path), seed=1, tip_first=True)
    _check_records(MVHandConverter(str(tmp_path), joint_order="tip_first"), entries)
    # reading it in the wrong order puts keypoints on the wrong colours
    rec = MVHandConverter(str(tmp_path)).items("train")[0].load()
    with pytest.raises(AssertionError, match="lies on colour"):
        F.assert_on_colours(rec.image, rec.keypoints, rec.visible, F.LEFT_COLOURS)


def test_without_3d(tmp_path):
    entries = F.write_mvhand(str(tmp_path), seed=2, with_3d=False)
    conv = MVHandConverter(str(tmp_path))
    assert conv.has_3d is False
    _check_records(conv, entries)
    assert conv.items("train")[0].load().keypoints_3d is None


def test_grouped_split_by_sequence(tmp_path):
    F.write_mvhand(str(tmp_path), seed=0)
    conv = MVHandConverter(str(tmp_path))
    seq = lambda it: it.source_id.split("/")[1]  # noqa: E731
    train = {seq(it) for it in conv.items("train")}
    test = [seq(it) for it in conv.items("test")]
    assert len(test) == 4 and len(set(test)) == 1  # int(0.2 * 20) = 4 = one whole sequence
    assert train.isdisjoint(test)
    shuffled = list(F.MV_SEQUENCES)
    random.Random(42).shuffle(shuffled)
    assert test[0] == shuffled[0]


def test_ungrouped_split_is_the_plain_seed42_shuffle(tmp_path):
    entries = F.write_mvhand(str(tmp_path), seed=0)
    images = [e["image"] for e in entries]
    random.seed(42)
    random.shuffle(images)
    conv = MVHandConverter(str(tmp_path), group_split=False)
    assert [it.source_id for it in conv.items("test")] == images[:4]
    assert [it.source_id for it in conv.items("train")] == images[4:]


def test_explicit_split_field(tmp_path):
    entries = F.write_mvhand(str(tmp_path), seed=0, with_split=True)
    conv = MVHandConverter(str(tmp_path))
    assert [it.source_id for it in conv.items("test")] == [
        e["image"] for e in entries if e["split"] == "test"]
    assert len(conv.items("train")) == N - 4


def test_flip_right(tmp_path):
    entries = F.write_mvhand(str(tmp_path), seed=0)
    entries[0]["hand"] = "right"
    with open(tmp_path / "annotations.json", "w") as f:
        json.dump({"annotations": entries}, f)
    conv = MVHandConverter(str(tmp_path), flip_right=True, group_split=False)
    item = next(it for s in conv.splits for it in conv.items(s)
                if it.source_id == entries[0]["image"])
    rec = item.load()
    np.testing.assert_allclose(rec.keypoints[:, 0], SIZE - 1 - np.array(entries[0]["_uv"])[:, 0],
                               atol=1e-4)
    F.assert_on_colours(rec.image, rec.keypoints, rec.visible, F.LEFT_COLOURS)
    assert np.max(np.abs(F.project(rec.keypoints_3d, rec.intrinsics) - rec.keypoints)) < 0.5


def test_convert_end_to_end_with_bad_sample(tmp_path):
    src = tmp_path / "src"
    entries = F.write_mvhand(str(src), seed=0, truncate_index=7)
    out = str(tmp_path / "out")
    meta = convert(MVHandConverter(str(src)), out, skip_bad=True, crop=True, image_format="png",
                   progress=False)
    assert meta["counts"]["train"] + meta["counts"]["test"] == N - 1
    skipped = [s for sp in ("train", "test") for s in meta["skipped"][sp]]
    assert [s["source_id"] for s in skipped] == [entries[7]["image"]]
    assert entries[7]["image"].split("/")[-1] in skipped[0]["reason"]
    assert read_meta(out)["has_3d"] is True
    seqs = set()
    for split in ("train", "test"):
        for r in load_records(out, split).as_numpy_iterator():
            seqs.add(r["sequence"].decode())
            F.assert_on_colours(r["image"], r["keypoints"], r["visible"], F.LEFT_COLOURS,
                                r["source_id"].decode())
            assert np.max(np.abs(F.project(r["keypoints_3d"], r["intrinsics"])
                                 - r["keypoints"])) < 0.5
    assert seqs == set(F.MV_SEQUENCES)


def test_bad_entries(tmp_path):
    entries = F.write_mvhand(str(tmp_path), seed=0)
    entries[0]["keypoints2d"][3][0] = float("nan")
    entries[1]["keypoints2d"] = entries[1]["keypoints2d"][:20]
    with open(tmp_path / "annotations.json", "w") as f:
        json.dump(entries, f)
    conv = MVHandConverter(str(tmp_path), group_split=False)
    items = {it.source_id: it for s in conv.splits for it in conv.items(s)}
    with pytest.raises(BadSampleError, match="NaN"):
        items[entries[0]["image"]].load()
    with pytest.raises(BadSampleError, match=r"\(20, 3\)"):
        items[entries[1]["image"]].load()


def test_layout_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="annotations.json") as err:
        MVHandConverter(str(tmp_path))
    assert "datasets/mvhand.md" in str(err.value)
    (tmp_path / "annotations.json").write_text('{"images": 3}')
    with pytest.raises(DatasetLayoutError, match="expected a list"):
        MVHandConverter(str(tmp_path))
    (tmp_path / "annotations.json").write_text('[{"image": "a.png", "split": "val"}]')
    with pytest.raises(DatasetLayoutError, match="'val'"):
        MVHandConverter(str(tmp_path))


def test_joint_order_option():
    assert parse_joint_order("hand21") == tuple(range(21))
    assert parse_joint_order("tip_first")[1:5] == (4, 3, 2, 1)
    assert parse_joint_order(",".join(map(str, range(20, -1, -1))))[0] == 20
    with pytest.raises(ValueError, match="joint_order='1,2'"):
        parse_joint_order("1,2")
