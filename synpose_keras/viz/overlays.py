"""Keypoint overlays: the skeleton drawn on an image (PIL, no display needed)."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synpose_keras.skeletons import Skeleton


def _palette(n: int) -> list:
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / max(n, 1), 0.85, 1.0))
            for i in range(n)]


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
    img = image.copy() if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, np.uint8))
    img = img.convert("RGB")
    kp = np.asarray(keypoints, np.float32)
    k = skeleton.num_keypoints
    if kp.shape != (k, 2):
        raise ValueError(f"keypoints must have shape ({k}, 2). Received: {kp.shape}")
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
