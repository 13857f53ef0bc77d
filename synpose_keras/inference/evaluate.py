"""``synpose evaluate``: PCK@0.05 of a trained model on a converted dataset, in Table-A layout.

The protocol (crop, argmax of predicted and GT heatmaps, threshold 0.05 x heatmap size, part
groups) is :func:`synpose_keras.training.evaluation.evaluate_predictor`; this module resolves the
model and the data, refuses mismatches before running, and writes the JSON result. Rotation
ensembling and DARK sub-pixel decoding are options, not the protocol.
"""

from __future__ import annotations

import json
import math
import os
from typing import Optional

from synpose_keras.inference.loading import load_pose_model, model_num_keypoints, run_config
from synpose_keras.skeletons import get_skeleton


def evaluate_model(model_or_run, data_dir: Optional[str] = None, split: str = "test",
                   batch_size: int = 32, limit: Optional[int] = None,
                   threshold: float = 0.05, rotations: int = 1,
                   decoding: str = "argmax") -> dict:
    """Evaluates a ``.keras`` pose model (or a RUN folder's final model) on a converted dataset.

    Args:
        model_or_run: str or path. A ``.keras`` file or a RUN folder (``RUN/pose_predictor.keras``).
        data_dir: optional str. Converted dataset folder. Defaults to the run's target
            (``RUN/config.json``), when the model comes from a run.
        split: str. Split to evaluate. Defaults to "test".
        batch_size: int. Defaults to 32.
        limit: optional int. Only the first N samples.
        threshold: float. PCK threshold as a fraction of the heatmap size. Defaults to 0.05.
        rotations: int. 1 (the protocol, default), or 2 / 4 for test-time rotation ensembling
            (heatmaps averaged over the image turned by quarter turns; not the protocol).
        decoding: str. "argmax" (the protocol, default) or "dark" (the predicted argmax refined
            to sub-pixel precision, Zhang et al., CVPR 2020; not the protocol).

    Returns:
        dict: ``table`` (column -> PCK in %, columns of the skeleton: Hand21 ``MCP PIP DIP Fin
        All``; Body16 ``Head ... Ankle All All-16``), ``per_keypoint`` (K values in %, NaN where
        no valid sample), ``inversion_rate`` (% of samples predicted as the mirror-image pose,
        see :func:`synpose_keras.metrics.inversions`), ``keypoint_names``, ``skeleton``,
        ``count``, ``model``, ``data``, ``split``, ``threshold``, ``rotations``, ``decoding``.

    Raises:
        FileNotFoundError: missing model, run model or dataset (``meta.json``).
        ValueError: unknown split, or a dataset whose skeleton does not match the model's keypoint
            count (both named).

    Example:

    ```python
    from synpose_keras.inference import evaluate_model
    result = evaluate_model("runs/hand", "data/h3d", split="test")
    print(result["table"]["All"])
    ```
    """
    from synpose_keras.datasets import read_meta
    from synpose_keras.ops.heatmaps import check_decoding
    from synpose_keras.pseudo_labels.ensemble import check_rotations
    from synpose_keras.training.evaluation import evaluate_predictor

    check_rotations(rotations, "rotations")
    check_decoding(decoding)

    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive int. Received: limit={limit}")
    model, model_path, run_dir = load_pose_model(model_or_run)
    if data_dir is None:
        data_dir = run_config(run_dir).get("target")
        if not data_dir:
            raise ValueError(
                f"No dataset given for {model_path}: pass --data DIR (a folder written by "
                "`synpose convert`)."
            )
    data_dir = str(data_dir)
    meta = read_meta(data_dir)
    available = sorted(meta.get("counts", {}))
    if split not in available:
        raise ValueError(
            f"Unknown split for dataset {data_dir}; available splits: {available}. "
            f"Received: split={split!r}"
        )
    labels = str(meta.get("labels") or (meta.get("converter") or {}).get("labels", ""))
    if labels.lower().startswith("none"):
        raise ValueError(
            f"The dataset {data_dir} has no keypoint labels (meta.json labels: {labels!r}); PCK "
            "compares predictions with labels. Evaluate on a labelled dataset (--data DIR), or "
            "use `synpose predict` for unlabelled images."
        )
    skeleton = get_skeleton(meta["skeleton"])
    k = model_num_keypoints(model)
    if k != skeleton.num_keypoints:
        raise ValueError(
            f"The model {model_path} predicts {k} keypoints but the dataset {data_dir} uses "
            f"skeleton {skeleton.name!r} ({skeleton.num_keypoints} keypoints): evaluate a "
            f"{skeleton.name} model on it, or a {k}-keypoint dataset with this model."
        )
    for attribute in ("input_size", "heatmap_size"):
        if not hasattr(model, attribute):
            raise ValueError(
                f"The model {model_path} ({type(model).__name__}) has no `{attribute}`: "
                "evaluate a synpose_keras PosePredictor."
            )
    result = evaluate_predictor(model, data_dir, split=split, batch_size=batch_size, limit=limit,
                                threshold=threshold, rotations=rotations, decoding=decoding)
    if all(value != value for value in result["per_keypoint"]):  # every entry NaN
        raise ValueError(
            f"The {split!r} split of {data_dir} has no visible (labelled) keypoint in the "
            f"{result.get('count', '?')} samples evaluated; PCK compares predictions with labels. "
            "Evaluate on a labelled split or dataset, or use `synpose predict`."
        )
    result.update(model=model_path, skeleton=skeleton.name,
                  keypoint_names=list(skeleton.keypoint_names))
    return result


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def write_json(result: dict, path) -> str:
    """Writes a result dict as strict JSON (NaN -> null), atomically; returns the path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(_finite_or_none(result), f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)
    return path
