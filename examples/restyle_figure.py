"""What a run's StyleNet does to source images: a figure and its content-preservation score.

Row 1: source images; row 2: the target images whose style they take; rows 3 and 4: the
restyling at alpha 0.5 and 1. The score is :meth:`StyleNet.content_preservation` (mean Sobel-edge
correlation between a source image and its restyling; the ``style.min_quality`` gate uses it).

Usage::

    python examples/restyle_figure.py runs/demo-hand --out docs/img/restyle_demo.png
"""

from __future__ import annotations

import argparse
import json
import os


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="run folder with style/style_net.keras and config.json")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--images", type=int, default=6)
    args = parser.parse_args()

    import keras
    import numpy as np
    from PIL import Image

    import synpose_keras  # noqa: F401  (registers the custom objects)
    from synpose_keras.datasets import load_records
    from synpose_keras.models.style_net import edge_correlation

    with open(os.path.join(args.run, "config.json")) as f:
        config = json.load(f)
    if not config.get("source") or not config.get("target"):
        raise SystemExit(f"{args.run}/config.json names no source/target datasets")
    net = keras.models.load_model(os.path.join(args.run, "style", "style_net.keras"))
    n = args.images
    source = np.stack([r["image"].numpy() for r in load_records(config["source"], "train").take(n)])
    # styles from different target sequences: every 10th record
    target = np.stack([r["image"].numpy()
                       for r in load_records(config["target"], "train").take(10 * n)][::10])
    source, target = source.astype("float32"), target.astype("float32")
    rows = [source, target]
    for alpha in (0.5, 1.0):
        rows.append(np.asarray(net.stylize(source, target, np.full((n,), alpha, "float32"))))
    grid = np.concatenate([np.concatenate(list(np.clip(r, 0, 255)), axis=1) for r in rows], axis=0)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    Image.fromarray(grid.astype("uint8")).save(args.out)
    # StyleNet.content_preservation's measure, on the alpha-1 row already computed
    score = float(np.mean(np.asarray(edge_correlation(source, rows[-1]))))
    print(f"{args.out}: content preservation {score:.3f} (alpha 1, {n} images)")


if __name__ == "__main__":
    main()
