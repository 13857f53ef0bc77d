"""Reconstruction pairs: two frames of one view by default, cross-view on request, fallbacks that
say why, the config fields that choose them, and the statistics stage ``generator`` writes."""

import json
import warnings

import numpy as np
import pytest

from synpose_keras.datasets import convert, pairs_pipeline
from synpose_keras.datasets.converters.base import Converter, Item, Record
from synpose_keras.datasets.pipeline import pairs as pairs_module
from synpose_keras.training import configs
from synpose_keras.training import data as stage_data
from synpose_keras.training.configs import TrainConfig, apply_overrides, get_preset
from synpose_keras.training.pair_statistics import pair_statistics, write_pair_statistics

K = 16
SIZE = 48
STEP = np.array([3.0, 1.0], np.float32)  # stored keypoints move by this much per frame number


def _record(sequence, frame, view, seed):
    rng = np.random.default_rng(seed)
    start = np.random.default_rng(int(sequence[3:])).uniform(8, 24, (K, 2))
    start = start.astype(np.float32)
    image = rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
    return Record(image=image, keypoints=start + frame * STEP, visible=np.ones(K, np.float32),
                  sequence=sequence, frame=int(frame), view=view,
                  source_id=f"{sequence}/f{frame}/{view or 'x'}")


class Captures(Converter):
    """``sequences`` x ``frames`` x ``views`` records, stored frame by frame (all views of a frame
    together, as the synthetic benchmark's target); ``views=0`` gives records without a view."""

    name = "captures"
    skeleton = "body16"
    has_3d = False
    splits = ("train",)

    def __init__(self, src, sequences=3, frames=(0, 1, 2, 3), views=2):
        super().__init__(src)
        self.options.update(sequences=sequences, frames=tuple(frames), views=views)

    def items(self, split):
        o = self.options
        names = [f"cam{v}" for v in range(o["views"])] or [""]
        keys = [(f"seq{s}", f, v)
                for s in range(o["sequences"]) for f in o["frames"] for v in names]
        return [Item(f"{s}/{f}/{v}", lambda i=i, s=s, f=f, v=v: _record(s, f, v, i))
                for i, (s, f, v) in enumerate(keys)]


def _convert(tmp_path_factory, name, **options):
    out = str(tmp_path_factory.mktemp(name))
    convert(Captures("src", **options), out, num_shards=1, image_format="png", progress=False)
    return out


@pytest.fixture(scope="module")
def multiview(tmp_path_factory):
    return _convert(tmp_path_factory, "multiview")


@pytest.fixture(scope="module")
def no_views(tmp_path_factory):
    return _convert(tmp_path_factory, "noviews", views=0)


@pytest.fixture(scope="module")
def stills(tmp_path_factory):  # one frame, three cameras: no same-view partner anywhere
    return _convert(tmp_path_factory, "stills", frames=(0,), views=3)


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):  # a video sampled every 5th frame
    return _convert(tmp_path_factory, "sparse", frames=(0, 5, 10), views=1)


def _all_pairs(data, **kwargs):
    ds = pairs_pipeline(data, input_size=32, batch_size=64, training=False, drop_remainder=False,
                        crop_from_keypoints=False, seed=0, **kwargs)
    batches = [{k: v.numpy() for k, v in b.items()} for b in ds]
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


# ------------------------------------------------------------------------------ pairing


@pytest.mark.parametrize("gap", [2, 1, None])
def test_same_view_pairs_share_sequence_and_view_within_the_gap(multiview, gap):
    p = _all_pairs(multiview, max_frame_gap=gap)
    assert len(p["is_affine"]) == 24 and not p["is_affine"].any()  # every record has a partner
    np.testing.assert_array_equal(p["base_sequence"], p["driving_sequence"])
    np.testing.assert_array_equal(p["base_view"], p["driving_view"])
    frame_gap = np.abs(p["base_frame"] - p["driving_frame"])
    assert (frame_gap >= 1).all() and frame_gap.max() <= (gap or 3)
    if gap is None:
        assert frame_gap.max() > 2  # without a bound, farther frames are drawn too


def test_any_mode_still_pairs_across_views(multiview):
    p = _all_pairs(multiview, pair_mode="any", max_frame_gap=None)
    np.testing.assert_array_equal(p["base_sequence"], p["driving_sequence"])
    cross = p["base_view"] != p["driving_view"]
    assert 0 < cross.sum() < len(cross)
    # same frame, another camera: pairs that same-view mode never makes
    assert (cross & (p["base_frame"] == p["driving_frame"])).any()


