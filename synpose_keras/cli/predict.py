"""``synpose predict MODEL IMAGE... --out DIR``: keypoints in original pixels (JSON) and overlay
PNGs; calls :func:`synpose_keras.inference.predict_images`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from synpose_keras.cli.choices import Decoding, SkeletonName


def predict_command(
    model: Path = typer.Argument(..., help="A .keras model, or a RUN folder of `synpose train`."),
    images: list[Path] = typer.Argument(..., help="Image files, folders of images and/or "
                                        "video files (.mp4, .avi, .mov, .mkv, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (JSON + overlay PNGs)."),
    crop: bool = typer.Option(False, "--crop/--no-crop", help="Second pass on the square crop "
                              "around the first pass's keypoints (1.5 x their box), the framing "
                              "the model was trained on. Default: the whole image, letterboxed."),
    skeleton: Optional[SkeletonName] = typer.Option(None, help="hand21 or body16 (default: from the run "
                                           "or the model's keypoint count)."),
    batch_size: int = typer.Option(8, help="Images per forward pass."),
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Write overlay PNGs."),
    min_score: float = typer.Option(0.0, help="Hide keypoints scoring below this."),
    skip_bad: bool = typer.Option(False, help="Skip unreadable images instead of stopping."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    every: int = typer.Option(1, min=1, help="Videos: predict every N-th frame."),
    boxes: Optional[Path] = typer.Option(
        None, help="Detection boxes, JSON: COCO detection results ([{image_id or file_name, "
        "bbox: [x, y, w, h], score}]) or {file name: [[x, y, w, h], ...]}. Each box is framed "
        "as the protocol frames a subject (1.5 x square); keypoints per box in original pixels "
        "(\"instances\" in the JSON). Images without boxes are framed whole."),
    min_box_score: float = typer.Option(0.5, help="With --boxes: boxes scoring below this are "
                                        "ignored."),
    flip: bool = typer.Option(False, "--flip/--no-flip", help="Mirror each image before the "
                              "model and the keypoints back after: right hands with a model "
                              "trained on left hands (RHD and FreiHAND are converted as left "
                              "hands by default). Recorded in the JSON."),
    decoding: Decoding = typer.Option("dark", help="Heatmap decoding: dark (argmax refined to "
                                 "sub-pixel precision, Zhang et al. CVPR 2020; default) or "
                                 "argmax (the PCK protocol's integer heatmap cells). Recorded "
                                 "in the JSON."),
) -> None:
    """Predict keypoints on images and videos; writes <name>.json, <name>.png and
    predictions.json per image, <stem>.jsonl and <stem>.overlay.mp4 per video."""
    from synpose_keras.inference import ImageReadError, predict_images
    from synpose_keras.inference.boxes import BoxFileError
    from synpose_keras.inference.loading import (
        load_pose_model,
        model_handedness,
        model_skeleton,
    )
    from synpose_keras.inference.video import is_video, predict_video
    from synpose_keras.ops.heatmaps import check_decoding

    videos = [p for p in images if p.is_file() and is_video(p)]
    stills = [p for p in images if p not in videos]
    try:
        check_decoding(decoding)
        loaded, _, run_dir = load_pose_model(model)
        sk = model_skeleton(loaded, run_dir=run_dir, skeleton=skeleton)
        handedness = model_handedness(run_dir, model=loaded)
        if handedness:
            other = "right" if handedness == "left" else "left"
            typer.echo(f"The model was trained on {handedness} hands only (its source dataset "
                       f"stores every hand as a {handedness} hand); "
                       + ("--flip: images are mirrored for it." if flip else
                          f"pass --flip for {other} hands."))
        for video in videos:
            done = predict_video(loaded, video, out, every=every, skeleton=sk,
                                 batch_size=batch_size, crop=crop, min_score=min_score,
                                 decoding=decoding, flip=flip, overlay=overlays,
                                 progress=progress)
            typer.echo(f"Predicted {done['frames']} frame(s) of {video} ({sk.name}); wrote "
                       f"{done['jsonl']}" + (f" and {done['overlay']}" if done["overlay"] else ""))
        if not stills:
            return
        results = predict_images(loaded, stills, out, crop=crop, skeleton=sk,
                                 batch_size=batch_size, overlays=overlays, skip_bad=skip_bad,
                                 min_score=min_score, progress=progress, decoding=decoding,
                                 flip=flip, boxes=boxes, min_box_score=min_box_score)
    except (FileNotFoundError, ImageReadError, BoxFileError, ValueError) as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(code=2)
    typer.echo(f"Predicted {len(results)} image(s) ({sk.name}); {decoding} decoding; "
               f"wrote {out}/predictions.json")
