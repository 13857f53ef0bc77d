"""``synpose train``: style -> pretrain (+ lifter) -> generator -> adapt -> evaluate.

This module wires the stage models (:mod:`synpose_keras.training`), the stage datasets
(:mod:`synpose_keras.training.data`) and the loop (:mod:`synpose_keras.training.runner`).
Every variable is created inside ``strategy.scope()``.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Callable, Optional

import keras
import numpy as np

from synpose_keras.models import Generator, Lifter, PosePredictor, StyleNet, WarpingModule
from synpose_keras.pseudo_labels import IntegrationSchedule, reference_bone_ratios
from synpose_keras.skeletons import get_skeleton
from synpose_keras.training import data as stage_data
from synpose_keras.training.adapt_stage import AdaptStage
from synpose_keras.training.configs import STAGES, TrainConfig, load_config, save_config
from synpose_keras.training.evaluation import evaluate_predictor
from synpose_keras.training.generator_stage import GeneratorStage
from synpose_keras.training.lifter_fitting import fit_lifter
from synpose_keras.training.methods import method_stages
from synpose_keras.training.pretrain_stage import PretrainStage
from synpose_keras.training.pseudo_label_analysis import PseudoLabelAnalysis
from synpose_keras.training.runner import (
    RunConfigError,
    StageRunner,
    _read_json,
    _save_model,
    _write_json,
    check_data,
    ensure_benchmark,
    lr_with_milestones,
    make_strategy,
    write_summaries,
)
from synpose_keras.training.style_stage import StyleStage


def build_predictor(config: TrainConfig, handedness: Optional[str] = None) -> PosePredictor:
    """The run's pose predictor; ``handedness`` (None, "left", "right") is stored in its config
    (:func:`synpose_keras.inference.loading.source_handedness` of the source)."""
    m = config.model
    return PosePredictor(num_keypoints=get_skeleton(config.task).num_keypoints,
                         handedness=handedness,
                         backbone=m.backbone, input_size=m.input_size,
                         backbone_weights=m.backbone_weights,
                         deconv_filters=m.deconv_filters, output_stride=m.output_stride,
                         num_deconv_layers=m.num_deconv_layers,
                         width_multiplier=m.width_multiplier if m.backbone == "resnet18" else 1.0)


def _load(path: str):
    """Loads a stage output; an empty or truncated ``.keras`` file is one clear error."""
    from synpose_keras.inference.loading import check_keras_archive

    check_keras_archive(path)
    return keras.models.load_model(path)


class Trainer:
    """One run: resolves data, then runs the requested stages in order.

    Args:
        config: TrainConfig (validated).
        run_dir: str. RUN folder.
        resume: bool. Continue the run in ``run_dir`` from its checkpoints.
        verbose: int. 1 shows progress: Keras's bar on a terminal, plain lines otherwise
            (:mod:`synpose_keras.training.progress`).
        log: callable for messages.
        progress_every: optional int. A plain progress line every N steps, also on a terminal.
        overrides: optional dict. With ``resume``, the dotted-path overrides given now
            (``{"adapt.lr": "1e-4"}``); None compares ``config`` with the saved one instead.
            Applied from the next step on and recorded in ``config.json``, or refused
            (:mod:`synpose_keras.training.resume_overrides`); never ignored.
    """

    def __init__(self, config: TrainConfig, run_dir: str, resume: bool = False, verbose: int = 1,
                 log: Callable = print, checkpoint_every: int = 50, overrides=None,
                 progress_every: Optional[int] = None):
        self.run_dir = os.path.abspath(run_dir)
        self.log = log
        self.resume_changes = None
        config_path = os.path.join(self.run_dir, "config.json")
        if resume and os.path.exists(config_path):
            config = self._resumed_config(load_config(config_path), config, overrides)
        self.config = config.validate()
        if config.strategy != "multiworker":  # a worker checks once it knows its folder
            self._refuse_existing_run(resume)
        self.resume = resume
        self.verbose = verbose
        self.progress_every = progress_every
        self.checkpoint_every = checkpoint_every
        self.wall_times = {}
        self.skeleton = get_skeleton(config.task)
        os.makedirs(self.run_dir, exist_ok=True)

    def _resumed_config(self, saved: TrainConfig, given: TrainConfig, overrides) -> TrainConfig:
        """The saved run's config with the overrides given with ``--resume`` applied (or
        refused); ``--stages`` decides which stages run now."""
        from synpose_keras.training.methods import ADAPTING_METHODS
        from synpose_keras.training.resume_overrides import (
            config_differences,
            resolve_resume_overrides,
        )

        if overrides is None:
            overrides = config_differences(saved, given)
        saved.stages = given.stages
        run_stages = tuple(method_stages(saved.method, saved.stages))
        if (saved.method in ADAPTING_METHODS and saved.adapt.source_only_reference
                and "adapt" in saved.stages):
            run_stages += ("source-only",)
        completed = _read_json(os.path.join(self.run_dir, "state.json"),
                               {"completed": []})["completed"]
        positions = {}
        for stage in run_stages:
            progress = _read_json(os.path.join(self.run_dir, stage.replace("-", "_"),
                                               "progress.json"))
            if progress is not None:
                positions[stage] = (progress["epoch"], progress["step"])
        config, changes, reopen = resolve_resume_overrides(saved, overrides, completed,
                                                           run_stages, positions)
        config.stages = given.stages
        if changes:
            self.resume_changes = (changes, positions, reopen)
        return config

    def _save_config(self) -> None:
        """``RUN/config.json``: the config, and the history of the overrides applied on resume."""
        from synpose_keras.training.resume_overrides import record

        path = self._path("config.json")
        before = _read_json(path, {}) if self.resume else {}
        save_config(self.config, path)
        raw = _read_json(path)
        if before.get("resume_overrides"):
            raw["resume_overrides"] = before["resume_overrides"]
        if self.resume_changes is not None:
            changes, positions, reopen = self.resume_changes
            raw = record(raw, changes, positions, reopen)
            state = self._state()
            state["completed"] = [s for s in state["completed"] if s not in reopen]
            _write_json(self.state_path, state)
            for key, (old, new) in changes.items():
                self.log(f"--resume: {key} {old!r} -> {new!r}, from the next step on "
                         "(recorded in config.json)")
            for stage in reopen:
                self.log(f"--resume: stage '{stage}' is extended from its last checkpoint")
        _write_json(path, raw)

    def _refuse_existing_run(self, resume: bool) -> None:
        if not resume and os.path.exists(os.path.join(self.run_dir, "state.json")):
            raise RunConfigError(
                f"{self.run_dir} already holds a run. Pass --resume to continue it, or choose "
                "another --out."
            )

    def _select_worker_folder(self) -> None:
        """Under ``MultiWorkerMirroredStrategy`` only the chief writes RUN; every other worker
        runs the same program into ``RUN/workers/worker-<index>`` (its checkpoints, needed to
        resume that worker, and outputs identical to the chief's), so workers never overwrite
        each other's files."""
        from synpose_keras.training.multiworker_fixes import is_multi_worker

        if is_multi_worker(self.strategy) and not self.strategy.extended.should_checkpoint:
            index = self.strategy.cluster_resolver.task_id
            self.run_dir = os.path.join(self.run_dir, "workers", f"worker-{index}")
            self.log(f"Worker {index} (not the chief): writing to {self.run_dir}")
        if self.config.strategy == "multiworker":
            self._refuse_existing_run(self.resume)
        os.makedirs(self.run_dir, exist_ok=True)

    # ------------------------------------------------------------------------ data
    def resolve_data(self) -> None:
        c = self.config
        if (c.source is None) != (c.target is None):
            raise RunConfigError("Pass both --source and --target, or neither (embedded benchmark).")
        if c.source is None:
            c.source, c.target = ensure_benchmark(c.task, log=self.log)
        self.meta = check_data(c, c.source, c.target)
        if c.method == "oracle" and not (_has_labelled_split(self.meta["target"], "train")
                                         and _has_visible_keypoints(c.target, "train")):
            raise RunConfigError(
                f"--method oracle trains on the target's labelled train split, but {c.target} has "
                f"no labels there (meta.json labels: {self.meta['target'].get('labels', '?')!r}, "
                f"counts: {self.meta['target'].get('counts')}). The oracle is a ceiling for "
                "benchmarks with a labelled target; unlabelled footage has none.")

    @property
    def training_source(self) -> str:
        """The labelled data the supervised stages read: the target for ``--method oracle``."""
        return self.config.target if self.config.method == "oracle" else self.config.source

    # ------------------------------------------------------------------------ state
    @property
    def state_path(self):
        return os.path.join(self.run_dir, "state.json")

    def _state(self) -> dict:
        return _read_json(self.state_path, {"completed": []})

    def _complete(self, stage: str) -> None:
        state = self._state()
        if stage not in state["completed"]:
            state["completed"].append(stage)
        _write_json(self.state_path, state)

    def _path(self, *parts) -> str:
        return os.path.join(self.run_dir, *parts)

    # ------------------------------------------------------------------------ main
    def run(self) -> dict:
        """Runs the stages while holding the run folder's lock (``RUN/.lock``): a second
        process training the same folder is refused with the holder named."""
        from synpose_keras.locking import folder_lock

        self.strategy = make_strategy(self.config.strategy)
        self._select_worker_folder()
        with folder_lock(self._path(".lock"), f"synpose train --out {self.run_dir}",
                         log=self.log):
            policy = keras.mixed_precision.global_policy()
            try:
                return self._run_locked()
            finally:  # a bfloat16 run leaves the caller's process in its own precision
                keras.mixed_precision.set_global_policy(policy)

    def _run_locked(self) -> dict:
        started = time.perf_counter()
        self.wall_times = {}
        self.resolve_data()
        if not os.path.exists(self.state_path):
            _write_json(self.state_path, {"completed": []})
        self._save_config()
        from synpose_keras.training.precision import resolve_mixed_precision

        self.bfloat16, reason = resolve_mixed_precision(self.config.mixed_precision)
        self.log(f"[train] mixed bfloat16: {reason}")
        if self.bfloat16:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        completed = self._state()["completed"]
        for stage in STAGES:
            if stage not in method_stages(self.config.method, self.config.stages):
                continue
            if stage in completed:
                self.log(f"[{stage}] already completed in {self.run_dir}; skipped")
                self.wall_times[stage] = None
                continue
            keras.utils.set_random_seed(self.config.seed + STAGES.index(stage))
            t0 = time.perf_counter()
            with self.strategy.scope():
                getattr(self, f"stage_{stage}")()
            self.wall_times[stage] = time.perf_counter() - t0
            self._complete(stage)
        if self._wants_reference() and "source-only" in self._state()["completed"]:
            self.log(f"[source-only] already completed in {self.run_dir}; skipped")
            self.wall_times["source-only"] = None
        elif self._wants_reference():
            keras.utils.set_random_seed(self.config.seed + STAGES.index("adapt"))
            t0 = time.perf_counter()
            with self.strategy.scope():
                self.source_only_reference()
            self.wall_times["source-only"] = time.perf_counter() - t0
            self._complete("source-only")
        t0 = time.perf_counter()
        result = self.evaluate()
        self.wall_times["evaluation"] = time.perf_counter() - t0
        self.wall_times["total"] = time.perf_counter() - started
        # this invocation's wall time per stage (None: completed before), not in evaluation.json
        result["wall_time_s"] = dict(self.wall_times)
        return result

    def _wants_reference(self) -> bool:
        from synpose_keras.training.methods import ADAPTING_METHODS

        c = self.config
        return (c.method in ADAPTING_METHODS and c.adapt.source_only_reference
                and "adapt" in c.stages)

    def source_only_reference(self) -> None:
        """The ``source-only`` row: the pre-trained predictor trained on the source alone for as
        many iterations as the adaptation -> ``RUN/source_only/pose_predictor.keras``.

        For ``ours``: :class:`AdaptStage` with the target terms off (same optimiser, learning
        rate, source batches and EMA teacher; the teacher is evaluated, as after ``adapt``). For
        the comparison methods: ``--method source-only``'s supervised continuation.
        """
        c = self.config
        a = c.adapt
        self.log(f"[source-only] reference: the pre-trained predictor on the source alone for "
                 f"{a.epochs} x {a.iterations} iterations (as many as the adaptation)")
        if c.method != "ours":
            from synpose_keras.training.methods import adapt_dataset_fn, build_adapt_stage

            student = self._pretrained_predictor()
            stage = build_adapt_stage("source-only", c, student)
            runner = self._runner("source_only", stage, adapt_dataset_fn("source-only", c),
                                  a.epochs, a.iterations,
                                  lr_schedule=lr_with_milestones(c.source_only.lr,
                                                                 c.source_only.lr_milestones),
                                  lr_key="source_only.lr")
            runner.run(self.resume)
            _save_model(student, self._path("source_only", "pose_predictor.keras"))
            return
        student = self._pretrained_predictor()
        teacher = self._pretrained_predictor()
        stage = AdaptStage(student, teacher, self.skeleton, pseudo="none", rec=False,
                           ema_decay=a.ema_decay)
        stage.compile(optimizer=keras.optimizers.Adam(a.lr))
        stage.build_all(c.model.input_size)
        stage.initialize_teacher()
        runner = self._runner("source_only", stage,
                              lambda e: stage_data.source_reference_dataset(c, c.source, e),
                              a.epochs, a.iterations,
                              lr_schedule=lr_with_milestones(a.lr, a.lr_milestones),
                              lr_key="adapt.lr")
        runner.run(self.resume)
        _save_model(stage.teacher, self._path("source_only", "pose_predictor.keras"))

    # ------------------------------------------------------------------------ stages
    def stage_style(self) -> None:
        c = self.config
        net = StyleNet(encoder_weights=c.style.encoder_weights,
                       width_multiplier=c.style.width_multiplier, style_weight=c.style.style_weight)
        stage = StyleStage(net)
        stage.compile(optimizer=keras.optimizers.Adam(c.style.lr))
        iterations = min(c.style.steps, 100) if c.style.steps > 100 else c.style.steps
        epochs = max(1, -(-c.style.steps // iterations))
        runner = self._runner("style", stage, lambda e: stage_data.style_dataset(
            c, c.source, c.target, e), epochs, iterations)
        runner.run(self.resume)
        _save_model(net, self._path("style", "style_net.keras"))
        self._measure_style_quality(net)

    def _restyling_allowed(self, score: float) -> bool:
        minimum = self.config.style.min_quality
        return minimum <= 0 or score >= minimum

    def _measure_style_quality(self, net) -> dict:
        """Content preservation of the trained StyleNet -> ``RUN/style/quality.json``."""
        c = self.config
        content, styles = [], []
        for batch in stage_data.style_dataset(c, c.source, c.target, 0).take(
                max(1, -(-32 // c.style.batch_size))):
            content.append(batch["source"].numpy())
            styles.append(batch["target"].numpy())
        content, styles = np.concatenate(content), np.concatenate(styles)
        score = net.content_preservation(content, styles, alpha=1.0)
        quality = {"content_preservation": score, "images": int(len(content)),
                   "min_quality": float(c.style.min_quality),
                   "measure": "mean Sobel-edge correlation between source images and their "
                              "restyling with target styles (alpha=1)"}
        _write_json(self._path("style", "quality.json"), quality)
        if not self._restyling_allowed(score):
            self.log(f"[style] WARNING: the StyleNet keeps little of the content's structure "
                     f"(content preservation {score:.2f} < style.min_quality "
                     f"{c.style.min_quality}): restyled images would not show the pose their "
                     "labels describe, so restyling is switched off. Provide VGG-19 weights "
                     "(--set style.encoder_weights=PATH/vgg19_weights_tf_dim_ordering_tf_kernels"
                     "_notop.h5) and/or train longer (--set style.steps=...).")
        return quality

    def restyling_net(self, stage: str):
        """The trained StyleNet if restyling should use it, else None (with the reason logged)."""
        path = self._path("style", "style_net.keras")
        if not os.path.exists(path):
            self.log(f"[{stage}] no trained StyleNet in this run: restyling is off")
            return None
        net = _load(path)
        net.trainable = False
        quality_path = self._path("style", "quality.json")
        if os.path.exists(quality_path):  # written by the style stage
            with open(quality_path) as f:
                quality = json.load(f)
        else:  # a StyleNet trained before the gate existed
            quality = self._measure_style_quality(net)
        score = quality["content_preservation"]
        if not self._restyling_allowed(score):
            self.log(f"[{stage}] restyling is off: StyleNet content preservation {score:.2f} < "
                     f"style.min_quality {self.config.style.min_quality} (RUN/style/quality.json)")
            return None
        return net

    def stage_pretrain(self) -> None:
        from synpose_keras.training.methods import pretrain_settings
        from synpose_keras.training.methods.registry import pretraining_kind

        c = self.config
        # restyled for ours and UniFrame; plain ERM for source-only, RegDA and CC-SSL
        restyle_prob, lr = pretrain_settings(c)
        predictor = build_predictor(c, handedness=self.handedness)
        style_net = self.restyling_net("pretrain") if restyle_prob > 0 else None
        stage = PretrainStage(predictor, style_net=style_net, restyle_prob=restyle_prob,
                              seed=c.seed)
        stage.compile(optimizer=keras.optimizers.Adam(lr))
        restyle = style_net is not None and restyle_prob > 0
        runner = self._runner(
            "pretrain", stage,
            lambda e: stage_data.pretrain_dataset(c, self.training_source, c.target, e, restyle),
            c.pretrain.epochs, c.pretrain.iterations,
            on_epoch_end=self._eval_callback(predictor),
            epoch_images=self._epoch_overlays(predictor),
            lr_schedule=(lr_with_milestones(lr, c.pretrain.lr_milestones)
                         if c.pretrain.lr_milestones else None),
            lr_key="source_only.lr" if pretraining_kind(c.method) == "erm" else "pretrain.lr")
        runner.run(self.resume)
        _save_model(predictor, self._path("pretrain", "pose_predictor.keras"))
        if self.meta["source"].get("has_3d") and c.method != "oracle":
            self._fit_lifter()

    def _fit_lifter(self) -> None:
        c = self.config
        kp2, kp3, vis = stage_data.source_3d_labels(c.source)
        lifter = Lifter(num_keypoints=self.skeleton.num_keypoints,
                        hidden_units=c.lifter.hidden_units, num_blocks=c.lifter.num_blocks,
                        dropout=c.lifter.dropout,
                        root_index=self.skeleton.parents.index(-1))
        history = fit_lifter(lifter, kp2, kp3, vis, epochs=c.lifter.epochs,
                             batch_size=c.lifter.batch_size, lr=c.lifter.lr, seed=c.seed)
        _save_model(lifter, self._path("pretrain", "lifter.keras"))
        np.save(self._path("pretrain", "bone_ratios.npy"),
                reference_bone_ratios(kp3, self.skeleton))
        _write_json(self._path("pretrain", "lifter_history.json"), history)
        self.log(f"[pretrain] lifter fitted on {len(kp2)} source poses "
                 f"(final normalised MSE {history['loss'][-1]:.4f})")

    def stage_generator(self) -> None:
        c = self.config
        predictor = self._pretrained_predictor()
        predictor.trainable = False
        warp, gen = self._new_generator_pair()
        stage = GeneratorStage(predictor, warp, gen, vgg_weights=c.generator.vgg_weights)
        stage.compile(optimizer=keras.optimizers.Adam(c.generator.lr, beta_1=0.5, beta_2=0.999))
        from synpose_keras.training.pair_statistics import write_pair_statistics
        write_pair_statistics(c, c.target, self._path("generator", "pairs.json"), log=self.log)
        runner = self._runner("generator", stage,
                              lambda e: stage_data.generator_dataset(c, c.target, e),
                              c.generator.epochs, c.generator.iterations)
        runner.run(self.resume)
        _save_model(warp, self._path("generator", "warping_module.keras"))
        _save_model(gen, self._path("generator", "generator.keras"))
        from synpose_keras.training.reconstruction_check import check_generator_stage
        check = check_generator_stage(c, predictor, warp, gen,
                                      self._path("generator", "reconstruction_check.json"),
                                      log=self.log)
        write_summaries(os.path.join(self.run_dir, "logs", "generator", "diagnostics"),
                        "reconstruction_check", check or {}, step=c.generator.epochs)

    def _new_generator_pair(self):
        g = self.config.generator
        warp = WarpingModule(num_keypoints=self.skeleton.num_keypoints,
                             block_expansion=g.block_expansion, num_blocks=g.num_blocks,
                             max_features=g.max_features, mask_prior=g.mask_prior,
                             kp_variance=g.kp_variance, motion_consensus=g.motion_consensus)
        gen = Generator(block_expansion=g.block_expansion, max_features=g.max_features,
                        num_residual_blocks=g.num_residual_blocks, output_mode=g.output_mode)
        return warp, gen

    def _pretrained_predictor(self) -> PosePredictor:
        path = self._path("pretrain", "pose_predictor.keras")
        if not os.path.exists(path):
            raise RunConfigError(
                f"Stage needs the pre-trained pose predictor {path}; run the 'pretrain' stage "
                "first (--stages pretrain,...)."
            )
        predictor = _load(path)
        if getattr(predictor, "handedness", None) is None and self.handedness is not None:
            predictor.handedness = self.handedness  # pre-trained before models stated it
        return predictor

    @property
    def handedness(self) -> Optional[str]:
        """``"left"`` when the source stores every hand as a left hand, else None; saved in every
        pose predictor of the run (``PosePredictor(handedness=...)``)."""
        from synpose_keras.inference.loading import source_handedness

        return source_handedness((getattr(self, "meta", None) or {}).get("source"))

    def stage_adapt(self) -> None:
        if self.config.method != "ours":  # the comparison methods: training/methods/
            from synpose_keras.training.methods import run_method_adapt

            return run_method_adapt(self)
        c = self.config
        a = c.adapt
        if a.oracle_labels:
            if not _has_labelled_split(self.meta["target"], "train"):
                raise RunConfigError(
                    f"adapt.oracle_labels needs a labelled target train split; {c.target} has "
                    "none.")
            self.log("[adapt] ANALYSIS RUN (adapt.oracle_labels): the pseudo-label positions are "
                     "the target's stored labels; this is not an adaptation result")
        student = self._pretrained_predictor()
        teacher = self._pretrained_predictor()
        uses_3d = a.pseudo in ("integrated", "independent", "union", "3d")
        lifter = ratios = None
        if uses_3d:
            lifter = _load(self._path("pretrain", "lifter.keras"))
            lifter.trainable = False
            ratios = np.load(self._path("pretrain", "bone_ratios.npy"))
        warp = gen = None
        if a.rec:
            warp_path = self._path("generator", "warping_module.keras")
            if os.path.exists(warp_path):
                warp = _load(warp_path)
                gen = _load(self._path("generator", "generator.keras"))
            else:
                self.log("[adapt] no pre-trained generator in this run: W and G start from scratch")
                warp, gen = self._new_generator_pair()
        stage = AdaptStage(student, teacher, self.skeleton, lifter=lifter, bone_ratios=ratios,
                           warping_module=warp, generator=gen, pseudo=a.pseudo, rec=a.rec,
                           lambda_pl=a.lambda_pl, lambda_rec=a.lambda_rec,
                           mask_fraction=a.mask_fraction, agreement_px=a.agreement_px,
                           ema_decay=a.ema_decay, vgg_weights=c.generator.vgg_weights,
                           teacher_rotations=a.teacher_rotations)
        stage.compile(optimizer=keras.optimizers.Adam(a.lr),
                      generator_optimizer=keras.optimizers.Adam(c.generator.lr, beta_1=0.5,
                                                                beta_2=0.999))
        stage.build_all(c.model.input_size)
        stage.initialize_teacher()
        schedule = IntegrationSchedule(a.pseudo, a.overlap_threshold)
        analysis = PseudoLabelAnalysis(stage, c, self.skeleton)
        rec_check = self._epoch_reconstruction(stage)

        def on_epoch_end(epoch, logs):
            combined = schedule.update(logs.get("overlap", 0.0))
            stage.combined.assign(1.0 if combined else 0.0)
            out = {"combined": float(combined)}
            out.update({f"pl_{k}": v for k, v in analysis.run_epoch(epoch).items()
                        if k != "epoch"})
            out.update(self._eval_callback(stage.teacher)(epoch, logs))
            if rec_check is not None:
                out.update(rec_check.values(stage.student))
            return out

        epoch_images = {"predictions": self._epoch_overlays(stage.teacher)}
        if rec_check is not None:
            epoch_images["reconstruction"] = lambda epoch: rec_check.images(stage.student)

        def extra_state():
            return {"schedule_combined": schedule.combined, "analysis": analysis.state()}

        def restore_state(state):
            schedule.combined = state["schedule_combined"]
            analysis.load_state(state["analysis"])

        trackables = {"generator_optimizer": stage.generator_optimizer} if a.rec else {}
        runner = self._runner("adapt", stage,
                              lambda e: stage_data.adapt_dataset(c, c.source, c.target, e, a.rec),
                              a.epochs, a.iterations, trackables=trackables,
                              on_epoch_end=on_epoch_end, epoch_images=epoch_images,
                              lr_schedule=lr_with_milestones(a.lr, a.lr_milestones),
                              extra_state=extra_state, restore_state=restore_state)
        runner.run(self.resume)
        _save_model(stage.teacher, self._path("adapt", "pose_predictor.keras"))
        _save_model(stage.student, self._path("adapt", "student.keras"))
        _write_json(self._path("adapt", "pseudo_labels.json"), analysis.stats.history)

    # ------------------------------------------------------------------------ helpers
    def _epoch_reconstruction(self, stage):
        """Stage ``adapt``'s per-epoch reconstruction check (RUN/logs/adapt/diagnostics:
        ``epoch_rec_check_*`` and the image ``reconstruction``), or None with a log line when the
        run has no reconstruction (``adapt.rec`` off) or no held-out pairs."""
        from synpose_keras.training.reconstruction_check import EpochReconstruction

        if not stage.rec:
            self.log("[adapt] no per-epoch reconstruction diagnostics: this run has no "
                     "reconstruction (adapt.rec is off)")
            return None
        return EpochReconstruction.from_config(self.config, stage.warping_module,
                                               stage.generator, log=self.log)

    def _runner(self, name, stage, make_dataset, epochs, iterations, **kwargs) -> StageRunner:
        return StageRunner(name, self.run_dir, stage, make_dataset, epochs, iterations,
                           checkpoint_every=self.checkpoint_every, verbose=self.verbose,
                           log=self.log, progress_every=self.progress_every, **kwargs)

    def _eval_callback(self, predictor):
        """Per-epoch PCK (All column) on the labelled target test split, when there is one."""
        split = "test" if _has_labelled_split(self.meta["target"], "test") else None

        def callback(epoch, logs):
            if split is None:
                return {}
            result = evaluate_predictor(predictor, self.config.target, split,
                                        limit=self.config_eval_limit)
            return {"target_pck_all": result["table"]["All"]}

        return callback

    def _epoch_overlays(self, predictor, count: int = 4):
        """callable(epoch) -> overlays of ``predictor`` on the first ``count`` target images
        (ground truth in white where labelled), for TensorBoard; None without target data."""
        meta = getattr(self, "meta", {}).get("target") or {}
        counts = meta.get("counts") or {}
        split = "test" if counts.get("test") else next((s for s, n in counts.items() if n), None)
        if split is None:
            return None
        c = self.config

        def images(epoch):
            from synpose_keras.datasets.pipeline import eval_pipeline
            from synpose_keras.viz import draw_keypoints

            batch = next(iter(eval_pipeline(c.target, input_size=c.model.input_size,
                                            heatmap_size=c.model.heatmap_size,
                                            batch_size=count, split=split).take(1)))
            pictures = batch["image"].numpy()
            keypoints, scores = predictor.predict_keypoints(pictures)
            tiles = []
            for image, kp, sc, gt, vis in zip(pictures, keypoints, scores,
                                              batch["keypoints"].numpy(),
                                              batch["visible"].numpy()):
                tile = draw_keypoints(np.clip(image, 0, 255).astype(np.uint8), gt,
                                      self.skeleton, visible=vis, radius=1.5,
                                      color=(255, 255, 255))
                tiles.append(np.asarray(draw_keypoints(tile, kp, self.skeleton, scores=sc,
                                                       radius=1.5)))
            return np.stack(tiles)

        return images

    @property
    def config_eval_limit(self) -> Optional[int]:
        return 500

    def evaluate(self) -> dict:
        """Table-A rows on the target test split -> RUN/evaluation.json.

        Rows: ``after pretrain``; ``source-only`` (the reference continuation of adapting
        methods, or the adaptation of ``--method source-only``); ``after adapt`` (adapting
        methods); ``oracle`` (``--method oracle``: the adaptation-length model trained on the
        target's labels). ``gain_over_source_only`` = after adapt - source-only, PCK@0.05 All,
        in points, when both rows exist.
        """
        target = self.config.target
        rows = {}
        split = "test"
        skipped = None
        if not _has_labelled_split(self.meta["target"], split):
            skipped = (f"the target {target} has no labelled '{split}' split (counts: "
                       f"{self.meta['target']['counts']}); PCK needs target labels")
            self.log(f"No evaluation: {skipped}. Evaluate later with `synpose evaluate "
                     f"{self.run_dir} --data LABELLED_DIR`.")
        final_label = {"source-only": "source-only", "oracle": "oracle"}.get(
            self.config.method, "after adapt")
        for stage, label in (("pretrain", "after pretrain"), ("source_only", "source-only"),
                             ("adapt", final_label)):
            path = self._path(stage, "pose_predictor.keras")
            if skipped is None and os.path.exists(path):
                row = evaluate_predictor(_load(path), target, split)
                if all(math.isnan(v) for v in row["per_keypoint"]):
                    skipped = f"the '{split}' split of {target} has no labelled keypoint"
                    self.log(f"No evaluation: {skipped}.")
                    rows = {}
                    continue
                rows[label] = row
        final = self._path("adapt", "pose_predictor.keras")
        if not os.path.exists(final):
            final = self._path("pretrain", "pose_predictor.keras")
        if os.path.exists(final):
            import shutil

            shutil.copyfile(final, self._path("pose_predictor.keras.tmp"))
            os.replace(self._path("pose_predictor.keras.tmp"), self._path("pose_predictor.keras"))
        result = {"task": self.config.task, "method": self.config.method,
                  "source": self.config.source, "target": target, "split": split, "rows": rows,
                  "mixed_bfloat16": bool(getattr(self, "bfloat16", False))}
        if skipped is not None:
            result["skipped"] = skipped
        if "after adapt" in rows and "source-only" in rows:
            result["gain_over_source_only"] = (rows["after adapt"]["table"]["All"]
                                               - rows["source-only"]["table"]["All"])
        _write_json(self._path("evaluation.json"), result)
        return result


def _has_visible_keypoints(data_dir: str, split: str, records: int = 256) -> bool:
    """Whether any of the first ``records`` records of ``split`` has a visible keypoint (datasets
    written without labels store all-zero visibility)."""
    from synpose_keras.datasets import load_records

    for batch in load_records(data_dir, split).take(records).batch(64):
        if float(np.sum(batch["visible"].numpy())) > 0:
            return True
    return False


def _has_labelled_split(meta: dict, split: str) -> bool:
    """Whether a converted dataset has ``split`` with labels (unlabelled footage, e.g. the
    ``frames`` converter, stores all-zero keypoints and says so in ``meta["labels"]``)."""
    if split not in meta.get("counts", {}) or not meta["counts"][split]:
        return False
    return not str(meta.get("labels", "")).lower().startswith("none")


def train(config: TrainConfig, run_dir: str, resume: bool = False, verbose: int = 1,
          log: Callable = print, checkpoint_every: int = 50, overrides=None,
          progress_every: Optional[int] = None) -> dict:
    """Runs ``config.stages`` in ``run_dir`` and returns the evaluation (see ``Trainer``), with
    ``wall_time_s``: this call's seconds per stage (None: completed before), ``evaluation`` and
    ``total`` (:func:`synpose_keras.training.progress.format_wall_times` prints them)."""
    return Trainer(config, run_dir, resume=resume, verbose=verbose, log=log,
                   checkpoint_every=checkpoint_every, overrides=overrides,
                   progress_every=progress_every).run()
