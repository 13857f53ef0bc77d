"""H3D converter: TLlib's H3D_crop layout, without_object task, seed-42 split, capture ids."""

import importlib.util
import json
import os
import pathlib
import random

import numpy as np
import pytest

from synpose_keras.datasets import convert, load_records
from synpose_keras.datasets.converters import load_all
from synpose_keras.datasets.converters.base import BadSampleError, DatasetLayoutError
from synpose_keras.datasets.converters.h3d import H3DConverter, default_capture_ids

_spec = importlib.util.spec_from_file_location(
    "_fixtures_hand_h3d", pathlib.Path(__file__).with_name("fixtures_hand.py"))
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)


@pytest.fixture(scope="module")
def h3d(tmp_path_factory):
    root = tmp_path_factory.mktemp("h3d_src")
    entries = F.write_h3d(str(root), seed=0)
    return str(root), entries


def _tllib_split(entries, task="noobject"):
    """TLlib Hand3DStudio.__init__ on the annotation list."""
    samples = list(entries)
    if task == "noobject":
        samples = [s for s in samples if int(s["without_object"]) == 1]
    random.seed(42)
    random.shuffle(samples)
    n_test = min(int(len(samples) * 0.2), 3200)
    return [s["name"] for s in samples[n_test:]], [s["name"] for s in samples[:n_test]]


def test_registered():
    assert load_all()["h3d"] is H3DConverter


def test_split_reproduces_tllib(h3d):
    root, entries = h3d
    conv = H3DConverter(root)
    train, test = _tllib_split(entries)
    assert [it.source_id for it in conv.items("train")] == train
    assert [it.source_id for it in conv.items("test")] == test
    assert (len(train), len(test)) == (8, 1)  # 9 images without object; int(0.2 * 9) = 1


def test_with_object_keeps_everything(h3d):
    root, entries = h3d
    conv = H3DConverter(root, with_object=True)
    train, test = _tllib_split(entries, task="all")
    assert [it.source_id for it in conv.items("train")] == train
    assert [it.source_id for it in conv.items("test")] == test
    assert (len(train), len(test)) == (10, 2)


def test_records_match_annotation_and_colours(h3d):
    root, entries = h3d
    by_name = {e["name"]: e for e in entries}
    conv = H3DConverter(root)
    for split in ("train", "test"):
        for item in conv.items(split):
            rec = item.load()
            e = by_name[item.source_id]
            np.testing.assert_allclose(rec.keypoints, e["keypoint2d"], atol=1e-4)
            np.testing.assert_allclose(rec.keypoints_3d, e["keypoint3d"], atol=1e-6)
            np.testing.assert_allclose(rec.intrinsics, e["intrinsic_matrix"], atol=1e-5)
            np.testing.assert_array_equal(rec.visible, np.ones(21))
            F.assert_on_colours(rec.image, rec.keypoints, rec.visible, F.LEFT_COLOURS,
                                item.source_id)
            assert np.max(np.abs(F.project(rec.keypoints_3d, rec.intrinsics)
                                 - rec.keypoints)) < 0.5
            capture, camera = int(item.source_id.split("/")[1]), int(item.source_id[-6:-4])
            assert rec.sequence == f"part{1 + capture % 2}/{capture:04d}"
            assert (rec.view, rec.frame) == ("", camera)


def test_default_capture_ids():
    assert default_capture_ids("part3/0012/07.jpg") == ("part3/0012", "", 7)
    assert default_capture_ids("part1\\abc\\img_0042.png") == ("part1/abc", "", 42)
    assert default_capture_ids("x.jpg") == ("", "", 0)


def test_sequence_regex(h3d):
    root, _ = h3d
    conv = H3DConverter(root, sequence_regex=r"(?P<sequence>part\d/\d+)/(?P<view>\d+)\.jpg$")
    rec = conv.items("train")[0].load()
    assert rec.sequence == os.path.dirname(rec.source_id)
    assert rec.view == os.path.basename(rec.source_id)[:2]
    with pytest.raises(ValueError, match="named group"):
        H3DConverter(root, sequence_regex=r"(part\d)")
    with pytest.raises(ValueError, match="does not match"):
        H3DConverter(root, sequence_regex=r"(?P<sequence>nomatch)").items("train")


