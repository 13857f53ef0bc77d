"""tf.data pipelines: keypoints move with the pixels, flips relabel joints, views and pairs agree."""

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.datasets import (
    AugmentConfig,
    convert,
    eval_pipeline,
    load_records,
    pairs_pipeline,
    source_pipeline,
    target_views_pipeline,
)
from synpose_keras.datasets.converters.base import Converter, Item, Record
from synpose_keras.datasets.pipeline.source import prepare_example
from synpose_keras.datasets.pipeline.views import prepare_views
from synpose_keras.ops import apply_affine, invert_affine, project
from synpose_keras.skeletons import BODY16

K = 16
PALETTE = np.array([[(53 * k) % 256, (97 * k + 40) % 256, (180 + 71 * k) % 256] for k in range(K)], np.uint8)
FLIP = np.array(BODY16.flip_index)
NO_JITTER = dict(color_jitter=0.0)


def _nearest(pixel):
    return int(np.argmin(np.abs(PALETTE.astype(int) - np.asarray(pixel).astype(int)).sum(-1)))


def _scene(i, size=96, radius=4, sequence=None, view=""):
    """Grey image with one coloured disc per Body16 joint; keypoints on the disc centres."""
    rng = np.random.default_rng(i)
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4)), -1).reshape(-1, 2)[rng.permutation(K)]
    scale = size / 96.0
    kp = (grid * 17.0 + 18.0 + rng.uniform(-2, 2, (K, 2))) * scale
    img = np.full((size, size, 3), 128, np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(K):
        img[(xx - kp[k, 0]) ** 2 + (yy - kp[k, 1]) ** 2 <= (radius * scale) ** 2] = PALETTE[k]
    pts3 = np.concatenate([kp - size / 2.0, np.full((K, 1), 100.0)], 1) * rng.uniform(1, 2)
    intr = np.array([[100.0, 0, size / 2.0], [0, 100.0, size / 2.0], [0, 0, 1]])
    return Record(image=img, keypoints=kp.astype(np.float32), visible=np.ones(K, np.float32),
                  sequence=f"s{i // 3}" if sequence is None else sequence, frame=i % 3, view=view,
                  source_id=f"im{i}", keypoints_3d=pts3.astype(np.float32),
                  intrinsics=intr.astype(np.float32))


class Scenes(Converter):
    """Dotted scenes; option ``sequences`` off gives LSP-like single images."""

    name = "scenes"
    skeleton = "body16"
    has_3d = True
    splits = ("train", "test")

    def items(self, split):
        n = 9 if split == "train" else 5
        seq = self.options.get("sequences", True)
        size = self.options.get("size", 96)
        return [Item(f"im{i}", lambda i=i: _scene(i, size=size, sequence=None if seq else ""))
                for i in range(n)]

    def __init__(self, src, sequences=True, size=96):
        super().__init__(src)
        self.options.update(sequences=sequences, size=size)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("scenes"))
    convert(Scenes("src"), out, num_shards=2, image_format="png", progress=False)
    return out


@pytest.fixture(scope="module")
def single_images(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("single"))
    convert(Scenes("src", sequences=False), out, splits=["train"], image_format="png", progress=False)
    return out


def _check_colours(image, keypoints, expected_index, margin=2):
    """Colour under each keypoint that lies inside the image is its joint's colour."""
    s = image.shape[0]
    checked = 0
    for k in range(K):
        x, y = np.round(keypoints[k]).astype(int)
        if margin <= x < s - margin and margin <= y < s - margin:
            assert _nearest(image[y, x]) == expected_index[k], (k, image[y, x])
            checked += 1
    return checked


