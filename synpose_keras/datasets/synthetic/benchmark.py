"""``generate_benchmark``: the embedded synthetic -> real benchmark, written as two datasets.

Layout::

    DIR/benchmark.json             task, seed, sizes, and the two folders
    DIR/source/meta.json + shards  source domain ("synthetic" look): train, test
    DIR/target/meta.json + shards  target domain ("real" look, sequences x views): train, test

Each folder is an ordinary converted dataset: ``load_records(DIR / "source", "train")``.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Optional

DEFAULT_SIZES = {
    "image_size": 128,
    "source_train": 2000,
    "source_test": 200,
    "target_sequences": 300,
    "target_frames": 4,
    "target_views": 2,
    "target_test": 300,
}


def _join(a: str, b: str) -> str:
    return posixpath.join(a, b) if "://" in a else os.path.join(a, b)


def generate_benchmark(
    out_dir: str,
    task: str = "hand",
    seed: int = 0,
    image_size: int = DEFAULT_SIZES["image_size"],
    source_train: int = DEFAULT_SIZES["source_train"],
    source_test: int = DEFAULT_SIZES["source_test"],
    target_sequences: int = DEFAULT_SIZES["target_sequences"],
    target_frames: int = DEFAULT_SIZES["target_frames"],
    target_views: int = DEFAULT_SIZES["target_views"],
    target_test: int = DEFAULT_SIZES["target_test"],
    progress: bool = True,
    command: Optional[str] = None,
) -> dict:
    """Generates both domains of the synthetic benchmark into ``out_dir/source`` and ``out_dir/target``.

    Deterministic: the same arguments give the same records, in any process (the shard bytes are
    identical within a process; see ``datasets/synthetic.md`` for the feature order of
    ``tf.train.Example`` across processes). Re-running resumes an interrupted generation.

    Args:
        out_dir: str. Output folder (local or a ``tf.io.gfile`` URL).
        task: str. "hand" (Hand21) or "body" (Body16). Defaults to "hand".
        seed: int. Defaults to 0.
        image_size: int. Side of the square images in pixels. Defaults to 128.
        source_train, source_test: int. Source images per split. Defaults to 2000, 200.
        target_sequences: int. Target train sequences. Defaults to 300.
        target_frames, target_views: int. Frames and cameras per sequence. Defaults to 4, 2.
        target_test: int. Target test images. Defaults to 300.
        progress: bool. Progress bars. Defaults to True.
        command: optional str. Command line stored in both ``meta.json``.

    Returns:
        dict: ``{"source": path, "target": path, "meta": {"source": meta, "target": meta}}``.

    Example:

    ```python
    from synpose_keras.datasets import load_records
    from synpose_keras.datasets.synthetic.benchmark import generate_benchmark
    paths = generate_benchmark("data/synth-hand", task="hand", seed=0)
    source = load_records(paths["source"], "train")
    ```
    """
    import tensorflow as tf

    from synpose_keras.datasets.converters.synthetic import SyntheticConverter
    from synpose_keras.datasets.writer import convert

    sizes = {
        "image_size": image_size, "source_train": source_train, "source_test": source_test,
        "target_sequences": target_sequences, "target_frames": target_frames,
        "target_views": target_views, "target_test": target_test,
    }
    out_dir = str(out_dir)
    tf.io.gfile.makedirs(out_dir)
    paths, metas = {}, {}
    for domain in ("source", "target"):
        converter = SyntheticConverter("", task=task, domain=domain, seed=seed, **sizes)
        paths[domain] = _join(out_dir, domain)
        metas[domain] = convert(converter, paths[domain], image_format="png", progress=progress,
                                command=command)
    summary = {"benchmark": "synthetic", "task": task, "seed": seed, "sizes": sizes,
               "source": "source", "target": "target", "card": "datasets/synthetic.md"}
    path = _join(out_dir, "benchmark.json")
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        f.write(json.dumps(summary, indent=2))
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    return {"source": paths["source"], "target": paths["target"], "meta": metas}
