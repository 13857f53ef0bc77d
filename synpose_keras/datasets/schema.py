"""The synpose TFRecord schema: feature keys, serialisation and parsing, defined once.

Every converted dataset is a folder holding ``meta.json`` and shards named
``<split>-00000-of-00004.tfrecord``. Each record is one ``tf.train.Example`` with these features:

=================  ==========  ===============================================================
key                type        content
=================  ==========  ===============================================================
``image``          bytes       the image, PNG or JPEG encoded (``meta["options"]["image_format"]``)
``height``         int64       image height in pixels
``width``          int64       image width in pixels
``keypoints``      float (2K)  (x, y) per keypoint, canonical skeleton order, row-major
``visible``        float (K)   1 visible / labelled, 0 otherwise
``keypoints_3d``   float (3K)  camera-frame 3D keypoints (only in datasets with ``has_3d``)
``intrinsics``     float (9)   3x3 camera matrix, row-major (only with ``has_3d``)
``sequence``       bytes       video / capture id ("" when the dataset has none)
``frame``          int64       frame index inside the sequence
``view``           bytes       camera id inside a multi-view capture ("" when none)
``source_id``      bytes       where the sample comes from in the original release
=================  ==========  ===============================================================

Pixel convention (used by the writer, the reader and the pipeline alike): a keypoint (x, y) is in
pixels of the stored image, and the *centre* of the top-left pixel is (0, 0) (the OpenCV / camera
intrinsics convention), so ``intrinsics @ [X, Y, Z]`` divided by Z gives the keypoint directly.

Example:

```python
from synpose_keras.datasets import schema
serialized = schema.serialize_record(record, image_format="png")
example = schema.parse_example(tf.constant(serialized), has_3d=False, num_keypoints=21)
```
"""

from __future__ import annotations

import io
from typing import Optional

import numpy as np
import tensorflow as tf

SCHEMA_VERSION = 1

IMAGE = "image"
HEIGHT = "height"
WIDTH = "width"
KEYPOINTS = "keypoints"
VISIBLE = "visible"
KEYPOINTS_3D = "keypoints_3d"
INTRINSICS = "intrinsics"
SEQUENCE = "sequence"
FRAME = "frame"
VIEW = "view"
SOURCE_ID = "source_id"

IMAGE_FORMATS = ("jpeg", "png")
STRING_KEYS = (SEQUENCE, VIEW, SOURCE_ID)

SHARD_SUFFIX = ".tfrecord"
META_FILE = "meta.json"


def shard_name(split: str, index: int, num_shards: int) -> str:
    """File name of one shard: ``<split>-00000-of-00004.tfrecord``."""
    return f"{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def shard_pattern(split: str) -> str:
    """Glob pattern (relative to the dataset folder) matching every shard of ``split``."""
    return f"{split}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]{SHARD_SUFFIX}"


def encode_image(image: np.ndarray, image_format: str = "png", jpeg_quality: int = 95) -> bytes:
    """Encodes a uint8 (H, W, 3) RGB array as PNG or JPEG bytes (deterministic, via Pillow)."""
    from PIL import Image

    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}. Received: image_format={image_format!r}")
    buf = io.BytesIO()
    pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB")
    if image_format == "png":
        pil.save(buf, format="PNG", compress_level=6)
    else:
        pil.save(buf, format="JPEG", quality=int(jpeg_quality), subsampling=0, optimize=False)
    return buf.getvalue()


