"""Dataset converters: official releases -> the synpose TFRecord schema."""

from synpose_keras.datasets.converters.base import (  # noqa: F401
    CONVERTERS,
    BadSampleError,
    ConversionWarning,
    Converter,
    DatasetLayoutError,
    Item,
    Option,
    Record,
    register_converter,
)


def load_all() -> dict:
    """Imports every converter module of this package (each registers itself) and returns the
    registry ``{name: ConverterClass}``."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    return CONVERTERS
