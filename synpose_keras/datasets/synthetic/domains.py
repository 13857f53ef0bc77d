"""Source ("synthetic") vs target ("real") appearance: colours, light, backgrounds, camera effects.

Source domain: one canonical appearance (fixed skin, clothes and hair colours), a fixed light
relative to the camera, plain or two-colour gradient backgrounds, no blur, no noise, no occluder.

Target domain, per sequence (one subject, fixed for all its frames and views): a skin tone
between light and dark, random clothes and hair colours, a light with random direction (fixed in
the world, so every view is lit consistently), random strength and colour temperature; per view
(camera): a textured, cluttered background (fractal colour noise, stripes or tiles, shapes and
skin-coloured distractor limbs), white balance and gamma, Gaussian blur and Gaussian sensor
noise (fresh noise every frame); per sequence with probability ``OCCLUDER_PROBABILITY`` a static
3D occluder placed between the subject and one of the cameras.

The numbers are the module constants below; ``datasets/synthetic.md`` lists them.
"""

from __future__ import annotations

import colorsys
import dataclasses

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from synpose_keras.datasets.synthetic.posed_skeleton import MATERIALS

# ---- source (canonical) appearance --------------------------------------------------------------
SOURCE_COLOURS = {
    "skin": (0.85, 0.64, 0.52),
    "palm": (0.92, 0.73, 0.64),
    "nail": (0.93, 0.75, 0.69),
    "shirt": (0.20, 0.42, 0.75),
    "trousers": (0.30, 0.30, 0.36),
    "shoes": (0.12, 0.12, 0.14),
    "hair": (0.22, 0.15, 0.10),
    "occluder": (0.50, 0.50, 0.50),
}
SOURCE_LIGHT = {"direction": (-0.35, -0.55, -0.76), "ambient": 0.45, "diffuse": 0.65, "specular": 0.08}
SOURCE_BACKGROUND_SATURATION = (0.0, 0.35)
SOURCE_BACKGROUND_VALUE = (0.30, 0.95)
SOURCE_TEXTURE_PROBABILITY = 0.5

# ---- target appearance ranges ----------------------------------------------------------------------
SKIN_TONES = ((0.96, 0.80, 0.69), (0.80, 0.58, 0.44), (0.55, 0.37, 0.26), (0.32, 0.21, 0.15))
HAIR_COLOURS = ((0.05, 0.04, 0.04), (0.20, 0.12, 0.07), (0.40, 0.26, 0.14), (0.80, 0.66, 0.40),
                (0.60, 0.60, 0.60), (0.55, 0.22, 0.10))
TARGET_AMBIENT = (0.25, 0.55)
TARGET_DIFFUSE = (0.50, 1.00)
TARGET_SPECULAR = (0.0, 0.20)
TARGET_EXPOSURE = (0.90, 1.30)
WHITE_BALANCE = (0.80, 1.20)       # per-channel gain, per view (benchmark v4; v3: 0.88-1.12)
GAMMA = (0.70, 1.40)               # per view (benchmark v4; v3: 0.80-1.25)
BLUR_SIGMA = (0.2, 0.9)            # Gaussian blur, pixels of the 128-px image, per view
NOISE_SIGMA = (1.0, 5.0)           # Gaussian sensor noise, in 0..255 units, per view, fresh per frame
LIGHT_SPREAD = 0.9                 # light direction = towards the cameras + 0.9 x a random unit vector
OCCLUDER_PROBABILITY = 0.3
OCCLUDER_RADIUS = (0.10, 0.20)    # fraction of the subject's extent
CLUTTER_SHAPES = (2, 8)            # number of clutter shapes per background
DISTRACTOR_PROBABILITY = 0.3       # a background gets 1-3 skin-coloured limb-like distractors


