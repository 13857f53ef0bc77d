"""PretrainStage restyling: only the drawn images go through the StyleNet, and the result equals
the first formulation (restyle every image, keep the drawn ones) for the same draws."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.training.pretrain_stage import PretrainStage
from tests.training.stage_fixtures import adapt_batch, predictor


def _draws_and_state(stage, batch):
    """The stage's next two draws (restyle, alpha) and its seed state after them; the state is
    put back as it was."""
    before = np.array(stage.seed_generator.state)
    draw, alpha = np.asarray(stage._uniform(batch)), np.asarray(stage._uniform(batch))
    after = np.array(stage.seed_generator.state)
    stage.seed_generator.state.assign(before)
    return draw, alpha, after


def _full_batch_restyle(stage, images, styles, draw, alpha):
    """The first formulation: restyle every image with style i, then keep the drawn ones."""
    styled = np.asarray(stage.style_net.stylize(images, styles[:len(images)], alpha))
    keep = (draw < stage.restyle_prob).astype(np.float32)[:, None, None, None]
    return keep * styled + (1.0 - keep) * images


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
@pytest.mark.parametrize("prob,drawn", [(0.5, 1), (0.0, 0), (1.0, 4)], ids=["some", "none", "all"])
def test_restyling_the_drawn_subset_equals_restyling_every_image(prob, drawn, traced):
    from synpose_keras.models import StyleNet

    keras.utils.set_random_seed(0)
    stage = PretrainStage(None, style_net=StyleNet(width_multiplier=0.125), restyle_prob=prob,
                          seed=3)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    styles = rng.uniform(0, 255, (5, 32, 32, 3)).astype(np.float32)  # B' > B: the first B used
    draw, alpha, state_after = _draws_and_state(stage, 4)
    assert int(np.sum(draw < prob)) == drawn
    expected = _full_batch_restyle(stage, images, styles, draw, alpha)

    restyle = tf.function(stage.restyle) if traced else stage.restyle
    out = np.asarray(restyle(tf.constant(images), tf.constant(styles)))
    np.testing.assert_array_equal(np.array(stage.seed_generator.state), state_after)  # same draws
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-3)
    kept = draw >= prob
    np.testing.assert_array_equal(out[kept], images[kept])  # kept as they are
    assert (np.abs(out - images).max(axis=(1, 2, 3)) > 1.0).tolist() == (~kept).tolist()


class _RecordingStyleNet:
    """AdaIN stand-in (content mixed with the style's mean colour) recording its batch sizes."""

    def __init__(self):
        self.calls = []

    def stylize(self, content, style, alpha):
        self.calls.append(int(content.shape[0]))
        alpha = keras.ops.reshape(alpha, (-1, 1, 1, 1))
        mean = keras.ops.mean(style, axis=(1, 2), keepdims=True)
        return (1 - alpha) * content + alpha * (0 * content + mean)


def test_only_the_drawn_images_go_through_the_style_net():
    images = np.full((4, 8, 8, 3), 100.0, np.float32)
    styles = np.stack([np.full((8, 8, 3), 10.0 * i, np.float32) for i in range(4)])
    for prob, drawn in ((0.5, 1), (0.0, 0), (1.0, 4)):
        net = _RecordingStyleNet()
        stage = PretrainStage(None, style_net=net, restyle_prob=prob, seed=3)
        draw, alpha, _ = _draws_and_state(stage, 4)
        out = np.asarray(stage.restyle(images, styles))
        assert net.calls == ([drawn] if drawn else [])  # nothing drawn: the StyleNet is skipped
        for i in range(4):  # image i takes style i, with its own strength
            want = (1 - alpha[i]) * 100.0 + alpha[i] * 10.0 * i if draw[i] < prob else 100.0
            np.testing.assert_allclose(out[i], want, rtol=1e-5)


def test_under_xla_every_image_is_restyled_then_selected():
    images = np.full((4, 8, 8, 3), 100.0, np.float32)
    styles = np.stack([np.full((8, 8, 3), 10.0 * i, np.float32) for i in range(4)])
    net = _RecordingStyleNet()
    stage = PretrainStage(None, style_net=net, restyle_prob=0.5, seed=3)
    stage.jit_compile = True
    draw, alpha, _ = _draws_and_state(stage, 4)
    out = np.asarray(stage.restyle(images, styles))
    assert net.calls == [4]  # static shapes: the whole batch
    want = np.where(draw < 0.5, (1 - alpha) * 100.0 + alpha * 10.0 * np.arange(4), 100.0)
    np.testing.assert_allclose(out, np.broadcast_to(want.reshape(4, 1, 1, 1), out.shape),
                               rtol=1e-5)


def test_train_step_restyles_the_drawn_source_images():
    net = _RecordingStyleNet()
    stage = PretrainStage(predictor(0), style_net=net, restyle_prob=0.5, seed=3)
    stage.compile(optimizer=keras.optimizers.SGD(1e-3))
    raw = adapt_batch(0, n=4)
    draw, _, _ = _draws_and_state(stage, 4)
    logs = stage.train_step({"source": raw["source"], "style": raw["target"]["teacher_image"]})
    assert np.isfinite(float(logs["loss"]))
    assert net.calls == [int(np.sum(draw < 0.5))]
