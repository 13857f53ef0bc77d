"""``synpose predict MODEL video.mp4 --out DIR``: keypoints per frame and an overlay video.

Frames are decoded with PyAV (the library's video dependency), every ``every``-th frame is framed
and predicted as an image (:func:`synpose_keras.inference.predict.predict_arrays`: whole frame
letterboxed, ``crop``, ``flip``), and two files are written in ``out_dir``:

- ``<stem>.jsonl``: one JSON line per predicted frame: ``frame`` (index in the video), ``time``
  (seconds), ``keypoints`` (K x [x, y], frame pixels), ``scores``, ``region``; the first line is a
  header ``{"video", "width", "height", "fps", "every", "skeleton", "keypoint_names", ...}``;
- ``<stem>.overlay.mp4``: the predicted frames with the overlay of
  :func:`synpose_keras.viz.draw_prediction` (at least 512 px on the longer side), at the video's
  frame rate divided by ``every``.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from typing import Optional

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class VideoReadError(ValueError):
    """A video cannot be decoded (names it)."""


def is_video(path) -> bool:
    return os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)


def _encoder(container, fps: Fraction, width: int, height: int):
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    return stream


def predict_video(model, path, out_dir, every: int = 1, skeleton=None, batch_size: int = 8,
                  crop: bool = False, min_score: float = 0.0, decoding: str = "dark",
                  flip: bool = False, overlay: bool = True, progress: bool = True) -> dict:
    """Predicts keypoints on every ``every``-th frame of a video (see the module docstring).

    Args:
        model: Keras pose model, or a ``.keras`` path / RUN folder.
        path: str. The video file.
        out_dir: str. Output folder (created).
        every: int. Predict every n-th frame. Defaults to 1.
        skeleton, batch_size, crop, min_score, decoding, flip: as for
            :func:`synpose_keras.inference.predict_images`.
        overlay: bool. Write ``<stem>.overlay.mp4``. Defaults to True.
        progress: bool. A tqdm bar on stderr. Defaults to True.

    Returns:
        dict: ``video``, ``frames`` (predicted), ``jsonl`` and ``overlay`` (paths; overlay None
        without ``overlay``).

    Raises:
        VideoReadError: the file cannot be opened or decoded.
    """
    import av
    from tqdm import tqdm

    from synpose_keras.inference.loading import model_input_size, resolve_pose_model
    from synpose_keras.inference.predict import predict_arrays
    from synpose_keras.viz import draw_prediction

    if every < 1:
        raise ValueError(f"every must be >= 1. Received: every={every}")
    model, sk, _ = resolve_pose_model(model, skeleton)
    path = os.fspath(path)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    jsonl = os.path.join(out_dir, f"{stem}.jsonl")
    overlay_path = os.path.join(out_dir, f"{stem}.overlay.mp4") if overlay else None
    try:
        source = av.open(path)
        stream = source.streams.video[0]
    except (av.FFmpegError, IndexError, OSError) as err:
        raise VideoReadError(f"Cannot read the video {path}: {err}. Expected a video file "
                             f"({', '.join(VIDEO_EXTENSIONS)}) that FFmpeg decodes.") from err
    fps = stream.average_rate or Fraction(25)
    total = stream.frames or None
    writer = encoder = None
    count = 0
    bar = tqdm(total=total, desc=os.path.basename(path), unit="frame", disable=not progress)
    try:
        with open(jsonl + ".tmp", "w") as lines:
            lines.write(json.dumps({
                "video": os.path.abspath(path), "width": stream.width, "height": stream.height,
                "fps": float(fps), "every": every, "skeleton": sk.name,
                "keypoint_names": list(sk.keypoint_names), "input_size": model_input_size(model),
                "crop": bool(crop), "flip": bool(flip), "decoding": decoding}) + "\n")
            batch = []

            def flush():
                nonlocal writer, encoder, count
                preds = predict_arrays(model, [im for _, _, im in batch], crop=crop,
                                       min_score=min_score, decoding=decoding, flip=flip,
                                       skeleton=sk)
                for (index, time, im), pred in zip(batch, preds):
                    lines.write(json.dumps({
                        "frame": index, "time": time, "keypoints": pred["keypoints"].tolist(),
                        "scores": pred["scores"].tolist(), "region": pred["region"]}) + "\n")
                    count += 1
                    if overlay_path is not None:
                        drawn = draw_prediction(im, pred["keypoints"], sk,
                                                scores=pred["scores"], min_score=min_score)
                        w, h = drawn.size[0] // 2 * 2, drawn.size[1] // 2 * 2
                        if writer is None:
                            writer = av.open(overlay_path + ".tmp.mp4", "w")
                            encoder = _encoder(writer, fps / every, w, h)
                        frame = av.VideoFrame.from_image(drawn.crop((0, 0, w, h)))
                        for packet in encoder.encode(frame):
                            writer.mux(packet)
                batch.clear()

            try:
                for index, frame in enumerate(source.decode(stream)):
                    bar.update(1)
                    if index % every:
                        continue
                    time = None if frame.time is None else float(frame.time)
                    batch.append((index, time, frame.to_image().convert("RGB")))
                    if len(batch) == batch_size:
                        flush()
            except av.FFmpegError as err:
                raise VideoReadError(f"Cannot decode {path} after frame {count}: {err}") from err
            if batch:
                flush()
        if count == 0:
            raise VideoReadError(f"{path} has no decodable frame.")
        os.replace(jsonl + ".tmp", jsonl)
        if writer is not None:
            for packet in encoder.encode():
                writer.mux(packet)
            writer.close()
            writer = None
            os.replace(overlay_path + ".tmp.mp4", overlay_path)
    finally:
        bar.close()
        source.close()
        if writer is not None:
            writer.close()
    return {"video": os.path.abspath(path), "frames": count, "jsonl": jsonl,
            "overlay": overlay_path}
