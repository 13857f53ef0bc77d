"""The StyleNet's content-preservation score and the restyling gate built on it."""

import json

import numpy as np
import pytest

from synpose_keras.models.style_net import edge_correlation
from synpose_keras.training.configs import apply_overrides, get_preset
from synpose_keras.training.train import train


def _scene(seed, n=4, size=32):
    """Bright rectangles on a dark background: images with clear edges."""
    rng = np.random.default_rng(seed)
    images = np.full((n, size, size, 3), 20.0, np.float32)
    for image in images:
        for _ in range(3):
            x0, y0 = rng.integers(0, size - 10, 2)
            w, h = rng.integers(4, 10, 2)
            image[y0:y0 + h, x0:x0 + w] = rng.uniform(120, 250, 3)
    return images


def test_edge_correlation_ignores_colour_changes_but_not_structure():
    images = _scene(0)
    same = np.asarray(edge_correlation(images, images))
    np.testing.assert_allclose(same, 1.0, atol=1e-5)
    # a restyling that only changes colours and contrast keeps the edges
    recoloured = images[..., ::-1] * 0.6 + 40.0
    assert np.asarray(edge_correlation(images, recoloured)).min() > 0.9
    # other scenes, and noise, do not
    other = np.asarray(edge_correlation(images, _scene(1)))
    noise = np.random.default_rng(2).uniform(0, 255, images.shape).astype(np.float32)
    assert other.max() < 0.5
    assert np.abs(np.asarray(edge_correlation(images, noise))).max() < 0.2
    assert other.shape == (4,)


@pytest.mark.parametrize("min_quality, restyled", [(1.01, False), (0.0, True)])
def test_restyling_gate(tiny_domains, tmp_path, min_quality, restyled):
    config = apply_overrides(get_preset("tiny"), {
        "source": str(tiny_domains / "source"), "target": str(tiny_domains / "target"),
        "stages": ("style", "pretrain"), "style.min_quality": min_quality})
    messages = []
    train(config, str(tmp_path / "run"), verbose=0, log=messages.append)
    quality = json.loads((tmp_path / "run" / "style" / "quality.json").read_text())
    assert -1.0 <= quality["content_preservation"] <= 1.0
    assert quality["min_quality"] == min_quality and quality["images"] > 0
    switched_off = [m for m in messages if "[pretrain] restyling is off" in m]
    assert bool(switched_off) is (not restyled)
    assert any("[style] WARNING" in m for m in messages) is (not restyled)
