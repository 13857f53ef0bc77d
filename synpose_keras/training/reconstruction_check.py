"""Does the reconstruction path beat copying? The held-out check that ends stage ``generator``.

The reconstruction loss can only teach the pose predictor if W and G reconstruct the driving
image better with the right keypoints than without them. After W and G are trained, this module
measures the stage's own loss (:func:`synpose_keras.training.losses.make_reconstruction_loss`) on
held-out target pairs for four predictions of the driving image:

- ``predicted``: W and G with the frozen pre-trained predictor's keypoints on base and driving
  (the stage's normal input);
- ``copy``: the base image itself;
- ``no_motion``: W and G with the driving keypoints replaced by the base keypoints;
- ``shuffled``: W and G with the driving keypoints of another pair of the batch (the next one).

When the held-out pairs carry labels (a labelled target test split), a fifth row, ``labels``,
runs W and G with the stored keypoints on both frames (the predictor's where a keypoint is not
labelled on a frame). It is not part of the gate: it separates what W and G can do with the right
keypoints from what the predictor's keypoints let them do (``predicted``). Unlabelled pairs give
``labels: null``.

The gate: ``predicted <= 0.85 * copy`` and ``predicted`` at least 10% below both ``no_motion`` and
``shuffled``. It is reported, never enforced: a run whose gate fails still completes.

W and G run in inference mode (BatchNorm moving statistics), so the check changes no state.

Stage ``adapt`` repeats the check at the end of every epoch on one small fixed batch
(:class:`EpochReconstruction`): the same four losses with the current student's keypoints and the
stage's current W and G, and a few (base, driving, reconstruction) images for TensorBoard.

Reference:
    Lin et al., "Synthetic-to-Real Pose Estimation with Geometric Reconstruction", NeurIPS 2023,
    §3.2 (the reconstruction loss trains the predictor through the keypoints).
"""

from __future__ import annotations

import json
import os
from typing import Callable, Optional

import numpy as np
from keras import ops

from synpose_keras.models.reconstruction import reconstruct
from synpose_keras.ops.warp import normalize_keypoints
from synpose_keras.training.losses import make_reconstruction_loss

__all__ = [
    "CASES",
    "EpochReconstruction",
    "check_generator_stage",
    "format_table",
    "held_out_pairs",
    "reconstruction_check",
]

#: The four predictions of the driving image, in table order.
CASES = ("predicted", "copy", "no_motion", "shuffled")
#: Gate: predicted <= COPY_RATIO * copy, and <= (1 - MARGIN) * no_motion and * shuffled.
COPY_RATIO = 0.85
MARGIN = 0.10
#: Batches measured at the end of stage ``generator`` (of ``generator.batch_size`` pairs).
NUM_BATCHES = 16
#: Seed of the held-out pairs (fixed, and unlike any stage epoch's seed; see training.data).
HELD_OUT_SEED = 7_919
#: Pairs measured at each end of an adaptation epoch (:class:`EpochReconstruction`).
EPOCH_PAIRS = 4


def held_out_pairs(config, target_dir: str, meta: Optional[dict] = None):
    """Fixed, shuffled base/driving batches of the target for the check, held out when possible.

    The target's ``test`` split when it has records and sequences, which stage ``generator``
    never reads; otherwise (no test split, or one without sequences) pairs of the ``train`` split
    drawn with a seed of their own (other pairs and crops than the training batches, but the
    same frames, so the check is then optimistic). The
    pairs are chosen and cropped as in training (the run's pairing options,
    :func:`synpose_keras.training.data.pair_options`; whole frame, no keypoints used), without
    augmentation, and shuffled once so that the pairs of a batch come from different sequences
    (``shuffled`` needs that). One pass, full batches only. The draw is fixed for a given
    global random seed (the trainer sets it from the run seed before each stage).

    Args:
        config: TrainConfig. Uses ``model.input_size``, ``generator.batch_size``, the pairing
            options of ``adapt`` and ``seed``.
        target_dir: str. The converted target folder.
        meta: optional dict. Its ``meta.json`` (read when None).

    Returns:
        ``(dataset, split)``: a tf.data.Dataset of ``{"base", "driving"}`` float32
        (B, S, S, 3) in [0, 255] (the stage's batch format) with the stored labels
        ``base_keypoints``/``driving_keypoints`` (B, K, 2) input pixels and
        ``base_visible``/``driving_visible`` (B, K) (zero on unlabelled footage), and the split
        it reads.
    """
    from synpose_keras.datasets.pipeline import pairs_pipeline
    from synpose_keras.training.data import pair_options

    if meta is None:
        from synpose_keras.datasets.reader import read_meta

        meta = read_meta(str(target_dir))
    has_test = bool(meta.get("counts", {}).get("test"))
    test_sequences = int(meta.get("num_sequences", {}).get("test", 1))
    split = "test" if has_test and test_sequences > 0 else "train"
    pairs = pairs_pipeline(target_dir, input_size=config.model.input_size,
                           batch_size=config.generator.batch_size, split=split,
                           seed=int(config.seed) * 100_003 + HELD_OUT_SEED,
                           crop_from_keypoints=False, training=True, repeat=False,
                           drop_remainder=True, **pair_options(config))
    dataset = pairs.map(lambda p: {
        "base": p["base_image"], "driving": p["driving_image"],
        "base_keypoints": p["base_keypoints"], "driving_keypoints": p["driving_keypoints"],
        "base_visible": p["base_visible"], "driving_visible": p["driving_visible"]})
    return dataset, split


