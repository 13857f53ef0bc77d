"""The shared writer and the reader: round trip, atomic shards, resume, bad samples, crop."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from synpose_keras.datasets import convert, load_records, read_meta
from synpose_keras.datasets.converters.base import BadSampleError, Converter, Item, Option, Record
from synpose_keras.datasets.writer import crop_box, transform_record

K = 21
EXPLODE = set()  # ids whose load raises RuntimeError (simulated crash, not a bad sample)
LOADS = []  # ids loaded, in order


def _make_record(split, i, has_3d=True):
    rng = np.random.default_rng(1000 * (split == "test") + i)
    return Record(
        image=rng.integers(0, 256, (20 + i % 3, 24, 3), dtype=np.uint8),
        keypoints=rng.uniform(0, 20, (K, 2)).astype(np.float32),
        visible=(rng.uniform(size=K) > 0.2).astype(np.float32),
        sequence=f"{split}-seq{i // 4}",
        frame=i % 4,
        source_id=f"{split}/{i}",
        view="",
        keypoints_3d=rng.normal(size=(K, 3)).astype(np.float32),
        intrinsics=np.eye(3, dtype=np.float32) * (i + 1),
    )


class FakeConverter(Converter):
    """A tiny in-memory converter."""

    name = "fake"
    skeleton = "hand21"
    has_3d = True
    splits = ("train", "test")
    OPTIONS = (
        Option("n_train", int, 10, "items in train"),
        Option("n_test", int, 4, "items in test"),
        Option("bad", str, "", "comma-separated ids that raise BadSampleError"),
    )

    def items(self, split):
        n = self.options["n_train"] if split == "train" else self.options["n_test"]
        bad = set(filter(None, self.options["bad"].split(",")))
        out = []
        for i in range(n):
            sid = f"{split}/{i}"

            def load(split=split, i=i, sid=sid):
                LOADS.append(sid)
                if sid in EXPLODE:
                    raise RuntimeError(f"simulated crash at {sid}")
                if sid in bad:
                    raise BadSampleError(f"{sid}: corrupt annotation")
                return _make_record(split, i)

            out.append(Item(sid, load))
        return out


@pytest.fixture(autouse=True)
def _reset():
    EXPLODE.clear()
    LOADS.clear()
    yield
    EXPLODE.clear()


def _read_all(d, split, **kw):
    return [{k: v.numpy() for k, v in r.items()} for r in load_records(d, split, **kw)]


def _files(d):
    return sorted(os.listdir(d))


def test_round_trip_several_shards(tmp_path):
    out = str(tmp_path / "ds")
    meta = convert(FakeConverter("src"), out, num_shards=3, image_format="png", progress=False)
    assert _files(out) == [
        ".progress.json", "meta.json",
        "test-00000-of-00003.tfrecord", "test-00001-of-00003.tfrecord", "test-00002-of-00003.tfrecord",
        "train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord", "train-00002-of-00003.tfrecord",
    ]
    assert meta["counts"] == {"train": 10, "test": 4}
    assert meta["shards"]["train"] == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert meta["num_sequences"] == {"train": 3, "test": 1}
    assert read_meta(out) == meta
    recs = _read_all(out, "train", num_parallel_reads=None)
    assert [r["source_id"].decode() for r in recs] == [f"train/{i}" for i in range(10)]
    for i, r in enumerate(recs):
        ref = _make_record("train", i)
        np.testing.assert_array_equal(r["image"], ref.image)
        np.testing.assert_array_equal(r["keypoints"], ref.keypoints)
        np.testing.assert_array_equal(r["visible"], ref.visible)
        np.testing.assert_array_equal(r["keypoints_3d"], ref.keypoints_3d)
        np.testing.assert_array_equal(r["intrinsics"], ref.intrinsics)
        assert r["sequence"].decode() == ref.sequence
        assert r["frame"] == ref.frame
        assert r["image"].dtype == np.uint8 and r["keypoints"].dtype == np.float32
    # parallel interleaved read: same records, other order
    par = _read_all(out, "train")
    assert sorted(r["source_id"].decode() for r in par) == sorted(f"train/{i}" for i in range(10))
    spec = load_records(out, "test").element_spec
    assert spec["keypoints"].shape.as_list() == [K, 2]
    assert spec["intrinsics"].shape.as_list() == [3, 3]


def test_records_per_shard_and_meta_fields(tmp_path):
    out = str(tmp_path / "ds")
    meta = convert(FakeConverter("src"), out, records_per_shard=4, image_format="png", progress=False,
                   command="synpose convert fake src --out ds")
    assert meta["shards"]["train"] == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert meta["shards"]["test"] == ["test-00000-of-00001.tfrecord"]
    assert meta["dataset"] == "fake" and meta["skeleton"] == "hand21" and meta["has_3d"] is True
    assert meta["num_keypoints"] == 21 and meta["schema_version"] == 1
    assert meta["command"] == "synpose convert fake src --out ds"
    assert meta["converter"] == {"options": {"n_train": 10, "n_test": 4, "bad": ""}}
    assert meta["options"]["image_format"] == "png"
    assert meta["created"].endswith("+00:00")
    assert meta["skipped"] == {"train": [], "test": []}


def test_unknown_split_and_missing_meta(tmp_path):
    out = str(tmp_path / "ds")
    convert(FakeConverter("src"), out, splits=["test"], progress=False)
    with pytest.raises(ValueError, match=r"available splits: \['test'\]. Received: split='train'"):
        load_records(out, "train")
    with pytest.raises(FileNotFoundError, match="not a converted dataset.*synpose convert"):
        read_meta(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="Unknown split"):
        convert(FakeConverter("src"), out, splits=["val"], progress=False)


def test_interrupted_conversion_resumes_to_identical_output(tmp_path):
    ref = str(tmp_path / "ref")
    convert(FakeConverter("src"), ref, num_shards=3, image_format="png", progress=False)

    out = str(tmp_path / "out")
    EXPLODE.add("train/7")  # shard 2 of train holds items 6..9
    with pytest.raises(RuntimeError, match="simulated crash at train/7"):
        convert(FakeConverter("src"), out, num_shards=3, image_format="png", progress=False)
    files = _files(out)
    assert "meta.json" not in files
    assert "train-00002-of-00003.tfrecord" not in files
    assert not [f for f in files if f.endswith(".incomplete")]
    assert "train-00000-of-00003.tfrecord" in files and "train-00001-of-00003.tfrecord" in files
    with pytest.raises(FileNotFoundError, match="not a converted dataset"):
        load_records(out, "train")

    EXPLODE.clear()
    LOADS.clear()
    convert(FakeConverter("src"), out, num_shards=3, image_format="png", progress=False)
    # only the missing train shard (and the test split) were written
    assert LOADS == ["train/6", "train/7", "train/8", "train/9", "test/0", "test/1", "test/2", "test/3"]
    assert _files(out) == _files(ref)
    for name in _files(ref):
        if name.endswith(".tfrecord"):
            with open(os.path.join(ref, name), "rb") as a, open(os.path.join(out, name), "rb") as b:
                assert a.read() == b.read(), name

    # same command again: nothing to redo
    LOADS.clear()
    convert(FakeConverter("src"), out, num_shards=3, image_format="png", progress=False)
    assert LOADS == []


def test_changed_plan_redoes_cleanly(tmp_path):
    out = str(tmp_path / "out")
    convert(FakeConverter("src"), out, num_shards=3, image_format="png", progress=False)
    LOADS.clear()
    meta = convert(FakeConverter("src"), out, num_shards=2, limit=6, image_format="png", progress=False)
    assert meta["counts"] == {"train": 6, "test": 4}
    assert [f for f in _files(out) if f.endswith(".tfrecord")] == [
        "test-00000-of-00002.tfrecord", "test-00001-of-00002.tfrecord",
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
    ]
    assert len(LOADS) == 10
    assert [r["source_id"].decode() for r in _read_all(out, "train", num_parallel_reads=None)] == [
        f"train/{i}" for i in range(6)]
    # a changed writer option (image format) also rewrites every shard
    LOADS.clear()
    convert(FakeConverter("src"), out, num_shards=2, limit=6, image_format="jpeg", progress=False)
    assert len(LOADS) == 10


class BrokenConverter(FakeConverter):
    """Items with a truncated PNG on disk, a NaN keypoint and a BadSampleError."""

    name = "broken"

    def items(self, split):
        items = super().items(split)
        if split != "train":
            return items
        folder = self.src

        def truncated():
            path = os.path.join(folder, "trunc.png")
            Image.open(path).load()  # raises OSError (truncated)

        def nan_keypoints():
            rec = _make_record("train", 4)
            rec.keypoints[3, 0] = np.nan
            return rec

        items[2] = Item("train/2", truncated)
        items[4] = Item("train/4", nan_keypoints)
        return items


def _write_truncated_png(folder):
    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8) + 90).save(buf, format="PNG")
    data = buf.getvalue()
    with open(os.path.join(folder, "trunc.png"), "wb") as f:
        f.write(data[: len(data) // 2])


def test_skip_bad_records_reasons(tmp_path):
    _write_truncated_png(tmp_path)
    out = str(tmp_path / "out")
    meta = convert(BrokenConverter(str(tmp_path), bad="train/7"), out, skip_bad=True, progress=False)
    assert meta["counts"] == {"train": 7, "test": 4}
    skipped = meta["skipped"]["train"]
    assert [s["source_id"] for s in skipped] == ["train/2", "train/4", "train/7"]
    assert skipped[0]["reason"].startswith("OSError")
    assert "NaN" in skipped[1]["reason"] and skipped[1]["reason"].startswith("BadSampleError")
    assert skipped[2]["reason"] == "BadSampleError: train/7: corrupt annotation"
    assert meta["skipped"]["test"] == []
    ids = [r["source_id"].decode() for r in _read_all(out, "train", num_parallel_reads=None)]
    assert ids == ["train/0", "train/1", "train/3", "train/5", "train/6", "train/8", "train/9"]


def test_bad_sample_without_skip_bad_names_it(tmp_path):
    out = str(tmp_path / "out")
    with pytest.raises(BadSampleError) as info:
        convert(FakeConverter("src", bad="train/3"), out, progress=False)
    msg = str(info.value)
    assert "'train/3'" in msg and "--skip-bad" in msg and "corrupt annotation" in msg
    assert not os.path.exists(os.path.join(out, "meta.json"))


def test_wrong_number_of_keypoints_is_a_bad_sample(tmp_path):
    class Wrong(FakeConverter):
        name = "wrong"
        skeleton = "body16"  # records carry 21 keypoints

    with pytest.raises(BadSampleError, match=r"expected keypoints of shape \(16, 2\)"):
        convert(Wrong("src"), str(tmp_path / "o"), progress=False)


# ------------------------------------------------------------------ crop and downscale


PALETTE = np.array([[(37 * k) % 256, (91 * k + 60) % 256, (160 + 53 * k) % 256] for k in range(K)], np.uint8)


def _dotted_scene(seed=0, h=120, w=160):
    """Image with one coloured disc (radius 5) per keypoint; keypoints = projection of 3D points."""
    rng = np.random.default_rng(seed)
    intr = np.array([[110.0, 0, 70.0], [0, 105.0, 55.0], [0, 0, 1]])
    # 21 well separated points: a jittered grid on a plane-ish surface
    gx, gy = np.meshgrid(np.arange(7), np.arange(3))
    xy = np.stack([gx.ravel() * 13.0 + 35, gy.ravel() * 15.0 + 35], -1)[:K] + rng.uniform(-2, 2, (K, 2))
    z = rng.uniform(2.0, 3.0, K)
    pts3 = np.stack([(xy[:, 0] - intr[0, 2]) * z / intr[0, 0], (xy[:, 1] - intr[1, 2]) * z / intr[1, 1], z], -1)
    kp = pts3[:, :2] / pts3[:, 2:] * np.diag(intr)[:2] + intr[:2, 2]
    img = np.full((h, w, 3), 255, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(K):
        img[(xx - kp[k, 0]) ** 2 + (yy - kp[k, 1]) ** 2 <= 25] = PALETTE[k]
    return Record(image=img, keypoints=kp.astype(np.float32), visible=np.ones(K, np.float32),
                  keypoints_3d=pts3.astype(np.float32), intrinsics=intr.astype(np.float32))


def _nearest_palette(pixel):
    return int(np.argmin(np.abs(PALETTE.astype(int) - pixel.astype(int)).sum(-1)))


def _project(pts3, intr):
    p = pts3 @ np.asarray(intr, np.float64).T
    return p[:, :2] / p[:, 2:]


@pytest.mark.parametrize("max_side", [None, 60])
def test_crop_keeps_keypoints_on_their_pixels(max_side):
    rec = _dotted_scene()
    out = transform_record(rec, crop=True, crop_scale=1.5, max_side=max_side)
    h, w = out.image.shape[:2]
    assert h == w
    if max_side:
        assert h == max_side
    for k in range(K):
        x, y = np.round(out.keypoints[k]).astype(int)
        assert 0 <= x < w and 0 <= y < h
        assert _nearest_palette(out.image[y, x]) == k, k
    # intrinsics follow the pixels: projecting the (unchanged) 3D points lands on the keypoints
    np.testing.assert_array_equal(out.keypoints_3d, rec.keypoints_3d)
    err = np.abs(_project(out.keypoints_3d, out.intrinsics) - out.keypoints)
    assert err.max() < 0.5 and np.abs(_project(rec.keypoints_3d, rec.intrinsics) - rec.keypoints).max() < 1e-3


def test_crop_through_convert_then_read(tmp_path):
    class Dots(FakeConverter):
        name = "dots"

        def items(self, split):
            return [Item(f"{split}/{i}", lambda i=i: _dotted_scene(i)) for i in range(2)]

    out = str(tmp_path / "dots")
    convert(Dots("src"), out, crop=True, max_side=64, image_format="png", progress=False)
    for r in _read_all(out, "train", num_parallel_reads=None):
        assert r["image"].shape[0] == r["image"].shape[1] == 64
        for k in range(K):
            x, y = np.round(r["keypoints"][k]).astype(int)
            assert _nearest_palette(r["image"][y, x]) == k
        assert np.abs(_project(r["keypoints_3d"], r["intrinsics"]) - r["keypoints"]).max() < 0.5


def test_crop_box_is_shifted_not_padded():
    vis = np.ones(2, np.float32)
    # box centred near the left/top edge: shifted inside
    assert crop_box(np.array([[2.0, 3.0], [22.0, 13.0]]), vis, 100, 80, 1.5) == (0, 0, 30)
    # near the right/bottom edge
    assert crop_box(np.array([[90.0, 70.0], [98.0, 78.0]]), vis, 100, 80, 1.5) == (88, 68, 12)
    # centred: side 1.5 * 20 = 30 around (50, 40)
    assert crop_box(np.array([[40.0, 30.0], [60.0, 50.0]]), vis, 100, 80, 1.5) == (35, 25, 30)
    # larger than the image: TLlib's scale_box caps the side at the shorter side (the default)
    assert crop_box(np.array([[10.0, 10.0], [70.0, 70.0]]), vis, 100, 80, 1.5) == (0, 0, 80)
    # policy "pad": never capped, overhangs (both shifts applied) and is padded
    assert crop_box(np.array([[10.0, 10.0], [70.0, 70.0]]), vis, 100, 80, 1.5,
                    policy="pad") == (0, -10, 90)
    # nothing visible -> no crop
    assert crop_box(np.zeros((2, 2)), np.zeros(2), 100, 80) is None


def test_no_visible_keypoints_keeps_whole_image_and_never_upscales():
    rec = _dotted_scene()
    rec.visible[:] = 0
    out = transform_record(rec, crop=True, max_side=400)
    assert out.image.shape == rec.image.shape
    np.testing.assert_array_equal(out.keypoints, rec.keypoints)
    out = transform_record(rec, crop=True, max_side=80)
    assert out.image.shape == (60, 80, 3)
