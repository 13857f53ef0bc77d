"""The pipelines' OpenCV kernels: numpy arrays in, numpy arrays out.

The tf.data pipelines run these through ``tf.numpy_function`` when the warp backend is
``"opencv"`` (the default; :func:`~synpose_keras.datasets.pipeline.transforms.set_warp_backend`).
Each one computes what a TensorFlow formulation in ``transforms`` computes, on the same
coordinates, so the two backends agree (tested):

- :func:`decode`: PNG/JPEG bytes -> uint8 RGB, like ``schema.decode_image`` (JPEG with the
  accurate integer IDCT, EXIF orientation ignored);
- :func:`adjust_color`: ``transforms.adjust_color`` (one colour matrix and offset);
- :func:`resize_antialias`: ``tf.image.resize(..., "bilinear", antialias=True)`` — TensorFlow's
  ``ScaleAndTranslate`` triangle filter, same spans and normalised weights;
- :func:`warp`: ``ImageProjectiveTransformV3`` (bilinear, zero outside, output pixel -> input
  point, pixel centres at integers);
- :func:`decode_warp_batch`: ``batch_transforms.decode_warp`` for a whole batch in one call.

OpenCV runs on one thread here (``cv2.setNumThreads(1)``): tf.data already runs one call per
core, and OpenCV, numpy's copies and ``einsum`` release the GIL while they work.

**Interpreter exit.** A ``tf.numpy_function`` needs the GIL. When Python exits while a
pipeline's iterator is still alive, the iterator is destroyed during interpreter finalization,
when tf.data's worker threads can no longer take the GIL: Python 3.11 ends such a thread on the
spot, and the process then hangs or aborts ("terminate called without an active exception").
Measured: 3 of 6 runs of "build a pipeline, take 3 batches, exit" (benchmarks/README.md,
"One OpenCV call per batch, and processes that hang at exit").
The first use of these kernels registers :func:`release_live_iterators` with ``atexit``, which
runs before finalization and frees every live ``tf.data`` iterator while its threads can still
finish their calls.

Shape glossary:
    B: batch. H, W: stored image. h, w: a slice of it. S: output size (square).
"""

from __future__ import annotations

import atexit
import functools
import gc
import threading

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: ``tf.image.rgb_to_grayscale``'s weights (the colour jitter's grey level).
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)

_CV2 = []
_LOCK = threading.Lock()


def cv2_module():
    """OpenCV, imported and set to one thread once (under a lock: tf.data calls in parallel).

    The first call also registers :func:`release_live_iterators` to run at interpreter exit.
    """
    if not _CV2:
        with _LOCK:
            if not _CV2:
                try:
                    import cv2
                except ImportError as err:  # pragma: no cover - a dependency of the package
                    raise ImportError(
                        "The 'opencv' warp backend needs OpenCV (pip install "
                        "opencv-python-headless), or choose TensorFlow's kernel: "
                        "synpose_keras.datasets.pipeline.transforms.set_warp_backend"
                        "('tensorflow')") from err
                cv2.setNumThreads(1)
                atexit.register(release_live_iterators)
                _CV2.append(cv2)
    return _CV2[0]


def release_live_iterators() -> int:
    """Frees every live ``tf.data`` iterator's resource; returns how many.

    Registered with ``atexit`` by :func:`cv2_module` (see the module docstring): at that point
    the interpreter is not yet finalizing, so an iterator's worker threads can still take the GIL
    to finish the ``tf.numpy_function`` calls they have started, and the iterator shuts down
    cleanly. Iterators freed here cannot be used again; it is meant for interpreter exit only.
    """
    try:
        from tensorflow.python.data.ops import iterator_ops
    except Exception:  # pragma: no cover - TensorFlow is a dependency; nothing to release
        return 0
    released = 0
    for obj in gc.get_objects():
        if isinstance(obj, iterator_ops.OwnedIterator):
            if getattr(obj, "_iterator_resource", None) is not None:
                obj._iterator_resource = None  # the last reference: the resource is destroyed
                released += 1
    gc.collect()
    return released


