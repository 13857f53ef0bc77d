"""Schema round trip: Record -> tf.train.Example bytes -> parsed dict, values identical."""

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.datasets import schema
from synpose_keras.datasets.converters.base import Record


def _record(seed, k=21, has_3d=True, h=24, w=32):
    rng = np.random.default_rng(seed)
    return Record(
        image=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        keypoints=rng.uniform(0, 30, (k, 2)).astype(np.float32),
        visible=(rng.uniform(size=k) > 0.3).astype(np.float32),
        sequence=f"seq-{seed}",
        frame=seed * 7,
        source_id=f"img/{seed:05d}.png",
        view="cam2",
        keypoints_3d=rng.normal(size=(k, 3)).astype(np.float32) if has_3d else None,
        intrinsics=np.array([[500.0, 0, 16], [0, 500.0, 12], [0, 0, 1]], np.float32) if has_3d else None,
    )


@pytest.mark.parametrize("num_keypoints", [None, 21])
def test_png_round_trip_is_exact(num_keypoints):
    rec = _record(3)
    data = schema.serialize_record(rec, image_format="png")
    out = schema.parse_example(tf.constant(data), has_3d=True, num_keypoints=num_keypoints)
    np.testing.assert_array_equal(out["image"].numpy(), rec.image)
    assert out["image"].dtype == tf.uint8
    np.testing.assert_array_equal(out["keypoints"].numpy(), rec.keypoints)
    assert out["keypoints"].dtype == tf.float32
    np.testing.assert_array_equal(out["visible"].numpy(), rec.visible)
    np.testing.assert_array_equal(out["keypoints_3d"].numpy(), rec.keypoints_3d)
    np.testing.assert_array_equal(out["intrinsics"].numpy(), rec.intrinsics)
    assert out["sequence"].numpy() == b"seq-3"
    assert out["view"].numpy() == b"cam2"
    assert out["source_id"].numpy() == b"img/00003.png"
    assert out["frame"].numpy() == 21
    assert out["frame"].dtype == tf.int64
    assert int(out["height"]) == 24 and int(out["width"]) == 32


def test_static_shapes_inside_dataset_map():
    rec = _record(1, k=16, has_3d=False)
    data = schema.serialize_record(rec, image_format="png")
    ds = tf.data.Dataset.from_tensor_slices([data, data]).map(
        lambda s: schema.parse_example(s, has_3d=False, num_keypoints=16))
    spec = ds.element_spec
    assert spec["keypoints"].shape.as_list() == [16, 2]
    assert spec["visible"].shape.as_list() == [16]
    assert spec["image"].shape.as_list() == [None, None, 3]
    assert "keypoints_3d" not in spec and "intrinsics" not in spec
    got = next(iter(ds))
    np.testing.assert_array_equal(got["image"].numpy(), rec.image)


def test_jpeg_round_trip_is_close():
    # smooth image: JPEG error stays small
    y, x = np.mgrid[0:32, 0:32]
    img = np.stack([x * 8, y * 8, (x + y) * 4], -1).astype(np.uint8)
    rec = _record(2, has_3d=False, h=32, w=32)
    rec.image = img
    out = schema.parse_example(tf.constant(schema.serialize_record(rec, image_format="jpeg")), has_3d=False)
    assert out["image"].shape == (32, 32, 3)
    assert np.abs(out["image"].numpy().astype(int) - img.astype(int)).mean() < 2.0


def test_bad_image_format_message():
    with pytest.raises(ValueError, match="Received: image_format='gif'"):
        schema.serialize_record(_record(0), image_format="gif")


def test_shard_names():
    assert schema.shard_name("train", 3, 4) == "train-00003-of-00004.tfrecord"
    import fnmatch

    assert fnmatch.fnmatch("train-00003-of-00004.tfrecord", schema.shard_pattern("train"))
    assert not fnmatch.fnmatch("train-00003-of-00004.tfrecord.incomplete", schema.shard_pattern("train"))
    assert not fnmatch.fnmatch("trainval-00003-of-00004.tfrecord", schema.shard_pattern("train"))