def test_records_without_a_view_count_as_one_view(no_views):
    p = _all_pairs(no_views, max_frame_gap=2)
    assert len(p["is_affine"]) == 12 and not p["is_affine"].any()
    assert set(p["base_view"].tolist()) == {b""}
    np.testing.assert_array_equal(p["base_sequence"], p["driving_sequence"])
    assert (np.abs(p["base_frame"] - p["driving_frame"]) <= 2).all()


def test_a_single_frame_per_view_falls_back_to_affine_or_is_refused(stills):
    with pytest.warns(UserWarning, match="hold a single frame per view.*using affine pairs"):
        p = _all_pairs(stills)
    assert len(p["is_affine"]) == 9 and p["is_affine"].all()
    np.testing.assert_array_equal(p["base_source_id"], p["driving_source_id"])
    with pytest.raises(ValueError, match=rf"{stills} \(split 'train'\): no sequence has two frames "
                                         r"of one view.*fallback='affine'.*pair_mode='any'.*"
                                         r"Received: fallback=None"):
        pairs_pipeline(stills, input_size=32, fallback=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cross-view pairs exist: no fallback, no warning
        p = _all_pairs(stills, pair_mode="any", fallback=None)
    assert not p["is_affine"].any() and (p["base_view"] != p["driving_view"]).all()


def test_frames_farther_apart_than_the_gap_say_which_gap_is_needed(sparse):
    with pytest.raises(ValueError, match=r"at least 5 frames apart.*max_frame_gap=2.*"
                                         r"adapt.pair_max_frame_gap=5"):
        pairs_pipeline(sparse, input_size=32, max_frame_gap=2)
    p = _all_pairs(sparse, max_frame_gap=5)
    assert len(p["is_affine"]) == 9 and not p["is_affine"].any()
    assert set(np.abs(p["base_frame"] - p["driving_frame"]).tolist()) == {5}


def test_probe_counts(multiview, stills):
    from synpose_keras.datasets.reader import list_shards

    probe = pairs_module.probe_same_view_pairs(list_shards(multiview, "train"), False, K, 64, 1)
    assert probe == {"records": 24, "sequences": 3, "paired": 24, "paired_any_gap": 24,
                     "min_gap": 1}
    probe = pairs_module.probe_same_view_pairs(list_shards(stills, "train"), False, K, 64, 2)
    assert probe["paired"] == 0 and probe["paired_any_gap"] == 0 and probe["min_gap"] is None


def test_bad_pair_options(multiview):
    with pytest.raises(ValueError, match="Received: pair_mode='cross'"):
        pairs_pipeline(multiview, input_size=32, pair_mode="cross")
    for gap in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="Received: max_frame_gap="):
            pairs_pipeline(multiview, input_size=32, max_frame_gap=gap)


# ------------------------------------------------------------------------------- config


def test_config_defaults_and_validation():
    a = TrainConfig().adapt
    assert (a.pair_mode, a.pair_max_frame_gap, a.pair_fallback) == ("same-view", 2, "affine")
    assert configs.PAIR_MODES == pairs_module.PAIR_MODES
    for preset in ("demo", "paper", "tiny"):
        assert get_preset(preset).validate().adapt.pair_mode == "same-view"
    c = apply_overrides(TrainConfig(),
                        {"adapt.pair_mode": "any", "adapt.pair_max_frame_gap": "none"})
    assert (c.adapt.pair_mode, c.adapt.pair_max_frame_gap) == ("any", None)
    c = apply_overrides(TrainConfig(), {"adapt.pair_max_frame_gap": "5"})
    assert c.adapt.pair_max_frame_gap == 5
    with pytest.raises(ValueError, match=r"adapt.pair_mode must be one of \['same-view', 'any'\].*"
                                         r"Received: adapt.pair_mode='cross-view'"):
        apply_overrides(TrainConfig(), {"adapt.pair_mode": "cross-view"})
    for bad in ("0", "-2"):
        with pytest.raises(ValueError, match=f"adapt.pair_max_frame_gap must be a positive int.*"
                                             f"Received: adapt.pair_max_frame_gap={bad}"):
            apply_overrides(TrainConfig(), {"adapt.pair_max_frame_gap": bad})
    with pytest.raises(ValueError, match="Received: adapt.pair_max_frame_gap=True"):
        apply_overrides(TrainConfig(), {"adapt.pair_max_frame_gap": True})
    # a config.json written before these fields loads with the defaults
    old = TrainConfig().to_dict()
    del old["adapt"]["pair_mode"], old["adapt"]["pair_max_frame_gap"]
    assert TrainConfig.from_dict(old).validate().adapt.pair_mode == "same-view"


