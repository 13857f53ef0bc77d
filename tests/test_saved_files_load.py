"""Files saved by earlier versions still load, every weight included (fixtures written by
tests/fixtures/saved_models/make.py): a change of a layer's class or variable layout must not
strand the models users have trained."""

import os
import warnings

import numpy as np
import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "saved_models")
NAMES = sorted(f[:-len(".keras")] for f in os.listdir(FIXTURES) if f.endswith(".keras"))


def test_there_is_a_fixture():
    assert "pose_predictor_2026-12-07" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_saved_model_loads_with_every_weight(name):
    import keras

    import synpose_keras  # noqa: F401  (registers the custom objects)

    with warnings.catch_warnings():
        # Keras warns, and keeps fresh weights, when a saved group does not match a layer
        warnings.filterwarnings("error", message=".*(Skipping|could not be loaded).*")
        model = keras.models.load_model(os.path.join(FIXTURES, name + ".keras"))
    data = np.load(os.path.join(FIXTURES, name + ".npz"))
    np.testing.assert_allclose(model.predict(data["images"], verbose=0), data["heatmaps"],
                               rtol=1e-4, atol=1e-5)
