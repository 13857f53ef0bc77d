"""AdaIN restyling of the drawn images of a batch, shared by the restyling stages.

``PretrainStage`` (restyled source pre-training) and UniFrame's step (source -> target and
target -> source restyling) both replace each image, when its draw is below a probability, by its
StyleNet restyling. :func:`restyle` runs the StyleNet on the drawn images only.

Shapes: B batch, B' style images, S input side. Images are RGB in [0, 255].

Reference:
    Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance
    Normalization", ICCV 2017; UniFrame (Kim et al., ECCV 2022), docs/protocol.md, "Comparison
    methods".
"""

from __future__ import annotations

import keras
from keras import ops


def restyle(style_net, images, styles, draw, alpha, prob, subset=True):
    """AdaIN restyling of the images whose ``draw < prob``, with strength ``alpha`` (no gradient).

    With ``subset`` (TensorFlow backend) only the drawn images go through the StyleNet: their
    indices are gathered, restyled and scattered back (a batch of dynamic size, possibly empty).
    Otherwise every image is restyled and the drawn ones are selected afterwards (static shapes,
    for XLA). Both give the same images: AdaIN and the StyleNet are per image.

    Args:
        style_net: StyleNet (frozen).
        images: (B, S, S, 3) content images.
        styles: (B', S, S, 3) style images; image i takes style ``i mod B'``.
        draw: (B,) uniform [0, 1) draws.
        alpha: (B,) AdaIN strengths in [0, 1].
        prob: float. Restyling probability.
        subset: bool. Restyle only the drawn images. Defaults to True.

    Returns:
        (B, S, S, 3) float32 images, wrapped in ``stop_gradient``.

    Example:
    >>> from synpose_keras.training.restyling import restyle
    >>> out = restyle(net, images, styles, draw, alpha, prob=0.5)  # doctest: +SKIP
    """
    images = ops.cast(images, "float32")
    styles = ops.cast(styles, "float32")
    alpha = ops.cast(alpha, "float32")
    drawn = ops.cast(draw, "float32") < prob
    if subset and keras.backend.backend() == "tensorflow":
        chosen = ops.where(drawn)[0]  # (n,) indices of the drawn images

        def restyle_chosen():
            matched = ops.take(styles, ops.mod(chosen, ops.shape(styles)[0]), axis=0)
            styled = style_net.stylize(ops.take(images, chosen, axis=0), matched,
                                       ops.take(alpha, chosen, axis=0))
            return ops.scatter_update(images, chosen[:, None], ops.cast(styled, "float32"))

        # TF's CPU convolution rejects an empty batch: nothing drawn skips the StyleNet
        out = ops.cond(ops.any(drawn), restyle_chosen, lambda: images)
        return ops.stop_gradient(out)
    batch = ops.shape(images)[0]
    index = ops.mod(ops.arange(batch), ops.shape(styles)[0])
    matched = ops.take(styles, index, axis=0)
    styled = style_net.stylize(images, matched, alpha)
    keep = ops.reshape(ops.cast(drawn, "float32"), (-1, 1, 1, 1))
    return ops.stop_gradient(keep * ops.cast(styled, "float32") + (1.0 - keep) * images)
