"""The peers' kind of training loader: PIL + numpy per sample, a PyTorch ``DataLoader`` around it.

What TLlib / UniFrame do per training sample, written for the benchmark (not their code): read the
image file with PIL, crop the square around the keypoints (1.5 x the keypoint box, shifted to stay
inside the image) and resize it to the input size, apply one random affine (rotation, shear,
scale, translation about the centre) with ``Image.transform``, colour jitter with
``ImageEnhance`` (brightness, contrast, saturation: torchvision's ``ColorJitter`` on PIL images),
convert to a float32 array, move the keypoints with numpy, and draw the target heatmaps with numpy
(a 13 x 13 Gaussian window per visible joint, TLlib's ``generate_target``).

It does slightly *less* resampling than TLlib (whose crop, resize, rotation and
``RandomResizedCrop`` each resample the image): one crop+resize and one affine.

Same outputs as ``source_pipeline``: ``image`` float32 (S, S, 3) in [0, 255], ``heatmaps``
(S/4, S/4, K), ``weights`` (K,), ``keypoints`` (K, 2).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageEnhance, ImageOps


def crop_square(keypoints, visible, width, height, scale=1.5):
    vis = visible > 0
    pts = keypoints[vis] if vis.any() else np.array([[0, 0], [width - 1, height - 1]], float)
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    side = max(scale * max(x1 - x0, y1 - y0), 2.0)
    left = min(max((x0 + x1) / 2 - side / 2, -0.5), width - 0.5 - side)
    top = min(max((y0 + y1) / 2 - side / 2, -0.5), height - 0.5 - side)
    return left, top, side


def gaussian_heatmaps(keypoints, visible, input_size, heatmap_size, sigma=2.0):
    """TLlib-style targets: Gaussian in a (6 sigma + 1)^2 window around the rounded centre."""
    k = len(keypoints)
    stride = input_size / heatmap_size
    maps = np.zeros((heatmap_size, heatmap_size, k), np.float32)
    weights = visible.astype(np.float32).copy()
    radius = int(3 * sigma)
    size = 2 * radius + 1
    x = np.arange(size, dtype=np.float32)
    g = np.exp(-((x[None, :] - radius) ** 2 + (x[:, None] - radius) ** 2) / (2 * sigma ** 2))
    for j in range(k):
        cx = int(keypoints[j, 0] / stride + 0.5)
        cy = int(keypoints[j, 1] / stride + 0.5)
        if weights[j] == 0 or not (0 <= cx < heatmap_size and 0 <= cy < heatmap_size):
            weights[j] = 0
            continue
        ul = (cx - radius, cy - radius)
        gx0, gx1 = max(0, -ul[0]), min(size, heatmap_size - ul[0])
        gy0, gy1 = max(0, -ul[1]), min(size, heatmap_size - ul[1])
        mx0, mx1 = max(0, ul[0]), min(heatmap_size, ul[0] + size)
        my0, my1 = max(0, ul[1]), min(heatmap_size, ul[1] + size)
        maps[my0:my1, mx0:mx1, j] = g[gy0:gy1, gx0:gx1]
    return maps, weights


class PeerDataset:
    """Map-style dataset over image files + a keypoint array (a ``torch.utils.data.Dataset``)."""

    def __init__(self, paths, keypoints, visible, input_size=256, heatmap_size=64,
                 rotation=180.0, shear=30.0, translate=0.05, scale=(0.6, 1.3), jitter=0.25,
                 seed=0):
        self.paths = list(paths)
        self.keypoints = np.asarray(keypoints, np.float64)
        self.visible = np.asarray(visible, np.float32)
        self.s = int(input_size)
        self.h = int(heatmap_size)
        self.rotation, self.shear, self.translate = rotation, shear, translate
        self.scale, self.jitter, self.seed = scale, jitter, seed

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        rng = np.random.default_rng((self.seed, index))
        s = self.s
        image = Image.open(self.paths[index]).convert("RGB")
        kp, vis = self.keypoints[index].copy(), self.visible[index]
        left, top, side = crop_square(kp, vis, image.width, image.height)
        # crop + resize in one resample (box in pixel-edge coordinates)
        box = (left + 0.5, top + 0.5, left + 0.5 + side, top + 0.5 + side)
        pad = int(math.ceil(max(0.0, -box[0], -box[1], box[2] - image.width,
                                box[3] - image.height)))
        if pad:  # the crop overhangs the image: zero padding (rare)
            image = ImageOps.expand(image, border=pad, fill=0)
            box = tuple(v + pad for v in box)
        image = image.resize((s, s), Image.BILINEAR, box=box)  # antialiased when shrinking
        f = s / side
        kp = (kp - [left + 0.5, top + 0.5]) * f + 0.5 * f - 0.5
        # random affine about the centre: translate . rotate . shear . scale
        rot = math.radians(rng.uniform(-self.rotation, self.rotation))
        sh = math.radians(rng.uniform(-self.shear, self.shear))
        zoom = rng.uniform(*self.scale)
        t = rng.uniform(-self.translate, self.translate, 2) * s
        c = (s - 1) / 2.0
        rot_m = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
        shear_m = np.array([[1.0, math.tan(sh)], [0.0, 1.0]])
        a = rot_m @ shear_m * zoom
        m = np.eye(3)
        m[:2, :2] = a
        m[:2, 2] = np.array([c, c]) + t - a @ np.array([c, c])
        inv = np.linalg.inv(m)  # PIL wants output -> input
        image = image.transform((s, s), Image.AFFINE, inv[:2].ravel().tolist(), Image.BILINEAR)
        kp = kp @ a.T + m[:2, 2]
        # colour jitter (torchvision ColorJitter on PIL images)
        lo, hi = 1 - self.jitter, 1 + self.jitter
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(lo, hi))
        image = ImageEnhance.Contrast(image).enhance(rng.uniform(lo, hi))
        image = ImageEnhance.Color(image).enhance(rng.uniform(lo, hi))
        array = np.asarray(image, np.float32)
        heatmaps, weights = gaussian_heatmaps(kp, vis, s, self.h)
        return {"image": array, "heatmaps": heatmaps, "weights": weights,
                "keypoints": kp.astype(np.float32)}
