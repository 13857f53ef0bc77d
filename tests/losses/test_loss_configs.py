"""get_config holds every constructor argument; serialize/deserialize without custom_objects."""

import inspect

import keras
import pytest

from synpose_keras.losses import (
    AdaINContentLoss,
    AdaINStyleLoss,
    ConsistencyLoss,
    HeatmapMSE,
    PerceptualPyramidLoss,
)

NON_DEFAULT = {
    HeatmapMSE: {"reduction": "sum", "name": "hm"},
    ConsistencyLoss: {"reduction": "sum_over_batch_size", "name": "cons"},
    PerceptualPyramidLoss: {
        "scales": (1.0, 0.5),
        "vgg_weights": None,
        "layer_weights": (1.0, 2.0, 3.0, 4.0, 5.0),
        "l1_weight": 0.5,
        "ssim_weight": 2.0,
        "reduction": "sum",
        "name": "rec",
    },
    AdaINContentLoss: {"reduction": "sum", "name": "content"},
    AdaINStyleLoss: {"epsilon": 1e-3, "reduction": "sum", "name": "style"},
}


@pytest.mark.parametrize("cls", list(NON_DEFAULT), ids=lambda c: c.__name__)
def test_config_has_every_argument(cls):
    arguments = NON_DEFAULT[cls]
    loss = cls(**arguments, dtype="float32")
    config = loss.get_config()
    parameters = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    assert set(config) == parameters
    for key, value in arguments.items():
        assert config[key] == value, key
    assert config["dtype"] == "float32"


@pytest.mark.parametrize("cls", list(NON_DEFAULT), ids=lambda c: c.__name__)
def test_serialize_round_trip(cls):
    loss = cls(**NON_DEFAULT[cls])
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is cls
    assert restored.get_config() == loss.get_config()
    assert cls.from_config(loss.get_config()).get_config() == loss.get_config()
