"""Shared helpers of the benchmark scripts: environment record, interleaved timing, memory, output.

Every script writes ``benchmarks/results/<name>.json`` with the date, the machine, the command,
the load average sampled while measuring, library versions and the measurements themselves.
The table in ``benchmarks/README.md`` is written from those files.

Timing protocol (the machine may be shared): the cases being compared run *interleaved* in one
process (case A, case B, case A, ... with the order rotated every repetition), after warm-up
runs, and we report the median and the minimum of the repetitions. The minimum is the least
disturbed by other jobs; ratios are given for both.
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


def interleave(cases: dict, repetitions: int, warmup: int = 1, log=print) -> dict:
    """Times each ``cases[name]()`` ``repetitions`` times, interleaved, after ``warmup`` calls.

    Each callable must block until its work is done (fetch a result to the host).

    Returns:
        dict name -> {"times": [...], "median": s, "min": s}, and "_loadavg": samples.
    """
    names = list(cases)
    for name in names:
        for _ in range(warmup):
            t0 = time.perf_counter()
            cases[name]()
            log(f"  warm-up {name}: {time.perf_counter() - t0:.3f} s")
    times = {name: [] for name in names}
    loads = []
    for rep in range(repetitions):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            t0 = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - t0)
        loads.append(loadavg()[0])
        log(f"  rep {rep + 1}/{repetitions}: " +
            ", ".join(f"{n} {times[n][-1]:.3f} s" for n in names) + f" (load {loads[-1]})")
    out = {name: summarize(t) for name, t in times.items()}
    out["_loadavg"] = loads
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