@dataclasses.dataclass
class Appearance:
    """How a subject and its images look.

    Args:
        colours: (M, 3) float RGB in [0, 1], one per material of ``posed_skeleton.MATERIALS``.
        light_direction: (3,) direction towards the light: in the *camera* frame when
            ``light_in_camera`` (source), else in the world frame (target).
        light_in_camera: bool.
        ambient, diffuse, specular: float. Shading weights.
        light_rgb: (3,) light colour x exposure.
        white_balance: (V, 3) per-view channel gains.
        gamma: (V,) per-view gamma (applied as x ** gamma).
        blur_sigma: (V,) per-view Gaussian blur sigma in pixels (scaled with the image size).
        noise_sigma: (V,) per-view sensor noise sigma in 0..255 units.
    """

    colours: np.ndarray
    light_direction: np.ndarray
    light_in_camera: bool
    ambient: float
    diffuse: float
    specular: float
    light_rgb: np.ndarray
    white_balance: np.ndarray
    gamma: np.ndarray
    blur_sigma: np.ndarray
    noise_sigma: np.ndarray

    @classmethod
    def source(cls) -> "Appearance":
        """The one canonical appearance of the source domain."""
        return cls(
            colours=np.array([SOURCE_COLOURS[m] for m in MATERIALS], np.float32),
            light_direction=np.array(SOURCE_LIGHT["direction"]),
            light_in_camera=True,
            ambient=SOURCE_LIGHT["ambient"], diffuse=SOURCE_LIGHT["diffuse"],
            specular=SOURCE_LIGHT["specular"],
            light_rgb=np.ones(3, np.float32),
            white_balance=np.ones((1, 3), np.float32), gamma=np.ones(1), blur_sigma=np.zeros(1),
            noise_sigma=np.zeros(1),
        )

    @classmethod
    def sample_target(cls, rng: np.random.Generator, num_views: int, upper_light: bool,
                      towards=None) -> "Appearance":
        """A random target appearance for one sequence seen by ``num_views`` cameras.

        Args:
            rng: np.random.Generator.
            num_views: int. Number of cameras (per-view effects).
            upper_light: bool. Light from the upper hemisphere (world +y), for bodies.
            towards: optional (3,) unit world direction from the subject towards the cameras; the
                light direction is drawn around it (``LIGHT_SPREAD``), as lights usually stand on
                the camera's side. Defaults to a uniformly random direction.
        """
        t = rng.uniform(0.0, len(SKIN_TONES) - 1)
        i = min(int(t), len(SKIN_TONES) - 2)
        skin = np.array(SKIN_TONES[i]) * (1 - (t - i)) + np.array(SKIN_TONES[i + 1]) * (t - i)
        skin = np.clip(skin * (1.0 + rng.normal(0, 0.04, 3)), 0, 1)
        colours = {
            "skin": skin,
            "palm": 0.7 * skin + 0.3 * np.array([1.0, 0.85, 0.80]),
            "nail": 0.75 * skin + 0.25 * np.array([0.95, 0.85, 0.85]),
            "shirt": _hsv(rng.random(), rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.95)),
            "trousers": _hsv(rng.random(), rng.uniform(0.05, 0.7), rng.uniform(0.1, 0.8)),
            "shoes": _hsv(rng.random(), rng.uniform(0.0, 0.5), rng.uniform(0.05, 0.4)),
            "hair": np.clip(np.array(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))]) + rng.normal(0, 0.03, 3), 0, 1),
            "occluder": _hsv(rng.random(), rng.uniform(0.0, 0.9), rng.uniform(0.1, 0.95)),
        }
        light = rng.standard_normal(3)
        light = light / np.linalg.norm(light)
        if towards is not None:
            light = np.asarray(towards, np.float64) + LIGHT_SPREAD * light
        if upper_light:
            light[1] = abs(light[1]) + 0.3
        warm = rng.uniform(-1.0, 1.0)  # colour temperature: -1 cool .. +1 warm
        light_rgb = np.array([1.0 + 0.1 * warm, 1.0, 1.0 - 0.15 * warm]) * rng.uniform(*TARGET_EXPOSURE)
        return cls(
            colours=np.array([colours[m] for m in MATERIALS], np.float32),
            light_direction=light / np.linalg.norm(light),
            light_in_camera=False,
            ambient=float(rng.uniform(*TARGET_AMBIENT)), diffuse=float(rng.uniform(*TARGET_DIFFUSE)),
            specular=float(rng.uniform(*TARGET_SPECULAR)),
            light_rgb=light_rgb.astype(np.float32),
            white_balance=rng.uniform(*WHITE_BALANCE, size=(num_views, 3)).astype(np.float32),
            gamma=rng.uniform(*GAMMA, size=num_views),
            blur_sigma=rng.uniform(*BLUR_SIGMA, size=num_views),
            noise_sigma=rng.uniform(*NOISE_SIGMA, size=num_views),
        )


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h, s, v))


