"""Issue item 3: the input pipeline, and the converters' throughput and peak memory.

F5, F6, F9 and F10 below are the findings of benchmarks/README.md ("Changes and findings").

Part 1 - augmented training samples per second:

- ours: ``source_pipeline`` on TFRecords (decode, protocol crop, one random affine + colour
  jitter in one warp, heatmap targets; ``num_parallel_calls=AUTOTUNE``), batch 32;
- the peers' loader (``benchmarks/peer_loader.py``): PIL + numpy per sample from the same JPEG
  bytes written as files, in a ``torch.utils.data.DataLoader`` with one worker per core, batch 32.

Both at 256² (heatmaps 64², stored images 320², like RHD) and at the demo preset's size (128²,
heatmaps 32², stored images 128², the embedded benchmark), interleaved on the same cores. Each repetition
opens a fresh iterator, discards its first batch (start-up) and times the next ``--batches``.

Part 2 (``--converters``) - ``convert`` throughput and peak resident memory (each conversion in a
fresh process) for a dataset and one ten times its size, with the synthetic converter (renders
on the fly) and the COCO converter (JPEG files + a JSON on disk).

Targets: ours >= 2x the peer loader; conversion memory flat between the two sizes.

Usage::

    python benchmarks/data_pipeline.py [--reps 3] [--batches 6] [--converters] [--no-per-example]
        [--no-tf-warp] [--no-per-element] [--no-sequential-colour]
    python benchmarks/data_pipeline.py --convert-child synthetic 100 /tmp/out   # (internal)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()

import numpy as np  # noqa: E402

WORK = os.environ.get("SYNPOSE_BENCH_WORK", "/tmp/synpose-bench")


# ------------------------------------------------------------------------------ datasets
def synthetic_dataset(folder, image_size, count, seed=0):
    """A converted synthetic source dataset (JPEG) of ``count`` train records, made once."""
    if os.path.exists(os.path.join(folder, "meta.json")):
        return folder
    from synpose_keras.datasets.converters.synthetic import SyntheticConverter
    from synpose_keras.datasets.writer import convert

    convert(SyntheticConverter("", task="hand", domain="source", seed=seed, image_size=image_size,
                               source_train=count, source_test=0),
            folder, splits=["train"], progress=False)
    return folder


def dump_files(folder, files_dir):
    """Writes the records' JPEG bytes as files (+ keypoints) for the peer loader."""
    index = os.path.join(files_dir, "index.npz")
    if os.path.exists(index):
        d = np.load(index)
        return list(d["paths"]), d["keypoints"], d["visible"]
    from synpose_keras.datasets import load_records

    os.makedirs(files_dir, exist_ok=True)
    paths, kps, vis = [], [], []
    for i, rec in enumerate(load_records(folder, "train", decode_image=False)):
        path = os.path.join(files_dir, f"{i:06d}.jpg")
        with open(path, "wb") as f:
            f.write(rec["image"].numpy())
        paths.append(path)
        kps.append(rec["keypoints"].numpy())
        vis.append(rec["visible"].numpy())
    np.savez(index, paths=np.array(paths), keypoints=np.stack(kps), visible=np.stack(vis))
    return paths, np.stack(kps), np.stack(vis)


# ------------------------------------------------------------------------------ loaders
def ours_factory(folder, input_size, heatmap_size, batch):
    from synpose_keras.datasets.pipeline import source_pipeline

    ds = source_pipeline(folder, input_size=input_size, heatmap_size=heatmap_size,
                         batch_size=batch, seed=0)
    return lambda: iter(ds)


def sequential_adjust_color(image, color):
    """``transforms.adjust_color`` as first written (before F5): brightness, contrast and
    saturation one after the other (two ``rgb_to_grayscale``, a reduction, six full-image
    passes). The library now applies them as one colour matrix + offset (same values)."""
    import tensorflow as tf

    img = tf.cast(image, tf.float32) * color[0]
    mean = tf.reduce_mean(tf.image.rgb_to_grayscale(img))
    img = (img - mean) * color[1] + mean
    grey = tf.image.rgb_to_grayscale(img)
    img = (img - grey) * color[2] + grey
    return tf.clip_by_value(img, 0.0, 255.0)