def test_group_split_keeps_captures_together(h3d):
    root, _ = h3d
    conv = H3DConverter(root, with_object=True, group_split=True)
    train = {os.path.dirname(i.source_id) for i in conv.items("train")}
    test = [os.path.dirname(i.source_id) for i in conv.items("test")]
    assert train.isdisjoint(test)
    # 12 images, bound int(0.2 * 12) = 2 < one capture (3 views): the test split stays empty
    assert test == []
    # one image per sequence: the grouped split is then TLlib's split
    conv = H3DConverter(root, with_object=True, group_split=True,
                        sequence_regex=r"(?P<sequence>part\d/\d+/\d+)")
    train, test = _tllib_split(_entries(root), task="all")
    assert [i.source_id for i in conv.items("test")] == test
    assert [i.source_id for i in conv.items("train")] == train


def _entries(root):
    with open(os.path.join(root, "H3D_crop", "annotation.json")) as f:
        return json.load(f)


def test_convert_end_to_end(h3d, tmp_path):
    root, _ = h3d
    out = str(tmp_path / "h3d")
    meta = convert(H3DConverter(root), out, crop=True, image_format="png", progress=False)
    assert meta["counts"] == {"train": 8, "test": 1}
    assert meta["num_sequences"]["train"] == 3
    for split in ("train", "test"):
        for r in load_records(out, split).as_numpy_iterator():
            F.assert_on_colours(r["image"], r["keypoints"], r["visible"], F.LEFT_COLOURS,
                                r["source_id"].decode())
            assert np.max(np.abs(F.project(r["keypoints_3d"], r["intrinsics"])
                                 - r["keypoints"])) < 0.5


def test_bad_samples(tmp_path):
    root = str(tmp_path / "src")
    entries = F.write_h3d(root, seed=1, nan_index=1, truncate_index=4)
    conv = H3DConverter(root)
    items = {it.source_id: it for s in ("train", "test") for it in conv.items(s)}
    with pytest.raises(BadSampleError, match="NaN"):
        items[entries[1]["name"]].load()
    with pytest.raises(BadSampleError, match=entries[4]["name"]):
        items[entries[4]["name"]].load()
    # TLlib's behaviour: decode truncated JPEGs anyway
    rec = H3DConverter(root, allow_truncated=True)
    ok = {it.source_id: it for s in ("train", "test") for it in rec.items(s)}
    assert ok[entries[4]["name"]].load().image.shape == (64, 64, 3)
    out = str(tmp_path / "out")
    with pytest.raises(BadSampleError, match="--skip-bad"):
        convert(conv, out, image_format="png", progress=False)
    meta = convert(conv, out, skip_bad=True, image_format="png", progress=False)
    skipped = sorted(s["source_id"] for sp in ("train", "test") for s in meta["skipped"][sp])
    assert skipped == sorted([entries[1]["name"], entries[4]["name"]])
    assert meta["counts"]["train"] + meta["counts"]["test"] == 9 - 2


def test_layout_errors(h3d, tmp_path):
    root, _ = h3d
    with pytest.raises(DatasetLayoutError, match="annotation.json") as err:
        H3DConverter(str(tmp_path))
    assert "H3D_crop" in str(err.value)
    with pytest.raises(DatasetLayoutError, match="annotation.json"):
        H3DConverter(os.path.join(root, "H3D_crop", "part1"))
    bad = tmp_path / "H3D_crop"
    bad.mkdir()
    (bad / "annotation.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(DatasetLayoutError, match="list"):
        H3DConverter(str(tmp_path)).items("train")
    a = H3DConverter(os.path.join(root, "H3D_crop")).items("test")
    assert [i.source_id for i in a] == [i.source_id for i in H3DConverter(root).items("test")]


def test_cli_convert_command(h3d, tmp_path):
    """The command printed in datasets/h3d.md works, with this converter's options."""
    from typer.testing import CliRunner

    from synpose_keras.cli.app import app

    root, _ = h3d
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["convert", "h3d", os.path.join(root, "H3D_crop"), "--out",
                                      str(out), "--with-object", "--no-progress"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"] == {"train": 10, "test": 2}
    assert meta["converter"]["options"]["with_object"] is True
    result = CliRunner().invoke(app, ["convert", "h3d", str(tmp_path / "nowhere"), "--out",
                                      str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "annotation.json" in result.output
