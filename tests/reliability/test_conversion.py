"""Issue 18, items 4-8, 10 and 11 (conversion): nothing already written is lost, nothing wrong
passes silently. Each test reproduces a probe with `synpose convert` on tiny releases written
here, and checks the previous dataset's files (hashes) before and after."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from synpose_keras.datasets import convert, load_records, read_meta
from synpose_keras.datasets.converters.base import BadSampleError, Record
from synpose_keras.datasets.converters.coco import COCO17_NAMES, COCOConverter
from synpose_keras.datasets.writer import DatasetExistsError, transform_record
from tests.reliability.helpers import invoke, tree_hashes

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "datasets", "converters"))
import fixtures_body  # noqa: E402
import fixtures_hand  # noqa: E402


# ------------------------------------------------------------------ a tiny COCO release
def write_coco(root, colour=(90, 90, 90), far=None, n=3):
    """``n`` 64x48 train images and one val image, one person each; ``far``: (image index,
    x, y) puts the left shoulder (visible) there."""
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    rng = np.random.default_rng(0)
    cats = [{"id": 1, "name": "person", "keypoints": list(COCO17_NAMES)}]

    def person(i, image_id):
        xy = rng.uniform([8, 8], [56, 40], (17, 2))
        if far is not None and far[0] == i:
            xy[5] = far[1:]  # left shoulder (Body16 has no nose)
        flat = np.concatenate([xy, np.full((17, 1), 2)], axis=1).ravel().tolist()
        return {"id": 100 + i, "image_id": image_id, "keypoints": flat, "iscrowd": 0}

    for split, folder, count in (("train2017", "train2017", n), ("val2017", "val2017", 1)):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image_id = i + (0 if split == "train2017" else 50)
            name = f"{image_id:06d}.jpg"
            Image.fromarray(np.full((48, 64, 3), colour, np.uint8)).save(
                os.path.join(root, folder, name))
            images.append({"id": image_id, "file_name": name})
            annotations.append(person(i if split == "train2017" else 99, image_id))
        with open(os.path.join(root, "annotations", f"person_keypoints_{split}.json"), "w") as f:
            json.dump({"images": images, "annotations": annotations, "categories": cats}, f)
    return str(root)


def _convert(kind, src, out, *args):
    return invoke("convert", kind, src, "--out", out, "--no-progress", *args)


def _one_line_error(result):
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


# ------------------------------------------------------------------ item 4
def test_out_holding_another_dataset_is_refused_unless_overwrite(tmp_path):
    coco = write_coco(tmp_path / "coco")
    lsp = str(tmp_path / "lsp")
    fixtures_body.write_lsp(lsp, 4, seed=0)
    out = tmp_path / "D"
    assert _convert("coco", coco, out).exit_code == 0
    before = tree_hashes(out)

    line = _one_line_error(_convert("lsp", lsp, out))
    assert str(out) in line and "'coco'" in line and "--overwrite" in line
    assert tree_hashes(out) == before
    # the same kind from another source folder is another dataset too
    other = write_coco(tmp_path / "coco-copy")
    line = _one_line_error(_convert("coco", other, out))
    assert "coco-copy" in line and tree_hashes(out) == before

    assert _convert("lsp", lsp, out, "--overwrite").exit_code == 0
    meta = read_meta(str(out))
    assert meta["dataset"] == "lsp" and meta["source"]["path"] == os.path.abspath(lsp)
    assert not [f for f in os.listdir(out) if f.startswith("test-") and "coco" in f]
    assert sorted(os.listdir(tmp_path)) == ["D", "coco", "coco-copy", "lsp"]  # no leftovers


# ------------------------------------------------------------------ item 5
def test_a_corrected_release_is_converted_again_not_served_from_old_shards(tmp_path):
    src = write_coco(tmp_path / "coco", colour=(90, 90, 90))
    out = str(tmp_path / "D")
    convert(COCOConverter(src), out, image_format="png", progress=False)
    first = read_meta(out)["source"]
    # the corrected release: same file names, other pixels (a later modification time)
    write_coco(tmp_path / "coco", colour=(200, 10, 10))
    for folder, _, files in os.walk(src):
        for name in files:
            os.utime(os.path.join(folder, name), ns=(2 * 10**18, 2 * 10**18))
    meta = convert(COCOConverter(src), out, image_format="png", progress=False)
    assert meta["source"]["digest"] != first["digest"]
    pixels = [r["image"].numpy() for r in load_records(out, "train")]
    assert pixels and all(abs(int(p[..., 0].mean()) - 200) < 20 for p in pixels)


# ------------------------------------------------------------------ item 6
def test_a_failed_reconversion_leaves_the_previous_dataset_exactly_as_it_was(tmp_path):
    src = write_coco(tmp_path / "coco")
    out = tmp_path / "D"
    assert _convert("coco", src, out).exit_code == 0
    before = tree_hashes(out)
    # the release gets a corrupt image; re-converting with other options fails on it
    bad = os.path.join(src, "train2017", "000001.jpg")
    with open(bad, "rb") as f:
        data = f.read()
    with open(bad, "wb") as f:
        f.write(data[: len(data) // 3])
    line = _one_line_error(_convert("coco", src, out, "--max-side", "32"))
    assert "000001.jpg" in line and "--skip-bad" in line
    assert tree_hashes(out) == before
    assert read_meta(str(out))["counts"]["train"] == 3
    # a crash (not a bad sample) in the middle also leaves it untouched
    with open(bad, "wb") as f:
        f.write(data)

    class Crash(Exception):
        pass

    class Crashing(COCOConverter):
        def items(self, split):
            items = super().items(split)
            if split == "test":
                def boom():
                    raise Crash()
                items[0].load = boom
            return items

    with pytest.raises(Crash):
        convert(Crashing(src), str(out), max_side=32, progress=False)
    assert tree_hashes(out) == before
    # re-running finishes from the staging folder and swaps it in
    assert _convert("coco", src, out, "--max-side", "32").exit_code == 0
    assert read_meta(str(out))["options"]["max_side"] == 32
    assert sorted(os.listdir(tmp_path)) == ["D", "coco"]


# ------------------------------------------------------------------ item 7
def _hold(lock_path, pid):
    with open(lock_path, "w") as f:
        json.dump({"pid": pid, "host": socket.gethostname(), "time": "now",
                   "command": "synpose convert coco (other)"}, f)


def test_a_second_process_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    src = write_coco(tmp_path / "coco")
    out = tmp_path / "D"
    assert _convert("coco", src, out).exit_code == 0
    before = tree_hashes(out)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / ".D.synpose-lock"
        _hold(lock, other.pid)
        line = _one_line_error(_convert("coco", src, out, "--max-side", "32"))
        assert f"process {other.pid}" in line and socket.gethostname() in line
        assert str(lock) in line
        assert tree_hashes(out) == before
    finally:
        other.kill()
        other.wait()
    # the holder is gone: its lock is stale and taken over
    result = _convert("coco", src, out, "--max-side", "32")
    assert result.exit_code == 0, result.output
    assert "stale lock" in result.output
    assert not lock.exists()


@pytest.mark.slow
def test_a_run_folder_in_use_is_refused(tiny_domains, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--quiet", "--stages", "pretrain", "--source",
            tiny_domains / "source", "--target", tiny_domains / "target", "--out", run]
    assert invoke(*args).exit_code == 0
    before = tree_hashes(run)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _hold(run / ".lock", other.pid)
        result = invoke("train", "--preset", "tiny", "--quiet", "--out", run, "--resume",
                        "--stages", "pretrain,adapt")
        assert result.exit_code == 2, result.output
        assert f"process {other.pid}" in result.output
        assert tree_hashes(run, ignore=(".lock",)) == {k: v for k, v in before.items()}
    finally:
        other.kill()
        other.wait()


# ------------------------------------------------------------------ item 8
def test_visible_keypoints_far_outside_the_image_name_the_sample(tmp_path):
    src = write_coco(tmp_path / "coco", far=(1, 1e6, 20))
    out = tmp_path / "D"
    line = _one_line_error(_convert("coco", src, out, "--crop"))
    assert "000001.jpg" in line and "outside the 64x48 image" in line
    assert not (out / "meta.json").exists()
    result = _convert("coco", src, out, "--crop", "--skip-bad")
    assert result.exit_code == 0, result.output
    skipped = read_meta(str(out))["skipped"]["train"]
    assert [s["source_id"].split("#")[0] for s in skipped] == ["000001.jpg"]
    src2 = write_coco(tmp_path / "coco2", far=(0, -5000, -5000))
    line = _one_line_error(_convert("coco", src2, tmp_path / "D2", "--crop"))
    assert "000000.jpg" in line


def test_crop_size_is_capped_instead_of_allocating_terabytes():
    k = 21
    keypoints = np.zeros((k, 2), np.float32)
    keypoints[1] = (1e6, 1e6)
    record = Record(image=np.zeros((48, 64, 3), np.uint8), keypoints=keypoints,
                    visible=np.ones(k, np.float32), source_id="x/1")
    with pytest.raises(BadSampleError, match="'x/1'.*8 x the 64x48 image"):
        transform_record(record, crop=True, crop_policy="pad")
    # the default (TLlib's scale_box) caps the side at the image's shorter side
    assert transform_record(record, crop=True).image.shape == (48, 48, 3)


# ------------------------------------------------------------------ item 10
def test_empty_or_corrupt_annotation_files_are_one_line_errors(tmp_path):
    coco = write_coco(tmp_path / "coco")
    ann = os.path.join(coco, "annotations", "person_keypoints_train2017.json")
    open(ann, "w").close()
    line = _one_line_error(_convert("coco", coco, tmp_path / "o1"))
    assert ann in line and "JSON" in line

    rhd = str(tmp_path / "rhd")
    fixtures_hand.write_rhd(rhd, size=320, seed=0)
    pickle_path = next(os.path.join(d, f) for d, _, fs in os.walk(rhd) for f in fs
                       if f == "anno_training.pickle")
    with open(pickle_path, "wb") as f:
        f.write(b"\x80\x04garbage")
    line = _one_line_error(_convert("rhd", rhd, tmp_path / "o2"))
    assert pickle_path in line

    frei = str(tmp_path / "frei")
    fixtures_hand.write_freihand(frei, num_frames=4, size=64, seed=0)
    k_path = next(os.path.join(d, f) for d, _, fs in os.walk(frei) for f in fs
                  if f == "training_K.json")
    open(k_path, "w").close()
    line = _one_line_error(_convert("freihand", frei, tmp_path / "o3"))
    assert k_path in line


def test_unwritable_out_is_one_line_error(tmp_path):
    coco = write_coco(tmp_path / "coco")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = _one_line_error(_convert("coco", coco, blocker / "D"))
    assert str(blocker) in line and "is a file" in line
    line = _one_line_error(_convert("coco", coco, blocker))
    assert "is a file" in line
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root can write a read-only folder")
def test_read_only_out_is_one_line_error(tmp_path):
    coco = write_coco(tmp_path / "coco")
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = _one_line_error(_convert("coco", coco, locked / "D"))
        assert "not writable" in line
    finally:
        locked.chmod(0o700)


# ------------------------------------------------------------------ item 11
def test_every_sample_bad_with_skip_bad_is_refused(tmp_path):
    src = write_coco(tmp_path / "coco")
    out = tmp_path / "D"
    assert _convert("coco", src, out).exit_code == 0
    before = tree_hashes(out)
    for name in os.listdir(os.path.join(src, "train2017")):
        open(os.path.join(src, "train2017", name), "wb").close()
    line = _one_line_error(_convert("coco", src, out, "--skip-bad"))
    assert "Every sample of split 'train'" in line and "unchanged" in line
    assert tree_hashes(out) == before


def test_the_same_command_again_rewrites_nothing(tmp_path):
    """Item 6 keeps the resume guarantee: a finished dataset re-run with the same command is
    not copied to a staging folder and its shards are not rewritten."""
    src = write_coco(tmp_path / "coco")
    out = tmp_path / "D"
    convert(COCOConverter(src), str(out), progress=False)
    shards = {k: v for k, v in tree_hashes(out).items() if k.endswith(".tfrecord")}
    mtimes = {k: os.stat(out / k).st_mtime_ns for k in shards}
    convert(COCOConverter(src), str(out), progress=False)
    assert {k: os.stat(out / k).st_mtime_ns for k in shards} == mtimes
    with pytest.raises(DatasetExistsError):
        convert(COCOConverter(write_coco(tmp_path / "other")), str(out), progress=False)


def test_lock_file_is_exclusive_and_released(tmp_path):
    """Item 7, the lock itself: a second acquisition (even by a live process that is this one)
    is refused naming the holder; releasing makes it available; an unreadable fresh lock is
    respected, an old one is stale."""
    from synpose_keras.locking import FolderLockedError, acquire, folder_lock, release

    path = str(tmp_path / "x.lock")
    mine = acquire(path, "first")
    with pytest.raises(FolderLockedError, match=f"process {os.getpid()} on host"):
        acquire(path, "second")
    release(path, mine)
    with folder_lock(path, "third"):
        assert json.load(open(path))["command"] == "third"
    assert not os.path.exists(path)
    open(path, "w").close()  # empty: being written right now, or cut short
    with pytest.raises(FolderLockedError, match="unknown process"):
        acquire(path, "fourth")
    os.utime(path, (0, 0))
    messages = []
    release(path, acquire(path, "fifth", log=messages.append))
    assert messages and "stale lock" in messages[0]


def test_a_partial_reconversion_keeps_the_unchanged_shards(tmp_path):
    """Re-converting with one split changed (a corrected test annotation) rewrites that split's
    shards in the staging folder; the other split's finished shards are reused, byte for byte."""
    src = write_coco(tmp_path / "coco")
    out = tmp_path / "D"
    convert(COCOConverter(src), str(out), image_format="png", progress=False)
    before = tree_hashes(out)
    calls = []

    class Counting(COCOConverter):
        def items(self, split):
            items = super().items(split)
            for item in items:
                load = item.load
                item.load = lambda load=load, sid=item.source_id: calls.append(sid) or load()
            return items

    meta = convert(Counting(src), str(out), image_format="png", limit=2, progress=False)
    assert meta["counts"] == {"train": 2, "test": 1}
    assert len(calls) == 2  # only train (its plan changed); the test shard was reused
    after = tree_hashes(out)
    test_shards = [k for k in before if k.startswith("test-")]
    assert test_shards and all(after[k] == before[k] for k in test_shards)
    assert sorted(os.listdir(tmp_path)) == ["D", "coco"]
