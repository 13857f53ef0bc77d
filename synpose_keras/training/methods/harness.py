"""The comparison methods inside ``synpose train``: building their adapt stages and running them
with the same runner, data, checkpoints, resume and evaluation as ours.

``Trainer.stage_adapt`` hands every method but ``ours`` to :func:`run_method_adapt`.
"""

from __future__ import annotations

import keras

from synpose_keras.training import data as stage_data
from synpose_keras.training.methods.ccssl import ccssl_dataset
from synpose_keras.training.methods.ccssl_stage import CCSSLStage
from synpose_keras.training.methods.regda_stage import RegDAStage, regda_optimizers
from synpose_keras.training.methods.registry import METHODS
from synpose_keras.training.methods.uniframe import add_uniframe_draws
from synpose_keras.training.methods.uniframe_stage import UniFrameStage
from synpose_keras.training.pretrain_stage import PretrainStage
from synpose_keras.training.runner import _save_model, _write_json, lr_with_milestones


def build_adapt_stage(method, config, student, teacher=None, style_net=None):
    """The compiled, built ``adapt`` stage of a comparison method.

    Args:
        method: str. "source-only", "oracle", "uniframe", "regda" or "ccssl" (``ours`` is
            :class:`~synpose_keras.training.adapt_stage.AdaptStage`, built by the Trainer).
        config: TrainConfig.
        student: PosePredictor to adapt (the pre-trained model).
        teacher: PosePredictor of the same architecture (UniFrame, CC-SSL); initialised to the
            student here.
        style_net: optional StyleNet (UniFrame's restyling).

    Returns:
        keras.Model with a ``train_step`` for ``fit``.
    """
    if method not in METHODS or method == "ours":
        raise ValueError("build_adapt_stage builds the comparison methods "
                         f"{[m for m in METHODS if m != 'ours']}. Received: method={method!r}")
    a = config.adapt
    size = config.model.input_size
    if method in ("source-only", "oracle"):
        stage = PretrainStage(student, style_net=None, restyle_prob=0.0, seed=config.seed)
        stage.compile(optimizer=keras.optimizers.Adam(config.source_only.lr))
        stage.predictor(keras.ops.zeros((1, size, size, 3)))
        stage.optimizer.build(student.trainable_variables)
        stage.built = True
        return stage
    if method == "regda":
        r = config.regda
        stage = RegDAStage(student, margin=r.margin, trade_off=r.trade_off, gl_max=r.gl_max,
                           gl_alpha=r.gl_alpha, gl_max_iters=r.gl_max_iters,
                           head_layers=r.head_layers)
        stage.compile(**regda_optimizers(lr=r.lr, feature_lr_mult=r.feature_lr_mult,
                                         momentum=r.momentum, weight_decay=r.weight_decay,
                                         lr_gamma=r.lr_gamma, lr_decay=r.lr_decay))
        stage.build_all(size)
        return stage
    if teacher is None:
        raise ValueError(f"method={method!r} needs a teacher PosePredictor. Received: teacher=None")
    if method == "uniframe":
        u = config.uniframe
        stage = UniFrameStage(student, teacher, style_net=style_net,
                              source_restyle_prob=u.source_restyle_prob,
                              teacher_restyle_prob=u.teacher_restyle_prob,
                              mask_fraction=u.mask_fraction, lambda_c=u.lambda_c,
                              occlusion_prob=u.occlusion_prob,
                              occlusion_threshold=u.occlusion_threshold,
                              occlusion_size=u.occlusion_size, ema_decay=a.ema_decay)
        stage.compile(optimizer=keras.optimizers.Adam(a.lr))
    else:
        s = config.ccssl
        stage = CCSSLStage(student, teacher, gamma=s.gamma, keep_start=s.keep_start,
                           keep_step=s.keep_step, keep_max=s.keep_max,
                           scale_factor=s.scale_factor, rotation_factor=s.rotation_factor,
                           color_factor=s.color_factor, temporal=s.temporal,
                           temporal_ratio=s.temporal_ratio, motion_px=s.motion_px)
        stage.compile(optimizer=keras.optimizers.RMSprop(s.lr, rho=0.99, epsilon=1e-8))
    stage.build_all(size)
    stage.initialize_teacher()
    return stage


