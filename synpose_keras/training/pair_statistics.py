"""What the reconstruction pairs are: the statistics that stage ``generator`` writes first.

The generator can only learn to reconstruct a driving frame that differs from its base frame by
the subject's motion. :func:`pair_statistics` describes the first pairs of the stage's own pair
pipeline (:func:`synpose_keras.datasets.pairs_pipeline` with the run's ``adapt.pair_*`` options):
how many are two frames of one camera view, how far apart the frames are, how many are affine
fallbacks, and how far the stored keypoints move between base and driving. Stage ``generator``
writes them to ``RUN/generator/pairs.json`` (:func:`write_pair_statistics`).

Reference:
    Lin et al., "Synthetic-to-Real Pose Estimation with Geometric Reconstruction", NeurIPS 2023,
    §3.2 (base and driving frames of one subject).
"""

from __future__ import annotations

import json
import os
from typing import Callable, Optional

import numpy as np

__all__ = ["NUM_PAIRS", "format_pair_statistics", "pair_statistics", "write_pair_statistics"]

#: Pairs described at the start of stage ``generator``.
NUM_PAIRS = 256

_FIELDS = ("is_affine", "base_sequence", "driving_sequence", "base_view", "driving_view",
           "base_frame", "driving_frame", "base_keypoints", "driving_keypoints", "base_visible",
           "driving_visible")


def _text(values):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]


def pair_statistics(pairs, limit: int = NUM_PAIRS) -> dict:
    """Statistics of the first ``limit`` pairs of a pairs pipeline.

    Args:
        pairs: iterable of batches of :func:`synpose_keras.datasets.pairs_pipeline` (dicts with
            ``is_affine``, ``base_*`` and ``driving_*`` ``sequence``, ``view``, ``frame``,
            ``keypoints`` (B, K, 2) in input pixels and ``visible`` (B, K)); tensors or arrays.
        limit: int. Pairs to read at most. Defaults to ``NUM_PAIRS`` (256).

    Returns:
        dict: ``count`` (pairs read), ``sequences`` (distinct base sequences),
        ``affine_fraction`` (affine fallback pairs), ``frame_pairs`` (the others: two records),
        ``same_view_fraction`` (of the frame pairs: same sequence and same view; None without
        frame pairs), ``frame_gap_histogram`` ({gap: count} of ``|frame_base - frame_driving|``
        over the frame pairs, gaps as strings), ``frame_gap_max``, and ``displacement_px``:
        ``mean``, ``median`` and ``p90`` of the distance between a joint's stored keypoints on
        base and driving over the joints visible on both (input pixels, all pairs), and
        ``joints`` (how many; the values are None when there is none, e.g. unlabelled footage).

    Raises:
        ValueError: when ``pairs`` holds no pair.
    """
    if limit < 1:
        raise ValueError(f"limit must be a positive int. Received: limit={limit!r}")
    parts = {key: [] for key in _FIELDS}
    count = 0
    for batch in pairs:
        n = min(len(np.asarray(batch["is_affine"])), limit - count)
        for key in _FIELDS:
            parts[key].append(np.asarray(batch[key])[:n])
        count += n
        if count >= limit:
            break
    if count == 0:
        raise ValueError("pair_statistics read no pair; the pairs pipeline is empty.")
    data = {key: np.concatenate(value) for key, value in parts.items()}
    affine = data["is_affine"].astype(bool)
    frames = ~affine
    text = {key: np.asarray(_text(data[key]))
            for key in ("base_sequence", "driving_sequence", "base_view", "driving_view")}
    same_view = ((text["base_sequence"] == text["driving_sequence"])
                 & (text["base_view"] == text["driving_view"]))
    gaps = np.abs(data["base_frame"].astype(np.int64)
                  - data["driving_frame"].astype(np.int64))[frames]
    values, counts = np.unique(gaps, return_counts=True)
    both = (data["base_visible"] > 0) & (data["driving_visible"] > 0)
    distance = np.linalg.norm(data["driving_keypoints"] - data["base_keypoints"], axis=-1)[both]
    has = distance.size > 0
    return {
        "count": int(count),
        "sequences": len(set(text["base_sequence"].tolist())),
        "affine_fraction": float(affine.mean()),
        "frame_pairs": int(frames.sum()),
        "same_view_fraction": float(same_view[frames].mean()) if frames.any() else None,
        "frame_gap_histogram": {str(int(v)): int(c) for v, c in zip(values, counts)},
        "frame_gap_max": int(gaps.max()) if gaps.size else None,
        "displacement_px": {
            "mean": float(distance.mean()) if has else None,
            "median": float(np.median(distance)) if has else None,
            "p90": float(np.percentile(distance, 90)) if has else None,
            "joints": int(distance.size),
        },
    }


def format_pair_statistics(stats: dict) -> str:
    """One log line of :func:`pair_statistics`."""
    same = stats["same_view_fraction"]
    gaps = ", ".join(f"{g}: {c}" for g, c in stats["frame_gap_histogram"].items()) or "none"
    d = stats["displacement_px"]
    moved = (f"keypoints move {d['mean']:.1f} px on average (median {d['median']:.1f}, "
             f"90th percentile {d['p90']:.1f}; input px, {d['joints']} joints)"
             if d["joints"] else "no stored keypoints to measure the motion")
    return (f"[generator] pairs: {stats['count']} from {stats['sequences']} sequences, "
            f"{'n/a' if same is None else f'{100 * same:.0f}%'} same view, "
            f"{100 * stats['affine_fraction']:.0f}% affine fallback; frame gaps {{{gaps}}}; "
            f"{moved}")


def write_pair_statistics(config, target_dir: str, path: str, log: Callable = print,
                          limit: int = NUM_PAIRS, seed: Optional[int] = None) -> dict:
    """Stage ``generator``: :func:`pair_statistics` of the stage's pairs, written to ``path``.

    The pairs are those of the stage's first epoch (the pipeline of
    :func:`synpose_keras.training.data.generator_dataset`, with ``config.adapt``'s ``pair_mode``,
    ``pair_max_frame_gap`` and ``pair_fallback``).

    Args:
        config: TrainConfig.
        target_dir: str. The converted target folder.
        path: str. The JSON file to write (``RUN/generator/pairs.json``).
        log: callable. Receives the one-line summary. Defaults to print.
        limit: int. Pairs to describe. Defaults to ``NUM_PAIRS``.
        seed: optional int. Pipeline seed; defaults to the seed of the stage's first epoch.

    Returns:
        the statistics, with the pairing options (``pair_mode``, ``max_frame_gap``, ``fallback``)
        and ``target``.
    """
    from synpose_keras.training import data as stage_data

    if seed is None:
        seed = stage_data.epoch_seed(config.seed, "generator", 0)
    pairs = stage_data.target_pairs(config, target_dir, config.generator.batch_size, seed)
    stats = pair_statistics(pairs, limit)
    stats.update(stage_data.pair_options(config), target=str(target_dir))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
    log(format_pair_statistics(stats))
    return stats
