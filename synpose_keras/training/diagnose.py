"""Can the reconstruction loss correct keypoints? Diagnostics of a run's reconstruction path.

The paper trains the pose predictor with a reconstruction loss whose only route to the predictor
is the keypoints: predicted keypoints on a base and a driving frame drive the warping module W
and the generator G, and the loss against the real driving frame flows back into the keypoints.
:func:`diagnose_run` measures, on a run folder written by ``synpose train``:

1. **Keypoint correction** (:func:`keypoint_correction`, the mechanism isolated). On held-out
   target pairs with stored labels and the run's frozen W and G (inference mode), the keypoints
   are set to the labels plus a random offset of ``r`` input pixels per keypoint (uniform
   direction), then ``S`` Adam steps on the reconstruction loss move the **driving** keypoints
   only. Three cases:

   - ``independent``: base and driving get different offsets (the predictor's errors on two
     frames). The measured case of the gates.
   - ``shared``: the same offset on both frames (the control: the loss only sees the motion
     ``driving - base``, which a shared error leaves right, so the error should not fall).
   - ``base_exact``: base keypoints on the labels, driving offset (the cleanest form: the loss's
     optimum is then the true driving keypoint).

   W moves each keypoint's region by ``base_k - driving_k`` (zero-order motion, FOMM), so for a
   driving-only optimisation the loss is lowest at the **consistent** point
   ``truth_driving + (base_k - truth_base)``, not at the truth itself. For ``independent`` an
   ideal warper therefore gives a mean cosine of ``2/pi ~ 0.64`` toward the truth (the angle
   between ``-o_d`` and ``o_b - o_d`` for two offsets of equal length) and no reduction of the
   error to the truth on average; the distance to the consistent point is reported beside it
   (``consistent_error_*``) and is the one an ideal warper drives to zero. ``base_exact`` is where
   the error to the truth can fall. Gates (printed, never enforced): ``cos_to_truth >= 0.3`` and
   the error reduced by ``>= 25%``.

2. **lambda_rec from the gradients at the keypoints** (:func:`lambda_rec_from_gradients`). With
   the pre-trained predictor (inference mode) on held-out pairs: ``g_rec``, the mean norm of
   ``dL_rec / dkp`` per keypoint instance (keypoints of the predictor's differentiable readout,
   ``PosePredictor.soft_keypoints``, in input pixels), and ``g_pl``, the same for a pseudo-label
   heatmap MSE (``masked_heatmap_mse``) toward sigma-2 Gaussians at the predicted argmax moved by
   one heatmap pixel (a random axis direction per keypoint). A heatmap loss has no keypoint
   argument, so its pull on keypoint ``k`` is taken as the derivative with respect to a rigid
   translation ``delta`` of the predicted map ``k``: ``dL_pl/d delta = -sum_z dL_pl/dH_k(z)
   * grad H_k(z)`` (central differences), divided by the stride (per input pixel). A translation
   of a map moves its soft-argmax keypoint by the same amount, so the two numbers are in the same
   units. Per instance means: ``g_rec = N_pairs * |dL_rec/dkp|`` (L_rec is a mean over pairs) and
   ``g_pl = N_inst * |dL_pl/d delta|`` (L_pl a mean over instances). In stage ``adapt`` one
   keypoint instance receives ``lambda_rec * g_rec / B`` from L_rec (a mean over the B pairs) and
   ``lambda_pl * g_pl / (f * B * K)`` from L_2D (a mean over the ``f * B * K`` instances that
   ``M_2D`` keeps; ``f = adapt.mask_fraction``, K keypoints), so they are equal for::

       lambda_rec = lambda_pl * g_pl / (f * K * g_rec)

   reported beside the run's ``adapt.lambda_rec`` (L_3D, when used, adds a second term of the
   same kind). W and G run in inference mode here (BatchNorm moving statistics; stage ``adapt``
   runs them in training mode).

3. **The run's own gates**: the readout gate (:func:`readout_gate`: median |local soft-argmax -
   argmax| <= 0.3 heatmap px on up to 300 target test images; the measurement of
   ``examples/readout_gate.py``), and summaries of ``generator/pairs.json`` and
   ``generator/reconstruction_check.json``.

4. **What the loss can see** (:func:`error_split`). The loss sees the keypoints only through the
   motion ``driving - base``. With the pre-trained predictor's differentiable keypoints on up to
   128 held-out labelled pairs, each keypoint's error on the two frames (``e_b``, ``e_d``) is
   split into the part both frames share, ``(e_b + e_d) / 2``, which leaves the motion right
   and is invisible to the loss, and the part that differs, ``(e_d - e_b) / 2``, which the loss
   can correct. ``shared_energy_fraction`` (the shared part's share of the summed squared error)
   near 1 means the reconstruction loss cannot correct most of what PCK counts, however well W
   and G work.

A missing file or dataset skips the items that need it, with the reason and what to run
(``status: "skipped"``); a folder without ``config.json`` raises :class:`DiagnoseError`. The
result goes to ``RUN/diagnose.json``, or only to ``json_path`` when one is given (the run folder is
then left untouched).

Example:

```python
from synpose_keras.training.diagnose import diagnose_run
result = diagnose_run("runs/demo-hand", pairs=16, steps=40, json_path="diagnose-demo.json")
result["keypoint_correction"]["rows"][0]["cos_to_truth"]
```

Reference:
    Lin et al., "Synthetic-to-Real Pose Estimation with Geometric Reconstruction", NeurIPS 2023,
    §3.2 (the reconstruction loss trains the predictor through the keypoints); Siarohin et al.,
    "First Order Motion Model for Image Animation", NeurIPS 2019 (the zero-order motion of W).
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Optional

import numpy as np

__all__ = [
    "DiagnoseError",
    "correction_experiment",
    "diagnose_run",
    "error_split",
    "format_report",
    "keypoint_correction",
    "lambda_rec_from_gradients",
    "readout_gate",
]

#: Offsets (input pixels) of the keypoint-correction experiment.
OFFSETS_PX = (4.0, 8.0)
#: Cases of the experiment, in table order.
CASES = ("independent", "shared", "base_exact")
#: Adam steps on the driving keypoints, and the step size: Adam moves a coordinate by about
#: ``lr`` per step whatever the gradient's scale, so 0.5 px and 40 steps reach 20 px (2.5 x the
#: largest offset) and settle within about half a pixel.
STEPS = 40
LR_PX = 0.5
#: Held-out pairs used by the keypoint correction and the lambda_rec calibration.
NUM_PAIRS = 16
#: Held-out pairs of the error split (what the loss can see).
ERROR_SPLIT_PAIRS = 128
#: Gates of the keypoint correction (printed, never enforced).
GATE_COS = 0.3
GATE_REDUCTION = 0.25
#: The readout gate (examples/readout_gate.py): median |local - argmax| in heatmap pixels.
READOUT_GATE_PX = 0.3
READOUT_LIMIT = 300
#: The pseudo-label error of the lambda_rec calibration, in heatmap pixels.
PL_SHIFT_HM_PX = 1
_ADAM = (0.9, 0.999, 1e-8)
#: Steps at which the error to the truth is recorded (``error_path``), besides the last.
_PATH_STEPS = (1, 5, 10, 20)


class DiagnoseError(ValueError):
    """The folder cannot be diagnosed (not a run folder, unreadable config)."""


# ---------------------------------------------------------------------------------------------
# 1. keypoint correction
# ---------------------------------------------------------------------------------------------
def _offsets(rng, shape, radius):
    angle = rng.uniform(0.0, 2.0 * math.pi, size=shape)
    return (radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)).astype(np.float32)


def _cosine(a, b):
    """Row-wise cosine of (n, 2) vectors; 0 where either has no length."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    ok = (na > 0) & (nb > 0)
    out = np.zeros(len(a), np.float64)
    out[ok] = (a[ok] * b[ok]).sum(-1) / (na[ok] * nb[ok])
    return out, ok


