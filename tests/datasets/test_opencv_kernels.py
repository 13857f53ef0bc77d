"""OpenCV kernels of the pipelines: the same pixels as the TensorFlow formulation they replace."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from synpose_keras.datasets import (
    AugmentConfig,
    convert,
    eval_pipeline,
    load_records,
    schema,
    source_pipeline,
)
from synpose_keras.datasets.pipeline import batch_transforms, opencv_kernels
from synpose_keras.datasets.pipeline.transforms import set_warp_backend, warp_backend
from synpose_keras.skeletons import BODY16
from tests.datasets.test_pipeline import Scenes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def backend():
    previous = warp_backend()
    yield set_warp_backend
    set_warp_backend(previous)


# ------------------------------------------------------------------ resize


@pytest.mark.parametrize("h,w,nh,nw", [(300, 280, 200, 190), (120, 90, 31, 50), (50, 60, 44, 59),
                                       (7, 9, 3, 2), (300, 300, 100, 100), (64, 40, 1, 1),
                                       (30, 20, 45, 31)])
def test_resize_antialias_equals_tensorflow(h, w, nh, nw):
    rng = np.random.default_rng(h * w + nh)
    image = (rng.random((h, w, 3)) * 255).astype(np.float32)
    expected = tf.image.resize(image, [nh, nw], method="bilinear", antialias=True).numpy()
    got = opencv_kernels.resize_antialias(image, nh, nw)
    assert got.shape == (nh, nw, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_resize_antialias_of_a_constant_is_the_constant():
    image = np.full((97, 61, 3), 37.5, np.float32)
    np.testing.assert_allclose(opencv_kernels.resize_antialias(image, 20, 13), 37.5, atol=1e-4)


# ------------------------------------------------------------------ decode


def _encoded(kind):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    rgb[10:20] = (200, 30, 90)  # flat areas too, where IDCTs differ least
    buf = io.BytesIO()
    if kind == "png":
        Image.fromarray(rgb).save(buf, "PNG")
    elif kind == "png-grey":
        Image.fromarray(rgb[..., 0]).save(buf, "PNG")
    elif kind == "png-rgba":
        Image.fromarray(np.concatenate([rgb, rgb[..., :1]], -1), "RGBA").save(buf, "PNG")
    elif kind == "jpeg-444":
        Image.fromarray(rgb).save(buf, "JPEG", quality=95, subsampling=0)
    elif kind == "jpeg-420":
        Image.fromarray(rgb).save(buf, "JPEG", quality=75, subsampling=2)
    elif kind == "jpeg-grey":
        Image.fromarray(rgb[..., 1]).save(buf, "JPEG", quality=90)
    elif kind == "jpeg-exif-rotated":  # orientation 6: both decoders ignore it
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(rgb).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    elif kind == "tf-jpeg":
        return tf.io.encode_jpeg(rgb).numpy()
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["png", "png-grey", "png-rgba", "jpeg-444", "jpeg-420",
                                  "jpeg-grey", "jpeg-exif-rotated", "tf-jpeg"])
def test_decode_equals_schema_decode(kind):
    data = _encoded(kind)
    expected = schema.decode_image(tf.constant(data)).numpy()
    got = opencv_kernels.decode(data)
    assert got.dtype == np.uint8 and got.shape == expected.shape == (37, 53, 3)
    np.testing.assert_array_equal(got, expected)


def test_schema_decodes_jpeg_like_pil():
    """The accurate IDCT: TensorFlow's default one differs from PIL's by several grey levels."""
    data = _encoded("jpeg-420")
    pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(schema.decode_image(tf.constant(data)).numpy(), pil)
    fast = tf.io.decode_jpeg(data, channels=3).numpy()
    assert np.abs(fast.astype(int) - pil).max() > 0  # the difference this choice removes


def test_decode_names_the_record_on_bad_bytes():
    with pytest.raises(ValueError, match=r"Could not decode the image of rec-7: 9 bytes"):
        opencv_kernels.decode(b"not image", "rec-7")


# ------------------------------------------------------------------ batch stage


ZOOM = (0.6, 1.6)


@pytest.fixture(scope="module")
def large_scenes(tmp_path_factory):
    """Stored 192² JPEG scenes: at a 128² input with zoom 0.6-1.6 some crops shrink (scale
    < 0.9), some do not."""
    out = str(tmp_path_factory.mktemp("large_scenes"))
    convert(Scenes("src", size=192), out, splits=["train", "test"], image_format="jpeg",
            progress=False)
    return out


def _plans(folder, input_size, config, seed=5, count=9):
    records = list(load_records(folder, "train", num_parallel_reads=None, decode_image=False)
                   .take(count))
    drawn = [batch_transforms.draw(r, tf.constant(i, tf.int64), config, seed)
             for i, r in enumerate(records)]
    batch = {k: tf.stack([d[k] for d in drawn]) for k in drawn[0]}
    return batch_transforms.plan_batch(batch, BODY16, input_size, config)


@pytest.mark.parametrize("jitter", [0.0, 0.25])
def test_decode_warp_batch_equals_per_element_tensorflow(backend, large_scenes, jitter):
    config = AugmentConfig(color_jitter=jitter, scale=ZOOM).resolve(BODY16)
    plan = _plans(large_scenes, 128, config)
    shrink = plan["shrink"].numpy()
    assert 0 < shrink.sum() < len(shrink)  # both branches run
    backend("tensorflow")
    expected = [batch_transforms.decode_warp({k: v[i] for k, v in plan.items()}, 128)["image"]
                for i in range(len(shrink))]
    backend("opencv")
    got = batch_transforms.decode_warp_batch(plan, 128)
    assert set(got) == set(plan) - set(batch_transforms.PLAN_KEYS)
    np.testing.assert_allclose(got["image"].numpy(), np.stack(expected), atol=0.02, rtol=0)
    # inside Dataset.map: the same images
    mapped = next(iter(tf.data.Dataset.from_tensors(plan).map(
        lambda p: batch_transforms.decode_warp_batch(p, 128))))
    np.testing.assert_array_equal(mapped["image"].numpy(), got["image"].numpy())


def test_decode_warp_batch_names_a_bad_record(backend, large_scenes):
    plan = dict(_plans(large_scenes, 64, None, count=3))
    plan["image"] = tf.constant([b"\x89PNG broken", plan["image"][1].numpy(),
                                 plan["image"][2].numpy()])
    backend("opencv")
    message = r"Could not decode the image of im0: 11 bytes .* expected PNG or JPEG"
    with pytest.raises(ValueError, match=message):  # eagerly, the Python exception itself
        batch_transforms.decode_warp_batch(plan, 64)
    ds = tf.data.Dataset.from_tensors(plan).map(lambda p: batch_transforms.decode_warp_batch(p, 64))
    with pytest.raises(tf.errors.OpError, match=message):
        next(iter(ds))


@pytest.mark.parametrize("training", [True, False])
def test_source_pipeline_backends_agree_with_shrinks(backend, large_scenes, training):
    batches = {}
    for name in ("opencv", "tensorflow"):
        backend(name)
        ds = (source_pipeline(large_scenes, input_size=128, heatmap_size=32, batch_size=5, seed=4,
                              augment=AugmentConfig(scale=ZOOM))
              if training else eval_pipeline(large_scenes, input_size=64, heatmap_size=16,
                                             batch_size=5, split="train"))
        batches[name] = list(ds.take(2))
    for a, b in zip(batches["opencv"], batches["tensorflow"]):
        assert set(a) == set(b)
        np.testing.assert_allclose(a["image"].numpy(), b["image"].numpy(), atol=0.02, rtol=0)
        for key in ("keypoints", "heatmaps", "weights", "matrix", "visible"):
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)


# ------------------------------------------------------------------ interpreter exit


def test_release_live_iterators_frees_an_iterator(large_scenes):
    it = iter(source_pipeline(large_scenes, input_size=64, heatmap_size=16, batch_size=2, seed=0))
    next(it)
    assert opencv_kernels.release_live_iterators() >= 1
    assert it._iterator_resource is None


@pytest.fixture(scope="module")
def exit_scenes(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("exit_scenes"))
    convert(Scenes("src", size=384), out, splits=["train"], image_format="jpeg", progress=False)
    return out


def test_a_process_exits_cleanly_with_a_live_pipeline(exit_scenes):
    """Without the atexit guard 6 of 8 such runs aborted or hung (measured:
    benchmarks/README.md, F10)."""
    env = dict(os.environ, SYNPOSE_WARP_BACKEND="opencv")
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-m", "tests.datasets.exit_child", exit_scenes, "2"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        assert "batches taken" in proc.stdout, proc.stderr[-2000:]
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "terminate called" not in proc.stderr
