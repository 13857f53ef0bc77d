"""Issue item 5: peak resident memory of the demo run and of paper-preset steps.

Every measurement runs in a fresh process and reports that process's peak RSS
(``getrusage(...).ru_maxrss``):

- ``demo``: ``synpose train --task hand --out RUN`` (preset demo) with every stage cut to
  ``--demo-iterations`` iterations (``--set``; same batch sizes, models, pipelines, lifter fit and
  evaluations as the full demo, so the same peak: memory plateaus after the first iterations).
  The embedded benchmark is generated beforehand in its own process (its peak reported apart).
- ``paper-pretrain``: ``PosePredictor.paper()`` + ``PretrainStage``, two training steps at batch
  ``--paper-batch`` (the paper's 32 by default; smaller ones are measured when the machine has
  too little free memory, and the batch used is recorded).
- ``paper-adapt``: two ``AdaptStage`` iterations of the paper preset at batch ``--adapt-batch``
  (source + target + pairs; see adapt_iteration.py), VGG-19 perceptual loss.

The converters' memory (flat between a dataset and one ten times larger) is measured by
``data_pipeline.py --converters``.

Usage::

    python benchmarks/memory.py [--cases demo,paper-pretrain,paper-adapt]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()

ROOT = os.path.dirname(_common.HERE)


def _measure(cmd, env=None):
    """Runs ``cmd``; returns (peak RSS MiB of that process, seconds, return code, output tail).

    ``os.wait4`` gives the resource usage of exactly that child (not of earlier ones).
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()[-3000:]
    return usage.ru_maxrss / 1024.0, time.perf_counter() - t0, proc.returncode, output


def case_in_child(name, args):
    """Runs one case in a fresh interpreter."""
    return _common.run_child([os.path.abspath(__file__), "--child", name] + args)


# ------------------------------------------------------------------------------ children
def child_demo(args):
    env = dict(os.environ, SYNPOSE_DATA=args.data_dir)
    gen = [sys.executable, "-c",
           "from synpose_keras.training.runner import ensure_benchmark; ensure_benchmark('hand')"]
    gen_peak, gen_s, rc, out = _measure(gen, env)
    if rc:
        raise RuntimeError(out)
    n = str(args.demo_iterations)
    run_dir = tempfile.mkdtemp(prefix="synpose-bench-demo-")
    shutil.rmtree(run_dir)
    sets = [f"style.steps={n}", "pretrain.epochs=1", f"pretrain.iterations={n}",
            "generator.epochs=1", f"generator.iterations={n}", "adapt.epochs=1",
            f"adapt.iterations={n}", "lifter.epochs=1"]
    cmd = [os.path.join(os.path.dirname(sys.executable), "synpose"), "train", "--task", "hand",
           "--out", run_dir, "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    peak, secs, rc, out = _measure(cmd, env)
    shutil.rmtree(run_dir, ignore_errors=True)
    if rc:
        raise RuntimeError(out)
    return {"benchmark_generation_peak_rss_mib": round(gen_peak, 1),
            "benchmark_generation_s": round(gen_s, 1),
            "command": "synpose " + " ".join(cmd[1:]).replace(run_dir, "RUN"),
            "peak_rss_mib": round(peak, 1), "seconds": round(secs, 1)}


def child_paper_pretrain(args):
    import keras
    import numpy as np
    import tensorflow as tf

    from synpose_keras.models import PosePredictor
    from synpose_keras.training.pretrain_stage import PretrainStage

    b = args.paper_batch
    model = PosePredictor.paper()
    stage = PretrainStage(model)
    stage.compile(optimizer=keras.optimizers.Adam(1e-4))
    rng = np.random.default_rng(0)
    data = {"source": {"image": tf.constant(rng.uniform(0, 255, (b, 256, 256, 3)).astype("float32")),
                       "heatmaps": tf.constant(rng.uniform(0, 1, (b, 64, 64, 21)).astype("float32")),
                       "weights": tf.ones((b, 21))}}
    step = tf.function(stage.train_step)
    after_build = _common.current_rss_mib()
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        float(step(data)["loss"])
        times.append(round(time.perf_counter() - t0, 1))
    return {"batch": b, "rss_after_build_mib": round(after_build, 1), "step_s": times,
            "peak_rss_mib": round(_common.peak_rss_mib(), 1)}


def child_paper_adapt(args):
    import tensorflow as tf

    import adapt_iteration

    tmp = tempfile.mkdtemp(prefix="synpose-bench-")
    vgg = adapt_iteration.vgg_weights_file(tmp)
    b = args.adapt_batch
    c, stage = adapt_iteration.build_stage("paper", b, vgg, None,
                                           {"adapt.batch_size": b, "adapt.target_batch_size": b})
    data = adapt_iteration.make_batch(c, b, stage.skeleton.num_keypoints)
    step = tf.function(stage.train_step)
    after_build = _common.current_rss_mib()
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        float(step(data)["loss"])
        times.append(round(time.perf_counter() - t0, 1))
    shutil.rmtree(tmp, ignore_errors=True)
    return {"batch": b, "student_images": 4 * b, "rss_after_build_mib": round(after_build, 1),
            "step_s": times, "peak_rss_mib": round(_common.peak_rss_mib(), 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="demo,paper-pretrain,paper-adapt")
    parser.add_argument("--demo-iterations", type=int, default=3)
    parser.add_argument("--paper-batch", type=int, default=32)
    parser.add_argument("--adapt-batch", type=int, default=2)
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "synpose-bench",
                                                           "data"))
    parser.add_argument("--child", default=None)
    parser.add_argument("--out", default="memory")
    args = parser.parse_args(argv)
    if args.child:
        out = {"demo": child_demo, "paper-pretrain": child_paper_pretrain,
               "paper-adapt": child_paper_adapt}[args.child](args)
        print(json.dumps(out))
        return
    result = {"config": vars(args), "cases": {}}
    env = _common.environment({"mem_available_gib": round(_common.mem_available_gib(), 1)})
    for name in args.cases.split(","):
        extra = [f"--demo-iterations={args.demo_iterations}", f"--paper-batch={args.paper_batch}",
                 f"--adapt-batch={args.adapt_batch}", f"--data-dir={args.data_dir}"]
        print(f"== {name} (MemAvailable {_common.mem_available_gib():.1f} GiB)")
        res = case_in_child(name, extra)
        res["loadavg"] = _common.loadavg()
        print(" ", res)
        result["cases"][name] = res
    result["environment"] = env
    _common.write_result(args.out, result)


if __name__ == "__main__":
    main()