def _traced_step(reconstruct_fn, loss_fn):
    """The loss and its gradient in ``kp_driving`` as one traced function."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(base01, target01, kp_base, kp_driving):
        with tf.GradientTape() as tape:
            tape.watch(kp_driving)
            loss = loss_fn(target01, reconstruct_fn(base01, kp_base, kp_driving))
        grad = tape.gradient(loss, kp_driving)
        return loss, tf.zeros_like(kp_driving) if grad is None else grad

    return step


def _value_and_grad(step, base01, target01, kp_base):
    import tensorflow as tf

    base01, target01, kp_base = (tf.convert_to_tensor(x, tf.float32)
                                 for x in (base01, target01, kp_base))

    def call(kp_driving):
        loss, grad = step(base01, target01, kp_base, tf.convert_to_tensor(kp_driving, tf.float32))
        return float(loss), np.asarray(grad)

    return call


def keypoint_correction(reconstruct_fn: Callable, loss_fn: Callable, base_images, driving_images,
                        kp_base, kp_driving, measured=None, offset_px: float = 4.0,
                        case: str = "independent", steps: int = STEPS, lr: float = LR_PX,
                        seed: int = 0, step: Optional[Callable] = None) -> dict:
    """One case of the keypoint-correction experiment (see the module docstring).

    Shapes: B pairs, S image side, K keypoints.

    Args:
        reconstruct_fn: callable ``(base_images, kp_base, kp_driving) -> images``: base images
            (B, S, S, 3) in [0, 1] and keypoints (B, K, 2) in input pixels -> the predicted
            driving images (B, S, S, 3) in [0, 1]; differentiable in ``kp_driving`` (TensorFlow).
        loss_fn: callable ``(target, generated) -> scalar``, a mean over the pairs.
        base_images: (B, S, S, 3) in [0, 1].
        driving_images: (B, S, S, 3) in [0, 1].
        kp_base: (B, K, 2). True base keypoints, input pixels.
        kp_driving: (B, K, 2). True driving keypoints, input pixels.
        measured: optional (B, K) bool. The keypoints measured (labelled on both frames);
            defaults to all. Every keypoint is offset and optimised.
        offset_px: float. Length of each random offset, input pixels. Defaults to 4.
        case: str. "independent" (different offsets on base and driving), "shared" (the same
            offset on both) or "base_exact" (no offset on base). Defaults to "independent".
        steps: int. Adam steps on the driving keypoints. Defaults to ``STEPS`` (40).
        lr: float. Adam step size, input pixels. Defaults to ``LR_PX`` (0.5).
        seed: int. Seed of the offsets. Defaults to 0.
        step: optional callable. The traced loss-and-gradient of ``reconstruct_fn`` and
            ``loss_fn`` (shared by the cases of :func:`correction_experiment`, so that W and G
            are traced once); built when None.

    Returns:
        dict: ``case``, ``offset_px``, ``keypoints`` (measured), ``cos_to_truth`` (mean over the
        measured keypoints of the cosine between ``-grad`` at the start and ``truth - kp``; 0 for
        a zero gradient), ``positive_fraction`` (of those cosines > 0), ``zero_gradient_fraction``,
        ``gradient_norm`` (mean ``|grad|`` at the start, loss per input px: at an optimum, as in
        ``shared`` with an ideal warper, the cosine is that of rounding noise),
        ``error_before`` / ``error_after`` (mean distance of the driving keypoints to the truth,
        input px), ``reduction`` (``1 - after / before``), ``consistent_error_before`` /
        ``consistent_error_after`` (to ``truth_driving + base offset``, the loss's optimum under
        zero-order motion), ``cos_to_consistent`` (None when the start is that point),
        ``loss_before`` / ``loss_after``.
    """
    if case not in CASES:
        raise ValueError(f"case must be one of {list(CASES)}. Received: case={case!r}")
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1. Received: steps={steps!r}")
    kp_base = np.asarray(kp_base, np.float32)
    kp_driving = np.asarray(kp_driving, np.float32)
    measured = (np.ones(kp_base.shape[:2], bool) if measured is None
                else np.asarray(measured).astype(bool))
    rng = np.random.default_rng(seed)
    offset_driving = _offsets(rng, kp_base.shape[:2], offset_px)
    offset_base = {"independent": _offsets(rng, kp_base.shape[:2], offset_px),
                   "shared": offset_driving,
                   "base_exact": np.zeros_like(offset_driving)}[case]
    start_base = kp_base + offset_base
    consistent = kp_driving + offset_base
    x = kp_driving + offset_driving
    if step is None:
        step = _traced_step(reconstruct_fn, loss_fn)
    call = _value_and_grad(step, np.asarray(base_images, np.float32),
                           np.asarray(driving_images, np.float32), start_base)

    b1, b2, eps = _ADAM
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    sel = measured
    loss_before, grad0 = call(x)
    grad = grad0
    path = {}
    for t in range(1, int(steps) + 1):
        if t > 1:
            _, grad = call(x)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        x = x - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        path[t] = float(np.linalg.norm(x - kp_driving, axis=-1)[sel].mean())
    loss_after, _ = call(x)
    best = min(path, key=path.get)

    start = kp_driving + offset_driving
    cos, nonzero = _cosine(-grad0[sel], (kp_driving - start)[sel])
    to_consistent = (consistent - start)[sel]
    cos_c, ok_c = _cosine(-grad0[sel], to_consistent)
    ok_c &= np.linalg.norm(to_consistent, axis=-1) > 1e-6
    before = float(np.linalg.norm(start - kp_driving, axis=-1)[sel].mean())
    after = float(np.linalg.norm(x - kp_driving, axis=-1)[sel].mean())
    return {
        "case": case,
        "offset_px": float(offset_px),
        "keypoints": int(sel.sum()),
        "cos_to_truth": float(cos.mean()),
        "positive_fraction": float((cos > 0).mean()),
        "zero_gradient_fraction": float(1.0 - nonzero.mean()),
        "gradient_norm": float(np.linalg.norm(grad0[sel], axis=-1).mean()),
        "error_before": before,
        "error_after": after,
        "reduction": 1.0 - after / before if before > 0 else 0.0,
        "error_path": {str(t): path[t] for t in sorted(path) if t in _PATH_STEPS or t == steps},
        "min_error": path[best],
        "min_error_step": int(best),
        "consistent_error_before": float(np.linalg.norm(start - consistent, axis=-1)[sel].mean()),
        "consistent_error_after": float(np.linalg.norm(x - consistent, axis=-1)[sel].mean()),
        "cos_to_consistent": float(cos_c[ok_c].mean()) if ok_c.any() else None,
        "loss_before": loss_before,
        "loss_after": loss_after,
    }


def correction_experiment(reconstruct_fn, loss_fn, base_images, driving_images, kp_base,
                          kp_driving, measured=None, offsets=OFFSETS_PX, steps: int = STEPS,
                          lr: float = LR_PX, seed: int = 0) -> dict:
    """:func:`keypoint_correction` for every case of ``CASES`` and every offset, with the gates.

    Returns:
        dict: ``rows`` (one :func:`keypoint_correction` result per case and offset), ``steps``,
        ``lr_px``, ``loss_at_labels`` (the loss with both keypoint sets on the labels: what the
        rows' ``loss_before`` is to be compared with), ``gate`` (``cos``, ``reduction`` thresholds and, per offset, whether the
        ``independent`` case meets each: ``independent_<r>px``: {``cos``, ``reduction``,
        ``holds``}; the ``shared`` control passes when its error falls by less than the
        reduction threshold).
    """
    rows = []
    step = _traced_step(reconstruct_fn, loss_fn)
    for offset in offsets:
        for case in CASES:
            rows.append(keypoint_correction(reconstruct_fn, loss_fn, base_images, driving_images,
                                            kp_base, kp_driving, measured, offset, case, steps,
                                            lr, seed, step=step))
    loss_at_labels, _ = _value_and_grad(step, np.asarray(base_images, np.float32),
                                        np.asarray(driving_images, np.float32),
                                        np.asarray(kp_base, np.float32))(
        np.asarray(kp_driving, np.float32))
    gate = {"cos": GATE_COS, "reduction": GATE_REDUCTION}
    for row in rows:
        key = f"{row['case']}_{row['offset_px']:g}px"
        if row["case"] == "shared":
            gate[key] = {"control_passes": bool(row["reduction"] < GATE_REDUCTION)}
        else:
            cos_ok = bool(row["cos_to_truth"] >= GATE_COS)
            red_ok = bool(row["reduction"] >= GATE_REDUCTION)
            gate[key] = {"cos": cos_ok, "reduction": red_ok, "holds": cos_ok and red_ok}
    return {"rows": rows, "steps": int(steps), "lr_px": float(lr), "gate": gate,
            "loss_at_labels": loss_at_labels}


# ---------------------------------------------------------------------------------------------
# 2. lambda_rec from the gradients at the keypoints
# ---------------------------------------------------------------------------------------------
def _spatial_gradient(heatmaps):
    """Central differences of (B, h, w, K) maps along x and y (one-sided at the border)."""
    return np.gradient(heatmaps, axis=2), np.gradient(heatmaps, axis=1)


def lambda_rec_from_gradients(predictor, reconstruct_fn, loss_fn, base, driving,
                              mask_fraction: float, lambda_pl: float = 1.0,
                              lambda_rec: Optional[float] = None, seed: int = 0) -> dict:
    """The lambda_rec that gives L_rec the pseudo-label loss's pull on a keypoint.

    See the module docstring ("lambda_rec from the gradients at the keypoints") for the
    definitions; the formula is ``lambda_rec = lambda_pl * g_pl / (mask_fraction * K * g_rec)``.

    Args:
        predictor: PosePredictor (inference mode).
        reconstruct_fn: as :func:`keypoint_correction` (keypoints in input pixels).
        loss_fn: the reconstruction loss ``(target, generated) -> scalar``.
        base: (N, S, S, 3) base images in [0, 255].
        driving: (N, S, S, 3) driving images in [0, 255].
        mask_fraction: float. ``adapt.mask_fraction`` (f).
        lambda_pl: float. ``adapt.lambda_pl``. Defaults to 1.
        lambda_rec: optional float. The run's ``adapt.lambda_rec``, recorded beside the result.
        seed: int. Seed of the pseudo-label shift directions. Defaults to 0.

    Returns:
        dict: ``pairs``, ``keypoints`` (K), ``g_rec`` / ``g_pl`` (mean per-instance norms, loss
        per input px) with their medians ``g_rec_median`` / ``g_pl_median``, ``mask_fraction``,
        ``lambda_pl``, ``lambda_rec_matched``, ``lambda_rec_configured``, ``ratio_configured``
        (configured / matched), ``pl_shift_hm_px``, ``formula``.
    """
    import tensorflow as tf

    from synpose_keras.ops.heatmaps import decode_heatmaps, encode_heatmaps
    from synpose_keras.training.losses import masked_heatmap_mse

    base = np.asarray(base, np.float32)
    driving = np.asarray(driving, np.float32)
    n, size = base.shape[0], base.shape[1]
    images = np.concatenate([base, driving], axis=0)
    heatmaps = np.asarray(predictor(images, training=False), np.float32)  # (2N, h, w, K)
    hm_size, k = heatmaps.shape[1], heatmaps.shape[-1]
    stride = size / hm_size

    # -- L_rec at the keypoints of the differentiable readout
    kp = tf.convert_to_tensor(predictor.soft_keypoints(heatmaps, (None, size, size, 3)))
    with tf.GradientTape() as tape:
        tape.watch(kp)
        loss = loss_fn(driving / 255.0, reconstruct_fn(base / 255.0, kp[:n], kp[n:]))
    grad_rec = tape.gradient(loss, kp)
    grad_rec = np.zeros(kp.shape, np.float32) if grad_rec is None else np.asarray(grad_rec)
    g_rec = n * np.linalg.norm(grad_rec, axis=-1).ravel()

    # -- L_pl: heatmap MSE toward Gaussians at the argmax moved by PL_SHIFT_HM_PX
    peaks, _ = decode_heatmaps(heatmaps)
    rng = np.random.default_rng(seed)
    axes = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], np.float32)
    shift = axes[rng.integers(0, 4, size=(2 * n, k))] * PL_SHIFT_HM_PX
    targets, weights = encode_heatmaps((np.asarray(peaks) + shift) * stride,
                                       np.ones((2 * n, k), np.float32), size, hm_size)
    h = tf.convert_to_tensor(heatmaps)
    with tf.GradientTape() as tape:
        tape.watch(h)
        loss_pl = masked_heatmap_mse(targets, h, weights)
    grad_h = np.asarray(tape.gradient(loss_pl, h))
    dx, dy = _spatial_gradient(heatmaps)
    pull = -np.stack([(grad_h * dx).sum(axis=(1, 2)), (grad_h * dy).sum(axis=(1, 2))], -1)
    pull = pull / stride  # per input pixel
    used = np.asarray(weights) > 0
    instances = float(used.sum())
    g_pl = instances * np.linalg.norm(pull, axis=-1)[used]

    g_rec_mean, g_pl_mean = float(g_rec.mean()), float(g_pl.mean()) if g_pl.size else 0.0
    matched = (float(lambda_pl) * g_pl_mean / (float(mask_fraction) * k * g_rec_mean)
               if g_rec_mean > 0 else None)
    return {
        "pairs": int(n),
        "keypoints": int(k),
        "g_rec": g_rec_mean,
        "g_rec_median": float(np.median(g_rec)),
        "g_pl": g_pl_mean,
        "g_pl_median": float(np.median(g_pl)) if g_pl.size else 0.0,
        "mask_fraction": float(mask_fraction),
        "lambda_pl": float(lambda_pl),
        "lambda_rec_matched": matched,
        "lambda_rec_configured": None if lambda_rec is None else float(lambda_rec),
        "ratio_configured": (float(lambda_rec) / matched
                             if lambda_rec is not None and matched else None),
        "pl_shift_hm_px": PL_SHIFT_HM_PX,
        "formula": "lambda_rec = lambda_pl * g_pl / (mask_fraction * K * g_rec)",
    }


# ---------------------------------------------------------------------------------------------
# 3. readout gate and the run's artefacts
# ---------------------------------------------------------------------------------------------
def _distance_summary(distance: np.ndarray, radius: float) -> dict:
    if distance.size == 0:
        return {"count": 0, "median": None, "p90": None, "mean": None, "beyond_pck_radius": None}
    return {"count": int(distance.size), "median": float(np.median(distance)),
            "p90": float(np.percentile(distance, 90)), "mean": float(distance.mean()),
            "beyond_pck_radius": float((distance > radius).mean())}


def readout_gate(predictor, target_dir: str, split: str = "test",
                 limit: Optional[int] = READOUT_LIMIT, batch_size: int = 32) -> dict:
    """Distance between the differentiable readouts and the argmax on target predictions.

    Predicts the heatmaps of ``split`` through the evaluation pipeline (the protocol crop, as
    ``synpose evaluate``) and measures, for every predicted keypoint, the distance in heatmap
    pixels between the integer argmax and ``local``
    (:func:`synpose_keras.ops.local_soft_argmax` with the model's ``soft_argmax_window`` and
    ``soft_argmax_local_beta``: the reconstruction path's readout) and ``global``
    (:func:`synpose_keras.ops.soft_argmax` over the whole map, ``soft_argmax_beta``). The gate:
    median ``|local - argmax|`` <= ``READOUT_GATE_PX`` (0.3). ``examples/readout_gate.py`` prints
    it for a run.

    Args:
        predictor: PosePredictor.
        target_dir: str. Converted dataset folder.
        split: str. Defaults to "test".
        limit: optional int. First ``limit`` images only (None: all). Defaults to
            ``READOUT_LIMIT``.
        batch_size: int. Defaults to 32.

    Returns:
        dict: ``split``, ``images``, ``heatmap_size``, ``pck_radius_px``, ``window``,
        ``local_beta``, ``global_beta``, ``peak`` ({``median``, ``p10``} of the maps' maxima),
        ``local`` / ``global`` over every keypoint and ``local_visible`` / ``global_visible``
        over the labelled visible ones (each {``count``, ``median``, ``p90``, ``mean``,
        ``beyond_pck_radius``}), ``gate_px``, ``gate_passed``.
    """
    from synpose_keras.datasets.pipeline import eval_pipeline
    from synpose_keras.models.forward import forward_function
    from synpose_keras.ops import decode_heatmaps, local_soft_argmax, soft_argmax

    hm_size = int(predictor.heatmap_size)
    window, local_beta = int(predictor.soft_argmax_window), float(predictor.soft_argmax_local_beta)
    beta = float(predictor.soft_argmax_beta)
    ds = eval_pipeline(target_dir, input_size=int(predictor.input_size), heatmap_size=hm_size,
                       batch_size=batch_size, split=split)
    if limit is not None:
        ds = ds.unbatch().take(int(limit)).batch(batch_size)
    forward = forward_function(predictor)
    local, glob, visible, peaks = [], [], [], []
    for batch in ds:
        heatmaps = np.asarray(forward(batch["image"]), "float32")
        hard, peak = decode_heatmaps(heatmaps)
        hard = np.asarray(hard)
        local_xy = np.asarray(local_soft_argmax(heatmaps, window, local_beta))
        local.append(np.linalg.norm(local_xy - hard, axis=-1))
        glob.append(np.linalg.norm(np.asarray(soft_argmax(heatmaps, beta)) - hard, axis=-1))
        visible.append(np.asarray(batch["weights"]) > 0)
        peaks.append(np.asarray(peak))
    if not local:
        raise ValueError(f"{target_dir} split {split!r} gave no image")
    local, glob = np.concatenate(local), np.concatenate(glob)
    visible, peaks = np.concatenate(visible), np.concatenate(peaks)
    radius = 0.05 * hm_size
    result = {
        "split": split, "images": int(local.shape[0]), "heatmap_size": hm_size,
        "pck_radius_px": radius, "window": window, "local_beta": local_beta, "global_beta": beta,
        "peak": {"median": float(np.median(peaks)), "p10": float(np.percentile(peaks, 10))},
        "local": _distance_summary(local.ravel(), radius),
        "global": _distance_summary(glob.ravel(), radius),
        "local_visible": _distance_summary(local[visible], radius),
        "global_visible": _distance_summary(glob[visible], radius),
        "gate_px": READOUT_GATE_PX,
    }
    result["gate_passed"] = bool(result["local"]["median"] <= READOUT_GATE_PX)
    return result


def _pair_summary(stats: dict) -> dict:
    d = stats.get("displacement_px", {})
    return {"status": "ok", "count": stats.get("count"),
            "same_view_fraction": stats.get("same_view_fraction"),
            "affine_fraction": stats.get("affine_fraction"),
            "frame_gap_max": stats.get("frame_gap_max"),
            "displacement_mean_px": d.get("mean"), "displacement_median_px": d.get("median")}


def _check_summary(check: dict) -> dict:
    return {"status": "ok", "pairs": check.get("pairs"), "split": check.get("split"),
            "output_mode": check.get("output_mode"), "loss": check.get("loss"),
            "ratio_predicted_to_copy": check.get("ratio_predicted_to_copy"),
            "gate_holds": check.get("gate", {}).get("holds")}


# ---------------------------------------------------------------------------------------------
# 4. what the loss can see
# ---------------------------------------------------------------------------------------------
def error_split(kp_base, kp_driving, true_base, true_driving, measured) -> dict:
    """The predictor's error on base/driving pairs, split into the part both frames share and
    the part that differs ("What the loss can see" in the module docstring).

    Args:
        kp_base, kp_driving: arrays (N, K, 2). Predicted keypoints, input pixels.
        true_base, true_driving: arrays (N, K, 2). Stored keypoints, input pixels.
        measured: bool array (N, K). Keypoints labelled on both frames.

    Returns:
        dict with ``keypoints`` (the count measured), ``error`` (on the driving frame),
        ``shared`` (``|(e_b + e_d) / 2|``), ``independent`` (``|(e_d - e_b) / 2|``),
        ``motion`` (the true motion ``|t_d - t_b|``) and ``motion_error``
        (``|(p_d - p_b) - (t_d - t_b)|`` = 2 × independent), each ``{"mean", "median"}`` in
        input px, and ``shared_energy_fraction`` = sum |shared|^2 / (sum |shared|^2 +
        sum |independent|^2); None values when nothing is measured.

    Example:

    >>> import numpy as np
    >>> truth = np.zeros((1, 2, 2))
    >>> off = np.array([[[3.0, 0.0], [0.0, 4.0]]])
    >>> error_split(truth + off, truth + off, truth, truth, np.ones((1, 2), bool))[
    ...     "shared_energy_fraction"]
    1.0
    """
    kp_base, kp_driving, true_base, true_driving = (
        np.asarray(a, np.float64) for a in (kp_base, kp_driving, true_base, true_driving))
    measured = np.asarray(measured, bool)
    e_base, e_driving = kp_base - true_base, kp_driving - true_driving
    shared = np.linalg.norm((e_base + e_driving) / 2.0, axis=-1)[measured]
    independent = np.linalg.norm((e_driving - e_base) / 2.0, axis=-1)[measured]
    parts = {
        "error": np.linalg.norm(e_driving, axis=-1)[measured],
        "shared": shared,
        "independent": independent,
        "motion": np.linalg.norm(true_driving - true_base, axis=-1)[measured],
        "motion_error": 2.0 * independent,
    }
    out = {"keypoints": int(measured.sum())}
    for key, values in parts.items():
        out[key] = ({"mean": float(values.mean()), "median": float(np.median(values))}
                    if values.size else {"mean": None, "median": None})
    energy = float(np.sum(shared**2) + np.sum(independent**2))
    out["shared_energy_fraction"] = float(np.sum(shared**2)) / energy if energy > 0 else None
    return out


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def _skipped(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _labelled_pairs(config, target_dir: str, count: int):
    """Up to ``count`` pairs of :func:`~synpose_keras.training.reconstruction_check.held_out_pairs`'
    draw (same split, seed, pairing options and whole-frame crop), with the stored keypoints
    (``held_out_pairs`` keeps the images only). Returns a dict of numpy arrays."""
    from synpose_keras.datasets.pipeline import pairs_pipeline
    from synpose_keras.datasets.reader import read_meta
    from synpose_keras.training.data import pair_options
    from synpose_keras.training.reconstruction_check import HELD_OUT_SEED

    meta = read_meta(str(target_dir))
    has_test = bool(meta.get("counts", {}).get("test"))
    split = "test" if has_test and int(meta.get("num_sequences", {}).get("test", 1)) > 0 \
        else "train"
    pairs = pairs_pipeline(target_dir, input_size=config.model.input_size, batch_size=count,
                           split=split, seed=int(config.seed) * 100_003 + HELD_OUT_SEED,
                           crop_from_keypoints=False, training=True, repeat=False,
                           drop_remainder=False, **pair_options(config))
    keys = ("base_image", "driving_image", "base_keypoints", "driving_keypoints",
            "base_visible", "driving_visible")
    for batch in pairs.take(1):
        out = {key: np.asarray(batch[key]) for key in keys}
        out["split"] = split
        return out
    raise ValueError(f"{target_dir}: no base/driving pair in split {split!r}")


def _network_reconstruct_fn(warping_module, generator, size: int):
    from synpose_keras.models.reconstruction import reconstruct
    from synpose_keras.ops.warp import normalize_keypoints

    def fn(base01, kp_base, kp_driving):
        generated, _ = reconstruct(warping_module, generator, base01,
                                   normalize_keypoints(kp_base, (size, size)),
                                   normalize_keypoints(kp_driving, (size, size)), training=False)
        return generated

    return fn


def diagnose_run(run_dir: str, pairs: int = NUM_PAIRS, steps: int = STEPS, lr: float = LR_PX,
                 offsets=OFFSETS_PX, readout_limit: int = READOUT_LIMIT,
                 json_path: Optional[str] = None, log: Callable = print, seed: int = 0) -> dict:
    """Diagnoses a run's reconstruction path (the three items of the module docstring).

    Args:
        run_dir: str. A run folder written by ``synpose train`` (``config.json``; the items use
            ``pretrain/pose_predictor.keras``, ``generator/warping_module.keras``,
            ``generator/generator.keras``, ``generator/pairs.json``,
            ``generator/reconstruction_check.json`` and the target named in ``config.json``).
        pairs: int. Held-out pairs of the keypoint correction and the lambda_rec calibration.
            Defaults to ``NUM_PAIRS`` (16).
        steps: int. Adam steps of the keypoint correction. Defaults to ``STEPS`` (40).
        lr: float. Adam step size of the keypoint correction, input pixels. Defaults to
            ``LR_PX`` (0.5).
        offsets: tuple of float. Offsets of the keypoint correction, input pixels. Defaults to
            (4, 8).
        readout_limit: int. Target test images of the readout gate. Defaults to 300.
        json_path: optional str. Where to write the result; None writes ``RUN/diagnose.json``
            (give a path to leave the run folder untouched).
        log: callable. Receives the tables. Defaults to print.
        seed: int. Seed of the offsets and shifts. Defaults to 0.

    Returns:
        dict with ``run``, ``target``, ``keypoint_correction``, ``lambda_rec``,
        ``readout_gate``, ``error_split``, ``pair_statistics``, ``reconstruction_check`` (what the JSON file
        holds) and ``json`` (the file written); each item has ``status`` ("ok" or "skipped",
        with a ``reason`` naming what to run).

    Raises:
        DiagnoseError: when ``run_dir`` is not a run folder (no ``config.json``) or its config
            cannot be read.
    """
    import keras

    import synpose_keras  # noqa: F401  (registers the custom objects)
    from synpose_keras.training.configs import load_config
    from synpose_keras.training.losses import make_reconstruction_loss

    if int(pairs) < 1 or int(steps) < 1:
        raise DiagnoseError(f"pairs and steps must be >= 1. Received: pairs={pairs!r}, "
                            f"steps={steps!r}")
    run_dir = str(run_dir)
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(config_path):
        raise DiagnoseError(f"{run_dir} is not a run folder: {config_path} not found; pass the "
                            "folder written by `synpose train --out RUN`.")
    try:
        config = load_config(config_path)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as err:
        raise DiagnoseError(f"{config_path} is not a readable run config: {err}") from err
    keras.utils.set_random_seed(int(config.seed))

    def path(*parts):
        return os.path.join(run_dir, *parts)

    result = {"run": run_dir, "target": config.target}
    rerun = f"`synpose train --out {run_dir} --resume`"
    predictor_path = path("pretrain", "pose_predictor.keras")
    generator_paths = (path("generator", "warping_module.keras"),
                       path("generator", "generator.keras"))
    predictor = warp = gen = None
    no_predictor = no_generator = None
    if os.path.exists(predictor_path):
        predictor = keras.models.load_model(predictor_path)
    else:
        no_predictor = f"{predictor_path} not found: run the pretrain stage ({rerun})"
    missing = [p for p in generator_paths if not os.path.exists(p)]
    if missing:
        no_generator = (f"{missing[0]} not found: run the generator stage ({rerun} with "
                        "'generator' in the stages)")
    else:
        warp, gen = (keras.models.load_model(p) for p in generator_paths)
    no_target = None
    if not config.target or not os.path.isfile(os.path.join(str(config.target), "meta.json")):
        no_target = (f"target dataset {config.target!r} (config.json 'target') not found or "
                     "not converted: convert it with `synpose convert` at that path")

    batch = None
    if no_target is None and (no_generator is None or no_predictor is None):
        try:
            batch = _labelled_pairs(config, config.target, int(pairs))
        except ValueError as err:
            no_target = str(err)
    loss_fn = make_reconstruction_loss(config.generator.vgg_weights)
    size = int(config.model.input_size)

    # ---- 1. keypoint correction
    reason = no_generator or no_target
    if reason is None:
        measured = (batch["base_visible"] > 0) & (batch["driving_visible"] > 0)
        inside = np.all((batch["base_keypoints"] >= 0) & (batch["base_keypoints"] <= size - 1)
                        & (batch["driving_keypoints"] >= 0)
                        & (batch["driving_keypoints"] <= size - 1), axis=-1)
        measured &= inside
        if not measured.any():
            reason = (f"the target's {batch['split']} pairs have no keypoint labelled on both "
                      "frames: the experiment needs stored labels")
    if reason is None:
        fn = _network_reconstruct_fn(warp, gen, size)
        correction = correction_experiment(
            fn, loss_fn, batch["base_image"] / 255.0, batch["driving_image"] / 255.0,
            batch["base_keypoints"], batch["driving_keypoints"], measured, offsets, steps, lr,
            seed)
        correction.update(status="ok", pairs=int(len(batch["base_image"])),
                          split=batch["split"])
        result["keypoint_correction"] = correction
    else:
        result["keypoint_correction"] = _skipped(reason)

    # ---- 2. lambda_rec from the gradients at the keypoints
    reason = no_predictor or no_generator or no_target
    if reason is None:
        a = config.adapt
        lam = lambda_rec_from_gradients(
            predictor, _network_reconstruct_fn(warp, gen, size), loss_fn, batch["base_image"],
            batch["driving_image"], a.mask_fraction, a.lambda_pl, a.lambda_rec, seed)
        lam["status"] = "ok"
        result["lambda_rec"] = lam
    else:
        result["lambda_rec"] = _skipped(reason)

    # ---- 3. readout gate, pairs.json, reconstruction_check.json
    reason = no_predictor or no_target
    if reason is None:
        from synpose_keras.datasets.reader import read_meta

        if not read_meta(str(config.target)).get("counts", {}).get("test"):
            reason = f"target {config.target} has no test split"
    if reason is None:
        gate = readout_gate(predictor, config.target, limit=readout_limit)
        gate["status"] = "ok"
        result["readout_gate"] = gate
    else:
        result["readout_gate"] = _skipped(reason)
    # ---- 4. what the loss can see: the predictor's error split into shared and independent
    reason = no_predictor or no_target
    if reason is None:
        try:
            many = _labelled_pairs(config, config.target, max(int(pairs), ERROR_SPLIT_PAIRS))
        except ValueError as err:
            reason = str(err)
    if reason is None:
        kp_base, kp_driving = (
            np.concatenate([np.asarray(predictor.keypoints(images[start:start + 32].astype(
                "float32"))) for start in range(0, len(images), 32)])
            for images in (many["base_image"], many["driving_image"]))
        measured = (many["base_visible"] > 0) & (many["driving_visible"] > 0)
        if not measured.any():
            reason = (f"the target's {many['split']} pairs have no keypoint labelled on both "
                      "frames: the split needs stored labels")
    if reason is None:
        split_result = error_split(kp_base, kp_driving, many["base_keypoints"],
                                   many["driving_keypoints"], measured)
        split_result.update(status="ok", pairs=int(len(many["base_image"])),
                            split=many["split"])
        result["error_split"] = split_result
    else:
        result["error_split"] = _skipped(reason)

    for key, name, summarise in (("pair_statistics", "pairs.json", _pair_summary),
                                 ("reconstruction_check", "reconstruction_check.json",
                                  _check_summary)):
        file = path("generator", name)
        result[key] = (summarise(_read_json(file)) if os.path.exists(file) else _skipped(
            f"{file} not found: run the generator stage ({rerun}); runs trained before it "
            "wrote this file need a new generator stage"))

    out = json_path or path("diagnose.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".tmp", "w") as f:  # atomic: an interrupted run leaves the old file whole
        json.dump(result, f, indent=2, sort_keys=True)
    os.replace(out + ".tmp", out)
    result["json"] = out
    log(format_report(result))
    return result


def _f(value, spec=".3f"):
    return "n/a" if value is None else format(value, spec)


def format_report(result: dict) -> str:
    """The result of :func:`diagnose_run` as short text tables."""
    lines = [f"[diagnose] {result['run']} (target {result['target']})"]
    c = result["keypoint_correction"]
    lines.append("1. keypoint correction (frozen W + G, Adam on the driving keypoints)")
    if c["status"] != "ok":
        lines.append(f"  skipped: {c['reason']}")
    else:
        lines.append(f"  {c['pairs']} held-out pairs ({c['split']}), {c['steps']} steps of "
                     f"{c['lr_px']:g} px; errors in input px; consistent = truth + base offset;"
                     f" loss at the labels {c['loss_at_labels']:.4f}")
        lines.append(f"  {'case':<12}{'offset':>7}{'cos':>7}{'before':>8}{'after':>8}"
                     f"{'reduct':>8}{'min (step)':>12}{'consist':>9}{'loss':>14}")
        for r in c["rows"]:
            lines.append(
                f"  {r['case']:<12}{r['offset_px']:>6g}px{r['cos_to_truth']:>7.2f}"
                f"{r['error_before']:>8.2f}{r['error_after']:>8.2f}{r['reduction']:>7.0%} "
                f"{r['min_error']:>6.2f} ({r['min_error_step']:>2d}) "
                f"{r['consistent_error_before']:>4.1f}>{r['consistent_error_after']:<4.1f}"
                f"{r['loss_before']:>7.4f}>{r['loss_after']:.4f}")
        gate = c["gate"]
        for key, value in gate.items():
            if not isinstance(value, dict):
                continue
            if "control_passes" in value:
                lines.append(f"  gate {key}: control (error falls < {gate['reduction']:.0%}) "
                             f"{'passes' if value['control_passes'] else 'FAILS'}")
            else:
                lines.append(f"  gate {key}: cos >= {gate['cos']} "
                             f"{'yes' if value['cos'] else 'no'}, error reduced >= "
                             f"{gate['reduction']:.0%} {'yes' if value['reduction'] else 'no'}"
                             f" -> {'holds' if value['holds'] else 'FAILS'}")
    lam = result["lambda_rec"]
    lines.append("2. lambda_rec from the gradients at the keypoints")
    if lam["status"] != "ok":
        lines.append(f"  skipped: {lam['reason']}")
    else:
        lines.append(f"  per instance |dL/dkp| (per input px): rec {lam['g_rec']:.3g} (median "
                     f"{lam['g_rec_median']:.3g}), pseudo-label ({lam['pl_shift_hm_px']} hm px "
                     f"off) {lam['g_pl']:.3g} (median {lam['g_pl_median']:.3g})")
        lines.append(f"  {lam['formula']} = {_f(lam['lambda_rec_matched'], '.3g')}  "
                     f"(configured adapt.lambda_rec = {_f(lam['lambda_rec_configured'], 'g')}, "
                     f"{_f(lam['ratio_configured'], '.3g')} x matched)")
    g = result["readout_gate"]
    lines.append("3. run gates")
    if g["status"] != "ok":
        lines.append(f"  readout gate skipped: {g['reason']}")
    else:
        lines.append(f"  readout gate ({g['images']} {g['split']} images): median |local - "
                     f"argmax| {g['local']['median']:.3f} hm px (p90 {g['local']['p90']:.3f}; "
                     f"global {g['global']['median']:.3f}) <= {g['gate_px']}: "
                     f"{'PASS' if g['gate_passed'] else 'FAIL'}")
    p = result["pair_statistics"]
    if p["status"] != "ok":
        lines.append(f"  pairs.json skipped: {p['reason']}")
    else:
        same = p["same_view_fraction"]
        lines.append(f"  pairs: {p['count']}, {_f(None if same is None else 100 * same, '.0f')}%"
                     f" same view, {100 * p['affine_fraction']:.0f}% affine, max gap "
                     f"{p['frame_gap_max']}, keypoints move {_f(p['displacement_mean_px'], '.1f')}"
                     f" px (median {_f(p['displacement_median_px'], '.1f')})")
    r = result["reconstruction_check"]
    if r["status"] != "ok":
        lines.append(f"  reconstruction_check.json skipped: {r['reason']}")
    else:
        loss = r["loss"] or {}
        cases = ", ".join(f"{k} {v:.4f}" for k, v in loss.items() if v is not None)
        lines.append(f"  reconstruction check ({r['pairs']} pairs, {r['output_mode']}): {cases};"
                     f" predicted/copy {_f(r['ratio_predicted_to_copy'])}; gate "
                     f"{'holds' if r['gate_holds'] else 'FAILS'}")
    e = result.get("error_split")
    lines.append("4. what the loss can see (the predictor's error on both frames of a pair)")
    if e is None or e["status"] != "ok":
        lines.append(f"  skipped: {e['reason'] if e else 'not measured'}")
    else:
        def mm(key):
            return f"{_f(e[key]['mean'], '.2f')} (median {_f(e[key]['median'], '.2f')})"
        lines.append(f"  {e['pairs']} held-out pairs ({e['split']}), {e['keypoints']} keypoints, "
                     f"input px: error {mm('error')}; shared by both frames {mm('shared')}; "
                     f"differing {mm('independent')}")
        lines.append(f"  shared part's share of the squared error "
                     f"{_f(e['shared_energy_fraction'], '.2f')} (invisible to the loss); true "
                     f"motion {mm('motion')}, predicted motion's error {mm('motion_error')}")
    if "json" in result:
        lines.append(f"  written: {result['json']}")
    return "\n".join(lines)