def ours_sequential_factory(folder, input_size, heatmap_size, batch):
    """``source_pipeline`` with ``sequential_adjust_color`` (map functions are traced at build)."""
    from synpose_keras.datasets.pipeline import transforms

    original = transforms.adjust_color
    transforms.adjust_color = sequential_adjust_color
    try:
        return ours_factory(folder, input_size, heatmap_size, batch)
    finally:
        transforms.adjust_color = original


def ours_tf_warp_factory(folder, input_size, heatmap_size, batch):
    """``source_pipeline`` with TensorFlow's warp kernel (``ImageProjectiveTransformV3``), as
    before F9; the library's default is now OpenCV's ``warpAffine`` (same coordinates)."""
    from synpose_keras.datasets.pipeline.transforms import set_warp_backend

    previous = set_warp_backend("tensorflow")
    try:
        return ours_factory(folder, input_size, heatmap_size, batch)
    finally:
        set_warp_backend(previous)


def ours_per_element_factory(folder, input_size, heatmap_size, batch):
    """``source_pipeline`` as after F9, before F10: plan per batch, then ``unbatch``, decode
    (TensorFlow) + slice + OpenCV warp per element (one ``tf.numpy_function`` each), ``batch``,
    heatmaps per batch: the library's per-element stage (the TensorFlow backend's) built while
    the warp itself stays on OpenCV. The library now decodes and warps the whole batch in one
    OpenCV call."""
    from synpose_keras.datasets.pipeline import source

    original = source.warp_backend
    source.warp_backend = lambda: "tensorflow"  # selects the stage; affine_warp reads its own
    try:
        return ours_factory(folder, input_size, heatmap_size, batch)
    finally:
        source.warp_backend = original


def ours_per_example_factory(folder, input_size, heatmap_size, batch):
    """``source_pipeline`` as before F6: ``prepare_example`` (all the small-op work) on every
    element, then ``batch``. The library now stages it (``pipeline/batch_transforms.py``)."""
    from synpose_keras.datasets.pipeline import _inputs
    from synpose_keras.datasets.pipeline.augment_config import AugmentConfig
    from synpose_keras.datasets.pipeline.source import prepare_example
    from synpose_keras.ops.heatmaps import HeatmapCodec

    records, skeleton, _ = _inputs.resolve_input(folder, "train", None, True, 0)
    codec = HeatmapCodec(input_size, heatmap_size)
    config = AugmentConfig().resolve(skeleton)
    ds = _inputs.shuffle_repeat_enumerate(records, True, 0, 1000, None)
    ds = ds.map(lambda i, ex: prepare_example(ex, i, skeleton, input_size, codec, config, 0),
                num_parallel_calls=_inputs.AUTOTUNE, deterministic=True)
    ds = _inputs.finish(ds, batch, True, None)
    return lambda: iter(ds)


def peer_factory(files, input_size, heatmap_size, batch, workers):
    import torch

    from peer_loader import PeerDataset

    paths, kps, vis = files
    dataset = PeerDataset(paths, kps, vis, input_size=input_size, heatmap_size=heatmap_size)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=10 ** 7)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=sampler,
                                         num_workers=workers, persistent_workers=workers > 0,
                                         drop_last=True)
    return lambda: iter(loader)


def throughput(make_iter, batches, batch, cpu=None, skip=1):
    """Fresh iterator; ``skip`` batches discarded; samples/s over the next ``batches``.

    ``skip`` > tf.data's initial parallelism (16) measures the steady state: a fresh iterator
    starts up to 16 parallel calls at once, so the first batches arrive with work done before
    the window opened (which flatters short windows of pipelines with deep parallel stages).

    ``cpu``: a list that receives this process's CPU milliseconds per sample over the same
    window (all threads; meaningful for our loaders, whose work runs in this process)."""
    import resource

    def used():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    it = make_iter()
    for _ in range(skip):
        next(it)
    c0, t0 = used(), time.perf_counter()
    for _ in range(batches):
        b = next(it)
        _ = b["image"].shape
    dt = time.perf_counter() - t0
    if cpu is not None:
        cpu.append((used() - c0) / (batches * batch) * 1e3)
    del it
    return batches * batch / dt


