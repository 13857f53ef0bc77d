"""Time ``synpose --help`` and every sub-command's ``--help`` in fresh processes.

Each command is run ``--repetitions`` times (after one warm-up that fills the file cache) as
``python -m synpose_keras.cli.app ... --help``; the median and the minimum wall time are reported.
Writes ``benchmarks/results/cli_help.json`` and replaces the table between the ``cli_help``
markers in ``benchmarks/README.md``. No test asserts these times.

    python benchmarks/cli_help.py [--repetitions 5] [--no-readme]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import HERE, environment, write_result  # noqa: E402

ROOT = os.path.dirname(HERE)
BEGIN, END = "<!-- cli_help:begin -->", "<!-- cli_help:end -->"


def commands() -> list:
    from synpose_keras.datasets.converters import load_all

    top = [[], ["train"], ["ablate"], ["diagnose"], ["evaluate"], ["predict"], ["export"],
           ["report"], ["convert"]]
    return top + [["convert", name] for name in sorted(load_all())]


def time_help(args, repetitions: int) -> list:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    argv = [sys.executable, "-m", "synpose_keras.cli.app", *args, "--help"]
    subprocess.run(argv, capture_output=True, check=True, env=env, cwd=ROOT)  # warm-up
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return times


def table(rows: dict, env: dict) -> str:
    lines = [f"Measured {env['date']} on {env['machine']} (Python {env['python']}); "
             f"load average {env['loadavg_start']} at the start. Wall time of a fresh process, "
             f"{env['repetitions']} runs after one warm-up.", "",
             "| command | median (s) | min (s) |", "|---|---:|---:|"]
    for name, times in rows.items():
        lines.append(f"| `{name}` | {statistics.median(times):.2f} | {min(times):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--no-readme", action="store_true", help="Do not rewrite the README table.")
    args = parser.parse_args()
    env = environment({"repetitions": args.repetitions})
    rows = {}
    for cmd in commands():
        name = " ".join(["synpose", *cmd, "--help"])
        rows[name] = time_help(cmd, args.repetitions)
        print(f"{name:45s} median {statistics.median(rows[name]):.2f} s  "
              f"min {min(rows[name]):.2f} s", flush=True)
    write_result("cli_help", {"environment": env, "times_s": rows})
    if not args.no_readme:
        path = os.path.join(HERE, "README.md")
        text = open(path, encoding="utf-8").read()
        block = f"{BEGIN}\n{table(rows, env)}\n{END}"
        if BEGIN in text and END in text:
            text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n## Command-line start-up (`--help`)\n\n" + block + "\n"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"updated {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
