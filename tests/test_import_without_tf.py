"""The model definitions import and run without TensorFlow, under Keras' JAX backend.

An accelerator machine may hold JAX and PyTorch but no TensorFlow (issue #21, item 4: the
device check of ``benchmarks/device_check.sh``). A child process hides TensorFlow from the import
system (a meta-path finder that raises ImportError for ``tensorflow`` and its sub-modules, which
also hides an installed TensorFlow), sets ``KERAS_BACKEND=jax``, imports ``synpose_keras.models``
and ``synpose_keras.ops``, builds the pose network and runs a forward pass.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="jax is not installed: Keras' JAX backend needs it (the [test] extra installs jax[cpu])",
)

HIDE_TENSORFLOW = r'''
import importlib.abc
import sys


class _HideTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"TensorFlow is hidden in this test ({name})")
        return None


sys.meta_path.insert(0, _HideTensorFlow())
try:
    import tensorflow  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the finder did not hide TensorFlow")
'''

CHILD = HIDE_TENSORFLOW + r'''
import numpy as np

import synpose_keras.models
import synpose_keras.ops
import keras

assert keras.backend.backend() == "jax", keras.backend.backend()

from synpose_keras.models import PosePredictor
from synpose_keras.models.forward import forward_function

x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
for backbone, kwargs in (("resnet18", {"width_multiplier": 0.25}), ("resnet101", {})):
    model = PosePredictor(num_keypoints=3, backbone=backbone, input_size=64, **kwargs)
    heatmaps = np.asarray(model(x, training=False))
    assert heatmaps.shape == (2, 16, 16, 3), heatmaps.shape
    assert np.isfinite(heatmaps).all()
    again = np.asarray(forward_function(model)(x))
    np.testing.assert_allclose(again, heatmaps, rtol=1e-5, atol=1e-6)
    keypoints, scores = synpose_keras.ops.decode_heatmaps(heatmaps, decoding="dark")
    print(backbone, "heatmaps", heatmaps.shape, "keypoints", np.asarray(keypoints).shape)

loaded = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
assert not loaded, loaded
print("ok without tensorflow")
'''


def _run(code, timeout=600):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in
                                          os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_models_and_ops_import_and_run_without_tensorflow():
    proc = _run(CHILD)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "ok without tensorflow" in proc.stdout
    assert "resnet101 heatmaps (2, 16, 16, 3)" in proc.stdout


def test_the_finder_hides_tensorflow_from_a_plain_import():
    """The guard itself: with TensorFlow installed or not, the child's import of it fails."""
    proc = _run(HIDE_TENSORFLOW + "print('hidden')", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hidden" in proc.stdout
