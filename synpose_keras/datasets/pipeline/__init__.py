"""tf.data pipelines from converted datasets to training and evaluation batches.

- :func:`source_pipeline`: labelled source batches (protocol crop, augmentation, heatmaps).
- :func:`target_views_pipeline`: teacher/student views of target images and the affine between.
- :func:`pairs_pipeline`: base/driving pairs sharing a sequence (or affine pairs as fallback).
- :func:`eval_pipeline`: protocol crop without augmentation, with the crop affine.
- :class:`AugmentConfig`: the augmentation ranges (UniFrame's; docs/protocol.md, "Comparison
  methods").

Everything is parallel (``num_parallel_calls=AUTOTUNE``), prefetched and, given a ``seed``,
deterministic: randomness is stateless and keyed by ``(seed, element index)``, so a pipeline
yields the same batches eagerly, in graph mode, and on every run.
"""

from synpose_keras.datasets.pipeline.augment_config import AugmentConfig
from synpose_keras.datasets.pipeline.pairs import pairs_pipeline
from synpose_keras.datasets.pipeline.source import eval_pipeline, source_pipeline
from synpose_keras.datasets.pipeline.views import target_views_pipeline

__all__ = ["AugmentConfig", "eval_pipeline", "pairs_pipeline", "source_pipeline", "target_views_pipeline"]
