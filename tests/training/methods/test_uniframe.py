"""UniFrame: keypoint-guided occlusion and restyling on hand-built cases, the global 50% mask,
and the mean-teacher step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.pseudo_labels.masks import top_fraction_mask
from synpose_keras.training.methods import UniFrameStage
from synpose_keras.training.methods.batch_sync import global_top_fraction_mask
from synpose_keras.training.methods.uniframe import (
    keypoint_guided_occlusion,
    occlusion_half_size,
    restyle,
)
from tests.training.stage_fixtures import SIZE, adapt_batch, predictor


def _coded_image(n=1, size=32):
    """Every pixel encodes its own position: R = x, G = y, B = image index."""
    ys, xs = np.mgrid[0:size, 0:size]
    img = np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.float32)
    out = np.stack([img] * n)
    out[..., 2] = np.arange(n)[:, None, None]
    return out


def _draws(n, occlude=0.0, choice=0.0, px=0.0, py=0.0):
    full = lambda v: np.full((n,), v, np.float32)  # noqa: E731
    return {"occlude": full(occlude), "occlude_choice": full(choice), "patch_x": full(px),
            "patch_y": full(py)}


def test_occlusion_pastes_a_patch_of_the_same_image_over_a_confident_keypoint():
    images = _coded_image(1)
    keypoints = np.array([[[10.0, 20.0], [5.0, 5.0], [25.0, 8.0]]], np.float32)
    scores = np.array([[0.95, 0.5, 0.92]], np.float32)
    # choice 0 -> the first confident keypoint (index 0); patch corner at (0, 0)
    out = np.asarray(keypoint_guided_occlusion(images, keypoints, scores, _draws(1), prob=0.5,
                                               threshold=0.9, half_size=3))
    changed = np.any(out != images, axis=-1)[0]
    ys, xs = np.nonzero(changed)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (7, 12, 17, 22)  # [x-3, x+3) x [y-3, y+3)
    # the pasted content is the image's own top-left 6 x 6 block
    np.testing.assert_array_equal(out[0, 17:23, 7:13], images[0, 0:6, 0:6])
    np.testing.assert_array_equal(out[0, ~changed], images[0, ~changed])
    # choice 0.99 -> the second confident keypoint (index 2), the corner drawn at the far end
    out = np.asarray(keypoint_guided_occlusion(images, keypoints, scores,
                                               _draws(1, choice=0.99, px=0.999, py=0.999),
                                               half_size=3))
    np.testing.assert_array_equal(out[0, 5:11, 22:28], images[0, 26:32, 26:32])


def test_occlusion_is_skipped_when_not_drawn_or_not_confident():
    images = _coded_image(2)
    keypoints = np.full((2, 3, 2), 16.0, np.float32)
    scores = np.array([[0.95, 0.2, 0.1], [0.89, 0.2, 0.1]], np.float32)
    out = np.asarray(keypoint_guided_occlusion(images, keypoints, scores,
                                               _draws(2, occlude=0.7), prob=0.5, half_size=2))
    np.testing.assert_array_equal(out, images)  # 0.7 >= p
    out = np.asarray(keypoint_guided_occlusion(images, keypoints, scores, _draws(2), prob=0.5,
                                               half_size=2))
    assert np.any(out[0] != images[0])  # drawn and confident
    np.testing.assert_array_equal(out[1], images[1])  # nothing >= 0.9


def test_occlusion_clips_the_patch_at_the_border():
    images = _coded_image(1)
    out = np.asarray(keypoint_guided_occlusion(images, np.array([[[1.0, 30.0]]], np.float32),
                                               np.array([[1.0]], np.float32), _draws(1),
                                               half_size=4))
    ys, xs = np.nonzero(np.any(out != images, axis=-1)[0])
    assert xs.min() >= 0 and xs.max() <= 4 and ys.min() >= 26 and ys.max() <= 31
    assert occlusion_half_size(20, 256) == 10 and occlusion_half_size(20, 64) == 2


class _FakeStyleNet:
    """AdaIN stand-in: a mix of content and the style image's mean colour."""

    def stylize(self, content, style, alpha):
        alpha = keras.ops.reshape(alpha, (-1, 1, 1, 1))
        mean = keras.ops.mean(style, axis=(1, 2), keepdims=True)
        return (1 - alpha) * content + alpha * (0 * content + mean)


def test_restyle_only_the_drawn_images_with_their_own_style_and_strength():
    content = np.full((3, 4, 4, 3), 100.0, np.float32)
    styles = np.stack([np.full((4, 4, 3), v, np.float32) for v in (0.0, 200.0)])
    out = np.asarray(restyle(_FakeStyleNet(), content, styles, draw=np.array([0.1, 0.9, 0.2]),
                             alpha=np.array([1.0, 1.0, 0.5]), prob=0.5))
    np.testing.assert_allclose(out[0], 0.0)  # style 0, alpha 1
    np.testing.assert_allclose(out[1], 100.0)  # not drawn
    np.testing.assert_allclose(out[2], 50.0)  # style 2 mod 2 = 0, alpha 0.5


