"""``augment.*`` settings reach the source pipeline and the student's target view."""

import numpy as np
import pytest

from synpose_keras.training import data as stage_data
from synpose_keras.training.configs import apply_overrides, get_preset

OFF = {"augment.rotation": "0", "augment.shear": "0", "augment.translate": "0",
       "augment.scale_min": "1", "augment.scale_max": "1", "augment.color_jitter": "0",
       "augment.flip_prob": "0"}


def _config(root, overrides):
    return apply_overrides(get_preset("tiny"), {
        "source": str(root / "source"), "target": str(root / "target"), **overrides})


def _first(config):
    batch = next(iter(stage_data.adapt_dataset(config, config.source, config.target, 0, False)))
    return {k: {n: np.asarray(v) for n, v in part.items()} for k, part in batch.items()}


def test_default_settings_are_uniframe_reference():
    settings = get_preset("paper").augment
    aug = settings.to_augment_config()
    assert (aug.rotation, aug.shear, aug.translate, aug.scale, aug.color_jitter) == (
        None, 30.0, 0.05, (0.6, 1.3), 0.25)


def test_augmentation_off_gives_identical_views(tiny_domains):
    batch = _first(_config(tiny_domains, OFF))
    np.testing.assert_allclose(batch["target"]["affine"],
                               np.broadcast_to(np.eye(3), batch["target"]["affine"].shape),
                               atol=1e-5)
    np.testing.assert_allclose(batch["target"]["student_image"],
                               batch["target"]["teacher_image"], atol=1e-3)


def test_rotation_setting_bounds_the_student_affine(tiny_domains):
    batch = _first(_config(tiny_domains, {**OFF, "augment.rotation": "20"}))
    affine = batch["target"]["affine"]
    angles = np.degrees(np.arctan2(affine[:, 1, 0], affine[:, 0, 0]))
    assert np.all(np.abs(angles) <= 20.0 + 1e-3)
    assert np.any(np.abs(angles) > 1e-3)  # it does rotate
    default = _first(_config(tiny_domains, {}))["target"]["affine"]
    assert not np.allclose(default, np.eye(3), atol=1e-3)


def test_source_augmentation_setting_is_used(tiny_domains):
    plain = _first(_config(tiny_domains, OFF))["source"]["image"]
    again = _first(_config(tiny_domains, OFF))["source"]["image"]
    augmented = _first(_config(tiny_domains, {}))["source"]["image"]
    np.testing.assert_array_equal(plain, again)
    assert not np.allclose(plain, augmented)


def test_bad_setting_names_the_field():
    with pytest.raises(ValueError, match="rotation"):
        get_preset("tiny").augment.__class__(rotation=-1.0).to_augment_config()