def test_stage_pairs_follow_the_config(multiview):
    config = get_preset("tiny")

    def pairs(cfg):
        batches = [{k: v.numpy() for k, v in b.items()}
                   for b in stage_data.target_pairs(cfg, multiview, 4, seed=3).take(12)]
        return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}

    p = pairs(config)
    np.testing.assert_array_equal(p["base_view"], p["driving_view"])
    assert (np.abs(p["base_frame"] - p["driving_frame"]) <= 2).all()
    p = pairs(apply_overrides(config,
                              {"adapt.pair_mode": "any", "adapt.pair_max_frame_gap": "none"}))
    assert (p["base_view"] != p["driving_view"]).any()
    p = pairs(apply_overrides(config, {"adapt.pair_max_frame_gap": "1"}))
    assert (np.abs(p["base_frame"] - p["driving_frame"]) == 1).all()


# --------------------------------------------------------------------------- statistics


def test_pair_statistics_on_a_tiny_dataset(multiview):
    def pipeline():
        return pairs_pipeline(multiview, input_size=32, batch_size=5, seed=1, training=True,
                              crop_from_keypoints=False, max_frame_gap=2)

    stats = pair_statistics(pipeline(), limit=18)
    assert stats["count"] == 18 and stats["sequences"] == 3
    assert stats["affine_fraction"] == 0.0 and stats["frame_pairs"] == 18
    assert stats["same_view_fraction"] == 1.0
    assert set(stats["frame_gap_histogram"]) <= {"1", "2"}
    assert sum(stats["frame_gap_histogram"].values()) == 18
    assert stats["frame_gap_max"] <= 2
    # the same pairs, measured independently: keypoints move frame gap x STEP stored px, scaled
    # by the (shared) crop; every joint is visible
    p = {k: [] for k in ("base_frame", "driving_frame", "base_matrix")}
    for batch in pipeline().take(4):
        for k in p:
            p[k].append(batch[k].numpy())
    p = {k: np.concatenate(v)[:18] for k, v in p.items()}
    scale = p["base_matrix"][:, 0, 0]
    moved = np.abs(p["driving_frame"] - p["base_frame"]) * np.linalg.norm(STEP) * scale
    d = stats["displacement_px"]
    assert d["joints"] == 18 * K
    np.testing.assert_allclose(d["mean"], moved.mean(), rtol=1e-4)
    np.testing.assert_allclose(d["median"], np.median(np.repeat(moved, K)), rtol=1e-4)
    with pytest.raises(ValueError, match="read no pair"):
        pair_statistics([], limit=4)


def test_pair_statistics_of_cross_view_and_affine_pairs(multiview, stills):
    stats = pair_statistics(pairs_pipeline(multiview, input_size=32, batch_size=8, seed=1,
                                           pair_mode="any", crop_from_keypoints=False), limit=64)
    assert 0.0 < stats["same_view_fraction"] < 1.0
    with pytest.warns(UserWarning, match="single frame per view"):
        ds = pairs_pipeline(stills, input_size=32, batch_size=4, seed=1)
    stats = pair_statistics(ds, limit=8)
    assert stats["affine_fraction"] == 1.0 and stats["frame_pairs"] == 0
    assert stats["same_view_fraction"] is None and stats["frame_gap_histogram"] == {}
    assert stats["displacement_px"]["mean"] > 0  # the random affine moves the keypoints


def test_write_pair_statistics(multiview, tmp_path):
    config = get_preset("tiny")
    lines = []
    path = tmp_path / "generator" / "pairs.json"
    stats = write_pair_statistics(config, multiview, str(path), log=lines.append, limit=10)
    assert json.loads(path.read_text()) == stats
    assert stats["count"] == 10 and stats["same_view_fraction"] == 1.0
    assert (stats["pair_mode"], stats["max_frame_gap"], stats["fallback"]) == ("same-view", 2,
                                                                               "affine")
    assert stats["target"] == multiview
    assert len(lines) == 1 and lines[0].startswith("[generator] pairs: 10 from")
    assert "100% same view, 0% affine fallback" in lines[0]