def pipeline_benchmark(args):
    import torch

    torch.set_num_threads(1)
    workers = os.cpu_count()
    out = {}
    # the demo preset: 128 px crops, 32 x 32 heatmaps, from the embedded benchmark's 128 px images
    for label, image_size, input_size, heatmap_size in (("256", 320, 256, 64),
                                                         ("demo-128", 128, 128, 32)):
        folder = synthetic_dataset(os.path.join(WORK, f"pipe-{image_size}"), image_size,
                                   args.records)
        files = dump_files(folder, os.path.join(WORK, f"pipe-{image_size}-files"))
        loaders = {"ours": ours_factory(folder, input_size, heatmap_size, args.batch)}
        if args.sequential_colour:
            loaders["ours_sequential_colour"] = ours_sequential_factory(
                folder, input_size, heatmap_size, args.batch)
        if args.per_example:
            loaders["ours_per_example"] = ours_per_example_factory(folder, input_size,
                                                                   heatmap_size, args.batch)
        if args.tf_warp:
            loaders["ours_tf_warp"] = ours_tf_warp_factory(folder, input_size, heatmap_size,
                                                           args.batch)
        if args.per_element:
            loaders["ours_per_element"] = ours_per_element_factory(folder, input_size,
                                                                   heatmap_size, args.batch)
        loaders["peer"] = peer_factory(files, input_size, heatmap_size, args.batch, workers)
        print(f"== {label}: stored {image_size}², input {input_size}², heatmaps {heatmap_size}²")
        samples = {name: [] for name in loaders}
        cpu_ms = {name: [] for name in loaders if name != "peer"}

        # interleave: throughput (samples/s), reported as time per 1000 samples for _common
        def case(name, make):
            def run():
                samples[name].append(throughput(make, args.batches, args.batch,
                                                cpu_ms.get(name), skip=args.skip))
            return run

        r = _common.interleave({name: case(name, make) for name, make in loaders.items()},
                               args.reps, warmup=1, log=lambda *a: None)
        res = {}
        for name in samples:
            v = samples[name][1:]  # drop the warm-up run
            res[name] = {"samples_per_s": [round(x, 1) for x in v],
                         "median": round(float(np.median(v)), 1), "max": round(max(v), 1)}
            if name in cpu_ms:  # CPU ms per sample, and cores kept busy (= cpu x samples/s)
                c = cpu_ms[name][1:]
                res[name]["cpu_ms_per_sample"] = [round(x, 3) for x in c]
                res[name]["cpu_ms_median"] = round(float(np.median(c)), 3)
                res[name]["cores_busy_median"] = round(float(np.median(
                    [a * b / 1e3 for a, b in zip(c, v)])), 2)
            print(f"  {name}: {res[name]}")
        for name in [n for n in loaders if n != "peer"]:
            res[f"speedup_{name}_median"] = round(res[name]["median"] / res["peer"]["median"], 2)
            res[f"speedup_{name}_max"] = round(res[name]["max"] / res["peer"]["max"], 2)
            print(f"  speed-up {name}/peer: median {res[f'speedup_{name}_median']}, "
                  f"best {res[f'speedup_{name}_max']}")
        for other in [n for n in loaders if n != "ours"]:  # same repetition, back to back
            res[f"ours_over_{other}_per_rep"] = [
                round(a / b, 3) for a, b in zip(res["ours"]["samples_per_s"],
                                                res[other]["samples_per_s"])]
        if args.per_example:
            print(f"  ours/ours_per_example per rep: {res['ours_over_ours_per_example_per_rep']}")
        res["per_core_ours"] = round(res["ours"]["median"] / os.cpu_count(), 1)
        res["loadavg"] = r["_loadavg"]
        res["settle_s_max"] = max(r["_settle_s"] or [0.0])
        out[label] = res
    return out