def _keypoints(predictor, base, driving):
    """Soft-argmax keypoints of base and driving, normalised (as ``GeneratorStage.keypoints``)."""
    size = ops.shape(base)[1]
    heatmaps = predictor(ops.concatenate([base, driving], axis=0), training=False)
    kp = predictor.soft_keypoints(heatmaps, (None, size, size, 3))
    kp = normalize_keypoints(kp, (size, size))
    n = ops.shape(base)[0]
    return kp[:n], kp[n:]


def _labelled_keypoints(batch, kp_base, kp_driving, size):
    """The stored keypoints of the batch's pairs that have a keypoint labelled on both frames,
    normalised, with the predictor's keypoints where a frame's keypoint is not labelled; None
    when the batch has no labels (or no such pair)."""
    keys = ("base_keypoints", "driving_keypoints", "base_visible", "driving_visible")
    if not all(key in batch for key in keys):
        return None
    visible_base = np.asarray(batch["base_visible"]) > 0
    visible_driving = np.asarray(batch["driving_visible"]) > 0
    rows = np.flatnonzero((visible_base & visible_driving).any(axis=1))
    if rows.size == 0:
        return None
    out = []
    for key, visible, predicted in (("base_keypoints", visible_base, kp_base),
                                    ("driving_keypoints", visible_driving, kp_driving)):
        stored = normalize_keypoints(np.asarray(batch[key], np.float32), (size, size))
        mixed = np.where(visible[..., None], np.asarray(stored), np.asarray(predicted))
        out.append(mixed[rows].astype(np.float32))
    return rows, out[0], out[1]


