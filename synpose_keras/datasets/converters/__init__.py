"""Dataset converters: official releases -> the synpose TFRecord schema."""

from synpose_keras.datasets.converters.base import (  # noqa: F401
    CONVERTERS,
    BadSampleError,
    Converter,
    DatasetLayoutError,
    Item,
    Option,
    Record,
    register_converter,
)
