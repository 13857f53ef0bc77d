"""Prints the key figures of ``benchmarks/results/*.json`` as markdown rows (for README.md).

Ratios are given three ways: of the medians, of the minima, and the median of the per-repetition
ratios (each repetition runs the compared cases back to back, so its ratio is the least
affected by load drift on a shared machine).

Usage::

    python benchmarks/summarize.py
"""

from __future__ import annotations

import glob
import json
import os
import statistics

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name):
    path = os.path.join(HERE, "results", f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def per_rep(a, b):
    return round(statistics.median(x / y for x, y in zip(a["times"], b["times"])), 3)


def env_line(d):
    e = d["environment"]
    return f"{e['date']}, load {e['loadavg_start'][0]}-{e.get('loadavg_end', ['?'])[0]}, `{e['command']}`"


def pose_step(name="pose_step"):
    d = load(name)
    if not d:
        return
    print(f"\n### {name} ({env_line(d)})")
    print("| precision | mode | ours median / min (s) | PyTorch median / min (s) | "
          "ratio of medians | ratio of minima | median per-rep ratio |")
    print("|---|---|---|---|---|---|---|")
    for p, run in d["runs"].items():
        for mode in ("train", "infer"):
            if mode not in run:
                continue
            r = run[mode]
            print(f"| {p} | {mode} | {r['ours']['median']} / {r['ours']['min']} | "
                  f"{r['pytorch']['median']} / {r['pytorch']['min']} | "
                  f"{r['ratio_ours_over_pytorch']['median']} | {r['ratio_ours_over_pytorch']['min']} | "
                  f"{per_rep(r['ours'], r['pytorch'])} |")


def adapt():
    for path in sorted(glob.glob(os.path.join(HERE, "results", "adapt_iteration_*.json"))):
        d = load(os.path.basename(path)[:-5])
        r = d["timing"]
        print(f"\n### {os.path.basename(path)} ({env_line(d)})")
        cases = [k for k, v in r.items() if isinstance(v, dict) and "times" in v]
        print("| case | times (s) | median |")
        print("|---|---|---|")
        for k in cases:
            print(f"| {k} | {r[k]['times']} | {r[k]['median']} |")
        keys = [k for k in r if k.startswith(("ratio", "necessary", "library_over", "two_backward",
                                              "full_restyle", "restyle_all"))]
        for k in keys:
            print(f"- {k}: {r[k]}")
        if "fit" in d:
            print(f"- fit: {d['fit']}")
        if "gradient_check" in d:
            print(f"- gradient check: {d['gradient_check']}")


def roofline(name="roofline"):
    d = load(name)
    if not d:
        return
    print(f"\n### {name} ({env_line(d)})")
    print(f"- arithmetic: {d['flops']}")
    print(f"- matrix-product peaks (GFLOP/s): {d['matmul_peak_gflops']}")
    print("| precision | ours step | PyTorch step | ours convolutions alone | PyTorch convolutions "
          "alone | 0.75 × PyTorch step | ours convolutions / target |")
    print("|---|---|---|---|---|---|---|")
    for p, r in d["runs"].items():
        m = {k: r[k]["median"] for k in ("ours_step", "pytorch_step", "ours_convs", "pytorch_convs")}
        dv = r["derived"]
        print(f"| {p} | {m['ours_step']} | {m['pytorch_step']} | {m['ours_convs']} | "
              f"{m['pytorch_convs']} | {dv['target_step_s']} | {dv['ours_convs_over_target']} |")


def onednn_trace(name):
    d = load(name)
    if not d:
        return
    print(f"\n### {name} ({env_line(d)})")
    for fw, r in d["runs"].items():
        print(f"- {fw}: step {r['step_wall_s']} s, convolution primitives {r['convolution_s']} s "
              f"({r['convolution_share_of_step']}), by kind {r['primitive_s_by_kind']}")
    c = d["comparison"]
    print(f"- convolution calls {c['convolution_calls']}; identical multiset "
          f"{c['identical_implementation_prop_shape_multiset']}; differing: "
          f"{len(c['only_tensorflow'])} TensorFlow / {len(c['only_pytorch'])} PyTorch")


def simple(name):
    d = load(name)
    if d:
        print(f"\n### {name} ({env_line(d)})")
        print("```")
        print(json.dumps({k: v for k, v in d.items() if k not in ("environment",)}, indent=1)[:4000])
        print("```")


if __name__ == "__main__":
    for name in ("pose_step", "pose_step_loaded", "pose_step_torch_contiguous",
                 "pose_step_rerun", "pose_step_nosettle", "pose_step_separate",
                 "pose_step_separate_keep"):
        pose_step(name)
    roofline()
    for name in ("onednn_trace_fp32", "onednn_trace_bf16"):
        onednn_trace(name)
    adapt()
    for name in ("warp", "warp_check", "data_pipeline", "data_pipeline_pipeline", "data_pipeline_pipeline_loaded",
                 "data_pipeline_pipeline_64px", "inference",
                 "memory", "fused_bn", "fused_bn_loaded", "fused_bn_check", "perceptual_loss",
                 "profile_pose_step_fp32", "profile_pose_step_fp32_fused_bn", "profile_pose_step_bf16",
                 "data_pipeline_applied", "inference_applied", "perceptual_loss_applied",
                 "data_pipeline_idle_f6", "data_pipeline_idle_f9_b", "data_pipeline_idle_f9_colour",
                 "data_pipeline_idle_f10_short", "data_pipeline_idle_f10_steady"):
        simple(name)
