"""Running a training script in a fresh process on N logical CPU devices (the distributed tests).

A process can split its CPU into logical devices only before TensorFlow initialises them, so each
one-device / two-replica run is its own subprocess. The scripts start with
:data:`STRATEGY_SETUP` (``devices`` must be defined) and print their result as the last line of
stdout, a JSON object.
"""

import json
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Defines ``strategy``: MirroredStrategy over ``devices`` logical CPUs, or the default strategy.
STRATEGY_SETUP = textwrap.dedent(
    """
    import tensorflow as tf

    if devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)])
    else:
        strategy = tf.distribute.get_strategy()
    """
)


def start(script_path, args):
    """Starts ``python script_path *args`` in the repository, with ``tests`` importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get(
        "PYTHONPATH")])), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, str(script_path), *map(str, args)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(process, timeout):
    """Waits for ``process``; its last stdout line as JSON. Fails with the end of its stderr."""
    import pytest

    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"replica run timed out after {timeout} s: {stderr[-4000:]}")
    assert process.returncode == 0, stderr[-6000:]
    return json.loads(stdout.strip().splitlines()[-1])
