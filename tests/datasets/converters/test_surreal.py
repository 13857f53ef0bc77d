"""SURREAL converter: official videos + _info.mat -> Body16 records."""

import os
import shutil
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import fixtures_body as fx  # noqa: E402

from synpose_keras.datasets.converters import load_all  # noqa: E402
from synpose_keras.datasets.converters import surreal as surreal_mod  # noqa: E402
from synpose_keras.datasets.converters._image import project  # noqa: E402
from synpose_keras.datasets.converters.base import BadSampleError, DatasetLayoutError  # noqa: E402
from synpose_keras.datasets.converters.surreal import SurrealConverter  # noqa: E402

STORED = [fx.surreal_stored_index(n) for n in fx.BODY16]

# clip -> (split, run, seq, clip number, frames)
CLIPS = {
    "a": ("train", 0, "01_01", 1, 5),
    "b": ("train", 0, "01_01", 2, 3),
    "c": ("train", 1, "02_03", 1, 4),
    "d": ("val", 0, "05_01", 1, 3),
    "e": ("test", 2, "07_02", 3, 5),
}


@pytest.fixture(scope="module")
def surreal(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("surreal") / "data")
    truth = {}
    for key, (split, run, seq, clip, n) in CLIPS.items():
        truth[key] = fx.write_surreal_clip(root, split, run, seq, clip, n, seed=10 + len(truth))
    return root, truth


def _truth_for(truth, source_id):
    path, t = source_id.rsplit(":", 1)
    for info in truth.values():
        if info["video"].endswith(path):
            return info, int(t)
    raise KeyError(source_id)


def test_registered():
    assert load_all()["surreal"] is SurrealConverter


def test_counts_order_and_ids(surreal):
    root, _ = surreal
    conv = SurrealConverter(root, every=2)
    train = conv.items("train")
    # run0/01_01: c0001 (5 frames -> 0,2,4), c0002 (3 -> 0,2); run1/02_03/c0001 (4 -> 0,2)
    assert [it.source_id for it in train] == [
        "train/run0/01_01/01_01_c0001.mp4:0", "train/run0/01_01/01_01_c0001.mp4:2",
        "train/run0/01_01/01_01_c0001.mp4:4", "train/run0/01_01/01_01_c0002.mp4:0",
        "train/run0/01_01/01_01_c0002.mp4:2", "train/run1/02_03/02_03_c0001.mp4:0",
        "train/run1/02_03/02_03_c0001.mp4:2",
    ]
    assert len(conv.items("val")) == 2
    assert len(conv.items("test")) == 3
    assert len(SurrealConverter(root, every=1).items("train")) == 12
    assert len(SurrealConverter(root, every=2, runs="0").items("train")) == 5
    assert len(SurrealConverter(root, every=10).items("train")) == 3
    record = train[6].load()
    assert record.sequence == "run1/02_03/02_03_c0001"
    assert record.frame == 2
    assert record.view == ""
    assert record.source_id == "train/run1/02_03/02_03_c0001.mp4:2"


def test_cmu_folder_itself_is_accepted(surreal):
    root, _ = surreal
    assert len(SurrealConverter(os.path.join(root, "cmu"), every=2).items("val")) == 2


def test_keypoints_lie_on_their_colours_and_match_the_release(surreal):
    root, truth = surreal
    conv = SurrealConverter(root, every=1)
    checked = 0
    for split in conv.splits:
        for item in conv.items(split):
            record = item.load()
            info, t = _truth_for(truth, item.source_id)
            assert record.image.shape == (240, 320, 3)
            assert record.image.dtype == np.uint8
            assert fx.mismatched_keypoints(record.image, record.keypoints, radius=2) == []
            # stored joints2D (integer, Blender pixel-edge coordinates) shifted to pixel centres
            np.testing.assert_array_equal(record.keypoints, info["joints2D"][:, STORED, t].T - 0.5)
            assert np.abs(record.keypoints - info["body16_2d"][t]).max() <= 0.5 + 1e-4
            np.testing.assert_array_equal(record.visible, np.ones(16, np.float32))
            checked += 1
    assert checked == 12 + 3 + 5


