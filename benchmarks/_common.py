"""Shared helpers of the benchmark scripts: environment record, interleaved timing, memory, output.

Every script writes ``benchmarks/results/<name>.json`` with the date, the machine, the command,
the load average sampled while measuring, library versions and the measurements themselves.
The table in ``benchmarks/README.md`` is written from those files.

Timing protocol (the machine may be shared): the cases being compared run *interleaved* in one
process (case A, case B, case A, ... with the order rotated every repetition), after warm-up
runs, and we report the median and the minimum of the repetitions. The minimum is the least
disturbed by other jobs; ratios are given for both. Before each timed case ``interleave`` waits
until the machine is idle (:func:`wait_for_idle`): work that outlives a case (a PyTorch
``DataLoader``'s persistent workers finishing the batches they had been asked for) must not run
inside the next case's window (finding F10 in benchmarks/README.md).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
MACHINE = os.environ.get("SYNPOSE_BENCH_MACHINE",
                         "2-core x86_64 CPU (AVX-512 BF16), 24 GiB, no GPU")


def quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def loadavg():
    return [round(v, 2) for v in os.getloadavg()]


def _cpu_ticks():
    """(busy, total) jiffies of the whole machine, from /proc/stat (Linux)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)  # idle and iowait are not busy


def wait_for_idle(threshold: float = 0.1, window: float = 0.1, timeout: float = 5.0) -> float:
    """Sleeps until the machine's busy fraction over ``window`` seconds is below ``threshold``
    (of all cores), at most ``timeout`` seconds; returns the seconds waited (``timeout`` when the
    machine never went idle, e.g. other jobs). Returns 0 where /proc/stat is unreadable."""
    t0 = time.perf_counter()
    try:
        a = _cpu_ticks()
    except OSError:
        return 0.0
    while time.perf_counter() - t0 < timeout:
        time.sleep(window)
        b = _cpu_ticks()
        if (b[0] - a[0]) / max(1, b[1] - a[1]) < threshold:
            break
        a = b
    return round(time.perf_counter() - t0, 3)


def environment(extra=None) -> dict:
    info = {
        "date": datetime.date.today().isoformat(),
        "machine": MACHINE,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "command": " ".join([os.path.relpath(sys.argv[0], os.path.dirname(HERE))] + sys.argv[1:]),
        "loadavg_start": loadavg(),
    }
    for module in ("tensorflow", "keras", "torch", "numpy", "PIL"):
        if module in sys.modules:
            info[module] = getattr(sys.modules[module], "__version__", "?")
    info.update(extra or {})
    return info


def interleave(cases: dict, repetitions: int, warmup: int = 1, log=print, settle: bool = True) -> dict:
    """Times each ``cases[name]()`` ``repetitions`` times, interleaved, after ``warmup`` calls.

    Each callable must block until its work is done (fetch a result to the host). With
    ``settle``, :func:`wait_for_idle` runs before every call (its waits are returned).

    Returns:
        dict name -> {"times": [...], "median": s, "min": s}, "_loadavg": samples and
        "_settle_s": the waits before each timed call.
    """
    names = list(cases)
    settled = []
    for name in names:
        for _ in range(warmup):
            if settle:
                wait_for_idle()
            t0 = time.perf_counter()
            cases[name]()
            log(f"  warm-up {name}: {time.perf_counter() - t0:.3f} s")
    times = {name: [] for name in names}
    loads = []
    for rep in range(repetitions):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            if settle:
                settled.append(wait_for_idle())
            t0 = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - t0)
        loads.append(loadavg()[0])
        log(f"  rep {rep + 1}/{repetitions}: " +
            ", ".join(f"{n} {times[n][-1]:.3f} s" for n in names) + f" (load {loads[-1]})")
    out = {name: summarize(t) for name, t in times.items()}
    out["_loadavg"] = loads
    out["_settle_s"] = settled
    return out


def summarize(times) -> dict:
    return {"times": [round(t, 4) for t in times], "median": round(statistics.median(times), 4),
            "min": round(min(times), 4)}


def ratio(result: dict, ours: str, peer: str) -> dict:
    return {"median": round(result[ours]["median"] / result[peer]["median"], 3),
            "min": round(result[ours]["min"] / result[peer]["min"], 3)}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def mem_available_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024.0 ** 2
    return float("nan")


def run_child(args, timeout=None) -> dict:
    """Runs ``python <args>`` in a fresh process; the child prints one JSON line last."""
    proc = subprocess.run([sys.executable] + list(args), capture_output=True, text=True,
                          timeout=timeout, cwd=os.path.dirname(HERE))
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {args} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def write_result(name: str, data: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    # a name given as a path or with the extension ("--out benchmarks/results/x.json") is "x"
    name = os.path.basename(name)
    name = name[:-len(".json")] if name.endswith(".json") else name
    data = dict(data)
    data.setdefault("environment", {})["loadavg_end"] = loadavg()
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
    print(f"wrote {os.path.relpath(path, os.path.dirname(HERE))}")
    return path


def step_inputs(batch: int, size: int, keypoints: int):
    """The pose step's fixed random batch: images (B, S, S, 3) in [0, 255], target heatmaps
    (B, S/4, S/4, K) and visibility weights (B, K), float32 NumPy arrays (seed 0)."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    heatmaps = rng.uniform(0, 1, (batch, size // 4, size // 4, keypoints)).astype("float32")
    weights = np.ones((batch, keypoints), "float32")
    return images, heatmaps, weights
