"""The ``frames`` converter: folders of frames and videos of unlabelled target footage."""

import os

import numpy as np
import pytest
from PIL import Image

from synpose_keras.datasets import convert, load_records, pairs_pipeline, read_meta
from synpose_keras.datasets.converters.base import BadSampleError, DatasetLayoutError
from synpose_keras.datasets.converters.frames import FramesConverter, natural_key

COLOURS = {  # frame colour by (sequence, index)
    ("seqA", 0): (250, 10, 10), ("seqA", 1): (10, 250, 10), ("seqA", 2): (10, 10, 250),
    ("seqB", 0): (200, 200, 10), ("seqB", 1): (10, 200, 200),
}


def _png(path, colour, size=(24, 20)):
    Image.fromarray(np.full((size[1], size[0], 3), colour, np.uint8)).save(path)


def _video(path, colours, size=32):
    import av

    with av.open(path, mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for colour in colours:
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), colour, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


VIDEO_COLOURS = [(240, 20, 20), (20, 240, 20), (20, 20, 240), (240, 240, 20), (20, 240, 240), (240, 20, 240)]


@pytest.fixture()
def footage(tmp_path):
    src = tmp_path / "footage"
    (src / "seqA").mkdir(parents=True)
    (src / "seqB").mkdir()
    # natural order: f2 before f10
    for name, idx in (("f2.png", 0), ("f10.png", 1), ("f11.jpg", 2)):
        _png(src / "seqA" / name, COLOURS[("seqA", idx)])
    for name, idx in (("a.png", 0), ("b.png", 1)):
        _png(src / "seqB" / name, COLOURS[("seqB", idx)])
    (src / "seqB" / "notes.txt").write_text("not a frame")
    _png(src / "loose.png", (128, 128, 128))
    _video(str(src / "clip.mp4"), VIDEO_COLOURS)
    return str(src)


def test_natural_sort():
    assert sorted(["f10.png", "f2.png", "f1.png"], key=natural_key) == ["f1.png", "f2.png", "f10.png"]


def test_items_and_records(footage):
    conv = FramesConverter(footage, task="body")
    assert conv.skeleton == "body16" and conv.splits == ("train",)
    items = conv.items("train")
    ids = [it.source_id for it in items]
    assert ids == (
        [f"clip.mp4#frame={i:06d}" for i in range(6)]
        + ["loose.png", "seqA/f2.png", "seqA/f10.png", "seqA/f11.jpg", "seqB/a.png", "seqB/b.png"]
    )
    rec = items[7].load()  # seqA/f2.png
    assert rec.sequence == "seqA" and rec.frame == 0
    assert rec.keypoints.shape == (16, 2) and not rec.keypoints.any() and not rec.visible.any()
    np.testing.assert_array_equal(rec.image[0, 0], COLOURS[("seqA", 0)])
    assert items[6].load().sequence == ""  # loose image: no sequence
    # video frames, decoded in order
    for i in range(6):
        rec = items[i].load()
        assert rec.sequence == "clip" and rec.frame == i and rec.image.shape == (32, 32, 3)
        assert np.abs(rec.image.reshape(-1, 3).mean(0) - VIDEO_COLOURS[i]).max() < 12
    # random access (earlier frame after a later one) re-opens the video
    assert np.abs(items[1].load().image.reshape(-1, 3).mean(0) - VIDEO_COLOURS[1]).max() < 12


def test_every_nth_frame_keeps_frame_indices(footage):
    items = FramesConverter(footage, every=2).items("train")
    frames = {it.source_id: it.load().frame for it in items}
    assert frames == {
        "clip.mp4#frame=000000": 0, "clip.mp4#frame=000002": 2, "clip.mp4#frame=000004": 4,
        "loose.png": 0, "seqA/f2.png": 0, "seqA/f11.jpg": 2, "seqB/a.png": 0,
    }


def test_held_out_sequences(footage):
    conv = FramesConverter(footage, test_fraction=0.3)
    assert conv.splits == ("train", "test")
    train = [it.source_id for it in conv.items("train")]
    test = [it.source_id for it in conv.items("test")]
    assert len(train) + len(test) == 12 and not set(train) & set(test)
    seq = lambda sid: sid.split("/")[0] if "/" in sid else sid.split("#")[0]  # noqa: E731
    assert not {seq(s) for s in train} & {seq(s) for s in test}
    assert 1 <= len(test) <= 4
    full = [it.source_id for it in FramesConverter(footage).items("train")]
    # both splits keep the stored order (sequences stay contiguous for pairing)
    assert test == [s for s in full if s in set(test)]
    assert train == [s for s in full if s in set(train)]


def test_convert_read_back_and_pairs(footage, tmp_path):
    out = str(tmp_path / "out")
    meta = convert(FramesConverter(footage, task="hand"), out, image_format="png", progress=False)
    assert meta["counts"] == {"train": 12}
    assert meta["skeleton"] == "hand21" and meta["has_3d"] is False
    assert meta["num_sequences"] == {"train": 3}
    assert read_meta(out)["converter"]["labels"].startswith("none")
    recs = list(load_records(out, "train", num_parallel_reads=None))
    assert [r["source_id"].numpy().decode() for r in recs][6:8] == ["loose.png", "seqA/f2.png"]
    assert recs[7]["image"].shape == (20, 24, 3)
    ds = pairs_pipeline(out, input_size=32, batch_size=4, seed=0, training=False, window=16)
    batch = next(iter(ds))
    np.testing.assert_array_equal(batch["base_sequence"].numpy(), batch["driving_sequence"].numpy())
    assert set(batch["base_sequence"].numpy()) <= {b"clip", b"seqA", b"seqB"}


def test_errors(footage, tmp_path):
    with pytest.raises(ValueError, match="Received: task='foot'"):
        FramesConverter(footage, task="foot")
    with pytest.raises(ValueError, match="Received: every=0"):
        FramesConverter(footage, every=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetLayoutError, match="no frames found"):
        FramesConverter(str(empty))
    with pytest.raises(DatasetLayoutError, match="frames folder not found"):
        FramesConverter(str(tmp_path / "missing"))


def test_truncated_frame_is_a_bad_sample(footage, tmp_path):
    path = os.path.join(footage, "seqB", "b.png")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    item = [it for it in FramesConverter(footage).items("train") if it.source_id == "seqB/b.png"][0]
    with pytest.raises(BadSampleError, match="b.png"):
        item.load()
    meta = convert(FramesConverter(footage), str(tmp_path / "o"), skip_bad=True, progress=False)
    assert [s["source_id"] for s in meta["skipped"]["train"]] == ["seqB/b.png"]
    assert meta["counts"] == {"train": 11}