def adapt_dataset_fn(method, config):
    """``make_dataset(epoch)`` of a comparison method's ``adapt`` stage."""
    c = config
    if method == "source-only":
        # continue the ERM epochs: seeds after the pre-training's, so no batch repeats
        return lambda e: stage_data.pretrain_dataset(c, c.source, c.target,
                                                     c.pretrain.epochs + e, False)
    if method == "oracle":  # the same continuation on the target's labelled train split
        return lambda e: stage_data.pretrain_dataset(c, c.target, c.target,
                                                     c.pretrain.epochs + e, False)
    if method == "regda":
        return lambda e: stage_data.adapt_dataset(c, c.source, c.target, e, False)
    if method == "uniframe":
        return lambda e: add_uniframe_draws(
            stage_data.adapt_dataset(c, c.source, c.target, e, False),
            stage_data.epoch_seed(c.seed, "adapt", e) + 3)
    if method == "ccssl":
        return lambda e: ccssl_dataset(c, c.source, c.target, e, temporal=c.ccssl.temporal)
    raise ValueError(f"Unknown comparison method. Received: method={method!r}")


def run_method_adapt(trainer):
    """Stage ``adapt`` of ``trainer.config.method`` (not ``ours``), with the Trainer's runner,
    checkpoints, resume policy and per-epoch evaluation.

    Writes ``RUN/adapt/pose_predictor.keras`` (the model that is evaluated: UniFrame's teacher,
    the trained predictor otherwise), and ``student.keras`` / ``adversarial_head.keras`` where the
    method has them.
    """
    c = trainer.config
    a = c.adapt
    method = c.method
    student = trainer._pretrained_predictor()
    teacher = style_net = None
    if method in ("uniframe", "ccssl"):
        teacher = trainer._pretrained_predictor()
    if method == "uniframe":
        style_net = trainer.restyling_net("adapt")
    stage = build_adapt_stage(method, c, student, teacher=teacher, style_net=style_net)
    trainer.log(f"[adapt] no per-epoch reconstruction diagnostics: method {method!r} has no "
                "reconstruction")
    evaluated = stage.teacher if method == "uniframe" else student
    eval_callback = trainer._eval_callback(evaluated)
    kwargs = {}
    if method in ("source-only", "oracle"):
        kwargs["lr_schedule"] = lr_with_milestones(c.source_only.lr, c.source_only.lr_milestones)
    elif method == "uniframe":
        kwargs["lr_schedule"] = lr_with_milestones(a.lr, a.lr_milestones)
    elif method == "regda":
        kwargs["trackables"] = {"head_optimizer": stage.head_optimizer,
                                "adversarial_optimizer": stage.adversarial_optimizer}
    on_epoch_end = eval_callback
    if method == "ccssl":
        round_epochs = max(1, int(c.ccssl.round_epochs))

        def on_epoch_end(epoch, logs):
            out = {"keep_fraction": float(stage.keep_fraction.numpy())}
            if (epoch + 1) % round_epochs == 0:
                stage.start_round((epoch + 1) // round_epochs)
            out.update(eval_callback(epoch, logs))
            return out

        kwargs["extra_state"] = lambda: {"round": int(stage.round.numpy())}
        kwargs["restore_state"] = lambda state: stage.round.assign(int(state["round"]))
    kwargs["lr_key"] = {"source-only": "source_only.lr", "oracle": "source_only.lr",
                        "uniframe": "adapt.lr"}.get(method, f"{method}.lr")
    runner = trainer._runner("adapt", stage, adapt_dataset_fn(method, c), a.epochs, a.iterations,
                             on_epoch_end=on_epoch_end, **kwargs)
    runner.run(trainer.resume)
    _save_model(evaluated, trainer._path("adapt", "pose_predictor.keras"))
    if method == "uniframe":
        _save_model(stage.student, trainer._path("adapt", "student.keras"))
    if method == "regda":
        _save_model(stage.adversarial_head, trainer._path("adapt", "adversarial_head.keras"))
    _write_json(trainer._path("adapt", "method.json"),
                {"method": method, "title": METHODS[method][0], "reference": METHODS[method][1]})
