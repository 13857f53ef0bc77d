"""Stage ``adapt`` writes the reconstruction check to TensorBoard at the end of every epoch
(RUN/logs/adapt/diagnostics), and skips it with a log line when the run has no reconstruction."""

import glob
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.training.configs import apply_overrides, get_preset
from synpose_keras.training.reconstruction_check import CASES, EpochReconstruction
from synpose_keras.training.train import train
from tests.training import stage_fixtures


def _config(root, **overrides):
    return apply_overrides(get_preset("tiny"), {
        "source": str(root / "source"), "target": str(root / "target"),
        "adapt.epochs": 2, **overrides})


def _events(folder) -> dict:
    """{tag: {step: value or image count}} of every event file under ``folder``."""
    tags = {}
    for path in glob.glob(os.path.join(str(folder), "**", "events.out.tfevents.*"),
                          recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.HasField("tensor"):
                    data = tf.make_ndarray(value.tensor)
                    item = float(data) if data.ndim == 0 else int(data.shape[0]) - 2
                else:
                    item = value.simple_value
                tags.setdefault(value.tag, {})[event.step] = item
    return tags


@pytest.mark.slow
def test_adapt_writes_the_reconstruction_check_every_epoch(tiny_domains, tmp_path):
    run = tmp_path / "run"
    messages = []
    train(_config(tiny_domains, stages=("pretrain", "generator", "adapt")), str(run),
          verbose=0, log=messages.append)
    tags = _events(run / "logs" / "adapt" / "diagnostics")
    for case in CASES:
        steps = tags.get(f"epoch_rec_check_{case}")
        assert steps is not None and sorted(steps) == [0, 1], (case, sorted(tags))
        assert all(math.isfinite(v) and v > 0 for v in steps.values()), (case, steps)
    assert sorted(tags["epoch_rec_check_ratio_to_copy"]) == [0, 1]
    # the image grid (base | driving | reconstruction), one per epoch, a handful of pairs
    assert sorted(tags["reconstruction"]) == [0, 1]
    assert 2 <= tags["reconstruction"][0] <= 4
    assert sorted(tags["predictions"]) == [0, 1]
    assert not any("no per-epoch reconstruction" in m for m in messages)


@pytest.mark.slow
def test_adapt_without_reconstruction_skips_it_with_a_log_line(tiny_domains, tmp_path):
    run = tmp_path / "run"
    messages = []
    train(_config(tiny_domains, stages=("pretrain", "adapt"), **{"adapt.rec": False}),
          str(run), verbose=0, log=messages.append)
    assert any("no per-epoch reconstruction diagnostics" in m for m in messages), messages
    tags = _events(run / "logs" / "adapt" / "diagnostics")
    assert not any(tag.startswith("epoch_rec_check") for tag in tags), sorted(tags)
    assert "reconstruction" not in tags
    assert sorted(tags["epoch_pl_overlap"]) == [0, 1]  # the rest is still written


def test_epoch_reconstruction_values_and_grid(tiny_domains):
    config = apply_overrides(get_preset("tiny"), {"target": str(tiny_domains / "target")})
    predictor = stage_fixtures.predictor(seed=0)
    warp, gen = stage_fixtures.warping_and_generator()
    check = EpochReconstruction.from_config(config, warp, gen, log=print)
    assert check is not None and check.split == "test"
    values = check.values(predictor)
    assert sorted(values) == sorted([f"rec_check_{c}" for c in CASES]
                                    + ["rec_check_ratio_to_copy"])
    grid = check.images(predictor)
    n, size = check.pairs["base"].shape[:2]
    assert grid.shape == (n, size, 3 * size, 3) and grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[:, :, :size], np.clip(check.pairs["base"], 0, 255)
                                  .astype(np.uint8))
