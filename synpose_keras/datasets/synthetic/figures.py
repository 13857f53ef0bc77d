"""Contact sheets of the synthetic benchmark (the example images of ``datasets/synthetic.md``).

Regenerate the committed figures with ``python examples/make_synthetic_figures.py``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synpose_keras.datasets.synthetic.camera import project
from synpose_keras.datasets.synthetic.scene_generator import SceneGenerator
from synpose_keras.skeletons import get_skeleton

# bone colours: hands per finger, bodies per side (subject's right = red, left = blue)
_FINGER_COLOURS = ((255, 80, 80), (255, 200, 40), (80, 220, 80), (60, 200, 255), (200, 110, 255))
_BODY_COLOURS = {"right": (255, 70, 70), "left": (70, 140, 255), "centre": (255, 230, 60)}
_GAP_COLOUR = (0, 255, 255)


def _bone_colour(task: str, child: int) -> tuple:
    if task == "hand":
        return _FINGER_COLOURS[(child - 1) // 4]
    name = get_skeleton("body").keypoint_names[child]
    return _BODY_COLOURS["right" if name.startswith("r_") else "left" if name.startswith("l_") else "centre"]


def _overlay(draw: ImageDraw.ImageDraw, keypoints, task: str, scale: int, origin=(0, 0), gap_from=None,
             ink=lambda rgb: rgb) -> None:
    """Draws the skeleton of ``keypoints`` (pixels of the unscaled image) at ``origin``."""
    skeleton = get_skeleton(task)

    def px(points):
        return (np.asarray(points, np.float64) + 0.5) * scale - 0.5 + np.asarray(origin, np.float64)

    kp = px(keypoints)
    for child, parent in skeleton.bones:
        draw.line([tuple(kp[child]), tuple(kp[parent])], fill=ink(_bone_colour(task, child)), width=1)
    for x, y in kp:
        draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=ink((255, 255, 255)))
    if gap_from is not None:
        other = px(gap_from)
        for k in np.nonzero(np.linalg.norm(other - kp, axis=1) > 0.05 * scale)[0]:
            draw.line([tuple(other[k]), tuple(kp[k])], fill=ink(_GAP_COLOUR), width=1)
            draw.ellipse([other[k][0] - 1.5, other[k][1] - 1.5, other[k][0] + 1.5, other[k][1] + 1.5],
                         fill=ink(_GAP_COLOUR))


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray, task: str, scale: int = 2,
                   gap_from: np.ndarray = None) -> Image.Image:
    """The image upscaled ``scale`` x with its skeleton drawn (RGB); with ``gap_from`` (K, 2), the
    annotation-gap joints' other-convention points are drawn as cyan dots linked to the label."""
    h, w = image.shape[:2]
    im = Image.fromarray(image).resize((w * scale, h * scale), Image.Resampling.BILINEAR)
    _overlay(ImageDraw.Draw(im), keypoints, task, scale, gap_from=gap_from)
    return im


def contact_sheet(task: str = "hand", seed: int = 0, image_size: int = 128, columns: int = 4,
                  scale: float = 1.5, sequence: int = 0, frames=(0, 2, 5, 7)) -> Image.Image:
    """A sheet of both domains with their labels, as a 256-colour palette image (small PNG).

    Rows 1-2: source images (independent, source labels). Rows 3-4: target sequence ``sequence``
    seen by camera 0 and camera 1 at ``frames`` (target labels; cyan = where the *source*
    convention puts the annotation-gap joints).

    Args:
        task: str. "hand" or "body".
        seed: int. Benchmark seed.
        image_size: int. Rendered image size.
        columns: int. Tiles per row (``len(frames)`` must equal it).
        scale: float. Upscaling of each tile.
        sequence: int. Which target "train" sequence to show.
        frames: tuple of int. Frames of that sequence.

    Returns:
        PIL.Image.Image (mode "P").
    """
    if len(frames) != columns:
        raise ValueError(f"len(frames) must equal columns. Received: frames={frames}, columns={columns}")
    gen = SceneGenerator(task, seed, image_size, frames=max(frames) + 1, views=2)
    shots = [(gen.source_sample("train", i)["record"], None) for i in range(2 * columns)]
    for view in (0, 1):
        for f in frames:
            s = gen.target_sample("train", sequence, f, view)
            shots.append((s["record"], project(s["posed"].keypoints_source, s["record"].intrinsics)))
    tile, band = int(round(image_size * scale)), 14
    scale = tile / image_size
    titles = ["source ('synthetic'): independent images, source labels", "",
              f"target ('real'): sequence {sequence}, camera 0, frames {', '.join(map(str, frames))}; "
              "cyan = source convention",
              "target: the same frames seen by camera 1"]
    sheet = Image.new("RGB", (columns * tile, 4 * (tile + band)), (255, 255, 255))
    origins = []
    for i, (record, _) in enumerate(shots):
        row, col = divmod(i, columns)
        origins.append((col * tile, row * (tile + band) + band))
        im = Image.fromarray(record.image).resize((tile, tile), Image.Resampling.BILINEAR)
        sheet.paste(im, origins[-1])
    # quantise the photographs, keep exact palette entries for the drawing colours
    inks = [(0, 0, 0), (255, 255, 255), _GAP_COLOUR, *_FINGER_COLOURS, *_BODY_COLOURS.values()]
    inks = list(dict.fromkeys(inks))
    out = sheet.quantize(colors=256 - len(inks), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = out.getpalette()[: 3 * (256 - len(inks))]
    palette += [c for rgb in inks for c in rgb]
    out.putpalette(palette)
    index = {rgb: 256 - len(inks) + i for i, rgb in enumerate(inks)}
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    for row in range(4):
        y = row * (tile + band)
        draw.rectangle([0, y, columns * tile - 1, y + band - 1], fill=index[(255, 255, 255)])
        draw.text((4, y + 1), titles[row], fill=index[(0, 0, 0)], font=font)
    for (record, gap_from), origin in zip(shots, origins):
        _overlay(draw, record.keypoints, task, scale, origin, gap_from, ink=index.__getitem__)
    return out


def save_contact_sheets(out_dir: str = "datasets/img", seed: int = 0) -> list:
    """Writes ``synthetic_hand.png`` and ``synthetic_body.png`` into ``out_dir``; returns the paths."""
    import os

    paths = []
    for task in ("hand", "body"):
        path = os.path.join(out_dir, f"synthetic_{task}.png")
        contact_sheet(task, seed).save(path, optimize=True)
        paths.append(path)
    return paths
