"""Keypoint overlays: the skeleton drawn on an image (PIL, no display needed)."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synpose_keras.skeletons import Skeleton


def _palette(n: int) -> list:
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / max(n, 1), 0.85, 1.0))
            for i in range(n)]


def _image_and_keypoints(image, keypoints, skeleton: Skeleton, dtype):
    """An RGB copy of ``image`` (PIL or uint8 array), the (K, 2) keypoints as ``dtype``, and K."""
    img = image.copy() if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
    kp = np.asarray(keypoints, dtype)
    k = skeleton.num_keypoints
    if kp.shape != (k, 2):
        raise ValueError(f"keypoints must have shape ({k}, 2). Received: {kp.shape}")
    return img.convert("RGB"), kp, k


def draw_keypoints(image, keypoints, skeleton: Skeleton, visible=None, scores=None,
                   radius: float = 2.0, line_width: int = 1, min_score: float = 0.0,
                   color=None) -> Image.Image:
    """Draws bones and keypoints on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 array or PIL image.
        keypoints: (K, 2) (x, y) pixels of ``image``.
        skeleton: the keypoints' skeleton (bones come from its parents).
        visible: optional (K,). Keypoints with 0 are not drawn.
        scores: optional (K,). Keypoints scoring below ``min_score`` are not drawn.
        radius: float. Dot radius in pixels.
        line_width: int. Bone width in pixels.
        color: optional RGB tuple for every element (e.g. to compare methods); by default each
            keypoint has its own colour.

    Returns:
        PIL.Image (RGB).
    """
    img, kp, k = _image_and_keypoints(image, keypoints, skeleton, np.float32)
    show = np.ones(k, bool)
    if visible is not None:
        show &= np.asarray(visible) > 0
    if scores is not None:
        show &= np.asarray(scores) >= min_score
    colors = [color] * k if color is not None else _palette(k)
    draw = ImageDraw.Draw(img)
    for child, parent in skeleton.bones:
        if show[child] and show[parent]:
            draw.line([tuple(kp[parent]), tuple(kp[child])], fill=colors[child], width=line_width)
    for i in np.flatnonzero(show):
        x, y = kp[i]
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colors[i],
                     outline=(0, 0, 0))
    return img


def contact_sheet(images, columns: int = 4, pad: int = 2) -> Image.Image:
    """Tiles PIL images (same size) into one image, row by row."""
    images = list(images)
    if not images:
        raise ValueError("contact_sheet needs at least one image.")
    w, h = images[0].size
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + pad) + pad), (255, 255, 255))
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        sheet.paste(im.resize((w, h)), (pad + c * (w + pad), pad + r * (h + pad)))
    return sheet


def add_legend(sheet: Image.Image, entries, height: int = 16) -> Image.Image:
    """A white strip under ``sheet`` with a dot and a label per entry.

    Args:
        sheet: PIL image.
        entries: list of ``(RGB tuple or None, label)``; None draws a rainbow of small dots (one
            colour per keypoint).
        height: int. Strip height in pixels (text is Pillow's default font).

    Returns:
        PIL.Image (RGB) ``height`` pixels taller than ``sheet``.
    """
    w, h = sheet.size
    out = Image.new("RGB", (w, h + height), (255, 255, 255))
    out.paste(sheet.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    x, cy, r = 4, h + height // 2, max(2, height // 4)
    for color, label in entries:
        colors = _palette(6) if color is None else [color]
        for c in colors:
            draw.ellipse([x, cy - r, x + 2 * r, cy + r], fill=c, outline=(0, 0, 0))
            x += 2 * r + 1
        x += 3
        draw.text((x, cy - 6), label, fill=(0, 0, 0), font=font)
        x += int(draw.textlength(label, font=font)) + 12
    return out


#: Colours of the parts: a hue per finger (hands) or per limb (bodies), grey for the rest.
PART_COLORS = {
    "thumb": (230, 60, 60), "index": (240, 160, 30), "middle": (60, 180, 75),
    "ring": (50, 130, 230), "little": (170, 80, 200), "palm": (150, 150, 150),
    "right leg": (230, 60, 60), "left leg": (50, 130, 230), "right arm": (240, 160, 30),
    "left arm": (60, 200, 200), "torso and head": (150, 150, 150),
}


def keypoint_parts(skeleton: Skeleton) -> list:
    """The part of each keypoint: its finger (``thumb`` ... ``little``, the wrist ``palm``) for
    hands, its limb (``right leg``, ``left arm``, ...; ``torso and head``) for bodies."""
    parts = []
    for name in skeleton.keypoint_names:
        finger = name.split("_")[0]
        if finger in ("thumb", "index", "middle", "ring", "little"):
            parts.append(finger)
        elif name.startswith(("r_", "l_")):
            side = "right" if name.startswith("r_") else "left"
            limb = "leg" if name[2:] in ("ankle", "knee", "hip") else "arm"
            parts.append(f"{side} {limb}")
        else:
            parts.append("palm" if name == "wrist" else "torso and head")
    return parts


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def draw_prediction(image, keypoints, skeleton: Skeleton, scores=None, min_score: float = 0.0,
                    min_side: int = 512, show_scores: bool = True,
                    legend: bool = True) -> Image.Image:
    """An overlay people can read: drawn at ``min_side`` px or more on the longer side, bones and
    joints coloured per finger (hands) or limb (bodies), each joint's score written next to it,
    and a legend of the colours in the image's top-left corner.

    Args:
        image: (H, W, 3) uint8 array or PIL image.
        keypoints: (K, 2) (x, y) pixels of ``image``.
        skeleton: the keypoints' skeleton.
        scores: optional (K,). Written next to each joint; joints below ``min_score`` are not
            drawn.
        min_score: float. Defaults to 0.
        min_side: int. The image is enlarged (never shrunk) so that its longer side is at least
            this. Defaults to 512.
        show_scores: bool. Defaults to True.
        legend: bool. Defaults to True.

    Returns:
        PIL.Image (RGB), ``scale`` times the input size (``scale = max(1, min_side / longer
        side)``).
    """
    img, kp, k = _image_and_keypoints(image, keypoints, skeleton, np.float64)
    scale = max(1.0, float(min_side) / max(img.size))
    if scale > 1.0:
        img = img.resize((int(round(img.size[0] * scale)), int(round(img.size[1] * scale))),
                         Image.Resampling.BILINEAR)
    # pixel-centre convention: x' = (x + 0.5) * s - 0.5
    kp = (kp + 0.5) * scale - 0.5
    show = np.ones(k, bool)
    if scores is not None:
        show &= np.asarray(scores) >= min_score
    parts = keypoint_parts(skeleton)
    colors = [PART_COLORS[p] for p in parts]
    side = max(img.size)
    radius = max(3.0, side / 160.0)
    width = max(2, int(round(radius / 1.5)))
    draw = ImageDraw.Draw(img)
    for child, parent in skeleton.bones:
        if show[child] and show[parent]:
            draw.line([tuple(kp[parent]), tuple(kp[child])], fill=colors[child], width=width)
    font = _font(max(10, int(side / 55)))
    for i in np.flatnonzero(show):
        x, y = kp[i]
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colors[i],
                     outline=(0, 0, 0))
        if show_scores and scores is not None:
            draw.text((x + radius + 1, y - radius), f"{float(scores[i]):.2f}", fill=(255, 255, 255),
                      font=font, stroke_width=2, stroke_fill=(0, 0, 0))
    if legend:
        _legend_box(draw, [p for p in dict.fromkeys(parts)], font, radius)
    return img


def _legend_box(draw, parts, font, radius) -> None:
    pad = int(radius)
    line = int(font.size * 1.3) if hasattr(font, "size") else 14
    widths = [draw.textlength(p, font=font) for p in parts]
    box_w = int(max(widths) + 4 * radius + 3 * pad)
    box_h = line * len(parts) + 2 * pad
    draw.rectangle([pad, pad, pad + box_w, pad + box_h], fill=(255, 255, 255),
                   outline=(0, 0, 0))
    for n, part in enumerate(parts):
        cy = 2 * pad + n * line + line / 2 - pad / 2
        draw.ellipse([2 * pad, cy - radius, 2 * pad + 2 * radius, cy + radius],
                     fill=PART_COLORS[part], outline=(0, 0, 0))
        draw.text((3 * pad + 2 * radius, cy - line / 2 + 1), part, fill=(0, 0, 0), font=font)
