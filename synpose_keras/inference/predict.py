"""``synpose predict``: keypoints of arbitrary images, in their original pixels, with overlays.

Each image is framed as a square for the model (:mod:`synpose_keras.inference.framing`): by
default the whole image, letterboxed (padded to a square, aspect ratio kept); with ``crop=True`` a
second pass runs on the protocol crop around the first pass's keypoints (side 1.5 x their box),
the framing the model was trained on. Heatmaps are decoded
(:class:`synpose_keras.ops.HeatmapCodec`) by default with DARK sub-pixel refinement of the argmax
(Zhang et al., "Distribution-Aware Coordinate Representation for Human Pose Estimation", CVPR
2020), or with the PCK protocol's plain argmax (``decoding="argmax"``); the decoding is recorded
in every JSON file. Keypoints are mapped back to original pixels with the exact inverse of the
framing affine.

Outputs in ``out_dir``: ``<name>.json`` per image, ``<name>.png`` overlay per image, and
``predictions.json`` (every image, in order).
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from synpose_keras.datasets.converters._image import to_rgb8
from synpose_keras.inference.framing import (
    keypoint_region,
    letterbox_region,
    render_region,
    to_original,
)
from synpose_keras.inference.loading import (
    model_input_size,
    resolve_pose_model,
)
from synpose_keras.models.forward import forward_function

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


class ImageReadError(ValueError):
    """An input image cannot be read (missing, corrupt, truncated or not an image)."""


def list_images(inputs: Sequence, missing: Optional[list] = None) -> list:
    """Expands files and folders (their images, sorted, not recursive) into a list of paths.

    Args:
        inputs: image files and folders.
        missing: optional list. When given, paths that do not exist are appended to it instead
            of raising (``--skip-bad``).

    Raises:
        FileNotFoundError: a path does not exist (unless ``missing`` is given), or a folder
            holds no image.
    """
    paths = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = sorted(os.path.join(item, n) for n in os.listdir(item)
                           if n.lower().endswith(IMAGE_EXTENSIONS)
                           and os.path.isfile(os.path.join(item, n)))
            if not found:
                raise FileNotFoundError(
                    f"No image in folder {item} (looked for {', '.join(IMAGE_EXTENSIONS)})."
                )
            paths += found
        elif os.path.isfile(item):
            paths.append(item)
        elif missing is not None:
            missing.append(item)
        else:
            raise FileNotFoundError(f"Image not found: {item}")
    return paths


def read_image(path) -> Image.Image:
    """Opens and fully decodes an image as RGB; raises :class:`ImageReadError` naming it."""
    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return to_rgb8(im)  # 16-bit and float images scaled, not clipped
    except FileNotFoundError:
        raise ImageReadError(f"Image not found: {path}") from None
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, ... on bad files
        raise ImageReadError(
            f"Cannot read image {path}: {type(err).__name__}: {err}. The file is corrupt, "
            "truncated or not an image; remove it or pass --skip-bad."
        ) from err


def _decode(heatmaps: np.ndarray, input_size: int, decoding: str = "dark"):
    from synpose_keras.ops.heatmaps import HeatmapCodec

    hm_h, hm_w = heatmaps.shape[1], heatmaps.shape[2]
    codec = HeatmapCodec((input_size, input_size), (hm_w, hm_h))
    keypoints, scores = codec.decode(heatmaps, decoding=decoding)
    return np.asarray(keypoints, np.float64), np.asarray(scores, np.float64)


def predict_arrays(model, images: Sequence[Image.Image], crop: bool = False,
                   min_score: float = 0.0, crop_scale: float = 1.5,
                   decoding: str = "dark", flip: bool = False, skeleton=None,
                   boxes: Optional[Sequence] = None) -> list:
    """Keypoints of a batch of PIL images in their original pixels.

    Args:
        model: Keras model mapping (B, S, S, 3) RGB in [0, 255] to heatmaps (B, h, w, K).
        images: list of PIL images (any sizes).
        crop: bool. Second pass on the protocol crop around the first pass's keypoints.
            Defaults to False.
        min_score: float. With ``crop``, keypoints scoring below this are left out of the crop's
            box. Defaults to 0.
        crop_scale: float. Crop side / longer side of the keypoint box. Defaults to 1.5.
        decoding: str. "dark" (argmax refined to sub-pixel precision, Zhang et al., CVPR 2020)
            or "argmax" (the PCK protocol's integer heatmap cells). Defaults to "dark".
        flip: bool. Mirror each image before the model and the keypoints back after (``x -> W
            - 1 - x``): right hands for a model trained on left hands (RHD and FreiHAND as
            converted by default, see their cards), or the reverse. Defaults to False.
        skeleton: optional Skeleton. With ``flip``, its ``flip_index`` renames left/right
            joints after the mirror (bodies; hands have none). Defaults to None (no renaming).
        boxes: optional list, one entry per image: None (framed as above) or a list of
            ``{"bbox": [x, y, w, h], "score": s}`` (:mod:`synpose_keras.inference.boxes`), each
            framed as the protocol frames a subject (1.5 x square); the image's result then has
            ``instances`` (one per box, best first) and the first instance's keypoints.

    Returns:
        list of dicts: ``keypoints`` (K, 2) float64 original pixels, ``scores`` (K,),
        ``region`` ({"center": [cx, cy], "side": side}, original pixels) of the final pass
        (in the mirrored image with ``flip``).

    Shapes:
        S = the model's input size; K keypoints; h × w = heatmap size.
    """
    from synpose_keras.ops.heatmaps import check_decoding

    check_decoding(decoding)
    size = model_input_size(model)
    if boxes is not None and any(b is not None for b in boxes):
        return _predict_boxes(model, images, boxes, crop, min_score, crop_scale, decoding,
                              flip, skeleton)
    if flip:
        images = [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in images]
    regions = [letterbox_region(*im.size) for im in images]
    keypoints, scores = _run(model, images, regions, size, decoding)
    if crop:
        refined = []
        for im, kp, sc, region in zip(images, keypoints, scores, regions):
            r = keypoint_region(kp, im.size[0], im.size[1], sc, min_score, crop_scale)
            refined.append(region if r is None else r)
        regions = refined
        keypoints, scores = _run(model, images, regions, size, decoding)
    if flip:
        order = list(skeleton.flip_index) if skeleton is not None else None
        unmirrored = []
        for im, kp, sc in zip(images, keypoints, scores):
            kp = np.array(kp, np.float64)
            kp[:, 0] = (im.size[0] - 1) - kp[:, 0]
            unmirrored.append((kp[order], sc[order]) if order else (kp, sc))
        keypoints = [kp for kp, _ in unmirrored]
        scores = [sc for _, sc in unmirrored]
    return [{"keypoints": kp, "scores": sc,
             "region": {"center": [float(r[0][0]), float(r[0][1])], "side": float(r[1])}}
            for kp, sc, r in zip(keypoints, scores, regions)]


def _predict_boxes(model, images, boxes, crop, min_score, crop_scale, decoding, flip,
                   skeleton) -> list:
    """:func:`predict_arrays` with boxes: one forward per box, grouped per image."""
    from synpose_keras.inference.boxes import box_region

    whole = [i for i, b in enumerate(boxes) if b is None]
    results = [None] * len(images)
    if whole:
        for i, row in zip(whole, predict_arrays(model, [images[i] for i in whole], crop=crop,
                                                 min_score=min_score, crop_scale=crop_scale,
                                                 decoding=decoding, flip=flip,
                                                 skeleton=skeleton)):
            results[i] = row
    jobs = [(i, box) for i, b in enumerate(boxes) if b is not None for box in b]
    size = model_input_size(model)
    found = {i: [] for i, b in enumerate(boxes) if b is not None}
    if jobs:
        job_images = [images[i] for i, _ in jobs]
        regions = [box_region(box["bbox"], crop_scale) for _, box in jobs]
        if flip:  # mirror the image and its box
            job_images = [im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in job_images]
            regions = [(np.array([im.size[0] - 1 - c[0], c[1]]), s)
                       for im, (c, s) in zip(job_images, regions)]
        keypoints, scores = _run(model, job_images, regions, size, decoding)
        order = list(skeleton.flip_index) if (flip and skeleton is not None) else None
        for (i, box), im, kp, sc, (c, s) in zip(jobs, job_images, keypoints, scores, regions):
            kp = np.array(kp, np.float64)
            if flip:
                kp[:, 0] = (im.size[0] - 1) - kp[:, 0]
                c = np.array([im.size[0] - 1 - c[0], c[1]])
                if order:
                    kp, sc = kp[order], sc[order]
            found[i].append({"bbox": box["bbox"], "box_score": box["score"], "keypoints": kp,
                             "scores": sc, "region": {"center": [float(c[0]), float(c[1])],
                                                      "side": float(s)}})
    for i, instances in found.items():
        best = instances[0] if instances else None
        results[i] = {"keypoints": best["keypoints"] if best else np.zeros((0, 2)),
                      "scores": best["scores"] if best else np.zeros(0),
                      "region": best["region"] if best else None, "instances": instances}
    return results


def _run(model, images, regions, size, decoding):
    batch = np.stack([render_region(im, c, s, size) for im, (c, s) in zip(images, regions)])
    heatmaps = np.asarray(forward_function(model)(batch.astype(np.float32)))
    kp_in, scores = _decode(heatmaps, size, decoding)
    kp = np.stack([to_original(k, c, s, size) for k, (c, s) in zip(kp_in, regions)])
    return kp, scores


def _draw(image, pred: dict, skeleton, min_score: float):
    """The overlay of one image: its keypoints, or every box's keypoints."""
    from synpose_keras.viz import draw_prediction

    instances = pred.get("instances")
    if not instances:
        if "instances" in pred:  # boxes given, none kept: the image alone
            return draw_prediction(image, np.zeros((skeleton.num_keypoints, 2)), skeleton,
                                   scores=np.zeros(skeleton.num_keypoints), min_score=1.0)
        return draw_prediction(image, pred["keypoints"], skeleton, scores=pred["scores"],
                               min_score=min_score)
    drawn = draw_prediction(image, instances[0]["keypoints"], skeleton,
                            scores=instances[0]["scores"], min_score=min_score)
    scale = drawn.size[0] / image.size[0]
    for inst in instances[1:]:
        kp = (np.asarray(inst["keypoints"]) + 0.5) * scale - 0.5
        drawn = draw_prediction(drawn, kp, skeleton, scores=inst["scores"], min_score=min_score,
                                min_side=0, legend=False)
    return drawn


def _unique_names(paths: list) -> list:
    names, used = [], {}
    for p in paths:
        stem = os.path.splitext(os.path.basename(p))[0] or "image"
        n = used.get(stem, 0)
        used[stem] = n + 1
        names.append(stem if n == 0 else f"{stem}-{n}")
    return names


def _write_json(path: str, data) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def predict_images(model, paths: Sequence, out_dir, crop: bool = False, skeleton=None,
                   batch_size: int = 8, overlays: bool = True, skip_bad: bool = False,
                   min_score: float = 0.0, progress: bool = True,
                   decoding: str = "dark", flip: bool = False, boxes=None,
                   min_box_score: float = 0.5) -> list:
    """Predicts keypoints for image files and writes JSON files and overlay PNGs.

    Args:
        model: Keras pose model, or a ``.keras`` path / RUN folder (loaded here).
        paths: list of image files or folders of images.
        out_dir: str. Output folder (created).
        crop: bool. Refine on the protocol crop around the first pass (see
            :func:`predict_arrays`). Defaults to False.
        skeleton: optional str or Skeleton. Defaults to the run's task or the only skeleton
            with the model's keypoint count.
        batch_size: int. Images per forward pass. Defaults to 8.
        overlays: bool. Write ``<name>.png`` overlays (:func:`synpose_keras.viz.draw_prediction`:
            at least 512 px on the longer side, colours per finger or limb, scores, a legend).
            Defaults to True.
        skip_bad: bool. Skip unreadable images (listed in ``predictions.json`` under
            ``skipped``) instead of stopping. Defaults to False.
        min_score: float. Keypoints below this score are not drawn and, with ``crop``, not used
            for the crop box. Defaults to 0.
        progress: bool. tqdm bar (on stderr) when there are several images. Defaults to True.
        decoding: str. Heatmap decoding: "dark" (the default: the argmax refined to sub-pixel
            precision by one Newton step on the smoothed log-heatmap, Zhang et al., CVPR 2020)
            or "argmax" (the PCK protocol's integer heatmap cells). Recorded as ``decoding`` in
            every JSON file.
        flip: bool. Mirror before the model, un-mirror after (see :func:`predict_arrays`):
            right hands with a model trained on left hands. Recorded as ``flip``. Defaults to
            False.
        boxes: optional path of a boxes file (COCO detection results or per frame, see
            :mod:`synpose_keras.inference.boxes`) or its parsed dict: every box of an image
            scoring at least ``min_box_score`` is framed and predicted on its own; images
            without an entry are framed whole. Defaults to None.
        min_box_score: float. Defaults to 0.5.

    Returns:
        list of per-image dicts, as written to ``<name>.json``: ``image`` (path), ``width``,
        ``height``, ``skeleton``, ``keypoint_names``, ``keypoints`` (K × [x, y], original
        pixels), ``scores`` (K), ``input_size``, ``region``, ``crop``, ``decoding``,
        ``overlay`` (file name or None).

    Raises:
        ImageReadError: an image cannot be read (names it), unless ``skip_bad``; with
            ``skip_bad``, when no input at all could be read.
        FileNotFoundError: a path does not exist, unless ``skip_bad`` (then listed under
            ``skipped``).

    Example:

    ```python
    from synpose_keras.inference import predict_images
    results = predict_images("runs/hand/pose_predictor.keras", ["photo.jpg"], "out/")
    results[0]["keypoints"][0]   # [x, y] of the wrist in photo.jpg pixels
    ```
    """
    from tqdm import tqdm

    from synpose_keras.ops.heatmaps import check_decoding

    check_decoding(decoding)
    if boxes is not None and not isinstance(boxes, dict):
        from synpose_keras.inference.boxes import read_boxes

        boxes = read_boxes(boxes, min_score=min_box_score)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int. Received: batch_size={batch_size}")
    model, sk, _ = resolve_pose_model(model, skeleton)
    size = model_input_size(model)
    missing = [] if skip_bad else None
    files = list_images(paths, missing=missing)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    names = _unique_names(files)
    results = []
    skipped = [{"image": path, "reason": f"Image not found: {path}"} for path in missing or []]
    bar = tqdm(total=len(files), desc="predict", unit="img", disable=not progress or len(files) < 2)
    try:
        for start in range(0, len(files), batch_size):
            chunk = list(zip(files[start:start + batch_size], names[start:start + batch_size]))
            loaded = []
            for path, name in chunk:
                try:
                    loaded.append((path, name, read_image(path)))
                except ImageReadError as err:
                    if not skip_bad:
                        raise
                    skipped.append({"image": path, "reason": str(err)})
                    bar.update(1)
            if not loaded:
                continue
            image_boxes = None
            if boxes is not None:
                from synpose_keras.inference.boxes import boxes_for

                image_boxes = [boxes_for(boxes, path) for path, _, _ in loaded]
            preds = predict_arrays(model, [im for _, _, im in loaded], crop=crop,
                                   min_score=min_score, decoding=decoding, flip=flip,
                                   skeleton=sk, boxes=image_boxes)
            for (path, name, im), pred in zip(loaded, preds):
                overlay = None
                if overlays:
                    overlay = f"{name}.png"
                    drawn = _draw(im, pred, sk, min_score)
                    drawn.save(os.path.join(out_dir, overlay))
                row = {
                    "image": os.path.abspath(path),
                    "width": im.size[0],
                    "height": im.size[1],
                    "skeleton": sk.name,
                    "keypoint_names": list(sk.keypoint_names),
                    "keypoints": pred["keypoints"].tolist(),
                    "scores": pred["scores"].tolist(),
                    "input_size": size,
                    "region": pred["region"],
                    "crop": bool(crop),
                    "decoding": decoding,
                    "flip": bool(flip),
                    "overlay": overlay,
                }
                if "instances" in pred:
                    row["instances"] = [
                        {"bbox": inst["bbox"], "box_score": inst["box_score"],
                         "keypoints": inst["keypoints"].tolist(),
                         "scores": inst["scores"].tolist(), "region": inst["region"]}
                        for inst in pred["instances"]]
                _write_json(os.path.join(out_dir, f"{name}.json"), row)
                results.append(row)
                bar.update(1)
    finally:
        bar.close()
    if not results and skipped:
        raise ImageReadError(
            f"None of the {len(skipped)} input(s) could be read (e.g. {skipped[0]['reason']}); "
            "nothing was predicted.")
    _write_json(os.path.join(out_dir, "predictions.json"),
                {"skeleton": sk.name, "keypoint_names": list(sk.keypoint_names),
                 "decoding": decoding, "images": results, "skipped": skipped})
    return results