def _bytes(values) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float32).ravel().tolist()))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def serialize_record(record, image_format: str = "png", jpeg_quality: int = 95,
                     encoded_image: Optional[bytes] = None) -> bytes:
    """Serialises a :class:`~synpose_keras.datasets.converters.base.Record` to ``tf.train.Example`` bytes.

    Args:
        record: Record. A validated record (uint8 RGB image, float32 keypoints).
        image_format: str. ``"png"`` (lossless) or ``"jpeg"``. Defaults to ``"png"``.
        jpeg_quality: int. JPEG quality when ``image_format="jpeg"``. Defaults to 95.
        encoded_image: optional bytes. Already-encoded image to store instead of encoding
            ``record.image`` (must decode to the same array shape).

    Returns:
        bytes: the serialised example.
    """
    image = np.asarray(record.image)
    if encoded_image is None:
        encoded_image = encode_image(image, image_format, jpeg_quality)
    feature = {
        IMAGE: _bytes([encoded_image]),
        HEIGHT: _ints([image.shape[0]]),
        WIDTH: _ints([image.shape[1]]),
        KEYPOINTS: _floats(record.keypoints),
        VISIBLE: _floats(record.visible),
        SEQUENCE: _bytes([str(record.sequence).encode("utf-8")]),
        FRAME: _ints([record.frame]),
        VIEW: _bytes([str(record.view).encode("utf-8")]),
        SOURCE_ID: _bytes([str(record.source_id).encode("utf-8")]),
    }
    if record.keypoints_3d is not None:
        feature[KEYPOINTS_3D] = _floats(record.keypoints_3d)
    if record.intrinsics is not None:
        feature[INTRINSICS] = _floats(record.intrinsics)
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def feature_spec(has_3d: bool, num_keypoints: Optional[int] = None) -> dict:
    """The ``tf.io.parse_single_example`` spec of the schema.

    With ``num_keypoints`` the keypoint features are fixed-length (faster, and a wrong K fails
    loudly); without it they are read as variable-length and reshaped.
    """
    k = num_keypoints
    if k is None:
        kp = tf.io.VarLenFeature(tf.float32)
        vis = tf.io.VarLenFeature(tf.float32)
        kp3 = tf.io.VarLenFeature(tf.float32)
    else:
        kp = tf.io.FixedLenFeature([k * 2], tf.float32)
        vis = tf.io.FixedLenFeature([k], tf.float32)
        kp3 = tf.io.FixedLenFeature([k * 3], tf.float32)
    spec = {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        WIDTH: tf.io.FixedLenFeature([], tf.int64),
        KEYPOINTS: kp,
        VISIBLE: vis,
        SEQUENCE: tf.io.FixedLenFeature([], tf.string, default_value=""),
        FRAME: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        VIEW: tf.io.FixedLenFeature([], tf.string, default_value=""),
        SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    if has_3d:
        spec[KEYPOINTS_3D] = kp3
        spec[INTRINSICS] = tf.io.FixedLenFeature([9], tf.float32)
    return spec


def decode_image(encoded: tf.Tensor, height=None, width=None) -> tf.Tensor:
    """Decodes PNG/JPEG bytes to uint8 (H, W, 3); sets the static channel count.

    JPEG is decoded with the accurate integer IDCT (``dct_method="INTEGER_ACCURATE"``, libjpeg's
    ``JDCT_ISLOW``), the one PIL and OpenCV use, so the pipelines' two backends and
    ``synpose predict`` (PIL) read the same pixels; TensorFlow's default (``INTEGER_FAST``)
    differs from it by up to 9 grey levels.
    """
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False))
    image = tf.ensure_shape(image, [None, None, 3])
    if height is not None and width is not None:
        image = tf.reshape(image, tf.stack([tf.cast(height, tf.int32), tf.cast(width, tf.int32), 3]))
        image = tf.ensure_shape(image, [None, None, 3])
    return image


def parse_example(serialized: tf.Tensor, has_3d: bool, num_keypoints: Optional[int] = None,
                  decode: bool = True) -> dict:
    """Parses one serialised example into the public record dict.

    Works eagerly and inside ``tf.data.Dataset.map``.

    Args:
        serialized: scalar string tensor.
        has_3d: bool. Whether the dataset stores ``keypoints_3d`` and ``intrinsics``.
        num_keypoints: optional int. K, from ``meta.json``; when given, shapes are static.
        decode: bool. Decode the image to uint8 pixels (``image``); when False the encoded bytes
            are returned under ``image`` as a scalar string (useful to defer decoding).
            Defaults to True.

    Returns:
        dict with ``image`` uint8 (H, W, 3), ``keypoints`` float32 (K, 2), ``visible`` float32
        (K,), ``keypoints_3d`` float32 (K, 3) and ``intrinsics`` float32 (3, 3) when ``has_3d``,
        ``sequence``/``view``/``source_id`` string scalars, ``frame`` int64 scalar, ``height`` and
        ``width`` int64 scalars.
    """
    parsed = tf.io.parse_single_example(serialized, feature_spec(has_3d, num_keypoints))
    for key in (KEYPOINTS, VISIBLE, KEYPOINTS_3D):
        if key in parsed and isinstance(parsed[key], tf.SparseTensor):
            parsed[key] = tf.sparse.to_dense(parsed[key])
    out = {
        KEYPOINTS: tf.reshape(parsed[KEYPOINTS], [-1, 2]),
        VISIBLE: tf.reshape(parsed[VISIBLE], [-1]),
        SEQUENCE: parsed[SEQUENCE],
        FRAME: parsed[FRAME],
        VIEW: parsed[VIEW],
        SOURCE_ID: parsed[SOURCE_ID],
        HEIGHT: parsed[HEIGHT],
        WIDTH: parsed[WIDTH],
    }
    if has_3d:
        out[KEYPOINTS_3D] = tf.reshape(parsed[KEYPOINTS_3D], [-1, 3])
        out[INTRINSICS] = tf.reshape(parsed[INTRINSICS], [3, 3])
    if decode:
        out[IMAGE] = decode_image(parsed[IMAGE], parsed[HEIGHT], parsed[WIDTH])
    else:
        out[IMAGE] = parsed[IMAGE]
    return out