# ------------------------------------------------------------------ source pipeline


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_augmentation_moves_keypoints_with_pixels(scenes, flip_prob):
    config = AugmentConfig(flip_prob=flip_prob, **NO_JITTER)
    ds = source_pipeline(scenes, input_size=64, heatmap_size=16, batch_size=9, augment=config, seed=3)
    batch = next(iter(ds))
    expected = FLIP if flip_prob else np.arange(K)
    checked = 0
    for b in range(9):
        checked += _check_colours(batch["image"][b].numpy(), batch["keypoints"][b].numpy(), expected)
        # the augmentation is not the identity
        assert not np.allclose(batch["matrix"][b].numpy()[:2, :2], batch["matrix"][b].numpy()[0, 0] * np.eye(2))
    assert checked >= 9 * 10
    # intrinsics follow the warp (and the mirror): projecting the 3D keypoints gives the 2D ones
    proj = project(batch["keypoints_3d"].numpy(), batch["intrinsics"].numpy())
    np.testing.assert_allclose(proj, batch["keypoints"].numpy(), atol=2e-3)


def test_source_batch_shapes_and_heatmaps(scenes):
    batch = next(iter(source_pipeline(scenes, input_size=64, heatmap_size=16, batch_size=4, seed=0)))
    assert batch["image"].shape == (4, 64, 64, 3) and batch["image"].dtype == tf.float32
    assert batch["heatmaps"].shape == (4, 16, 16, K)
    assert batch["weights"].shape == (4, K)
    assert float(tf.reduce_max(batch["image"])) <= 255.0
    # heatmap peaks at floor(kp / 4 + 0.5) for joints with weight 1; weight 0 outside the map
    kp = batch["keypoints"].numpy()
    centre = np.floor(kp / 4.0 + 0.5).astype(int)
    inside = (centre >= 0).all(-1) & (centre < 16).all(-1)
    np.testing.assert_array_equal(batch["weights"].numpy(), inside.astype(np.float32))
    hm = batch["heatmaps"].numpy()
    for b, k in zip(*np.nonzero(inside)):
        assert hm[b, centre[b, k, 1], centre[b, k, 0], k] == 1.0


def test_large_downscale_is_antialiased_and_exact(tmp_path):
    out = str(tmp_path / "big")
    convert(Scenes("src", size=384), out, splits=["test"], image_format="png", progress=False)
    batch = next(iter(eval_pipeline(out, input_size=32, heatmap_size=8, batch_size=5)))
    for b in range(5):
        assert _check_colours(batch["image"][b].numpy(), batch["keypoints"][b].numpy(), np.arange(K)) == K


def test_prepare_example_eager_equals_dataset_map(scenes):
    config = AugmentConfig(**NO_JITTER).resolve(BODY16)
    record = next(iter(load_records(scenes, "train", num_parallel_reads=None)))
    from synpose_keras.ops import HeatmapCodec

    codec = HeatmapCodec(64, 16)

    def fn(i, ex):
        return prepare_example(ex, i, BODY16, 64, codec, config, seed=11)

    eager = fn(tf.constant(5, tf.int64), record)
    mapped = next(iter(tf.data.Dataset.from_tensors((tf.constant(5, tf.int64), record)).map(fn)))
    assert set(eager) == set(mapped)
    for key in eager:
        if eager[key].dtype == tf.string:
            assert eager[key].numpy() == mapped[key].numpy()
        else:
            np.testing.assert_allclose(eager[key].numpy(), mapped[key].numpy(), atol=1e-3, err_msg=key)
    # an encoded image (as the pipelines shuffle them) gives the same example
    encoded = next(iter(load_records(scenes, "train", num_parallel_reads=None, decode_image=False)))
    assert encoded["image"].dtype == tf.string
    from_encoded = fn(tf.constant(5, tf.int64), encoded)
    np.testing.assert_array_equal(from_encoded["image"].numpy(), eager["image"].numpy())
    # colour jitter too
    jitter = AugmentConfig().resolve(BODY16)
    a = prepare_example(record, tf.constant(2, tf.int64), BODY16, 64, None, jitter, seed=1)
    b = next(iter(tf.data.Dataset.from_tensors(record).map(
        lambda ex: prepare_example(ex, tf.constant(2, tf.int64), BODY16, 64, None, jitter, seed=1))))
    np.testing.assert_allclose(a["image"].numpy(), b["image"].numpy(), atol=1e-2)


