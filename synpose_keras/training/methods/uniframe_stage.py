"""Stage ``adapt`` of ``--method uniframe``: UniFrame's mean teacher (Kim et al., ECCV 2022).

One iteration (``UniFrameStage.train_step``)::

    x_s  <- AdaIN(x_s, style of a target image)             p = 0.5, alpha ~ U(0, 1)
    x_tt <- AdaIN(teacher view, style of a source image)    p = 0.5, alpha ~ U(0, 1)
    teacher(x_tt) -> peaks, confidences -> mapped into the student view by the known affine
    x_ts <- keypoint-guided occlusion of the student view    p = 0.5, confidence >= 0.9, 20 x 20
    L = MSE(student(x_s), y_s; w_s) + lambda_c * mean(M * (student(x_ts) - G(peaks))^2)
    teacher <- EMA(student), decay 0.999

G re-renders each teacher peak as a sigma = 2 Gaussian (UniFrame's ``rectify``); M keeps the
most confident 50% of keypoint instances of the (global) batch and those whose peak lands inside
the student view. The consistency term is UniFrame's ``ConsLoss``: the masked squared difference
averaged over every heatmap element (not over the kept instances).

Which choice follows what:

- UniFrame code (``train_human.py``): restyling probabilities and alpha ranges (``--s2t-freq``,
  ``--t2s-freq`` 0.5, ``--s2t-alpha``, ``--t2s-alpha`` (0, 1)), the restyled teacher input,
  ``--mask-ratio`` 0.5 over the batch's keypoint instances, ``--lambda_c`` 1, the occlusion
  (``--occlude-rate`` 0.5, ``--occlude-thresh`` 0.9, ``--occlude-size`` 10 = half side), the
  source loss (JointsMSELoss), Adam 1e-4 with x0.1 at epochs 45 and 60 of 70, EMA 0.999.
- Ours, where the harness differs: UniFrame draws restyling once per batch; we draw per image
  (same expected fraction, lower variance). UniFrame warps the student's heatmaps back to the
  un-augmented frame; we map the teacher's peaks into the student view (the same pairing of
  labels and predictions). UniFrame's teacher runs in training mode and keeps BatchNorm
  statistics of its own; our teacher runs in inference mode and its moving statistics are
  averaged with the rest (:mod:`synpose_keras.training.mean_teacher`). The teacher view is the
  harness's (un-augmented by default; UniFrame also augments it). The occlusion happens in the
  student view directly (UniFrame warps the student image back, pastes, and warps it forward).
  The patch side scales with the input (20 px at 256, 5 px at 64).

Batch format: the ``adapt`` dataset plus ``draws`` (:func:`.uniframe.add_uniframe_draws`).

Reference:
    Kim et al., "A Unified Framework for Domain Adaptive Pose Estimation", ECCV 2022, Sec. 3;
    docs/protocol.md, "Comparison methods"; docs/methods.md.
"""

from __future__ import annotations

import keras
from keras import ops

from synpose_keras.losses.scaling import scale_loss_for_distribution
from synpose_keras.ops.geometry import apply_affine
from synpose_keras.ops.heatmaps import decode_heatmaps, encode_heatmaps
from synpose_keras.training.losses import heatmap_mse
from synpose_keras.training.mean_teacher import ema_update
from synpose_keras.training.methods.batch_sync import global_top_fraction_mask
from synpose_keras.training.methods.teacher_student import TeacherStudentStage
from synpose_keras.training.methods.uniframe import (
    keypoint_guided_occlusion,
    occlusion_half_size,
    restyle,
)


