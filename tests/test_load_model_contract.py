"""Public contract: after `import synpose_keras`, plain keras.models.load_model reloads a saved
PosePredictor without custom_objects (checked in a fresh interpreter)."""

import subprocess
import sys

import numpy as np


def test_plain_load_model_after_package_import(tmp_path):
    from synpose_keras.models import PosePredictor

    model = PosePredictor(num_keypoints=5, input_size=64, width_multiplier=0.125,
                          deconv_filters=8)
    path = tmp_path / "m.keras"
    model.save(path)
    expected = model.predict(np.full((1, 64, 64, 3), 100, np.uint8), verbose=0)
    np.save(tmp_path / "expected.npy", expected)
    script = (
        "import numpy as np, synpose_keras, keras\n"
        f"m = keras.models.load_model({str(path)!r})\n"
        "out = m.predict(np.full((1, 64, 64, 3), 100, np.uint8), verbose=0)\n"
        f"np.testing.assert_allclose(out, np.load({str(tmp_path / 'expected.npy')!r}), atol=1e-6)\n"
        "print('ok', type(m).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok PosePredictor" in result.stdout


def test_registration_when_a_submodule_imports_keras_first():
    """The Keras classes are registered however Keras is first imported: by a sub-package of
    ours (circular if registered inside it), by the user after `import synpose_keras`, or before."""
    script = (
        "import importlib, sys\n"
        "order = sys.argv[1].split(',')\n"
        "for name in order:\n"
        "    importlib.import_module(name)\n"
        "import keras\n"
        "for cls in ('PosePredictor', 'StyleNet'):\n"
        "    assert keras.saving.get_registered_object('synpose_keras>' + cls), cls\n"
        "print('ok')\n"
    )
    for order in ("synpose_keras.losses", "synpose_keras,keras", "keras,synpose_keras"):
        result = subprocess.run([sys.executable, "-c", script, order], capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0 and "ok" in result.stdout, (order, result.stderr[-2000:])