def test_determinism_with_seed(scenes):
    def first(seed):
        ds = source_pipeline(scenes, input_size=32, heatmap_size=8, batch_size=3, seed=seed)
        return [{k: v.numpy() for k, v in b.items()} for b in ds.take(4)]

    a, b, c = first(5), first(5), first(6)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(a[0]["image"], c[0]["image"])
    # fresh augmentation in the second epoch: the 9 records appear again, transformed differently
    ids = np.concatenate([x["source_id"] for x in a])
    first_epoch = {sid: m for sid, m in zip(ids[:9], np.concatenate([x["matrix"] for x in a])[:9])}
    assert sorted(first_epoch) == sorted(f"im{i}".encode() for i in range(9))


def test_eval_pipeline_maps_back_to_stored_pixels(scenes):
    batches = list(eval_pipeline(scenes, input_size=64, heatmap_size=16, batch_size=2))
    assert [int(b["image"].shape[0]) for b in batches] == [2, 2, 1]
    ids = [s.decode() for b in batches for s in b["source_id"].numpy()]
    assert ids == [f"im{i}" for i in range(5)]
    for b in batches:
        back = apply_affine(b["inverse_matrix"].numpy(), b["keypoints"].numpy())
        for j, sid in enumerate(b["source_id"].numpy()):
            ref = _scene(int(sid.decode()[2:]))
            np.testing.assert_allclose(back[j], ref.keypoints, atol=1e-3)
        for j in range(b["image"].shape[0]):
            assert _check_colours(b["image"][j].numpy(), b["keypoints"][j].numpy(), np.arange(K)) == K


# ------------------------------------------------------------------ target views


def test_target_views_affine_maps_teacher_onto_student(scenes):
    student = AugmentConfig(flip_prob=0.5, **NO_JITTER)
    ds = target_views_pipeline(scenes, input_size=64, batch_size=9, seed=4, student_augment=student,
                               teacher_augment=AugmentConfig.light())
    batch = {k: v.numpy() for k, v in next(iter(ds)).items()}
    flipped = 0
    for b in range(9):
        idx = batch["teacher_index"][b]
        mapped = apply_affine(batch["teacher_to_student"][b], batch["teacher_keypoints"][b])[idx]
        np.testing.assert_allclose(mapped, batch["student_keypoints"][b], atol=2e-3)
        back = apply_affine(batch["student_to_teacher"][b], batch["student_keypoints"][b])
        np.testing.assert_allclose(back, batch["teacher_keypoints"][b][idx], atol=2e-3)
        flipped += int(not np.array_equal(idx, np.arange(K)))
        if not np.array_equal(idx, np.arange(K)):
            np.testing.assert_array_equal(idx, FLIP)
        _check_colours(batch["student_image"][b], batch["student_keypoints"][b], idx)
    assert 0 < flipped < 9


def test_prepare_views_eager_equals_map(scenes):
    record = next(iter(load_records(scenes, "train", num_parallel_reads=None)))
    t, s = AugmentConfig.none().resolve(BODY16), AugmentConfig().resolve(BODY16)

    def fn(ex):
        return prepare_views(ex, tf.constant(3, tf.int64), BODY16, 48, t, s, seed=2)

    eager, mapped = fn(record), next(iter(tf.data.Dataset.from_tensors(record).map(fn)))
    for key in ("teacher_to_student", "student_keypoints", "teacher_image", "student_image"):
        np.testing.assert_allclose(eager[key].numpy(), mapped[key].numpy(), atol=1e-2, err_msg=key)


# ------------------------------------------------------------------ pairs