def test_3d_is_camera_frame_and_projects_onto_the_keypoints(surreal):
    root, truth = surreal
    for mode, tol in (("stored", 0.5 + 1e-3), ("projected", 2e-3)):
        conv = SurrealConverter(root, every=2, keypoints_2d=mode)
        for item in conv.items("train"):
            record = item.load()
            info, t = _truth_for(truth, item.source_id)
            ext = fx.surreal_extrinsic(info["camLoc"])
            world = info["joints3D"][:, STORED, t].T
            expected = world @ ext[:, :3].T + ext[:, 3]
            np.testing.assert_allclose(record.keypoints_3d, expected, atol=1e-4)
            np.testing.assert_allclose(
                record.intrinsics, [[600, 0, 159.5], [0, 600, 119.5], [0, 0, 1]], atol=1e-6)
            err = np.abs(project(record.keypoints_3d, record.intrinsics) - record.keypoints).max()
            assert err <= tol, (mode, err)
            if mode == "projected":
                assert fx.mismatched_keypoints(record.image, record.keypoints, radius=2) == []


def test_smpl_shoulders_option(surreal):
    root, truth = surreal
    item = SurrealConverter(root, every=2, shoulders="smpl").items("val")[1]
    record = item.load()
    info, t = _truth_for(truth, item.source_id)
    # the person's right shoulder is SMPL "l_shoulder" (16) in SURREAL's swapped storage
    right, left = fx.SMPL_NAMES.index("l_shoulder"), fx.SMPL_NAMES.index("r_shoulder")
    np.testing.assert_array_equal(record.keypoints[12], info["joints2D"][:, right, t] - 0.5)
    np.testing.assert_array_equal(record.keypoints[13], info["joints2D"][:, left, t] - 0.5)
    collar = SurrealConverter(root, every=2).items("val")[1].load()
    np.testing.assert_array_equal(record.keypoints[:12], collar.keypoints[:12])
    np.testing.assert_array_equal(record.keypoints[14:], collar.keypoints[14:])


def test_each_clip_is_decoded_once_with_bounded_memory(surreal, monkeypatch):
    root, _ = surreal
    calls = []
    real = surreal_mod._decode_frames

    def counting(path, wanted):
        calls.append((os.path.basename(path), sorted(wanted)))
        return real(path, wanted)

    monkeypatch.setattr(surreal_mod, "_decode_frames", counting)
    conv = SurrealConverter(root, every=2)
    for item in conv.items("train"):
        item.load()
        assert len(conv._clips._frames) <= 3  # only the current clip's sampled frames
    assert calls == [
        ("01_01_c0001.mp4", [0, 2, 4]), ("01_01_c0002.mp4", [0, 2]), ("02_03_c0001.mp4", [0, 2]),
    ]


def test_layout_errors(surreal, tmp_path):
    root, _ = surreal
    with pytest.raises(DatasetLayoutError, match="cmu"):
        SurrealConverter(str(tmp_path))
    with pytest.raises(DatasetLayoutError, match="not found"):
        SurrealConverter(str(tmp_path / "nope"))
    # a run folder is the wrong folder
    with pytest.raises(DatasetLayoutError, match="cmu"):
        SurrealConverter(os.path.join(root, "cmu", "train", "run0"))
    # a split folder that is missing
    partial = tmp_path / "partial"
    shutil.copytree(os.path.join(root, "cmu", "val"), partial / "cmu" / "val")
    conv = SurrealConverter(str(partial))
    assert len(conv.items("val")) == 1
    with pytest.raises(DatasetLayoutError, match=r"cmu[/\\]train"):
        conv.items("train")
    with pytest.raises(DatasetLayoutError, match="run1"):
        SurrealConverter(str(partial), runs="1").items("val")
    with pytest.raises(ValueError, match="runs"):
        SurrealConverter(root, runs="3")
    with pytest.raises(ValueError, match="every"):
        SurrealConverter(root, every=0)
    with pytest.raises(ValueError, match="Unknown option"):
        SurrealConverter(root, evry=2)


