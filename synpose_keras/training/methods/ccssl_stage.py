"""Stage ``adapt`` of ``--method ccssl``: consistency-constrained self-training (Mu et al., 2020).

One iteration (``CCSSLStage.train_step``)::

    for the frame to label and its neighbouring frame (same crop):
        T teacher passes: identity, and T - 1 random (scale, rotation, channel gains) copies
        back-warped heatmaps averaged -> label = argmax, confidence = maximum     (consensus)
    temporal rule with the neighbour's label (where the target has sequences)
    kept = the most confident ``keep_fraction`` of keypoint labels of the global batch
    L = MSE(student(x_s), y_s; w_s) + gamma * MSE(student(student view), labels; kept)

The teacher is a frozen copy of the student taken at the start of each self-training round
(``start_round``); the kept fraction rises round by round (0.2, 0.4, 0.6, 0.8). This is CC-SSL's
offline "generate labels, then train" loop with the labels computed on the fly from the round's
model: the same labels (up to the random passes), no label files.

See :mod:`synpose_keras.training.methods.ccssl` for what follows the public code and what the
harness changes (zero-motion temporal propagation, batch-level quantile, sigma 2).

Batch format: :func:`synpose_keras.training.methods.ccssl.ccssl_dataset`.

Reference:
    Mu, Qiu, Hager, Yuille, "Learning from Synthetic Animals", CVPR 2020, Sec. 3.2-3.3,
    Algorithm 1.
"""

from __future__ import annotations

import keras
from keras import ops

from synpose_keras.losses.scaling import scale_loss_for_distribution
from synpose_keras.ops.geometry import apply_affine
from synpose_keras.ops.heatmaps import encode_heatmaps
from synpose_keras.training.losses import heatmap_mse
from synpose_keras.training.mean_teacher import copy_weights
from synpose_keras.training.methods.batch_sync import global_top_fraction_mask
from synpose_keras.training.methods.ccssl import (
    consensus,
    curriculum_fraction,
    temporal_update,
    transform_matrices,
    warp_back,
    warp_by,
)
from synpose_keras.training.methods.teacher_student import TeacherStudentStage