def test_pairs_share_sequence_and_crop(scenes):
    ds = pairs_pipeline(scenes, input_size=64, batch_size=6, seed=1, window=8, training=False)
    batches = [{k: v.numpy() for k, v in b.items()} for b in ds]
    n = sum(len(b["base_sequence"]) for b in batches)
    # shard 0 holds im0-im3 (s0: 0,1,2; s1: 3 alone), shard 1 im4-im8 (s1: 4,5; s2: 6,7,8)
    assert n == 8
    for b in batches:
        assert not b["is_affine"].any()
        np.testing.assert_array_equal(b["base_sequence"], b["driving_sequence"])
        assert (b["base_frame"] != b["driving_frame"]).all()
        np.testing.assert_array_equal(b["base_matrix"], b["driving_matrix"])
        for j in range(len(b["base_sequence"])):
            _check_colours(b["base_image"][j], b["base_keypoints"][j], np.arange(K))
            _check_colours(b["driving_image"][j], b["driving_keypoints"][j], np.arange(K))
    bases = sorted(s.decode() for b in batches for s in b["base_source_id"])
    assert bases == ["im0", "im1", "im2", "im4", "im5", "im6", "im7", "im8"]


def test_pairs_max_frame_gap_and_determinism(scenes):
    def run(seed):
        ds = pairs_pipeline(scenes, input_size=32, batch_size=4, seed=seed, window=8, max_frame_gap=1)
        return [{k: v.numpy() for k, v in b.items()} for b in ds.take(3)]

    a, b = run(7), run(7)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
        assert (np.abs(x["base_frame"] - x["driving_frame"]) == 1).all()


def test_pairs_from_a_dataset_of_records(scenes):
    records = load_records(scenes, "train", num_parallel_reads=None)
    with pytest.raises(ValueError, match="has_sequences is required"):
        pairs_pipeline(records, skeleton="body16", input_size=32)
    ds = pairs_pipeline(records, skeleton="body16", input_size=32, batch_size=20, window=9,
                        has_sequences=True, training=False, drop_remainder=False)
    b = {k: v.numpy() for k, v in next(iter(ds)).items()}
    assert len(b["base_sequence"]) == 9
    np.testing.assert_array_equal(b["base_sequence"], b["driving_sequence"])


def test_no_sequences_affine_fallback(single_images):
    ds = pairs_pipeline(single_images, input_size=64, batch_size=3, seed=2)
    b = {k: v.numpy() for k, v in next(iter(ds)).items()}
    assert b["is_affine"].all()
    np.testing.assert_array_equal(b["base_source_id"], b["driving_source_id"])
    for j in range(3):
        d = b["driving_matrix"][j] @ invert_affine(b["base_matrix"][j])
        assert not np.allclose(d, np.eye(3), atol=1e-3)
        np.testing.assert_allclose(apply_affine(d, b["base_keypoints"][j]), b["driving_keypoints"][j], atol=2e-3)
        assert _check_colours(b["driving_image"][j], b["driving_keypoints"][j], np.arange(K)) >= 10


def test_no_sequences_without_fallback_is_refused(single_images):
    with pytest.raises(ValueError, match="has no sequences.*fallback='affine'.*Received: fallback=None"):
        pairs_pipeline(single_images, input_size=64, fallback=None)
    with pytest.raises(ValueError, match="Received: fallback='mirror'"):
        pairs_pipeline(single_images, input_size=64, fallback="mirror")


def test_bad_arguments(scenes):
    with pytest.raises(ValueError, match="Received: input_size=7"):
        source_pipeline(scenes, input_size=7)
    with pytest.raises(ValueError, match="Received: skeleton='hand21'"):
        source_pipeline(scenes, skeleton="hand21")
    with pytest.raises(ValueError, match=r"Received: scale=\(1.3, 0.6\)"):
        AugmentConfig(scale=(1.3, 0.6))
    assert AugmentConfig().resolve("hand21").rotation == 180.0
    assert AugmentConfig().resolve("body16").rotation == 60.0
    assert AugmentConfig().resolve("hand21").flip_prob == 0.0


# ------------------------------------------ batch-level staging (benchmarks/README.md, F6)