# ------------------------------------------------------------------------------ decode
def decode(encoded, name: str = "") -> np.ndarray:
    """PNG/JPEG (or any format OpenCV or PIL reads) bytes -> uint8 (H, W, 3) RGB.

    Same pixels as ``schema.decode_image``: JPEG with the accurate integer IDCT (libjpeg's
    ``JDCT_ISLOW``, as PIL), EXIF orientation ignored, grey images repeated to three channels,
    alpha dropped.

    Args:
        encoded: bytes or uint8 numpy array. The encoded image.
        name: str. Names the record in the error message.

    Raises:
        ValueError: the bytes are not an image OpenCV or PIL can decode.
    """
    cv2 = cv2_module()
    buf = np.frombuffer(encoded, np.uint8) if not isinstance(encoded, np.ndarray) else encoded
    image = None
    if buf.size:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:  # formats OpenCV does not read (e.g. GIF): PIL
        import io

        from PIL import Image

        try:
            with Image.open(io.BytesIO(buf.tobytes())) as im:
                image = np.asarray(im.convert("RGB"))
        except Exception as err:
            raise ValueError(f"Could not decode the image{' of ' + name if name else ''}: "
                             f"{buf.size} bytes starting {buf[:8].tobytes()!r}; expected PNG or "
                             "JPEG bytes (re-run `synpose convert` for this dataset)") from err
    return image


# ------------------------------------------------------------------------------ colour
def adjust_color(image: np.ndarray, color) -> np.ndarray:
    """``transforms.adjust_color`` on a float32 (h, w, 3) image: brightness, contrast and
    saturation factors ``color (3,)`` as one colour matrix and offset, clipped to [0, 255]."""
    cv2 = cv2_module()
    b, c, s = (float(v) for v in color)
    w = np.asarray(GREY_WEIGHTS, np.float64)
    mu = float(np.dot(cv2.mean(image)[:3], w))
    matrix = s * c * b * np.eye(3) + (1.0 - s) * c * b * w[:, None] * np.ones((1, 3))
    offset = (1.0 - c) * b * mu * (s + (1.0 - s) * w.sum())
    # cv2.transform: out_i = sum_j m[i, j] in_j + m[i, 3]; adjust_color: out = in @ matrix + t
    m = np.concatenate([matrix.T, np.full((3, 1), offset)], axis=1)
    out = cv2.transform(image, m)
    return np.clip(out, 0.0, 255.0, out=out)


# ------------------------------------------------------------------------------ resize
@functools.lru_cache(maxsize=512)
def _triangle_spans(in_size: int, out_size: int):
    """TensorFlow's ``ScaleAndTranslate`` spans for the antialiased triangle kernel.

    Returns ``(start (out,), weights (out, span))``, read-only (cached: the same sizes recur):
    output index ``o`` is ``sum_k weights[o, k] * input[start[o] + k]`` (the taps of one output
    are contiguous). Float32 throughout, as the kernel computes them.
    """
    f32 = np.float32
    scale = f32(out_size) / f32(in_size)
    inv_scale = f32(1.0) / scale
    kernel_scale = max(inv_scale, f32(1.0))
    span = min(2 * int(np.ceil(kernel_scale)) + 1, in_size)
    sample = (np.arange(out_size, dtype=f32) + f32(0.5)) * inv_scale
    first = np.clip(np.ceil(sample - kernel_scale - f32(0.5)), 0, in_size - 1).astype(np.int64)
    end = np.clip(np.floor(sample + kernel_scale - f32(0.5)), 0, in_size - 1).astype(np.int64) + 1
    # place every output's window inside the input; taps outside [first, end) weigh 0
    start = np.minimum(first, in_size - span)
    src = start[:, None] + np.arange(span)[None]
    inside = (src >= first[:, None]) & (src < end[:, None])
    pos = (src.astype(f32) + f32(0.5) - sample[:, None]) / kernel_scale
    weights = np.where(inside, np.maximum(f32(0.0), f32(1.0) - np.abs(pos)), f32(0.0))
    total = weights.sum(1, keepdims=True, dtype=f32)
    ok = np.abs(total) >= f32(1000.0) * np.finfo(f32).tiny
    weights = np.where(ok, weights / np.where(ok, total, f32(1.0)), weights).astype(f32)
    start.setflags(write=False)
    weights.setflags(write=False)
    return start, weights