def test_bad_samples(tmp_path):
    root = str(tmp_path / "data")
    trunc = fx.write_surreal_clip(root, "train", 0, "01_01", 1, 5, seed=3)
    fx.write_surreal_clip(root, "train", 0, "01_01", 2, 5, seed=4, video_frames=2)  # short video
    nan = fx.write_surreal_clip(root, "train", 0, "01_01", 3, 3, seed=5)
    gone = fx.write_surreal_clip(root, "train", 0, "01_01", 4, 3, seed=6)
    fx.truncate_file(trunc["video"], keep=0.3)
    os.remove(gone["video"])
    from scipy.io import loadmat, savemat

    mat = loadmat(nan["info"])
    mat["joints3D"][0, 7, 2] = np.nan
    savemat(nan["info"], {k: v for k, v in mat.items() if not k.startswith("__")})

    items = {it.source_id: it for it in SurrealConverter(root, every=2).items("train")}
    # truncated video: the later frames cannot be decoded
    with pytest.raises(BadSampleError, match="01_01_c0001.mp4"):
        for t in (0, 2, 4):
            items[f"train/run0/01_01/01_01_c0001.mp4:{t}"].load()
    # video shorter than its annotation
    items["train/run0/01_01/01_01_c0002.mp4:0"].load()
    with pytest.raises(BadSampleError, match=r"01_01_c0002.mp4.*no frame 4"):
        items["train/run0/01_01/01_01_c0002.mp4:4"].load()
    # NaN joints
    items["train/run0/01_01/01_01_c0003.mp4:0"].load()
    with pytest.raises(BadSampleError, match="NaN"):
        items["train/run0/01_01/01_01_c0003.mp4:2"].load()
    # missing video
    with pytest.raises(BadSampleError, match="01_01_c0004.mp4"):
        items["train/run0/01_01/01_01_c0004.mp4:0"].load()


def test_convert_and_read_back(surreal, tmp_path):
    from synpose_keras.datasets import convert, load_records, read_meta

    root, truth = surreal
    out = str(tmp_path / "out")
    conv = SurrealConverter(root, every=2)
    meta = convert(conv, out, image_format="png", progress=False)
    assert meta["counts"] == {"train": 7, "val": 2, "test": 3}
    assert read_meta(out)["has_3d"] is True
    assert meta["num_sequences"] == {"train": 3, "val": 1, "test": 1}
    for split in conv.splits:
        expected = {it.source_id: it.load() for it in conv.items(split)}
        got = list(load_records(out, split, num_parallel_reads=None).as_numpy_iterator())
        assert [r["source_id"].decode() for r in got] == list(expected)
        for r in got:
            e = expected[r["source_id"].decode()]
            np.testing.assert_array_equal(r["keypoints"], e.keypoints)
            np.testing.assert_array_equal(r["keypoints_3d"], e.keypoints_3d)
            np.testing.assert_array_equal(r["intrinsics"], e.intrinsics)
            np.testing.assert_array_equal(r["image"], e.image)
            assert r["sequence"].decode() == e.sequence and int(r["frame"]) == e.frame
            assert fx.mismatched_keypoints(r["image"], r["keypoints"], radius=2) == []


def test_convert_skip_bad_records_a_truncated_video(tmp_path):
    from synpose_keras.datasets import convert, load_records

    root = str(tmp_path / "data")
    fx.write_surreal_clip(root, "test", 0, "01_01", 1, 3, seed=7)
    bad = fx.write_surreal_clip(root, "test", 0, "01_01", 2, 3, seed=8)
    fx.truncate_file(bad["video"], keep=0.05)
    conv = SurrealConverter(root, every=2)
    with pytest.raises(BadSampleError, match="01_01_c0002"):
        convert(conv, str(tmp_path / "strict"), splits=["test"], progress=False)
    meta = convert(conv, str(tmp_path / "out"), splits=["test"], skip_bad=True, progress=False)
    assert meta["counts"] == {"test": 2}
    assert [s["source_id"] for s in meta["skipped"]["test"]] == [
        "test/run0/01_01/01_01_c0002.mp4:0", "test/run0/01_01/01_01_c0002.mp4:2"]
    assert all("01_01_c0002.mp4" in s["reason"] for s in meta["skipped"]["test"])
    assert len(list(load_records(str(tmp_path / "out"), "test"))) == 2
