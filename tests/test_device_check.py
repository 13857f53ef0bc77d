"""``benchmarks/device_check.sh`` on the CPU at a tiny size (issue #21, item 4).

The script is written for a lent accelerator (PoseResNet-101, batch 32); here it runs its whole
path with the JAX backend at batch 2, 64² input, the ResNet-18 backbone and 2 timed steps:
Keras installed offline from ``benchmarks/wheels/`` when that folder holds a Keras wheel
(``bash benchmarks/device_wheels.sh`` fills it; it is not in git), else the interpreter's own
Keras; the PyTorch peer where torch imports, else Keras alone. Times are not checked.
"""

import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None,
    reason="the device check is a bash script using coreutils' timeout")

TINY = {"SYNPOSE_DC_BATCH": "2", "SYNPOSE_DC_SIZE": "64", "SYNPOSE_DC_BACKBONE": "resnet18",
        "SYNPOSE_DC_KEYPOINTS": "5", "SYNPOSE_DC_REPS": "2", "SYNPOSE_DC_WARMUP": "1"}


def _has_keras_wheel():
    return any((ROOT / "benchmarks" / "wheels").glob("keras-*.whl"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed: the device check runs Keras' JAX backend")
def test_device_check_runs_on_the_cpu_at_a_tiny_size(tmp_path):
    with_torch = importlib.util.find_spec("torch") is not None
    result = tmp_path / "result.json"
    env = dict(os.environ, PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu",
               SYNPOSE_DC_RESULT=str(result), TMPDIR=str(tmp_path),
               SYNPOSE_DC_KERAS="wheel" if _has_keras_wheel() else "installed",
               SYNPOSE_DC_FRAMEWORKS="keras pytorch" if with_torch else "keras", **TINY)
    env.pop("OUT", None)
    env.pop("KERAS_BACKEND", None)  # the script sets it
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
    assert "PoseResNet (resnet18, 64x64 input, 5 keypoints), batch 2" in out
    assert "| framework | precision | ms/step (median) |" in out
    rows = [line for line in out.splitlines() if re.match(r"\| (Keras|PyTorch)", line)]
    expected = 4 if with_torch else 2
    assert len(rows) == expected, out
    assert all(re.match(r"\| [^|]+ \| (fp32|bf16) \| \d+\.\d \| \d+\.\d \|", r) for r in rows), rows
    if with_torch:
        assert "WARNING: the two networks differ" not in out
        assert all(re.search(r"\| \d+\.\d\d \|", r) for r in rows), rows  # ratio column
    parts = json.loads(result.read_text())["parts"]
    assert {(p["framework"], p["precision"]) for p in parts} >= {("keras", "fp32"),
                                                                  ("keras", "bf16")}
    for part in parts:
        assert part["tensorflow_imported"] is False
        assert len(part["times_s"]) == 2
    keras_part = next(p for p in parts if p["framework"] == "keras")
    if _has_keras_wheel():
        assert "installed offline" in out
    assert keras_part["device"].startswith("cpu")
    # the work folder (the offline Keras install) is removed at exit
    assert not list(tmp_path.glob("device_check.*"))


def test_device_check_explains_a_missing_keras_wheel(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, SYNPOSE_DC_WHEELS=str(tmp_path / "none"),
               SYNPOSE_DC_KERAS="wheel", TMPDIR=str(tmp_path))
    env.pop("OUT", None)
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "benchmarks/device_wheels.sh" in proc.stderr