class CCSSLStage(TeacherStudentStage, keras.Model):
    """CC-SSL's self-training iteration as a Keras model whose ``fit`` runs it.

    Args:
        student: PosePredictor (pre-trained on the source).
        teacher: PosePredictor of the same architecture: the round's frozen labeller.
        gamma: float. Target loss weight. Defaults to 10.
        keep_start, keep_step, keep_max: floats. Curriculum (0.2, 0.2, 0.8).
        scale_factor: float. Defaults to 0.25.
        rotation_factor: float. Degrees. Defaults to 30.
        color_factor: float. Channel gains in ``1 +- color_factor``. Defaults to 0.2.
        temporal: bool. Use the neighbouring frame. Defaults to True.
        temporal_ratio: float. Defaults to 0.9.
        motion_px: float. At a 256-pixel input (scaled). Defaults to 15.

    Shapes: B batch, S input side, K keypoints.

    Example:

    ```python
    from synpose_keras.training.methods import CCSSLStage
    from synpose_keras.training.methods.ccssl import ccssl_dataset
    stage = CCSSLStage(student, teacher)
    stage.compile(optimizer=keras.optimizers.RMSprop(2.5e-4, rho=0.99, epsilon=1e-8))
    stage.build_all(256)
    stage.initialize_teacher()
    for round_index in range(3):
        stage.fit(ccssl_dataset(config, source, target, round_index), steps_per_epoch=500)
        stage.start_round(round_index + 1)
    ```
    """

    def __init__(self, student, teacher, gamma=10.0, keep_start=0.2, keep_step=0.2, keep_max=0.8,
                 scale_factor=0.25, rotation_factor=30.0, color_factor=0.2, temporal=True,
                 temporal_ratio=0.9, motion_px=15.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < keep_start <= 1.0 or not 0.0 < keep_max <= 1.0 or keep_step < 0:
            raise ValueError("keep_start and keep_max must be in (0, 1] and keep_step >= 0. "
                             f"Received: keep_start={keep_start}, keep_step={keep_step}, "
                             f"keep_max={keep_max}")
        if not 0.0 <= color_factor < 1.0:
            raise ValueError("color_factor must be in [0, 1). "
                             f"Received: color_factor={color_factor}")
        self.student = student
        self.teacher = teacher
        self.gamma = float(gamma)
        self.keep_start = float(keep_start)
        self.keep_step = float(keep_step)
        self.keep_max = float(keep_max)
        self.scale_factor = float(scale_factor)
        self.rotation_factor = float(rotation_factor)
        self.color_factor = float(color_factor)
        self.temporal = bool(temporal)
        self.temporal_ratio = float(temporal_ratio)
        self.motion_px = float(motion_px)
        self.keep_fraction = keras.Variable(curriculum_fraction(0, keep_start, keep_step, keep_max),
                                            trainable=False, name="keep_fraction", dtype="float32")
        self.round = keras.Variable(0, trainable=False, name="round", dtype="int32")
        names = ["loss", "source", "target", "kept", "confidence", "temporal"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    def start_round(self, round_index):
        """New self-training round: the teacher becomes a copy of the student, and the kept
        fraction moves along the curriculum. Call between epochs (cross-replica context)."""
        copy_weights(self.teacher, self.student)
        self.round.assign(int(round_index))
        self.keep_fraction.assign(curriculum_fraction(round_index, self.keep_start, self.keep_step,
                                                      self.keep_max))

    # ------------------------------------------------------------------------ labels
    def consensus_labels(self, images, draws):
        """Teacher labels of ``images`` from the averaged back-warped heatmaps (no gradient).

        Args:
            images: (B, S, S, 3).
            draws: dict ``scale``, ``rotation`` (B, T - 1), ``gains`` (B, T - 1, 3).

        Returns:
            ``(keypoints, confidence)``: (B, K, 2) input pixels, (B, K).
        """
        images = ops.cast(images, "float32")
        size = images.shape[1]
        stride = self.teacher.stride
        maps = [self.teacher(images, training=False)]
        passes = draws["scale"].shape[1]
        for t in range(passes or 0):
            matrix = transform_matrices(draws["scale"][:, t], draws["rotation"][:, t], size,
                                        self.scale_factor, self.rotation_factor)
            uniform = ops.cast(draws["gains"][:, t], "float32")
            gains = 1.0 + self.color_factor * (2.0 * uniform - 1.0)
            changed = ops.clip(images * gains[:, None, None, :], 0.0, 255.0)
            heatmaps = self.teacher(warp_by(changed, matrix), training=False)
            maps.append(warp_back(heatmaps, matrix, stride))
        keypoints, confidence = consensus(maps)
        return ops.stop_gradient(keypoints * float(stride)), ops.stop_gradient(confidence)

    # ------------------------------------------------------------------------ the iteration
    def train_step(self, data):
        import tensorflow as tf

        src, tgt, draws = data["source"], data["target"], data["draws"]
        teacher_view = ops.cast(tgt["teacher_image"], "float32")
        size = teacher_view.shape[1]
        n_tgt = ops.shape(teacher_view)[0]
        if self.temporal:
            both = ops.concatenate([teacher_view, ops.cast(tgt["neighbor_image"], "float32")], 0)
            twice = {k: ops.concatenate([v, v], 0) for k, v in draws.items()}
            keypoints, confidence = self.consensus_labels(both, twice)
            kp, conf = keypoints[:n_tgt], confidence[:n_tgt]
            kp, new_conf = temporal_update(kp, conf, keypoints[n_tgt:], confidence[n_tgt:],
                                           tgt["has_neighbor"], self.temporal_ratio,
                                           self.motion_px * float(size) / 256.0)
            replaced = ops.mean(ops.cast(ops.not_equal(new_conf, conf), "float32"))
            conf = new_conf
        else:
            kp, conf = self.consensus_labels(teacher_view, draws)
            replaced = ops.zeros(())
        kept = global_top_fraction_mask(conf, self.keep_fraction)

        kp = apply_affine(ops.cast(tgt["affine"], "float32"), kp)
        if "teacher_index" in tgt:
            index = ops.cast(tgt["teacher_index"], "int32")
            kp = ops.take_along_axis(kp, index[..., None], axis=1)
            kept = ops.take_along_axis(kept, index, axis=1)
        labels, inside = encode_heatmaps(kp, ops.ones_like(kept), size, self.student.heatmap_size)
        weights = kept * inside

        src_images = ops.cast(src["image"], "float32")
        n_src = ops.shape(src_images)[0]
        student_view = ops.cast(tgt["student_image"], "float32")
        variables = self.student.trainable_variables
        with tf.GradientTape() as tape:
            heatmaps = self.student(ops.concatenate([src_images, student_view], 0), training=True)
            loss_src = heatmap_mse(src["heatmaps"], heatmaps[:n_src], src["weights"])
            loss_tgt = heatmap_mse(labels, heatmaps[n_src:], weights)
            total = loss_src + self.gamma * loss_tgt
            scaled = scale_loss_for_distribution(total)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))

        values = {"loss": total, "source": loss_src, "target": loss_tgt, "kept": ops.mean(weights),
                  "confidence": ops.mean(conf), "temporal": replaced}
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: t.result() for name, t in self.trackers.items()}