def _per_example_pipeline(folder, input_size, heatmap_size, batch_size, seed, training, augment=None):
    """``source_pipeline`` as it was before F6: ``prepare_example`` on every element."""
    from synpose_keras.datasets.pipeline import _inputs
    from synpose_keras.ops import HeatmapCodec

    records, skeleton, _ = _inputs.resolve_input(folder, "train", None, training, seed)
    codec = HeatmapCodec(input_size, heatmap_size)
    config = (augment or AugmentConfig()).resolve(skeleton) if training else None
    ds = _inputs.shuffle_repeat_enumerate(records, training, seed, 1000, None)
    ds = ds.map(lambda i, ex: prepare_example(ex, i, skeleton, input_size, codec, config, seed))
    return _inputs.finish(ds, batch_size, training, None)


@pytest.mark.parametrize("training", [True, False])
def test_batched_source_pipeline_equals_per_example(scenes, training):
    # hand-picked sizes: 4 x 15 x 16 heatmap values, not a multiple of the vector width
    kw = dict(input_size=60, heatmap_size=15, batch_size=4, seed=7, training=training)
    new = source_pipeline(scenes, **kw).take(4 if training else 3)
    old = _per_example_pipeline(scenes, 60, 15, 4, 7, training).take(4 if training else 3)
    n = 0
    for a, b in zip(new, old):
        assert set(a) == set(b)
        for key in a:
            # same draws; inside tf.data, graph rewrites may round 3x3 products 1 ulp apart
            if key == "image":
                np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-3, rtol=0)
            elif key in ("matrix", "inverse_matrix", "keypoints", "keypoints_3d", "intrinsics"):
                np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), rtol=1e-6, atol=1e-5,
                                           err_msg=key)
            else:  # visible, heatmaps, weights, frame, strings
                np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
        n += 1
    assert n == (4 if training else 3)  # eval: 9 records -> 4 + 4 + 1


def test_batch_transforms_eager_equal_prepare_example(scenes):
    from synpose_keras.datasets.pipeline import batch_transforms
    from synpose_keras.ops import HeatmapCodec

    config = AugmentConfig().resolve(BODY16)  # colour jitter and flips on
    codec = HeatmapCodec(64, 16)
    records = list(load_records(scenes, "train", num_parallel_reads=None, decode_image=False).take(5))
    drawn = [batch_transforms.draw(r, tf.constant(i, tf.int64), config, 3) for i, r in enumerate(records)]
    batch = {k: tf.stack([d[k] for d in drawn]) for k in drawn[0]}
    assert batch["height"].numpy().tolist() == [96] * 5 and batch["width"].numpy().tolist() == [96] * 5
    plan = batch_transforms.plan_batch(batch, BODY16, 64, config)
    heatmaps, weights = codec.encode(plan["keypoints"], plan["visible"])
    flips = 0
    for i, record in enumerate(records):
        expected = prepare_example(record, tf.constant(i, tf.int64), BODY16, 64, codec, config, seed=3)
        got = batch_transforms.decode_warp({k: v[i] for k, v in plan.items()}, 64)
        got["heatmaps"], got["weights"] = heatmaps[i], weights[i]
        assert set(got) == set(expected)
        for key in expected:
            if key == "image":
                np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), atol=1e-3, rtol=0)
            else:
                np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy(), err_msg=key)
        flips += int(not np.array_equal(got["visible"].numpy(), record["visible"].numpy())
                     or got["matrix"].numpy()[0, 0] < 0)
    assert flips >= 1  # the flip branch was exercised


def test_encoded_size_png_and_jpeg():
    from synpose_keras.datasets.pipeline import batch_transforms

    image = tf.zeros([37, 53, 3], tf.uint8)
    for encoded in (tf.io.encode_png(image), tf.io.encode_jpeg(image)):
        h, w = batch_transforms.encoded_size(encoded)
        assert (int(h), int(w)) == (37, 53)
