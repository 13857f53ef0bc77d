"""Finding and loading a trained pose model: a ``.keras`` file or a ``synpose train`` RUN folder.

Every inference command (``synpose evaluate``, ``predict``, ``export``) accepts either form, so
these helpers resolve the path, load the model with the package's classes registered, and decide
the skeleton of its keypoints.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from synpose_keras.skeletons import SKELETONS, Skeleton, get_skeleton

MODEL_FILE = "pose_predictor.keras"


def resolve_model_path(model_or_run) -> tuple:
    """The model file of ``model_or_run`` and the RUN folder it belongs to.

    Args:
        model_or_run: str or path. A ``.keras`` file, or a RUN folder written by ``synpose train``
            (its final model is ``RUN/pose_predictor.keras``).

    Returns:
        tuple ``(model_path, run_dir)``: ``run_dir`` is the RUN folder when one is known (the
        argument itself, or the folder holding a ``config.json`` next to the model), else None.

    Raises:
        FileNotFoundError: naming the missing file and what to pass instead.
    """
    path = os.path.abspath(os.fspath(model_or_run))
    if os.path.isdir(path):
        model_path = os.path.join(path, MODEL_FILE)
        if not os.path.isfile(model_path):
            raise FileNotFoundError(
                f"{model_path} not found: {path} is a folder but not a finished run of "
                "`synpose train` (the final model is written when training ends). Pass a .keras "
                "model file, or a run folder that holds pose_predictor.keras."
            )
        return model_path, path
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Model file not found: {path}. Pass a .keras file written by `synpose train` "
            f"(RUN/{MODEL_FILE}, or RUN/pretrain/{MODEL_FILE}) or the RUN folder itself."
        )
    if not path.endswith(".keras"):
        raise ValueError(
            f"{path} is not a Keras model archive (expected a .keras file or a RUN folder). "
            "For a SavedModel or TFLite file use TensorFlow's own loaders."
        )
    run_dir = None
    for folder in (os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
        if os.path.isfile(os.path.join(folder, "config.json")):
            run_dir = folder
            break
    return path, run_dir


def check_keras_archive(path: str) -> None:
    """Refuses a ``.keras`` file that is empty or not a complete zip archive, naming it (Keras
    itself reports "File not found" for both).

    Raises:
        ValueError: naming ``path``, what is wrong and what was expected.
    """
    import zipfile

    size = os.path.getsize(path)
    if size == 0:
        problem = "is empty (0 bytes)"
    elif not zipfile.is_zipfile(path):
        problem = f"is not a complete .keras archive ({size} bytes, no zip directory: truncated?)"
    else:
        return
    raise ValueError(
        f"The model file {path} {problem}. Expected a .keras archive saved by synpose-keras; "
        "copy it again, or re-export it from its run (RUN/pose_predictor.keras)."
    )


def load_pose_model(model_or_run):
    """Loads a pose model (``keras.models.load_model``) from a ``.keras`` file or RUN folder.

    Args:
        model_or_run: str or path. See :func:`resolve_model_path`.

    Returns:
        tuple ``(model, model_path, run_dir)``.

    Raises:
        FileNotFoundError: the file or the run's model is missing.
        ValueError: the file is not a loadable Keras archive (names it and the reason).
    """
    import keras

    import synpose_keras.models  # noqa: F401  (registers the package's classes with Keras)

    model_path, run_dir = resolve_model_path(model_or_run)
    check_keras_archive(model_path)
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as err:  # zip, h5, config or deserialisation errors: one clear message
        raise ValueError(
            f"Cannot load the model {model_path}: {type(err).__name__}: {err}. Expected a .keras "
            "archive saved by synpose-keras (keras.Model.save)."
        ) from err
    return model, model_path, run_dir


def model_input_size(model) -> int:
    """Side of the square input a model expects (``input_size``, else its input shape)."""
    size = getattr(model, "input_size", None)
    if size is None:
        shape = tuple(getattr(model, "input_shape", ()) or ())
        size = shape[1] if len(shape) == 4 else None
    if size is None:
        raise ValueError(
            "Cannot tell the model's input size: it has no `input_size` attribute and no fixed "
            "input shape. Received: model={}".format(type(model).__name__)
        )
    return int(size)


def model_num_keypoints(model) -> int:
    """Number of heatmaps (keypoints) a model predicts."""
    k = getattr(model, "num_keypoints", None)
    if k is None:
        shape = tuple(getattr(model, "output_shape", ()) or ())
        k = shape[-1] if shape else None
    if k is None:
        raise ValueError(f"Cannot tell how many keypoints {type(model).__name__} predicts.")
    return int(k)


def run_config(run_dir: Optional[str]) -> dict:
    """``RUN/config.json`` as a dict ({} when there is no run or no config)."""
    if not run_dir:
        return {}
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def resolve_pose_model(model, skeleton=None):
    """``(model, skeleton, run_dir)`` of a loaded Keras model or a ``.keras`` path / RUN folder.

    ``model`` given as a path is loaded with :func:`load_pose_model` (``run_dir`` is its run
    folder, or None); the skeleton follows :func:`model_skeleton`'s precedence.
    """
    run_dir = None
    if isinstance(model, (str, os.PathLike)):
        model, _, run_dir = load_pose_model(model)
    return model, model_skeleton(model, run_dir=run_dir, skeleton=skeleton), run_dir


def model_skeleton(model, run_dir: Optional[str] = None, skeleton=None) -> Skeleton:
    """The skeleton of a model's keypoints.

    Order of precedence: an explicit ``skeleton``; the run's task (``RUN/config.json``); the only
    skeleton with the model's keypoint count.

    Args:
        model: the pose model.
        run_dir: optional str. The RUN folder the model comes from.
        skeleton: optional str or Skeleton. Explicit choice.

    Raises:
        ValueError: the skeleton does not have the model's keypoint count, or none does.
    """
    k = model_num_keypoints(model)
    if skeleton is None:
        task = run_config(run_dir).get("task")
        if task:
            skeleton = task
    if skeleton is not None:
        sk = skeleton if isinstance(skeleton, Skeleton) else get_skeleton(skeleton)
        if sk.num_keypoints != k:
            raise ValueError(
                f"The model predicts {k} keypoints but skeleton {sk.name!r} has "
                f"{sk.num_keypoints}. Received: skeleton={sk.name!r}"
            )
        return sk
    matches = [s for s in SKELETONS.values() if s.num_keypoints == k]
    if len(matches) != 1:
        raise ValueError(
            f"No known skeleton has {k} keypoints (known: "
            f"{ {s.name: s.num_keypoints for s in SKELETONS.values()} }); pass --skeleton."
        )
    return matches[0]


#: Hand datasets whose converters store every hand as a left hand by default: the option that
#: does it, and its default.
# dataset -> (converter option that mirrors right hands into left ones, its default); option
# None: every hand is a left hand (the embedded benchmark renders left hands only)
_LEFT_HANDED_SOURCES = {"rhd": ("flip_right", True), "freihand": ("flip", True),
                        "synthetic": (None, True)}


def source_handedness(meta) -> Optional[str]:
    """``"left"`` when a converted dataset's ``meta.json`` (a dict) says it stores every hand as a
    left hand (RHD with right hands mirrored, or FreiHAND mirrored: the converters' defaults;
    the embedded synthetic hand benchmark, which renders left hands only), else None (unknown,
    or both hands)."""
    if not isinstance(meta, dict):
        return None
    rule = _LEFT_HANDED_SOURCES.get(meta.get("dataset"))
    if rule is None or meta.get("skeleton") != "hand21":
        return None
    option, default = rule
    options = (meta.get("converter") or {}).get("options") or {}
    return "left" if (options.get(option, default) if option else default) else None


def model_handedness(run_dir=None, model=None) -> Optional[str]:
    """``"left"`` when the model was trained on left hands only, else None (unknown, or both
    hands); predict right hands with such a model using ``synpose predict --flip``.

    Read first from the model itself (the ``handedness`` that training stores in a
    ``PosePredictor``'s config, so a ``.keras`` file copied out of its run still states it), then,
    when the model does not state it (None, e.g. a model saved before the field existed), from
    the run: ``RUN/config.json``'s source and that source's ``meta.json``
    (:func:`source_handedness`).

    Args:
        run_dir: optional path of the run the model comes from (None: no run).
        model: optional loaded model.
    """
    stated = getattr(model, "handedness", None) if model is not None else None
    if stated:
        return str(stated)
    if run_dir is None:
        return None
    try:
        with open(os.path.join(os.fspath(run_dir), "config.json")) as f:
            source = json.load(f).get("source")
        with open(os.path.join(str(source), "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError, TypeError):
        return None
    return source_handedness(meta)