def test_global_mask_equals_the_single_device_mask():
    scores = np.random.default_rng(0).uniform(size=(4, 21)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(global_top_fraction_mask(scores, 0.5)),
                                  np.asarray(top_fraction_mask(scores, 0.5)))
    assert float(np.mean(global_top_fraction_mask(scores, 0.2))) == pytest.approx(17 / 84)


def _uniframe_batch(seed=0, n=2):
    batch = adapt_batch(seed, n)
    rng = np.random.default_rng(seed + 100)
    names = ("source_restyle", "source_alpha", "teacher_restyle", "teacher_alpha", "occlude",
             "occlude_choice", "patch_x", "patch_y")
    draws = {k: rng.uniform(size=(n,)).astype(np.float32) for k in names}
    draws["occlude"] = np.zeros((n,), np.float32)
    return {"source": batch["source"], "target": batch["target"], "draws": draws}


def _stage(**kwargs):
    stage = UniFrameStage(predictor(0), predictor(1), ema_decay=0.9, **kwargs)
    stage.compile(optimizer=keras.optimizers.Adam(1e-3))
    stage.build_all(SIZE)
    stage.initialize_teacher()
    return stage


def test_uniframe_step_finite_losses_and_ema_teacher():
    stage = _stage(occlusion_threshold=0.0)  # tiny untrained teacher: occlude every image
    before = [np.array(w) for w in stage.teacher.weights]
    logs = stage.train_step(_uniframe_batch(0))
    for name in ("loss", "source", "consistency"):
        assert np.isfinite(float(logs[name])), name
    assert float(logs["consistency"]) > 0
    assert float(logs["mask"]) == pytest.approx(0.5, abs=0.05)
    assert float(logs["occluded"]) == 1.0
    student = [np.array(w) for w in stage.student.weights]
    for b, s, a in zip(before, student, stage.teacher.weights):
        np.testing.assert_allclose(np.array(a), 0.9 * b + 0.1 * s, rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(b, s) for b, s in zip(before, student))


def test_uniframe_step_restyles_with_the_style_net():
    calls = []

    class Recording(_FakeStyleNet):
        def stylize(self, content, style, alpha):
            calls.append(tuple(content.shape))
            return super().stylize(content, style, alpha)

    stage = _stage(style_net=Recording(), occlusion_prob=0.0)
    batch = _uniframe_batch(1)
    logs = stage.train_step(batch)
    # source and teacher input; only the drawn images go through the StyleNet
    drawn = [int(np.sum(batch["draws"][k] < 0.5)) for k in ("source_restyle", "teacher_restyle")]
    assert calls == [(n, SIZE, SIZE, 3) for n in drawn]
    assert float(logs["occluded"]) == 0.0
    with pytest.raises(ValueError, match="mask_fraction"):
        UniFrameStage(predictor(0), predictor(1), mask_fraction=0.0)


def _full_batch_restyle(style_net, images, styles, draw, alpha, prob):
    """The first formulation: restyle every image, then keep the drawn ones."""
    images = np.asarray(images, np.float32)
    index = np.arange(len(images)) % len(styles)
    styled = np.asarray(style_net.stylize(images, np.asarray(styles, np.float32)[index],
                                          np.asarray(alpha, np.float32)))
    keep = (np.asarray(draw) < prob).astype(np.float32)[:, None, None, None]
    return keep * styled + (1.0 - keep) * images


@pytest.mark.parametrize("draw", [[0.1, 0.9, 0.2, 0.7], [0.6, 0.9, 0.7, 0.8], [0.0, 0.1, 0.2, 0.3]],
                         ids=["some", "none", "all"])
def test_restyling_the_drawn_subset_equals_restyling_every_image(draw):
    from synpose_keras.models import StyleNet

    keras.utils.set_random_seed(0)
    net = StyleNet(width_multiplier=0.125)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    styles = rng.uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    draw = np.array(draw, np.float32)
    alpha = np.array([1.0, 0.5, 0.8, 0.3], np.float32)
    expected = _full_batch_restyle(net, images, styles, draw, alpha, 0.5)
    traced = tf.function(lambda d: restyle(net, images, styles, d, alpha, 0.5))
    for out in (restyle(net, images, styles, draw, alpha, 0.5), traced(draw),
                restyle(net, images, styles, draw, alpha, 0.5, subset=False)):
        out = np.asarray(out)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-3)
        np.testing.assert_array_equal(out[draw >= 0.5], images[draw >= 0.5])  # kept as they are
    assert (np.abs(expected - images).max(axis=(1, 2, 3)) > 1.0).tolist() == (draw < 0.5).tolist()
