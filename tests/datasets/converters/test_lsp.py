"""LSP converter: images/ + joints.mat (3, 14, N) -> Body16 records."""

import os
import shutil
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import fixtures_body as fx  # noqa: E402

from synpose_keras.datasets.converters import load_all  # noqa: E402
from synpose_keras.datasets.converters.base import BadSampleError, DatasetLayoutError  # noqa: E402
from synpose_keras.datasets.converters.lsp import LSPConverter  # noqa: E402

N = 6
# Body16 name -> LSP-14 row, from the LSP README order (neck = Body16 upper neck)
LSP_ROW = {("upper_neck" if n == "neck" else n): i for i, n in enumerate(fx.LSP_NAMES)}


@pytest.fixture(scope="module")
def lsp(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("lsp") / "lsp_dataset")
    truth = fx.write_lsp(root, N, seed=3)
    return root, truth


def test_registered():
    assert load_all()["lsp"] is LSPConverter


def test_splits(lsp):
    root, _ = lsp
    conv = LSPConverter(root)
    ids = [f"images/im{i:04d}.jpg" for i in range(1, N + 1)]
    assert [it.source_id for it in conv.items("train")] == ids
    assert [it.source_id for it in conv.items("test")] == ids  # TLlib: same images
    paper = LSPConverter(root, split_rule="paper")
    assert [it.source_id for it in paper.items("train")] == ids[:3]
    assert [it.source_id for it in paper.items("test")] == ids[3:]


def test_mapping_colours_and_occlusion_flag(lsp):
    root, truth = lsp
    joints = truth["joints"]
    seen_occluded = 0
    for item in LSPConverter(root).items("test"):
        i = int(item.source_id[-8:-4]) - 1
        record = item.load()
        assert record.image.shape[:2] == truth["sizes"][i][::-1]
        assert (record.sequence, record.frame, record.view) == ("", 0, "")
        # every LSP joint, visible or occluded, is drawn: all 14 lie on their colours
        checked = [k for k, n in enumerate(fx.BODY16) if n in LSP_ROW]
        assert fx.mismatched_keypoints(record.image, record.keypoints, indices=checked) == []
        for k, name in enumerate(fx.BODY16):
            if name in LSP_ROW:
                np.testing.assert_array_equal(record.keypoints[k], joints[:2, LSP_ROW[name], i].astype(np.float32))
                assert record.visible[k] == 1.0 - joints[2, LSP_ROW[name], i]
                seen_occluded += joints[2, LSP_ROW[name], i] == 1
        # pelvis and thorax: invisible, placed between the hips / shoulders
        assert record.visible[6] == 0 and record.visible[7] == 0
        np.testing.assert_allclose(record.keypoints[6], 0.5 * (record.keypoints[2] + record.keypoints[3]), atol=1e-4)
        np.testing.assert_allclose(record.keypoints[7], 0.5 * (record.keypoints[12] + record.keypoints[13]), atol=1e-4)
        assert record.keypoints_3d is None and record.intrinsics is None
    assert seen_occluded > 0


def test_flag_visible_option(lsp):
    root, truth = lsp
    record = LSPConverter(root, flag="visible").items("test")[2].load()
    for k, name in enumerate(fx.BODY16):
        if name in LSP_ROW:
            assert record.visible[k] == truth["joints"][2, LSP_ROW[name], 2]


def test_layout_errors(lsp, tmp_path):
    from scipy.io import savemat

    root, _ = lsp
    with pytest.raises(DatasetLayoutError, match="joints.mat"):
        LSPConverter(str(tmp_path))
    with pytest.raises(DatasetLayoutError, match="joints.mat"):
        LSPConverter(os.path.join(root, "images"))  # the images folder is the wrong folder
    part = tmp_path / "noimages"
    part.mkdir()
    shutil.copy(os.path.join(root, "joints.mat"), part / "joints.mat")
    with pytest.raises(DatasetLayoutError, match="images"):
        LSPConverter(str(part))
    (part / "images").mkdir()
    savemat(part / "joints.mat", {"joints": np.zeros((14, 3, 5))})
    with pytest.raises(DatasetLayoutError, match=r"\(3, 14, N\).*LSP-extended"):
        LSPConverter(str(part))
    savemat(part / "joints.mat", {"points": np.zeros((3, 14, 5))})
    with pytest.raises(DatasetLayoutError, match="'joints'"):
        LSPConverter(str(part))
    with pytest.raises(ValueError, match="split_rule"):
        LSPConverter(root, split_rule="random")


def test_bad_samples(lsp, tmp_path):
    from scipy.io import loadmat, savemat

    root, _ = lsp
    part = tmp_path / "bad"
    shutil.copytree(root, part)
    fx.truncate_file(str(part / "images" / "im0002.jpg"), keep=0.4)
    os.remove(part / "images" / "im0005.jpg")
    joints = loadmat(part / "joints.mat")["joints"]
    joints[0, 4, 2] = np.nan
    savemat(part / "joints.mat", {"joints": joints})
    items = LSPConverter(str(part)).items("test")
    items[0].load()
    with pytest.raises(BadSampleError, match="im0002.jpg"):
        items[1].load()
    with pytest.raises(BadSampleError, match="im0003.jpg.*NaN"):
        items[2].load()
    with pytest.raises(BadSampleError, match="im0005.jpg"):
        items[4].load()


def test_convert_and_read_back(lsp, tmp_path):
    from synpose_keras.datasets import convert, load_records, read_meta

    root, _ = lsp
    out = str(tmp_path / "out")
    conv = LSPConverter(root, split_rule="paper")
    meta = convert(conv, out, image_format="png", progress=False)
    assert meta["counts"] == {"train": 3, "test": 3}
    assert read_meta(out)["has_3d"] is False
    assert meta["num_sequences"] == {"train": 0, "test": 0}
    checked = [k for k, n in enumerate(fx.BODY16) if n in LSP_ROW]
    for split in conv.splits:
        expected = {it.source_id: it.load() for it in conv.items(split)}
        got = list(load_records(out, split, num_parallel_reads=None).as_numpy_iterator())
        assert [r["source_id"].decode() for r in got] == list(expected)
        for r in got:
            e = expected[r["source_id"].decode()]
            np.testing.assert_array_equal(r["keypoints"], e.keypoints)
            np.testing.assert_array_equal(r["visible"], e.visible)
            assert r["sequence"].decode() == ""
            assert fx.mismatched_keypoints(r["image"], r["keypoints"], indices=checked) == []


def test_convert_skip_bad(lsp, tmp_path):
    from synpose_keras.datasets import convert

    root, _ = lsp
    part = tmp_path / "bad"
    shutil.copytree(root, part)
    fx.truncate_file(str(part / "images" / "im0004.jpg"), keep=0.3)
    meta = convert(LSPConverter(str(part)), str(tmp_path / "out"), splits=["test"], skip_bad=True,
                   progress=False)
    assert meta["counts"] == {"test": N - 1}
    assert [s["source_id"] for s in meta["skipped"]["test"]] == ["images/im0004.jpg"]
    assert "im0004.jpg" in meta["skipped"]["test"][0]["reason"]
