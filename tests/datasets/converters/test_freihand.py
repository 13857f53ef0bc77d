"""FreiHAND converter: 4 versions, projection, flip, TLlib split and the leak-free grouped split."""

import collections
import importlib.util
import os
import pathlib
import random

import numpy as np
import pytest

from synpose_keras.datasets import convert, load_records
from synpose_keras.datasets.converters import load_all
from synpose_keras.datasets.converters.base import BadSampleError, DatasetLayoutError
from synpose_keras.datasets.converters.freihand import FreiHANDConverter, parse_versions

_spec = importlib.util.spec_from_file_location(
    "_fixtures_hand_freihand", pathlib.Path(__file__).with_name("fixtures_hand.py"))
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)

N = 10
SIZE = 64
# the release's id offsets (N x 0..3) and TLlib's concatenation order for task "all"
OFFSET = {"gs": 0, "hom": 1, "sample": 2, "auto": 3}
TLLIB_ORDER = ["gs", "auto", "sample", "hom"]


@pytest.fixture(scope="module")
def frei(tmp_path_factory):
    root = tmp_path_factory.mktemp("freihand_src")
    expected = F.write_freihand(str(root), num_frames=N, size=SIZE, seed=0)
    return str(root), expected


def _image_id(source_id):
    return int(os.path.splitext(os.path.basename(source_id))[0])


def _tllib_split(versions):
    """TLlib FreiHand.__init__: concatenated samples, random.seed(42), random.shuffle, 20%/3200."""
    samples = [f"training/rgb/{i + N * OFFSET[v]:08d}.jpg" for v in versions for i in range(N)]
    random.seed(42)
    random.shuffle(samples)
    n_test = min(int(len(samples) * 0.2), 3200)
    return samples[n_test:], samples[:n_test]


def test_registered():
    assert load_all()["freihand"] is FreiHANDConverter


def test_ungrouped_split_reproduces_tllib_exactly(frei):
    root, _ = frei
    conv = FreiHANDConverter(root, group_versions=False)
    train, test = _tllib_split(TLLIB_ORDER)
    assert [it.source_id for it in conv.items("test")] == test
    assert [it.source_id for it in conv.items("train")] == train
    assert len(test) == 8


def test_single_version_matches_tllib_task(frei):
    root, _ = frei
    conv = FreiHANDConverter(root, group_versions=False, versions="hom")
    train, test = _tllib_split(["hom"])
    assert [it.source_id for it in conv.items("test")] == test
    assert [it.source_id for it in conv.items("train")] == train


def test_grouped_split_keeps_versions_of_a_frame_together(frei):
    root, _ = frei
    conv = FreiHANDConverter(root)
    train = [_image_id(it.source_id) % N for it in conv.items("train")]
    test = [_image_id(it.source_id) % N for it in conv.items("test")]
    assert len(test) == 8 and len(train) == 32
    assert set(train).isdisjoint(test)
    assert sorted(collections.Counter(test).values()) == [4, 4]  # all 4 versions of 2 frames
    # the frames are shuffled by the same seed: the first two frames of random.Random(42)
    frames = list(range(N))
    random.Random(42).shuffle(frames)
    assert sorted(set(test)) == sorted(frames[:2])