def reconstruction_check(predictor, warping_module, generator, pairs, num_batches: int,
                         vgg_weights: Optional[str] = None, split: Optional[str] = None,
                         loss_fn: Optional[Callable] = None) -> dict:
    """The reconstruction loss of four predictions of the driving image on held-out pairs.

    Args:
        predictor: PosePredictor. Gives the keypoints (inference mode, as in stage ``generator``).
        warping_module: WarpingModule (inference mode).
        generator: Generator (inference mode).
        pairs: iterable of batches ``{"base", "driving"}`` (B, S, S, 3) in [0, 255], B >= 2
            (smaller batches are skipped: ``shuffled`` needs another pair); with
            ``base_keypoints``, ``driving_keypoints`` (B, K, 2, input px), ``base_visible`` and
            ``driving_visible`` (B, K), the ``labels`` row is measured too.
        num_batches: int. At most this many batches are measured.
        vgg_weights: optional str. As the stage's loss (None: the L1 + SSIM pyramid).
        split: optional str. Recorded in the result.
        loss_fn: optional ``fn(target, generated)``, the loss already built from
            ``vgg_weights`` (a caller that checks repeatedly builds it once); None builds it.

    Returns:
        dict with ``loss`` ({case: mean loss over the pairs} for :data:`CASES`, and
        ``labels``: the mean over the pairs with at least one labelled keypoint on both frames,
        None when there are none), ``labelled_pairs``, ``pairs``,
        ``batches``, ``split``, ``output_mode`` (the generator's), ``ratio_predicted_to_copy``,
        ``gate`` (``predicted_vs_copy``, ``below_no_motion``, ``below_shuffled``, ``holds``, and
        the thresholds ``copy_ratio``, ``margin``).

    Raises:
        ValueError: when no batch of at least two pairs was read.
    """
    if int(num_batches) < 1:
        raise ValueError(f"num_batches must be >= 1. Received: num_batches={num_batches!r}")
    if loss_fn is None:
        loss_fn = make_reconstruction_loss(vgg_weights)
    sums = dict.fromkeys(CASES, 0.0)
    count = batches = 0
    labelled_sum, labelled_count = 0.0, 0
    for batch in pairs:
        if batches >= int(num_batches):
            break
        base = ops.cast(ops.convert_to_tensor(batch["base"]), "float32")
        driving = ops.cast(ops.convert_to_tensor(batch["driving"]), "float32")
        n = int(base.shape[0])
        if n < 2:
            continue
        kp_base, kp_driving = _keypoints(predictor, base, driving)
        base01, target = base / 255.0, driving / 255.0

        def rebuilt(kp_drv):
            generated, _ = reconstruct(warping_module, generator, base01, kp_base, kp_drv,
                                       training=False)
            return generated

        predictions = {
            "predicted": rebuilt(kp_driving),
            "copy": base01,
            "no_motion": rebuilt(kp_base),
            "shuffled": rebuilt(ops.roll(kp_driving, 1, axis=0)),
        }
        for case, prediction in predictions.items():
            sums[case] += float(loss_fn(target, prediction)) * n
        labelled = _labelled_keypoints(batch, kp_base, kp_driving, base.shape[1])
        if labelled is not None:
            rows, kp_base_true, kp_driving_true = labelled
            generated, _ = reconstruct(warping_module, generator, ops.take(base01, rows, axis=0),
                                       kp_base_true, kp_driving_true, training=False)
            labelled_sum += float(loss_fn(ops.take(target, rows, axis=0), generated)) * len(rows)
            labelled_count += len(rows)
        count += n
        batches += 1
    if count == 0:
        raise ValueError("reconstruction_check read no batch of at least two pairs; give a "
                         "dataset of {'base', 'driving'} batches with batch size >= 2.")
    loss = {case: sums[case] / count for case in CASES}
    loss["labels"] = labelled_sum / labelled_count if labelled_count else None
    gate = {
        "predicted_vs_copy": bool(loss["predicted"] <= COPY_RATIO * loss["copy"]),
        "below_no_motion": bool(loss["predicted"] <= (1.0 - MARGIN) * loss["no_motion"]),
        "below_shuffled": bool(loss["predicted"] <= (1.0 - MARGIN) * loss["shuffled"]),
        "copy_ratio": COPY_RATIO,
        "margin": MARGIN,
    }
    gate["holds"] = gate["predicted_vs_copy"] and gate["below_no_motion"] and gate["below_shuffled"]
    return {
        "split": split,
        "pairs": count,
        "labelled_pairs": labelled_count,
        "batches": batches,
        "output_mode": getattr(generator, "output_mode", None),
        "loss": loss,
        "ratio_predicted_to_copy": loss["predicted"] / loss["copy"] if loss["copy"] else float(
            np.inf),
        "gate": gate,
    }


def format_table(result: dict) -> str:
    """The result as a short text table (one row per case, then the gate)."""
    loss = result["loss"]
    lines = [f"[generator] reconstruction check: {result['pairs']} held-out pairs "
             f"({result['split']} split), G output {result['output_mode']!r}",
             f"  {'prediction':<10} {'loss':>8} {'/ copy':>8}"]
    for case in CASES + (("labels",) if loss.get("labels") is not None else ()):
        ratio = loss[case] / loss["copy"] if loss["copy"] else float("nan")
        note = (f"   (stored labels, {result.get('labelled_pairs')} pairs; not gated)"
                if case == "labels" else "")
        lines.append(f"  {case:<10} {loss[case]:8.4f} {ratio:8.3f}{note}")
    gate = result["gate"]
    verdict = "holds" if gate["holds"] else "FAILS"
    lines.append(f"  gate {verdict}: predicted <= {gate['copy_ratio']:.2f} x copy "
                 f"({'yes' if gate['predicted_vs_copy'] else 'no'}), "
                 f">= {gate['margin']:.0%} below no_motion "
                 f"({'yes' if gate['below_no_motion'] else 'no'}) and shuffled "
                 f"({'yes' if gate['below_shuffled'] else 'no'})")
    return "\n".join(lines)


