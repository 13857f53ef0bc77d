"""``synpose train`` under MultiWorkerMirroredStrategy: two worker processes on loopback.

Two subprocesses, each with a TF_CONFIG naming a cluster of two workers on 127.0.0.1 (free ports
picked by binding to port 0), run the same tiny training (the ``tiny`` preset, stage
``pretrain``, which also fits the lifter, with the per-epoch target PCK) with
``strategy="multiworker"`` into the SAME run folder, as workers sharing a file system would:
the chief (worker 0) writes RUN, the other worker writes ``RUN/workers/worker-1`` only. Both
processes must exit 0 within the time limit (a worker waiting for its peer at a collective would
hang), both must log the same (all-reduced) loss, and the chief's run folder must hold the
stage's outputs. Keras 3's ``fit`` needs :mod:`synpose_keras.training.multiworker_fixes` for
this (installed by the stage models).

The tiny datasets have one TFRecord shard per split, fewer than the two workers: sharding by file
would leave a worker without data. TensorFlow's AUTO policy shards the stage datasets by data
(each worker keeps its part of every global batch, as the one-device run would split it); this
test fails if that changes.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from tests.training.tiny_data import write_tiny

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 420

WORKER = textwrap.dedent(
    """
    import json, sys

    source, target, run_dir = sys.argv[1], sys.argv[2], sys.argv[3]

    from synpose_keras.training.configs import get_preset
    from synpose_keras.training.train import Trainer

    config = get_preset("tiny")
    config.source, config.target = source, target
    config.stages = ("pretrain",)
    config.strategy = "multiworker"
    trainer = Trainer(config, run_dir, verbose=0, log=lambda message: print(message, flush=True))
    result = trainer.run()
    print(json.dumps({"replicas": int(trainer.strategy.num_replicas_in_sync),
                      "rows": sorted(result["rows"])}))
    """
)


def _free_ports(n):
    sockets = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_loopback_complete_the_pretrain_stage(tmp_path):
    write_tiny(tmp_path / "source", n=8, seed=0)
    write_tiny(tmp_path / "target", n=8, seed=1)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ)
        env.update(
            TF_CONFIG=json.dumps({"cluster": {"worker": workers},
                                  "task": {"type": "worker", "index": index}}),
            PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
            CUDA_VISIBLE_DEVICES="",
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        log = open(tmp_path / f"worker{index}.log", "w")
        processes.append((subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "source"), str(tmp_path / "target"),
             str(tmp_path / "run")],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        for process, _ in processes:
            process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    for index, (process, _) in enumerate(processes):
        assert process.returncode == 0, f"worker {index} (rc {process.returncode}):\n" + \
            logs[index][-6000:]

    chief = tmp_path / "run"
    worker = chief / "workers" / "worker-1"
    state = json.loads((chief / "state.json").read_text())
    assert state["completed"] == ["pretrain"]
    for path in ("config.json", "pretrain/pose_predictor.keras", "pretrain/lifter.keras",
                 "pretrain/history.json", "evaluation.json", "pose_predictor.keras"):
        assert (chief / path).exists(), path
        assert (worker / path).exists(), path
    assert not (chief / "workers" / "worker-0").exists()
    assert "writing to" in logs[1] and "writing to" not in logs[0]
    history = json.loads((chief / "pretrain/history.json").read_text())
    assert len(history) == 1 and history[0]["loss"] > 0
    assert "target_pck_all" in history[0]  # the per-epoch evaluation runs under the strategy
    other = json.loads((worker / "pretrain/history.json").read_text())
    assert other[0]["loss"] == pytest.approx(history[0]["loss"], rel=1e-6)
    for log in logs:
        assert json.loads(log.strip().splitlines()[-1]) == {"replicas": 2,
                                                             "rows": ["after pretrain"]}