def test_records_project_flip_and_colours(frei):
    root, expected = frei
    for flip in (True, False):
        conv = FreiHANDConverter(root, flip=flip, group_versions=False)
        for split in ("train", "test"):
            for item in conv.items(split):
                rec = item.load()
                image_id = _image_id(item.source_id)
                frame, version = image_id % N, ["gs", "hom", "sample", "auto"][image_id // N]
                uv = expected["uv"][frame].copy()
                if flip:
                    uv[:, 0] = SIZE - 1 - uv[:, 0]
                np.testing.assert_allclose(rec.keypoints, uv, atol=1e-3)
                np.testing.assert_array_equal(rec.visible, np.ones(21))
                F.assert_on_colours(rec.image, rec.keypoints, rec.visible, F.LEFT_COLOURS,
                                    item.source_id)
                assert np.max(np.abs(F.project(rec.keypoints_3d, rec.intrinsics)
                                     - rec.keypoints)) < 0.5
                xyz = expected["xyz"][frame].copy()
                if flip:
                    xyz[:, 0] = -xyz[:, 0]
                np.testing.assert_allclose(rec.keypoints_3d, xyz, atol=1e-6)
                assert (rec.frame, rec.view, rec.sequence) == (frame, version, "")


def test_pair_versions_sets_sequence(frei):
    root, _ = frei
    rec = FreiHANDConverter(root, pair_versions=True).items("test")[0].load()
    assert rec.sequence == f"frame{rec.frame:08d}"


def test_versions_option():
    assert parse_versions("all") == ("gs", "auto", "sample", "hom")
    assert parse_versions("hom, gs") == ("gs", "hom")
    with pytest.raises(ValueError, match="versions='green'"):
        parse_versions("green")


def test_convert_end_to_end(frei, tmp_path):
    root, _ = frei
    out = str(tmp_path / "frei")
    meta = convert(FreiHANDConverter(root, versions="gs,auto"), out, crop=True,
                   image_format="png", progress=False)
    assert meta["counts"] == {"train": 16, "test": 4}
    for split in ("train", "test"):
        n = 0
        for r in load_records(out, split).as_numpy_iterator():
            n += 1
            F.assert_on_colours(r["image"], r["keypoints"], r["visible"], F.LEFT_COLOURS,
                                r["source_id"].decode())
            assert np.max(np.abs(F.project(r["keypoints_3d"], r["intrinsics"])
                                 - r["keypoints"])) < 0.5
            assert r["view"].decode() in ("gs", "auto")
        assert n == meta["counts"][split]


def test_bad_samples(tmp_path):
    root = str(tmp_path / "src")
    F.write_freihand(root, num_frames=N, size=SIZE, seed=3, nan_frame=4,
                     truncate_image=7 + N * 3)  # frame 7, version auto
    conv = FreiHANDConverter(root, group_versions=False)
    items = {it.source_id: it for s in ("train", "test") for it in conv.items(s)}
    with pytest.raises(BadSampleError, match=r"00000037\.jpg"):
        items["training/rgb/00000037.jpg"].load()
    with pytest.raises(BadSampleError, match="NaN"):
        items["training/rgb/00000004.jpg"].load()
    out = str(tmp_path / "out")
    meta = convert(conv, out, skip_bad=True, image_format="png", progress=False)
    skipped = sorted(s["source_id"] for sp in ("train", "test") for s in meta["skipped"][sp])
    assert skipped == sorted(["training/rgb/00000037.jpg"]
                             + [f"training/rgb/{4 + N * k:08d}.jpg" for k in range(4)])
    assert meta["counts"]["train"] + meta["counts"]["test"] == 4 * N - 5


def test_layout_errors(frei, tmp_path):
    root, _ = frei
    with pytest.raises(DatasetLayoutError, match="training_K.json") as err:
        FreiHANDConverter(str(tmp_path))
    assert "FreiHAND_pub_v2" in str(err.value)
    with pytest.raises(DatasetLayoutError, match="training_K.json"):
        FreiHANDConverter(os.path.join(root, "FreiHAND_pub_v2", "training"))
    only_k = tmp_path / "FreiHAND_pub_v2"
    only_k.mkdir()
    (only_k / "training_K.json").write_text("[]")
    with pytest.raises(DatasetLayoutError, match="training_xyz.json"):
        FreiHANDConverter(str(tmp_path))
    # release folder and its parent both work
    a = FreiHANDConverter(os.path.join(root, "FreiHAND_pub_v2")).items("test")
    b = FreiHANDConverter(root).items("test")
    assert [i.source_id for i in a] == [i.source_id for i in b]