def _resample_rows(image2d: np.ndarray, start: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rows of ``(n, m)`` -> ``(out, m)``: ``out[o] = sum_k weights[o, k] image2d[start[o] + k]``.

    A stacked matrix-vector product over the gathered windows: 20% faster than ``np.einsum``
    here, and unaffected by numpy's BLAS threads (``einsum`` was slower with them).
    """
    windows = sliding_window_view(image2d, weights.shape[1], axis=0)  # (n - span + 1, m, span)
    return np.matmul(windows[start], weights[:, :, None])[..., 0]


def resize_antialias(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``tf.image.resize(image, (height, width), "bilinear", antialias=True)`` in numpy.

    TensorFlow's triangle filter (its half-width scaled by the downscale factor, half-pixel
    centres, weights normalised per output pixel), applied separably to a float32 (h, w, C)
    image; equal to TensorFlow's within float round-off (1e-4 of 255, tested).
    """
    h, w, c = image.shape
    start_y, weights_y = _triangle_spans(h, int(height))
    start_x, weights_x = _triangle_spans(w, int(width))
    rows = _resample_rows(image.reshape(h, w * c), start_y, weights_y)  # (height, w * c)
    cols = np.ascontiguousarray(rows.reshape(height, w, c).transpose(1, 0, 2))
    out = _resample_rows(cols.reshape(w, height * c), start_x, weights_x)  # (width, height * c)
    return np.ascontiguousarray(out.reshape(width, height, c).transpose(1, 0, 2))


# ------------------------------------------------------------------------------ warp
def warp(image: np.ndarray, params, size: int, color=None, out: np.ndarray | None = None):
    """Bilinear warp of a float32 (h, w, C) image into (S, S, C), zero outside.

    Args:
        image: (h, w, C) array (cast to float32).
        params: (8,) ``ImageProjectiveTransformV3`` parameters (output pixel -> input point).
        size: int. S.
        color: optional (3,) factors: :func:`adjust_color` on ``image`` first (C = 3).
        out: optional float32 (S, S, C) array to write into.

    Returns:
        float32 (S, S, C), not clipped.
    """
    cv2 = cv2_module()
    p = np.asarray(params, np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    image = np.ascontiguousarray(image, np.float32)
    if color is not None:
        image = adjust_color(image, color)
    size = int(size)
    channels = image.shape[-1] if image.ndim == 3 else 1
    if p[6] == 0.0 and p[7] == 0.0:
        result = cv2.warpAffine(image, p[:6].reshape(2, 3), (size, size), dst=out, flags=flags,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    else:
        matrix = np.append(p, 1.0).reshape(3, 3)
        result = cv2.warpPerspective(image, matrix, (size, size), dst=out, flags=flags,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    if out is None:
        return result.reshape(size, size, channels)
    if not np.may_share_memory(result, out):  # OpenCV wrote elsewhere (shape or type mismatch)
        out[...] = result.reshape(out.shape)
    return out


def decode_warp_batch(encoded, y0, y1, x0, x1, shrink, nh, nw, params, size: int, color=None,
                      names=None) -> np.ndarray:
    """``batch_transforms.decode_warp`` for a batch: decode, slice, colour, shrink, warp.

    Per image: decode, slice ``[y0:y1, x0:x1]``, then either colour jitter, antialiased shrink
    to ``(nh, nw)`` and the warp (``shrink``), or colour jitter and warp in one call.

    Args:
        encoded: (B,) encoded images (bytes). y0, y1, x0, x1: (B,) ints, the slices.
        shrink: (B,) bool. nh, nw: (B,) ints, the shrunk sizes. params: (B, 8) warp parameters
            for the (shrunk) slice. size: int. S. color: optional (B, 3) colour factors.
        names: optional (B,) record names for error messages.

    Returns:
        float32 (B, S, S, 3) in [0, 255].
    """
    size = int(size)
    batch = len(encoded)
    out = np.empty((batch, size, size, 3), np.float32)
    for i in range(batch):
        name = names[i].decode("utf-8", "replace") if names is not None else ""
        image = decode(encoded[i], name)
        image = image[int(y0[i]):int(y1[i]), int(x0[i]):int(x1[i])].astype(np.float32)
        col = None if color is None else color[i]
        if shrink[i]:
            if col is not None:
                image = adjust_color(image, col)
                col = None
            image = resize_antialias(image, int(nh[i]), int(nw[i]))
        warp(image, params[i], size, col, out=out[i])
    return np.clip(out, 0.0, 255.0, out=out)
