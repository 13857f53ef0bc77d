"""Image statistics that tell the two domains apart (used by the tests and the dataset card).

All functions take uint8 RGB images (H, W, 3) and keypoints in pixels of that image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_LAPLACE = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def _grey(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float64).mean(axis=-1)


def noise_sigma(image: np.ndarray) -> float:
    """Sensor-noise estimate in 0..255 units (Immerkaer 1996, with a median for robustness).

    The 3x3 operator cancels smooth image content; for i.i.d. Gaussian noise of std sigma its
    response has std 6 sigma, and median(|r|) = 0.6745 x that std.
    """
    r = ndimage.convolve(_grey(image), _LAPLACE, mode="reflect")[1:-1, 1:-1]
    return float(np.median(np.abs(r)) / (0.6745 * 6.0))


def background_mask(shape, keypoints: np.ndarray, margin: float = 0.25) -> np.ndarray:
    """(H, W) bool: pixels outside the keypoints' box grown by ``margin`` x its longer side."""
    h, w = shape[:2]
    kp = np.asarray(keypoints, np.float64)
    lo, hi = kp.min(axis=0), kp.max(axis=0)
    grow = margin * float(np.max(hi - lo))
    ys, xs = np.mgrid[0:h, 0:w]
    inside = (xs >= lo[0] - grow) & (xs <= hi[0] + grow) & (ys >= lo[1] - grow) & (ys <= hi[1] + grow)
    return ~inside


def background_texture(image: np.ndarray, keypoints: np.ndarray) -> float:
    """Mean gradient magnitude (grey levels per pixel, after a sigma = 1 blur that removes most
    sensor noise) over the background, i.e. away from the subject's keypoint box."""
    g = ndimage.gaussian_filter(_grey(image), 1.0)
    mag = np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1)) / 8.0
    mask = background_mask(image.shape, keypoints)
    return float(mag[mask].mean()) if mask.any() else float("nan")


def background_edges(image: np.ndarray, keypoints: np.ndarray, threshold: float = 20.0) -> float:
    """Fraction of background pixels (as :func:`background_texture`) whose gradient magnitude,
    after a sigma = 1 blur, exceeds ``threshold`` grey levels per pixel: the hard edges of
    clutter (shapes, distractors, tiles), which smooth textures and gradients do not have."""
    g = ndimage.gaussian_filter(_grey(image).astype(np.float64), 1.0)
    magnitude = np.hypot(ndimage.sobel(g, 0), ndimage.sobel(g, 1)) / 8.0
    mask = background_mask(image.shape, keypoints)
    if not mask.any():
        return float("nan")
    return float((magnitude[mask] > threshold).mean())


def subject_colour(image: np.ndarray, keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(3,) median RGB (0..255) of the 3x3 patches at the visible keypoints."""
    h, w = image.shape[:2]
    vals = []
    for (x, y), v in zip(np.asarray(keypoints), np.asarray(visible)):
        if v <= 0:
            continue
        xi, yi = int(round(x)), int(round(y))
        vals.append(image[max(yi - 1, 0):min(yi + 2, h), max(xi - 1, 0):min(xi + 2, w)].reshape(-1, 3))
    if not vals:
        return np.full(3, np.nan)
    return np.median(np.concatenate(vals).astype(np.float64), axis=0)


def domain_statistics(records) -> dict:
    """Summary of a set of records (objects with ``image``, ``keypoints``, ``visible``).

    Returns:
        dict: ``noise_sigma`` (mean estimate, 0..255), ``background_texture`` (mean),
        ``background_edges`` (mean of :func:`background_edges`: clutter),
        ``subject_colour_spread`` (std over images of the subject colour, mean over channels,
        0..255: skin tones), ``subject_brightness`` (mean of the subject colour),
        ``subject_brightness_spread`` (std over images of the subject's grey level: lighting).
    """
    noise, texture, edges, colours = [], [], [], []
    for r in records:
        noise.append(noise_sigma(r.image))
        texture.append(background_texture(r.image, r.keypoints))
        edges.append(background_edges(r.image, r.keypoints))
        colours.append(subject_colour(r.image, r.keypoints, r.visible))
    colours = np.array(colours)
    return {
        "noise_sigma": float(np.mean(noise)),
        "background_texture": float(np.nanmean(texture)),
        "subject_colour_spread": float(np.nanstd(colours, axis=0).mean()),
        "subject_brightness": float(np.nanmean(colours)),
        "background_edges": float(np.nanmean(edges)),
        "subject_brightness_spread": float(np.nanstd(np.nanmean(colours, axis=1))),
    }