# ---- backgrounds -----------------------------------------------------------------------------------


def source_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A plain colour, a linear two-colour gradient or (with p = ``SOURCE_TEXTURE_PROBABILITY``)
    a clean texture of two low-saturation colours: (H, W, 3) float32.

    Synthetic training sets put their renderings on varied backgrounds (RHD on random images), so
    the source model learns to ignore texture; the target's clutter (shapes, skin-coloured
    distractors), defocus and camera effects stay target-only.
    """
    c0 = _hsv(rng.random(), rng.uniform(*SOURCE_BACKGROUND_SATURATION), rng.uniform(*SOURCE_BACKGROUND_VALUE))
    if rng.random() < SOURCE_TEXTURE_PROBABILITY:
        c1 = _hsv(rng.random(), rng.uniform(*SOURCE_BACKGROUND_SATURATION),
                  rng.uniform(*SOURCE_BACKGROUND_VALUE))
        noise = _fractal_noise(rng, width, height)[..., None]
        img = c0 * (1 - noise) + c1 * noise
        if rng.random() < 0.5:  # stripes
            ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
            angle, freq = rng.uniform(0, np.pi), rng.uniform(4, 20)
            wave = np.sin(2 * np.pi * freq * (np.cos(angle) * xs + np.sin(angle) * ys))
            img = img * (1.0 + 0.2 * wave)[..., None]
        return np.clip(img, 0, 1).astype(np.float32)
    if rng.random() < 0.5:
        return np.broadcast_to(c0.astype(np.float32), (height, width, 3)).copy()
    c1 = _hsv(rng.random(), rng.uniform(*SOURCE_BACKGROUND_SATURATION), rng.uniform(*SOURCE_BACKGROUND_VALUE))
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    proj = np.cos(angle) * xs / max(width - 1, 1) + np.sin(angle) * ys / max(height - 1, 1)
    proj = (proj - proj.min()) / max(np.ptp(proj), 1e-6)
    return (c0 * (1 - proj[..., None]) + c1 * proj[..., None]).astype(np.float32)


def _fractal_noise(rng: np.random.Generator, width: int, height: int, octaves=(4, 8, 16, 32)) -> np.ndarray:
    """Sum of bicubically upsampled random grids, normalised to [0, 1]: (H, W) float32."""
    out = np.zeros((height, width), np.float32)
    for i, cells in enumerate(octaves):
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        img = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
        out += np.asarray(img, np.float32) * (0.6 ** i)
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def target_background(rng: np.random.Generator, width: int, height: int, skin: np.ndarray,
                      floor: bool) -> np.ndarray:
    """A textured, cluttered background: (H, W, 3) float32 in [0, 1].

    Args:
        rng: np.random.Generator.
        width, height: int.
        skin: (3,) the subject's skin colour, used for limb-like distractors of similar tone.
        floor: bool. Add a floor / wall boundary (for bodies).
    """
    palette = [_hsv(rng.random(), rng.uniform(0.05, 0.8), rng.uniform(0.1, 0.95)) for _ in range(3)]
    noise = _fractal_noise(rng, width, height)[..., None]
    img = np.where(noise < 0.5, palette[0] * (1 - 2 * noise) + palette[1] * 2 * noise,
                   palette[1] * (2 - 2 * noise) + palette[2] * (2 * noise - 1)).astype(np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    kind = rng.random()
    if kind < 0.4:  # stripes / planks / wallpaper
        angle = rng.uniform(0, np.pi)
        freq = rng.uniform(4, 20)
        wave = np.sin(2 * np.pi * freq * (np.cos(angle) * xs + np.sin(angle) * ys) + rng.uniform(0, 6.3))
        img *= (1.0 + rng.uniform(0.1, 0.3) * wave)[..., None]
    elif kind < 0.65:  # tiles
        cells = rng.uniform(5, 14)
        checker = ((np.floor(xs * cells) + np.floor(ys * cells)) % 2)[..., None]
        img = img * (1 - 0.25 * checker) + 0.25 * checker * _hsv(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.2, 1.0))
    if floor:
        horizon = rng.uniform(0.55, 0.85) * height
        floor_colour = _hsv(rng.random(), rng.uniform(0.0, 0.5), rng.uniform(0.15, 0.7))
        below = (np.arange(height)[:, None, None] > horizon).astype(np.float32)
        img = img * (1 - 0.6 * below) + 0.6 * below * floor_colour

    canvas = Image.fromarray(np.clip(img * 255.0, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    size = max(width, height)
    for _ in range(int(rng.integers(CLUTTER_SHAPES[0], CLUTTER_SHAPES[1] + 1))):
        colour = tuple(int(c) for c in (_hsv(rng.random(), rng.uniform(0, 1), rng.uniform(0.05, 1.0)) * 255))
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        w, h = rng.uniform(0.05, 0.45, 2) * size
        shape = rng.integers(4)
        if shape == 0:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        elif shape == 1:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        elif shape == 2:
            pts = [tuple(p) for p in (rng.uniform(-0.1, 1.1, (int(rng.integers(3, 6)), 2)) * size)]
            draw.polygon(pts, fill=colour)
        else:
            draw.line([x0, y0, x0 + w, y0 + h], fill=colour, width=int(rng.integers(1, max(2, size // 20))))
    if rng.random() < DISTRACTOR_PROBABILITY:
        for _ in range(int(rng.integers(1, 4))):
            tone = np.clip(np.asarray(skin) * rng.uniform(0.7, 1.2) + rng.normal(0, 0.05, 3), 0, 1)
            colour = tuple(int(c) for c in tone * 255)
            p0 = rng.uniform(0, 1, 2) * size
            p1 = p0 + rng.uniform(-0.35, 0.35, 2) * size
            w = int(rng.uniform(0.03, 0.09) * size)
            draw.line([tuple(p0), tuple(p1)], fill=colour, width=max(w, 1))
            for p in (p0, p1):
                draw.ellipse([p[0] - w / 2, p[1] - w / 2, p[0] + w / 2, p[1] + w / 2], fill=colour)
    out = np.asarray(canvas, np.float32) / 255.0
    sigma = rng.uniform(0.0, 1.0) * size / 128.0  # background slightly out of focus
    if sigma > 0.2:
        out = ndimage.gaussian_filter(out, sigma=(sigma, sigma, 0))
    return out.astype(np.float32)


# ---- camera effects and quantisation -------------------------------------------------------------------


def finish_target(image: np.ndarray, appearance: Appearance, view: int, rng: np.random.Generator) -> np.ndarray:
    """White balance, gamma, blur and sensor noise of view ``view``, then uint8 (H, W, 3)."""
    size = max(image.shape[:2])
    img = np.clip(image * appearance.white_balance[view], 0.0, 1.0) ** appearance.gamma[view]
    sigma = appearance.blur_sigma[view] * size / 128.0
    img = ndimage.gaussian_filter(img, sigma=(sigma, sigma, 0))
    img = img * 255.0 + rng.normal(0.0, appearance.noise_sigma[view], img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def finish_source(image: np.ndarray) -> np.ndarray:
    """Quantisation only: (H, W, 3) uint8."""
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
