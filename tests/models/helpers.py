"""Shared checks for the networks in synpose_keras.models (config fidelity, .keras round trip).

Import from test files as ``from tests.models.helpers import ...`` (pytest runs from the repository
root, whose ``tests`` folder is an implicit namespace package).
"""

from __future__ import annotations

import inspect

import keras
import numpy as np


def init_arguments(cls):
    """Names of the explicit constructor arguments of `cls` (no self, *args, **kwargs)."""
    return [
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]


def _same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
        return float(a) == float(b)
    return a == b


def assert_config_complete(cls, instance, kwargs):
    """Every constructor argument appears in `get_config()` with its value.

    Arguments in `kwargs` must appear with the value passed, the others with their default
    (numbers compare by value, tuples equal lists). Then `from_config(get_config())` must give
    the same config back.

    Args:
        cls: the model class.
        instance: `cls(**kwargs)`.
        kwargs: dict. The arguments `instance` was built with.
    """
    config = instance.get_config()
    parameters = inspect.signature(cls.__init__).parameters
    for name in init_arguments(cls):
        assert name in config, f"{cls.__name__}.get_config() lacks the argument {name!r}"
        expected = kwargs[name] if name in kwargs else parameters[name].default
        assert expected is not inspect.Parameter.empty, (
            f"{cls.__name__}: required argument {name!r} missing from the test's kwargs"
        )
        assert _same(config[name], expected), (
            f"{cls.__name__}.get_config()[{name!r}] = {config[name]!r}, expected {expected!r}"
        )
    rebuilt = cls.from_config(config)
    assert _same(rebuilt.get_config(), config)


def randomize_batchnorm_statistics(model, seed):
    """Moves BatchNorm moving statistics away from (0, 1), so a reload that lost them would show."""
    rng = np.random.default_rng(seed)
    for variable in model.non_trainable_variables:
        if variable.path.endswith("moving_mean"):
            variable.assign(rng.normal(0.0, 0.1, variable.shape).astype(variable.dtype))
        elif variable.path.endswith("moving_variance"):
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(variable.dtype))


def assert_save_load_identical(model, inputs, tmp_path, call_kwargs=None):
    """Saves `model` to .keras, reloads it with plain `keras.models.load_model` (no
    custom_objects) and checks the same class, the same weights and identical outputs.

    Args:
        model: a built model.
        inputs: the first positional argument of the call.
        tmp_path: pathlib.Path, a temporary folder.
        call_kwargs: optional dict of extra call arguments (e.g. ``{"alpha": 0.5}``).

    Returns:
        the reloaded model.
    """
    call_kwargs = dict(call_kwargs or {})
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded) is type(model)
    # `weights` = trainable + non-trainable weights (BN statistics), without RNG seed states.
    assert len(reloaded.weights) == len(model.weights)
    for a, b in zip(model.weights, reloaded.weights):
        assert tuple(a.shape) == tuple(b.shape), (a.path, b.path)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    expected = keras.tree.flatten(model(inputs, training=False, **call_kwargs))
    actual = keras.tree.flatten(reloaded(inputs, training=False, **call_kwargs))
    assert len(actual) == len(expected)
    for a, b in zip(expected, actual):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(b), keras.ops.convert_to_numpy(a),
                                   rtol=1e-6, atol=1e-6)
    return reloaded