class UniFrameStage(TeacherStudentStage, keras.Model):
    """UniFrame's adaptation iteration as a Keras model whose ``fit`` runs it.

    Args:
        student: PosePredictor (pre-trained with restyling).
        teacher: PosePredictor of the same architecture (EMA of the student).
        style_net: optional StyleNet (frozen). None turns both restylings off.
        source_restyle_prob: float. Defaults to 0.5.
        teacher_restyle_prob: float. Defaults to 0.5.
        mask_fraction: float. Defaults to 0.5.
        lambda_c: float. Consistency weight. Defaults to 1.
        occlusion_prob: float. Defaults to 0.5.
        occlusion_threshold: float. Defaults to 0.9.
        occlusion_size: int. Patch side at a 256-pixel input. Defaults to 20.
        ema_decay: float. Defaults to 0.999.

    Shapes: B batch, S input side, K keypoints.

    Example:

    ```python
    from synpose_keras.training.methods import UniFrameStage, adapt_dataset_fn
    stage = UniFrameStage(student, teacher, style_net=style_net)
    stage.compile(optimizer=keras.optimizers.Adam(1e-4))
    stage.build_all(256)
    stage.initialize_teacher()
    stage.fit(adapt_dataset_fn("uniframe", config)(0), steps_per_epoch=500)
    ```
    """

    def __init__(self, student, teacher, style_net=None, source_restyle_prob=0.5,
                 teacher_restyle_prob=0.5, mask_fraction=0.5, lambda_c=1.0, occlusion_prob=0.5,
                 occlusion_threshold=0.9, occlusion_size=20, ema_decay=0.999, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("source_restyle_prob", source_restyle_prob),
                            ("teacher_restyle_prob", teacher_restyle_prob),
                            ("occlusion_prob", occlusion_prob), ("ema_decay", ema_decay)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]. Received: {name}={value}")
        if not 0.0 < mask_fraction <= 1.0:
            raise ValueError("mask_fraction must be in (0, 1]. "
                             f"Received: mask_fraction={mask_fraction}")
        self.student = student
        self.teacher = teacher
        self.style_net = style_net
        self.source_restyle_prob = float(source_restyle_prob)
        self.teacher_restyle_prob = float(teacher_restyle_prob)
        self.mask_fraction = float(mask_fraction)
        self.lambda_c = float(lambda_c)
        self.occlusion_prob = float(occlusion_prob)
        self.occlusion_threshold = float(occlusion_threshold)
        self.occlusion_size = int(occlusion_size)
        self.ema_decay = float(ema_decay)
        names = ["loss", "source", "consistency", "mask", "occluded"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    def teacher_labels(self, teacher_images):
        """Teacher peaks (teacher-view input pixels) and confidences, no gradient."""
        heatmaps = self.teacher(teacher_images, training=False)
        stride = ops.cast(ops.shape(teacher_images)[1] // ops.shape(heatmaps)[1], "float32")
        peaks, scores = decode_heatmaps(heatmaps)
        return ops.stop_gradient(peaks * stride), ops.stop_gradient(scores)

    def train_step(self, data):
        import tensorflow as tf

        src, tgt, draws = data["source"], data["target"], data["draws"]
        src_original = ops.cast(src["image"], "float32")
        teacher_view = ops.cast(tgt["teacher_image"], "float32")
        student_view = ops.cast(tgt["student_image"], "float32")
        size = student_view.shape[1]  # static: the pipelines produce fixed-size views
        src_images, teacher_in = src_original, teacher_view
        if self.style_net is not None:
            if self.source_restyle_prob > 0:
                src_images = restyle(self.style_net, src_original, teacher_view,
                                     draws["source_restyle"], draws["source_alpha"],
                                     self.source_restyle_prob, subset=not self.jit_compile)
            if self.teacher_restyle_prob > 0:
                teacher_in = restyle(self.style_net, teacher_view, src_original,
                                     draws["teacher_restyle"], draws["teacher_alpha"],
                                     self.teacher_restyle_prob, subset=not self.jit_compile)

        # ---- teacher labels in the student view
        peaks, scores = self.teacher_labels(teacher_in)
        peaks = apply_affine(ops.cast(tgt["affine"], "float32"), peaks)
        if "teacher_index" in tgt:
            index = ops.cast(tgt["teacher_index"], "int32")
            peaks = ops.take_along_axis(peaks, index[..., None], axis=1)
            scores = ops.take_along_axis(scores, index, axis=1)
        hm_size = self.student.heatmap_size
        labels, inside = encode_heatmaps(peaks, ops.ones_like(scores), size, hm_size)
        mask = global_top_fraction_mask(scores, self.mask_fraction) * inside

        # ---- keypoint-guided occlusion of the student view
        occluded = student_view
        if self.occlusion_prob > 0:
            occluded = keypoint_guided_occlusion(
                student_view, peaks, scores * inside, draws, prob=self.occlusion_prob,
                threshold=self.occlusion_threshold,
                half_size=occlusion_half_size(self.occlusion_size, int(size)))
        changed = ops.any(ops.not_equal(occluded, student_view), axis=(1, 2, 3))
        changed = ops.cast(changed, "float32")

        n_src = ops.shape(src_images)[0]
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            heatmaps = self.student(ops.concatenate([src_images, occluded], axis=0), training=True)
            loss_src = heatmap_mse(src["heatmaps"], heatmaps[:n_src], src["weights"])
            diff = heatmaps[n_src:] - labels
            loss_c = ops.mean(ops.square(diff) * mask[:, None, None, :])
            total = loss_src + self.lambda_c * loss_c
            scaled = scale_loss_for_distribution(total)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        ema_update(self.teacher, self.student, self.ema_decay)

        values = {"loss": total, "source": loss_src, "consistency": loss_c,
                  "mask": ops.mean(mask), "occluded": ops.mean(changed)}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}