def check_generator_stage(config, predictor, warping_module, generator, path: str,
                          log: Callable = print, num_batches: int = NUM_BATCHES) -> dict:
    """End of stage ``generator``: :func:`reconstruction_check` on :func:`held_out_pairs` of
    ``config.target``, written to ``path`` (JSON) and logged as a table.

    Returns:
        the result of :func:`reconstruction_check`.
    """
    pairs, split = held_out_pairs(config, config.target)
    result = reconstruction_check(predictor, warping_module, generator, pairs, num_batches,
                                  vgg_weights=config.generator.vgg_weights, split=split)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
    log(format_table(result))
    return result


class EpochReconstruction:
    """The reconstruction check at each end of an adaptation epoch, kept cheap.

    One fixed batch of at most ``num_pairs`` held-out target pairs (the first batch of
    :func:`held_out_pairs`, read once) is measured with :func:`reconstruction_check` for a given
    predictor (stage ``adapt``: the current student, whose keypoints the reconstruction loss
    trains) and the stage's W and G as they are then (inference mode: no state changes).

    Args:
        pairs: dict ``{"base", "driving"}`` of (N, S, S, 3) arrays in [0, 255], N >= 2.
        warping_module: WarpingModule.
        generator: Generator.
        vgg_weights: optional str. As the stage's loss (None: the L1 + SSIM pyramid).
        split: optional str. The split the pairs come from.
    """

    def __init__(self, pairs, warping_module, generator, vgg_weights: Optional[str] = None,
                 split: Optional[str] = None):
        self.pairs = {k: np.asarray(pairs[k], np.float32) for k in ("base", "driving")}
        if len(self.pairs["base"]) < 2:
            raise ValueError("EpochReconstruction needs at least two pairs ('shuffled' uses "
                             f"another pair). Received: {len(self.pairs['base'])} pair(s)")
        self.warping_module = warping_module
        self.generator = generator
        self.vgg_weights = vgg_weights
        self.split = split
        self.loss_fn = make_reconstruction_loss(vgg_weights)  # built once (VGG weights)

    @classmethod
    def from_config(cls, config, warping_module, generator, num_pairs: int = EPOCH_PAIRS,
                    log: Callable = print):
        """The first ``num_pairs`` pairs of :func:`held_out_pairs` of ``config.target``, or None
        (with a log line) when the target gives no batch of at least two pairs."""
        pairs, split = held_out_pairs(config, config.target)
        batch = next(iter(pairs.take(1)), None)
        if batch is None or int(batch["base"].shape[0]) < 2:
            log("[adapt] no per-epoch reconstruction diagnostics: the target gives no batch of "
                "at least two held-out pairs")
            return None
        batch = {k: np.asarray(v)[:int(num_pairs)] for k, v in batch.items()}
        return cls(batch, warping_module, generator, vgg_weights=config.generator.vgg_weights,
                   split=split)

    def values(self, predictor) -> dict:
        """``{"rec_check_<case>": loss}`` for :data:`CASES` and ``rec_check_ratio_to_copy``
        (``predicted / copy``), from :func:`reconstruction_check` on the fixed batch."""
        result = reconstruction_check(predictor, self.warping_module, self.generator,
                                      [self.pairs], num_batches=1, split=self.split,
                                      loss_fn=self.loss_fn)
        out = {f"rec_check_{case}": result["loss"][case] for case in CASES}
        out["rec_check_ratio_to_copy"] = result["ratio_predicted_to_copy"]
        return out

    def images(self, predictor) -> np.ndarray:
        """uint8 (N, S, 3 S, 3): per pair, base | driving | reconstruction with ``predictor``'s
        keypoints (inference mode)."""
        base = ops.convert_to_tensor(self.pairs["base"])
        driving = ops.convert_to_tensor(self.pairs["driving"])
        kp_base, kp_driving = _keypoints(predictor, base, driving)
        generated, _ = reconstruct(self.warping_module, self.generator, base / 255.0, kp_base,
                                   kp_driving, training=False)
        generated = ops.convert_to_numpy(generated) * 255.0
        row = np.concatenate([self.pairs["base"], self.pairs["driving"], generated], axis=2)
        return np.clip(np.nan_to_num(row), 0, 255).astype(np.uint8)  # NaN (diverged): black
