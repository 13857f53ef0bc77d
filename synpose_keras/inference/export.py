"""``synpose export``: a serving artefact (TensorFlow SavedModel or TFLite) of a pose model.

Both artefacts take raw RGB images, NHWC, ``(batch, S, S, 3)`` with ``S`` the model's input size,
as ``float32`` in [0, 255] (default) or ``uint8``, and return ``{"heatmaps": (batch, S/4, S/4,
K)}`` float32 — the Keras model's output, unchanged (the image normalisation lives inside the
model). Decoding the heatmaps is left to the consumer; the metadata records how ``synpose
predict`` does it (``decoding``, default ``"dark"``: the argmax refined to sub-pixel precision by
one Newton step on the log of the heatmap smoothed with a σ = ``decoding_sigma`` Gaussian, Zhang
et al., CVPR 2020; ``"argmax"``: the PCK protocol's integer cells), then ``x_in = x_hm * stride``
(``HeatmapCodec.decode``).

- ``saved_model``: a folder written with Keras 3's export archive (``keras.export.ExportArchive``,
  what ``model.export(path, format="tf_saved_model")`` uses), one endpoint ``serve`` that is also
  the ``serving_default`` signature (TF Serving, ``tf.saved_model.load``). Extra metadata
  (input size, stride, skeleton, keypoint names, decoding) is in ``assets.extra/synpose.json``.
- ``tflite``: one ``.tflite`` file converted from that SavedModel (float32 weights, no
  quantisation), signature ``serving_default``.

Artefacts are written to a temporary sibling and renamed into place, so a failed export never
leaves a half-written ``out``. With ``verify=True`` the artefact is run on a random batch and
compared with the Keras model (the largest absolute difference is returned).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Optional

import numpy as np

from synpose_keras.inference.loading import (
    load_pose_model,
    model_handedness,
    model_input_size,
    model_num_keypoints,
    model_skeleton,
)

FORMATS = ("saved_model", "tflite")
INPUT_DTYPES = ("float32", "uint8")
DECODE_TEXT = {
    "argmax": "argmax per heatmap (the PCK protocol); x_in = x_hm * stride, "
              "y_in = y_hm * stride",
    "dark": "argmax per heatmap, then DARK sub-pixel refinement (Zhang et al., CVPR 2020): "
            "smooth the heatmap with a Gaussian of sigma = decoding_sigma heatmap px (window "
            "floor(3 sigma), shrunk symmetrically so as not to reach past the border), take its "
            "log, one Newton step x* = m - H^-1 g from the argmax m with central finite "
            "differences on the 3x3 neighbourhood, offset clamped to [-1, 1] px, the argmax "
            "kept on the border or where H is not negative definite; x_in = x_hm * stride, "
            "y_in = y_hm * stride",
}
METADATA_FILE = os.path.join("assets.extra", "synpose.json")


def _write_saved_model(model, path: str, input_size: int, input_dtype: str) -> None:
    import keras
    import tensorflow as tf

    spec = tf.TensorSpec((None, input_size, input_size, 3), getattr(tf, input_dtype),
                         name="images")

    def serve(images):
        return {"heatmaps": model(tf.cast(images, tf.float32), training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=[spec])
    archive.write_out(path, verbose=False)


def _tflite_bytes(saved_model_dir: str) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    return converter.convert()


def _tflite_interpreter(path: str):
    try:  # LiteRT, TF's successor of tf.lite.Interpreter, when installed
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=path)
    return Interpreter(model_path=path)


def run_artefact(path: str, format: str, images: np.ndarray) -> np.ndarray:
    """Runs an exported artefact on a batch of images; returns its heatmaps (numpy).

    Args:
        path: str. The SavedModel folder or the ``.tflite`` file.
        format: str. "saved_model" or "tflite".
        images: (B, S, S, 3) array in the artefact's input dtype.
    """
    if format == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        return np.asarray(loaded.serve(tf.convert_to_tensor(images))["heatmaps"])
    if format == "tflite":
        interpreter = _tflite_interpreter(path)
        runner = interpreter.get_signature_runner("serving_default")
        outputs = runner(images=np.asarray(images))
        return np.asarray(outputs["heatmaps"])
    raise ValueError(f"format must be one of {FORMATS}. Received: format={format!r}")


def _move_into_place(tmp: str, out: str, overwrite: bool) -> None:
    if os.path.lexists(out):
        if not overwrite:
            raise FileExistsError(f"{out} already exists; pass --overwrite to replace it.")
        old = f"{out}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old) if os.path.isdir(old) else os.remove(old)
    else:
        os.replace(tmp, out)


def export_model(model_path, out, format: str = "saved_model", input_dtype: str = "float32",
                 overwrite: bool = False, verify: bool = True, skeleton: Optional[str] = None,
                 seed: int = 0, decoding: str = "dark") -> dict:
    """Exports a ``.keras`` pose model (or a RUN folder's final model) for serving.

    Args:
        model_path: str or path. ``.keras`` file or RUN folder.
        out: str or path. The SavedModel folder, or the ``.tflite`` file, to write.
        format: str. "saved_model" or "tflite". Defaults to "saved_model".
        input_dtype: str. "float32" (RGB in [0, 255]) or "uint8". Defaults to "float32".
        overwrite: bool. Replace an existing ``out``. Defaults to False.
        verify: bool. Run the artefact on 2 random images and compare with Keras. Defaults to
            True.
        skeleton: optional str. Skeleton name written in the metadata (default: inferred).
        seed: int. Seed of the verification images. Defaults to 0.
        decoding: str. The heatmap decoding recorded in the metadata (the artefact itself
            returns heatmaps): "dark" (sub-pixel, what ``synpose predict`` uses by default) or
            "argmax" (the PCK protocol). Defaults to "dark".

    Returns:
        dict: ``path``, ``format``, ``input_size``, ``heatmap_size``, ``input_dtype``,
        ``num_keypoints``, ``skeleton``, ``decoding``, ``max_abs_diff`` (None without
        ``verify``).

    Raises:
        ValueError: unknown format or dtype.
        FileExistsError: ``out`` exists and ``overwrite`` is False.

    Example:

    ```python
    from synpose_keras.inference import export_model
    export_model("runs/hand", "serving/hand", format="saved_model")
    # import tensorflow as tf; tf.saved_model.load("serving/hand").serve(images)["heatmaps"]
    ```
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}. Received: format={format!r}")
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(
            f"input_dtype must be one of {INPUT_DTYPES}. Received: input_dtype={input_dtype!r}"
        )
    from synpose_keras.ops.heatmaps import DEFAULT_SIGMA, check_decoding

    check_decoding(decoding)
    out = os.path.abspath(os.fspath(out))
    ancestor = os.path.dirname(out)
    while not os.path.exists(ancestor) and os.path.dirname(ancestor) != ancestor:
        ancestor = os.path.dirname(ancestor)
    if os.path.exists(ancestor) and not os.path.isdir(ancestor):
        raise ValueError(f"Cannot export to {out}: {ancestor} is a file. Expected --out inside "
                         "a folder (created if missing).")
    if os.path.lexists(out) and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it.")
    model, source, run_dir = load_pose_model(model_path)
    size = model_input_size(model)
    k = model_num_keypoints(model)
    try:
        sk = model_skeleton(model, run_dir=run_dir, skeleton=skeleton)
        sk_name, names = sk.name, list(sk.keypoint_names)
    except ValueError:
        if skeleton is not None:
            raise
        sk_name, names = None, None
    stride = getattr(model, "stride", None)
    heatmap_size = getattr(model, "heatmap_size", None)
    metadata = {
        "source": source, "format": format, "input_size": size, "input_dtype": input_dtype,
        "input_range": [0, 255], "layout": "NHWC RGB", "heatmap_size": heatmap_size,
        "stride": stride, "num_keypoints": k, "skeleton": sk_name, "keypoint_names": names,
        "decoding": decoding, "decoding_sigma": DEFAULT_SIGMA,
        "protocol_decoding": "argmax", "decode": DECODE_TEXT[decoding],
        # "left": trained on left hands only (predict right hands mirrored: `synpose predict
        # --flip`); None: unknown or both (inference.loading.model_handedness)
        "handedness": model_handedness(run_dir, model=model),
    }
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    try:
        saved = os.path.join(work, "saved_model")
        _write_saved_model(model, saved, size, input_dtype)
        os.makedirs(os.path.join(saved, "assets.extra"), exist_ok=True)
        with open(os.path.join(saved, METADATA_FILE), "w") as f:
            json.dump(metadata, f, indent=2)
        if format == "saved_model":
            artefact = saved
        else:
            artefact = os.path.join(work, "model.tflite")
            with open(artefact, "wb") as f:
                f.write(_tflite_bytes(saved))
        max_diff = None
        if verify:
            rng = np.random.default_rng(seed)
            images = rng.integers(0, 256, (2, size, size, 3)).astype(input_dtype)
            expected = np.asarray(model(images.astype(np.float32), training=False))
            got = run_artefact(artefact, format, images)
            if got.shape != expected.shape:
                raise RuntimeError(
                    f"The exported {format} returns heatmaps of shape {got.shape}, the Keras "
                    f"model {expected.shape}; the export is not written."
                )
            max_diff = float(np.max(np.abs(got - expected)))
        _move_into_place(artefact, out, overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"path": out, "format": format, "input_size": size, "heatmap_size": heatmap_size,
            "input_dtype": input_dtype, "num_keypoints": k, "skeleton": sk_name,
            "decoding": decoding, "handedness": metadata["handedness"], "max_abs_diff": max_diff}
