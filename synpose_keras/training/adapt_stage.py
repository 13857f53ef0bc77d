"""Stage ``adapt``: mean-teacher adaptation with integrated 2D/3D pseudo-labels and geometric
reconstruction.

One iteration (``AdaptStage.train_step``)::

    L = L_src + lambda_pl * (L_2D + L_3D) + lambda_rec * L_rec
    teacher <- EMA(student)

- ``L_src``: visibility-weighted heatmap MSE of the student on (restyled) source images.
- Teacher on the teacher view of each target image -> argmax peaks and confidences (optionally
  of the mean over the view turned by quarter turns, ``teacher_rotations``; not in the paper:
  :mod:`synpose_keras.pseudo_labels.ensemble`).
  ``M_2D`` keeps the most confident ``mask_fraction`` of keypoint instances of the batch.
  3D pseudo-labels: peaks -> Lifter -> kinematic projection onto the source's bone-length ratios
  and bend limits -> least-squares reprojection onto the peaks. ``M_3D`` keeps keypoints whose
  reprojection agrees with the 2D peak within ``agreement_px`` heatmap pixels.
  Both labels are mapped into the student view by the known augmentation affine and re-rendered as
  sigma=2 Gaussians; the mask strategy (:mod:`synpose_keras.pseudo_labels.masks`) decides which
  instances each loss sees.
- ``L_rec``: differentiable student keypoints (``PosePredictor.soft_keypoints``: by default the
  local soft-argmax, :func:`synpose_keras.ops.heatmaps.local_soft_argmax`, which agrees with
  the argmax) on a base and a driving image of the same subject ->
  WarpingModule -> Generator -> reconstruction loss against the real driving image. Its gradient
  reaches the student through the keypoints. W and G keep training with their own optimizer.

All student passes of an iteration (source, target student view, base, driving) run as one
concatenated batch: one forward and one backward pass of the predictor per iteration. The
same backward pass gives W and G their gradient (that of the total loss divided by
``lambda_rec``), so the reconstruction loss, G and W are differentiated once per iteration.

Under ``tf.distribute`` (``MirroredStrategy``, ``MultiWorkerMirroredStrategy``) each replica runs
this iteration on its slice of the global batch; every loss term is a per-replica mean scaled once
by :func:`synpose_keras.losses.scaling.scale_loss_for_distribution`, so the summed gradients are
those of the global batch. Two quantities are **per replica** by convention, as with UniFrame's
per-GPU batches: ``M_2D`` keeps the most confident ``mask_fraction`` of *this replica's* keypoint
instances, and the masked consistency losses are normalised by the number of instances selected
on *this replica*. With N replicas the result equals the one-device run on the global batch only
when both coincide (e.g. ``mask_fraction=1.0`` and the same number of selected instances on every
replica); otherwise it is the mean of the replicas' masked losses. ``M_3D``, the Gaussian
re-rendering and the reconstruction are per instance and do not depend on the split. The teacher's
EMA update runs on every replica, on that replica's copy of each teacher weight
(:func:`synpose_keras.training.mean_teacher.ema_update`). BatchNorm is not synchronised: batch
statistics are per replica, and so are the moving statistics each replica's copy accumulates
(a checkpoint or a saved model holds the first replica's).

Batch format (a dict, as produced by :func:`synpose_keras.training.data.adapt_dataset`)::

    {"source": {"image": (Bs,S,S,3) [0,255], "heatmaps": (Bs,h,w,K), "weights": (Bs,K)},
     "target": {"teacher_image": (Bt,S,S,3), "student_image": (Bt,S,S,3),
                "affine": (Bt,3,3) teacher-view input px -> student-view input px,
                "teacher_index": (Bt,K) optional, student joint i = teacher joint index[i]},
     "pairs":  {"base": (Bp,S,S,3), "driving": (Bp,S,S,3)}}          # only with rec

Reference:
    Lin et al., NeurIPS 2023, Sec. 3 and supplementary A; UniFrame (Kim et al., ECCV 2022) for
    the mean-teacher details.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from synpose_keras.losses.scaling import scale_loss_for_distribution
from synpose_keras.models.reconstruction import reconstruct
from synpose_keras.ops.geometry import apply_affine
from synpose_keras.ops.heatmaps import decode_heatmaps, encode_heatmaps
from synpose_keras.ops.warp import normalize_keypoints
from synpose_keras.pseudo_labels.ensemble import check_rotations, ensemble_heatmaps
from synpose_keras.pseudo_labels.kinematics import project_to_skeleton, reproject
from synpose_keras.pseudo_labels.masks import (
    agreement_mask,
    mask_overlap,
    strategy_masks,
    top_fraction_mask,
)
from synpose_keras.training.losses import heatmap_mse, make_reconstruction_loss, masked_heatmap_mse
from synpose_keras.training.mean_teacher import copy_weights, ema_update
from synpose_keras.training.stage_model import StageModel


class AdaptStage(StageModel):
    """The adaptation stage as a Keras model whose ``fit`` runs the paper's iteration.

    Args:
        student: PosePredictor. Trained.
        teacher: PosePredictor of the same architecture. EMA of the student.
        skeleton: Skeleton of both domains.
        lifter: optional Lifter (needed by the 3D pseudo-labels).
        bone_ratios: optional (E,) source bone-length ratios (needed by the 3D pseudo-labels).
        warping_module: optional WarpingModule (needed by the reconstruction loss).
        generator: optional Generator (needed by the reconstruction loss).
        pseudo: str. Mask strategy: "integrated", "independent", "union", "2d", "3d", "none".
        rec: bool. Use the reconstruction loss.
        lambda_pl: float. Weight of L_2D + L_3D.
        lambda_rec: float. Weight of L_rec.
        mask_fraction: float. Fraction kept by M_2D.
        agreement_px: float. M_3D agreement radius in heatmap pixels.
        ema_decay: float. Teacher EMA decay.
        train_generator: bool. Keep training W and G with L_rec (their own optimizer).
        vgg_weights: optional str. VGG-19 weights for the perceptual loss; None uses the L1 + SSIM
            pyramid.
        teacher_rotations: int. 1 (the paper): the teacher sees the teacher view once. 2 or 4: its
            heatmaps are averaged over the view turned by 0/180 or 0/90/180/270 degrees before
            peaks, confidences and masks are read (:mod:`synpose_keras.pseudo_labels.ensemble`).
    """

    def __init__(self, student, teacher, skeleton, lifter=None, bone_ratios=None,
                 warping_module=None, generator=None, pseudo="integrated", rec=True,
                 lambda_pl=1.0, lambda_rec=1.0, mask_fraction=0.5, agreement_px=2.0,
                 ema_decay=0.999, train_generator=True, vgg_weights=None, teacher_rotations=1,
                 **kwargs):
        super().__init__(**kwargs)
        uses_3d = pseudo in ("integrated", "independent", "union", "3d")
        if uses_3d and (lifter is None or bone_ratios is None):
            raise ValueError(
                f"pseudo={pseudo!r} needs 3D pseudo-labels, hence a lifter and the source's bone "
                "ratios (a source dataset with keypoints_3d). Use pseudo='2d' or 'none' otherwise."
            )
        if rec and (warping_module is None or generator is None):
            raise ValueError("rec=True needs a warping_module and a generator.")
        self.student = student
        self.teacher = teacher
        self.skeleton = skeleton
        self.lifter = lifter
        self.bone_ratios = None if bone_ratios is None else np.asarray(bone_ratios, np.float32)
        self.warping_module = warping_module
        self.generator = generator
        self.pseudo = pseudo
        self.uses_3d = uses_3d
        self.uses_2d = pseudo in ("integrated", "independent", "union", "2d")
        self.rec = rec
        self.lambda_pl = float(lambda_pl)
        self.lambda_rec = float(lambda_rec)
        self.mask_fraction = float(mask_fraction)
        self.agreement_px = float(agreement_px)
        self.ema_decay = float(ema_decay)
        self.train_generator = bool(train_generator) and rec
        self.vgg_weights = vgg_weights
        self.teacher_rotations = check_rotations(teacher_rotations)
        self.reconstruction_loss = make_reconstruction_loss(vgg_weights)
        # integrated schedule state (0 = independent masks, 1 = combined); checkpointed
        self.combined = keras.Variable(0.0, trainable=False, name="combined", dtype="float32")
        names = ["loss", "source", "pseudo_2d", "pseudo_3d", "rec", "overlap", "mask_2d",
                 "mask_3d"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.generator_optimizer = None

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, optimizer, generator_optimizer=None, **kwargs):
        super().compile(optimizer=optimizer, **kwargs)
        if self.train_generator:
            self.generator_optimizer = generator_optimizer or keras.optimizers.Adam(
                2e-4, beta_1=0.5, beta_2=0.999)

    def build_all(self, input_size):
        """Creates every weight (student, teacher, W, G, optimizers) before a checkpoint restore."""
        dummy = np.zeros((1, input_size, input_size, 3), np.float32)
        self.student(dummy)
        self.teacher(dummy)
        if self.rec:
            kp = np.zeros((1, self.skeleton.num_keypoints, 2), np.float32)
            reconstruct(self.warping_module, self.generator, dummy, kp, kp)
        if self.lifter is not None:
            self.lifter(np.zeros((1, self.skeleton.num_keypoints, 2), np.float32))
        self.optimizer.build(self.student.trainable_variables)
        if self.generator_optimizer is not None:
            self.generator_optimizer.build(self._generator_variables())
        self.built = True

    def initialize_teacher(self):
        copy_weights(self.teacher, self.student)

    def _generator_variables(self):
        return self.warping_module.trainable_variables + self.generator.trainable_variables

    def _source_only_step(self, src):
        """The source-only reference (``synpose train``'s ``source-only`` row): a batch without
        target images trains the student on the source loss alone, with this stage's optimiser
        and EMA teacher, so it differs from the adaptation only by the target terms."""
        import tensorflow as tf

        if self.pseudo != "none" or self.rec:
            raise ValueError("A batch without 'target' is the source-only reference; it needs "
                             f"pseudo='none' and rec=False. Received: pseudo={self.pseudo!r}, "
                             f"rec={self.rec}")
        student_vars = self.student.trainable_variables
        with tf.GradientTape() as tape:
            heatmaps = self.student(ops.cast(src["image"], "float32"), training=True)
            loss_src = heatmap_mse(src["heatmaps"], heatmaps, src["weights"])
            scaled = scale_loss_for_distribution(loss_src)
        grads = tape.gradient(scaled, student_vars)
        self.optimizer.apply_gradients(zip(grads, student_vars))
        ema_update(self.teacher, self.student, self.ema_decay)
        self.trackers["loss"].update_state(loss_src)
        self.trackers["source"].update_state(loss_src)
        return {name: self.trackers[name].result() for name in ("loss", "source")}

    # ------------------------------------------------------------------------ pseudo-labels
    def pseudo_labels(self, teacher_images, oracle_keypoints=None, oracle_visible=None):
        """Teacher pseudo-labels on teacher-view images (no gradient).

        Args:
            teacher_images: (B, S, S, 3) teacher-view images.
            oracle_keypoints: optional (B, K, 2) stored labels in teacher-view input pixels
                (``adapt.oracle_labels``, analysis only): they replace the teacher's peaks;
                confidences and masks still come from the teacher.
            oracle_visible: optional (B, K) visibility of ``oracle_keypoints``: unlabelled
                keypoints get no oracle label (both masks 0).

        Returns:
            dict with ``keypoints_2d`` / ``keypoints_3d`` (B, K, 2) teacher-view input pixels,
            ``scores`` (B, K), ``mask_2d`` / ``mask_3d`` (B, K).
        """
        stride_px = int(self.teacher.stride)
        hm_size = int(teacher_images.shape[1]) // stride_px
        heatmaps = ensemble_heatmaps(lambda x: self.teacher(x, training=False), teacher_images,
                                     self.teacher_rotations, stride_px, hm_size)
        stride = ops.cast(stride_px, "float32")
        peaks_hm, scores = decode_heatmaps(heatmaps)
        peaks = peaks_hm * stride
        if oracle_keypoints is not None:
            peaks = ops.cast(oracle_keypoints, "float32")
            peaks_hm = peaks / stride
        out = {"keypoints_2d": peaks, "scores": scores}
        out["mask_2d"] = top_fraction_mask(scores, self.mask_fraction)
        if self.uses_3d:
            pose = self.lifter.lift(peaks, training=False)
            pose = project_to_skeleton(pose, self.skeleton, self.bone_ratios)
            reprojected = reproject(pose, peaks, weights=scores)
            out["keypoints_3d"] = reprojected
            out["mask_3d"] = agreement_mask(peaks_hm, reprojected / stride, self.agreement_px)
        else:
            out["keypoints_3d"] = peaks
            out["mask_3d"] = ops.zeros_like(scores)
        if oracle_visible is not None:
            labelled = ops.cast(ops.cast(oracle_visible, "float32") > 0, "float32")
            out["mask_2d"] = out["mask_2d"] * labelled
            out["mask_3d"] = out["mask_3d"] * labelled
        return {k: ops.stop_gradient(v) for k, v in out.items()}

    # ------------------------------------------------------------------------ the iteration
    def _one_backward(self):
        """Whether one backward pass gives both the student's and W/G's gradients.

        True when W and G are trained and ``lambda_rec != 0``: their gradient is then the total
        loss's divided by ``lambda_rec``. Otherwise (``lambda_rec == 0``: the total does not
        reach W and G) W/G take their own gradient of ``L_rec`` from a persistent tape.
        """
        return self.train_generator and self.lambda_rec != 0.0

    def train_step(self, data):
        import tensorflow as tf  # the stage runs on the TF engine (tf.distribute, tf.data)

        if "target" not in data:
            return self._source_only_step(data["source"])
        src, tgt = data["source"], data["target"]
        pairs = data.get("pairs")
        src_images = ops.cast(src["image"], "float32")
        student_view = ops.cast(tgt["student_image"], "float32")
        size = ops.shape(student_view)[1]
        n_src = ops.shape(src_images)[0]
        n_tgt = ops.shape(student_view)[0]
        parts = [src_images, student_view]
        if self.rec:
            base = ops.cast(pairs["base"], "float32")
            driving = ops.cast(pairs["driving"], "float32")
            n_pair = ops.shape(base)[0]
            parts += [base, driving]

        # ---- pseudo-labels from the teacher, mapped into the student view
        labels = self.pseudo_labels(ops.cast(tgt["teacher_image"], "float32"),
                                    tgt.get("oracle_keypoints"), tgt.get("oracle_visible"))
        affine = ops.cast(tgt["affine"], "float32")
        labels["keypoints_2d"] = apply_affine(affine, labels["keypoints_2d"])
        labels["keypoints_3d"] = apply_affine(affine, labels["keypoints_3d"])
        if "teacher_index" in tgt:  # one view flipped: student joint i is teacher joint index[i]
            index = ops.cast(tgt["teacher_index"], "int32")
            labels = {k: ops.take_along_axis(v, index if len(v.shape) == 2 else index[..., None],
                                             axis=1) for k, v in labels.items()}
        hm_size = self.student.heatmap_size
        ones = ops.ones_like(labels["scores"])
        pl_2d, in_2d = encode_heatmaps(labels["keypoints_2d"], ones, size, hm_size)
        pl_3d, in_3d = encode_heatmaps(labels["keypoints_3d"], ones, size, hm_size)
        mask_2d, mask_3d = strategy_masks(self.pseudo, labels["mask_2d"], labels["mask_3d"],
                                          self.combined)
        mask_2d = mask_2d * in_2d
        mask_3d = mask_3d * in_3d
        overlap = mask_overlap(labels["mask_2d"], labels["mask_3d"])

        student_vars = self.student.trainable_variables
        gen_vars = self._generator_variables() if self.train_generator else []
        one_backward = self._one_backward()
        with tf.GradientTape(persistent=bool(gen_vars) and not one_backward) as tape:
            heatmaps = self.student(ops.concatenate(parts, axis=0), training=True)
            hm_src = heatmaps[:n_src]
            hm_tgt = heatmaps[n_src:n_src + n_tgt]
            loss_src = heatmap_mse(src["heatmaps"], hm_src, src["weights"])
            loss_2d = masked_heatmap_mse(pl_2d, hm_tgt, mask_2d) if self.uses_2d else 0.0
            loss_3d = masked_heatmap_mse(pl_3d, hm_tgt, mask_3d) if self.uses_3d else 0.0
            total = loss_src + self.lambda_pl * (loss_2d + loss_3d)
            loss_rec = 0.0
            if self.rec:
                start = n_src + n_tgt
                hm_pair = heatmaps[start:]
                kp = self.student.soft_keypoints(hm_pair, (None, size, size, 3))
                kp = normalize_keypoints(kp, (size, size))
                kp_base, kp_driving = kp[:n_pair], kp[n_pair:]
                generated, _ = reconstruct(self.warping_module, self.generator, base / 255.0,
                                           kp_base, kp_driving, training=True)
                loss_rec = self.reconstruction_loss(driving / 255.0, generated)
                total = total + self.lambda_rec * loss_rec
            scaled = scale_loss_for_distribution(total)
            gen_scaled = (scale_loss_for_distribution(loss_rec)
                          if gen_vars and not one_backward else None)
        if one_backward:
            # Only lambda_rec * L_rec depends on W and G, so d total / d(W, G) =
            # lambda_rec * d L_rec / d(W, G): one backward pass through the reconstruction loss,
            # G and W gives both updates (both losses carry the same distribution scaling).
            grads = tape.gradient(scaled, student_vars + gen_vars)
            grads, gen_grads = grads[:len(student_vars)], grads[len(student_vars):]
            gen_grads = [None if g is None else g / self.lambda_rec for g in gen_grads]
        else:
            grads = tape.gradient(scaled, student_vars)
            gen_grads = tape.gradient(gen_scaled, gen_vars) if gen_vars else []
            del tape
        self.optimizer.apply_gradients(zip(grads, student_vars))
        if gen_vars:
            self.generator_optimizer.apply_gradients(zip(gen_grads, gen_vars))
        ema_update(self.teacher, self.student, self.ema_decay)

        values = {"loss": total, "source": loss_src, "pseudo_2d": loss_2d, "pseudo_3d": loss_3d,
                  "rec": loss_rec, "overlap": overlap, "mask_2d": ops.mean(mask_2d),
                  "mask_3d": ops.mean(mask_3d)}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}
