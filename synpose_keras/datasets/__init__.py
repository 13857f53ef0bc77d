"""Datasets: the TFRecord schema, the shared writer, the reader and the tf.data pipelines.

Public contract (code outside the package relies on these names; record fields in
:mod:`synpose_keras.datasets.schema`): ``load_records(DIR, split)`` -> ``tf.data.Dataset`` of
record dicts, ``read_meta(DIR)`` -> dict, and ``convert(converter, out_dir, ...)`` behind
``synpose convert``. The training pipelines (``source_pipeline``, ``target_views_pipeline``,
``pairs_pipeline``, ``eval_pipeline``) live in :mod:`synpose_keras.datasets.pipeline` and are
imported lazily.
"""

# Imported on first use (PEP 562), so that the converters' registry and the ``synpose`` command
# line's help load without TensorFlow.
_LAZY = {
    "load_records": "synpose_keras.datasets.reader",
    "read_meta": "synpose_keras.datasets.reader",
    "convert": "synpose_keras.datasets.writer",
}
_PIPELINE_NAMES = (
    "AugmentConfig",
    "source_pipeline",
    "target_views_pipeline",
    "pairs_pipeline",
    "eval_pipeline",
)

__all__ = ["convert", "load_records", "read_meta", *_PIPELINE_NAMES]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _PIPELINE_NAMES:
        from synpose_keras.datasets import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