# ------------------------------------------------------------------------------ converters
def coco_fixture(folder, count, image_size=320, seed=0):
    """COCO-17 JSON + ``count`` JPEG files (one person each)."""
    if os.path.exists(os.path.join(folder, "annotations", "train.json")):
        return folder
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    os.makedirs(os.path.join(folder, "annotations"), exist_ok=True)
    base = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
    from synpose_keras.datasets.converters.coco import COCO17_NAMES

    images, anns = [], []
    for i in range(count):
        name = f"{i:07d}.jpg"
        Image.fromarray(np.roll(base, i, axis=1)).save(os.path.join(folder, "images", name),
                                                       quality=90)
        pts = rng.uniform(0.25 * image_size, 0.75 * image_size, (17, 2))
        kp = np.concatenate([pts, np.full((17, 1), 2.0)], 1).ravel().round(2).tolist()
        images.append({"id": i, "file_name": name, "width": image_size, "height": image_size})
        anns.append({"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "keypoints": kp,
                     "num_keypoints": 17})
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17_NAMES)}]}
    with open(os.path.join(folder, "annotations", "train.json"), "w") as f:
        json.dump(coco, f)
    return folder


def convert_child(kind, count, out_dir):
    """(child process) converts one dataset; prints throughput and peak RSS as JSON."""
    import shutil

    from synpose_keras.datasets.writer import convert

    rss_before = _common.current_rss_mib()
    if kind == "synthetic":
        from synpose_keras.datasets.converters.synthetic import SyntheticConverter

        conv = SyntheticConverter("", task="hand", domain="source", seed=0, image_size=128,
                                  source_train=count, source_test=0)
    else:
        from synpose_keras.datasets.converters.coco import COCOConverter

        src = coco_fixture(os.path.join(WORK, f"coco-{count}"), count)
        conv = COCOConverter(src, task="body", train_json="annotations/train.json",
                             test_json="", train_images="images")
    shutil.rmtree(out_dir, ignore_errors=True)
    t0 = time.perf_counter()
    meta = convert(conv, out_dir, splits=["train"], progress=False, crop=True)
    dt = time.perf_counter() - t0
    shutil.rmtree(out_dir, ignore_errors=True)
    print(json.dumps({"kind": kind, "count": meta["counts"]["train"], "seconds": round(dt, 2),
                      "items_per_s": round(meta["counts"]["train"] / dt, 1),
                      "rss_before_convert_mib": round(rss_before, 1),
                      "peak_rss_mib": round(_common.peak_rss_mib(), 1)}))


def converter_benchmark(args):
    out = {}
    for kind in ("synthetic", "coco"):
        rows = []
        for count in (args.convert_small, 10 * args.convert_small):
            if kind == "coco":  # the fixture is written outside the measured child
                coco_fixture(os.path.join(WORK, f"coco-{count}"), count)
            row = _common.run_child([os.path.abspath(__file__), "--convert-child", kind,
                                     str(count), os.path.join(WORK, f"convert-{kind}-{count}")])
            row["loadavg"] = _common.loadavg()
            print(" ", row)
            rows.append(row)
        out[kind] = {"runs": rows,
                     "peak_rss_growth_mib": round(rows[1]["peak_rss_mib"] - rows[0]["peak_rss_mib"], 1)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--skip", type=int, default=1,
                        help="batches discarded before the window (17: steady state, see F10)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--converters", action="store_true")
    parser.add_argument("--sequential-colour", action=argparse.BooleanOptionalAction,
                        default=True, help="also time source_pipeline with the colour jitter as "
                        "first written (before F5)")
    parser.add_argument("--per-example", action=argparse.BooleanOptionalAction, default=True,
                        help="also time source_pipeline as before F6 (prepare_example per element)")
    parser.add_argument("--tf-warp", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the pipeline with TensorFlow's warp kernel (pre-F9)")
    parser.add_argument("--per-element", action=argparse.BooleanOptionalAction, default=True,
                        help="also time decode + OpenCV warp per element (F9, pre-F10)")
    parser.add_argument("--no-pipeline", action="store_true")
    parser.add_argument("--convert-small", type=int, default=100)
    parser.add_argument("--convert-child", nargs=3, metavar=("KIND", "COUNT", "OUT"))
    parser.add_argument("--out", default="data_pipeline")
    args = parser.parse_args(argv)
    if args.convert_child:
        kind, count, out_dir = args.convert_child
        return convert_child(kind, int(count), out_dir)
    os.makedirs(WORK, exist_ok=True)
    result = {"config": vars(args)}
    if not args.no_pipeline:
        result["pipeline"] = pipeline_benchmark(args)
    if args.converters:
        result["converters"] = converter_benchmark(args)
    result["environment"] = _common.environment()
    _common.write_result(args.out, result)


if __name__ == "__main__":
    main()
