"""The training loop of ``synpose train``: stages, checkpoints, resume, evaluation.

Layout of a run folder ``RUN``::

    RUN/config.json               the resolved TrainConfig
    RUN/state.json                stages completed, and where the current stage stands
    RUN/<stage>/ckpt-*            tf.train.Checkpoint of the stage (models, optimizers, step)
    RUN/<stage>/history.json      per-epoch logs
    RUN/pretrain/pose_predictor.keras, lifter.keras, bone_ratios.npy
    RUN/style/style_net.keras
    RUN/generator/warping_module.keras, generator.keras
    RUN/adapt/pose_predictor.keras (student), teacher.keras, pseudo_labels.json
    RUN/pose_predictor.keras      the final model (adapted, else pre-trained)
    RUN/evaluation.json           Table-A rows on the target test split after pretrain and adapt
    RUN/logs/<stage>/             TensorBoard

Resume policy, in order (docs/training.md, "Resume and reliability"):
    1. the stage's own checkpoint in RUN (``--resume``): models, optimizers, teacher, integration
       state, pseudo-label statistics and the position inside the epoch are restored;
    2. a completed stage is never re-run; its saved outputs are loaded;
    3. a stage starts from the previous stage's outputs;
    4. otherwise from scratch (or from ``model.backbone_weights``).
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from synpose_keras.datasets import read_meta
from synpose_keras.skeletons import get_skeleton
from synpose_keras.training.configs import TrainConfig
from synpose_keras.training.progress import LineProgress, default_every, use_line_progress


class TrainingDivergedError(RuntimeError):
    """A NaN or inf loss or weight; the last good (verified finite) checkpoint is kept."""


class RunConfigError(ValueError):
    """The data or options cannot work together; raised before any training."""


# =============================================================================== small helpers
def _write_json(path: str, data) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=_json_default)
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _read_json(path: str, default=None):
    """The JSON content of ``path``, ``default`` when it does not exist.

    Raises:
        RunConfigError: the file is empty or not valid JSON (names it and how to recover).
    """
    if not os.path.exists(path):
        return default
    try:
        with open(path) as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        size = os.path.getsize(path)
        what = "is empty (0 bytes)" if size == 0 else f"is not valid JSON ({err})"
        raise RunConfigError(
            f"{path} {what}; expected the JSON file synpose train writes there. It was probably "
            "cut short by a full disk or a crash. Restore it from a copy, or delete the stage "
            "folder (or the run folder for config.json/state.json) to redo that part."
        ) from err


def _save_model(model: keras.Model, path: str) -> None:
    tmp = path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def _checkpoint_root_children(path: str) -> set:
    """Names of the objects a ``tf.train.Checkpoint`` file holds at its root."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    reader = tf.train.load_checkpoint(path)
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return {child.local_name for child in graph.nodes[0].children}


def nonfinite_variables(variables) -> list:
    """Paths of the floating-point variables that hold a NaN or inf (empty when all finite)."""
    bad = []
    for variable in variables:
        if not tf.as_dtype(variable.dtype).is_floating:
            continue
        if not bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(variable)))):
            bad.append(getattr(variable, "path", None) or getattr(variable, "name", "?"))
    return bad


def nonfinite_checkpoint_tensors(path: str) -> list:
    """Names of the floating-point tensors of checkpoint ``path`` that hold a NaN or inf."""
    reader = tf.train.load_checkpoint(path)
    bad = []
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype.is_floating and not np.all(np.isfinite(reader.get_tensor(name))):
            bad.append(name)
    return bad


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``default`` (one device), ``mirrored`` (all local GPUs, or CPUs), ``multiworker``
    (several machines, configured by the TF_CONFIG environment variable)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise RunConfigError(
                "strategy='multiworker' needs the TF_CONFIG environment variable describing the "
                "cluster (see docs/training.md, 'Scaling out')."
            )
        from synpose_keras.training.multiworker_fixes import install_multiworker_fixes

        install_multiworker_fixes()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise RunConfigError(f"Unknown strategy. Received: strategy={name!r}")


# =============================================================================== data checks
def default_benchmark_dir(task: str, seed: int = 0) -> str:
    root = os.environ.get("SYNPOSE_DATA", os.path.join(os.path.expanduser("~"), ".cache", "synpose_keras"))
    return os.path.join(root, f"synthetic-{task}-v4-seed{seed}")


def ensure_benchmark(task: str, log: Callable = print, seed: int = 0, **sizes) -> tuple:
    """The embedded benchmark's (source, target) folders, generated when missing."""
    from synpose_keras.datasets.synthetic.benchmark import generate_benchmark

    root = default_benchmark_dir(task, seed)
    source, target = os.path.join(root, "source"), os.path.join(root, "target")
    if not (os.path.exists(os.path.join(source, "meta.json"))
            and os.path.exists(os.path.join(target, "meta.json"))):
        log(f"Generating the embedded {task} benchmark in {root} (once) ...")
        generate_benchmark(root, task=task, seed=seed, **sizes)
    return source, target


def check_data(config: TrainConfig, source: str, target: str) -> dict:
    """Refuses incompatible source/target/options before training (clear messages)."""
    try:
        src_meta = read_meta(source)
        tgt_meta = read_meta(target)
    except FileNotFoundError as err:
        raise RunConfigError(str(err)) from err
    task_skeleton = get_skeleton(config.task).name
    for name, meta, path in (("source", src_meta, source), ("target", tgt_meta, target)):
        if meta["skeleton"] != task_skeleton:
            raise RunConfigError(
                f"The {name} dataset {path} has skeleton {meta['skeleton']!r} but --task "
                f"{config.task} needs {task_skeleton!r}. Source and target must share a skeleton."
            )
    if "train" not in src_meta["counts"]:
        raise RunConfigError(f"The source dataset {source} has no 'train' split.")
    if "train" not in tgt_meta["counts"]:
        raise RunConfigError(f"The target dataset {target} has no 'train' split.")
    uses_3d = config.method == "ours" and config.adapt.pseudo in ("integrated", "independent",
                                                                   "union", "3d")
    if uses_3d and "adapt" in config.stages and not src_meta.get("has_3d"):
        raise RunConfigError(
            f"--pseudo {config.adapt.pseudo} needs 3D pseudo-labels, which need a source with "
            f"keypoints_3d; {source} has none. Use --pseudo 2d or a source with 3D labels."
        )
    needs_pairs = ("generator" in config.stages or
                   ("adapt" in config.stages and config.adapt.rec and config.method == "ours"))
    target_sequences = int(tgt_meta.get("num_sequences", {}).get("train", 0))
    if needs_pairs and target_sequences == 0 and config.adapt.pair_fallback is None:
        raise RunConfigError(
            f"The reconstruction loss needs base/driving pairs, but the target {target} has no "
            "sequences (no video frames or camera views) and no fallback was chosen. Pass "
            "--set adapt.pair_fallback=affine to pair each image with a random affine of itself, "
            "or --no-rec."
        )
    return {"source": src_meta, "target": tgt_meta}


# =============================================================================== callbacks
class _StageCallback(keras.callbacks.Callback):
    """Learning-rate schedule, NaN guard, periodic checkpoints and the epoch-end work.

    A step's loss is computed before its update, so a finite loss does not prove finite
    weights: every checkpoint is written only after :meth:`StageRunner.save` checked every
    variable it holds (a checkpoint never holds NaN or inf), and the epoch-end work runs only on
    finite weights. Non-finite values that make an op fail before any loss is seen (a gather
    indexed by NaN keypoints) are caught by :meth:`StageRunner._fit`.

    ``prior`` holds the running means of the interrupted epoch's steps before a resume
    (``{"steps": n, "logs": {...}}``); the resumed epoch's history row averages all its steps.
    """

    def __init__(self, runner: "StageRunner", first_step: int, history: list, prior=None):
        super().__init__()
        self.runner = runner
        self.first_step = first_step
        self.history = history
        self.prior = prior if first_step > 0 else None
        self.epoch = None
        self.last_step = first_step
        self.diverged = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.last_step = self.first_step
        if self.runner.lr_schedule is not None:
            self.model.optimizer.learning_rate.assign(self.runner.lr_schedule(epoch))

    def _epoch_logs(self, logs, steps) -> dict:
        """This fit's running means over ``steps`` steps, merged with the steps before a resume."""
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if not self.prior or not self.prior.get("steps"):
            return logs
        n1, n2 = int(self.prior["steps"]), int(steps)
        merged = dict(logs)
        for key, value in self.prior.get("logs", {}).items():
            if key in logs and n1 + n2 > 0:
                merged[key] = (float(value) * n1 + logs[key] * n2) / (n1 + n2)
        return merged

    def _stop(self, epoch, step):
        self.diverged = (epoch, step)
        self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        step = self.first_step + batch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._stop(self.epoch, step)
            return
        self.last_step = step
        every = self.runner.checkpoint_every
        if every and step % every == 0 and step < self.runner.iterations:
            partial = {"steps": step, "logs": self._epoch_logs(logs, batch + 1)}
            if not self.runner.save(self.epoch, step, epoch_logs=partial):
                self._stop(self.epoch, step)

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is not None:
            return
        if self.runner.nonfinite():
            self._stop(epoch, self.last_step)
            return
        logs = self._epoch_logs(logs, self.last_step - self.first_step)
        self.first_step = 0
        self.prior = None
        if self.runner.on_epoch_end is not None:
            logs.update(self.runner.on_epoch_end(epoch, logs) or {})
        self.history.append({"epoch": epoch, **logs})
        _write_json(self.runner.history_path, self.history)
        if not self.runner.save(epoch + 1, 0):
            self._stop(epoch, self.last_step)


class EpochSummaries(keras.callbacks.Callback):
    """TensorBoard beyond the epoch losses, in ``RUN/logs/<stage>/diagnostics``.

    At each epoch end (after the stage's epoch-end work, whose values are in the history row):
    every numeric value of the row that Keras did not log itself, as ``epoch_<name>`` (the
    target PCK ``target_pck_all``; the pseudo-label statistics ``pl_overlap``,
    ``pl_selected``, ``pl_accuracy``, ``pl_inversion``, ...; ``combined``; stage ``adapt``'s
    reconstruction check ``rec_check_predicted``, ``rec_check_copy``, ...), and, when
    ``images`` is given, its images: a callable's as the image ``predictions``, a dict's under
    each of its names (stage ``adapt``: ``predictions`` and ``reconstruction``).

    Args:
        log_dir: str. The stage's TensorBoard folder.
        history: list. The stage's history rows (``{"epoch": e, ...}``).
        images: optional callable(epoch) -> uint8 (N, H, W, 3), or dict {name: such a callable
            or None}, or None.
    """

    def __init__(self, log_dir: str, history: list, images=None):
        super().__init__()
        self.dir = os.path.join(log_dir, "diagnostics")
        self.history = history
        if callable(images):
            images = {"predictions": images}
        self.images = {name: fn for name, fn in (images or {}).items() if fn is not None}
        self._writer = None

    def _file_writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.dir)
        return self._writer

    def on_epoch_end(self, epoch, logs=None):
        row = self.history[-1] if self.history and self.history[-1].get("epoch") == epoch else {}
        keras_keys = set(logs or {})
        values = {k: float(v) for k, v in row.items()
                  if k != "epoch" and k not in keras_keys and isinstance(v, (int, float))
                  and not isinstance(v, bool) and math.isfinite(float(v))}
        images = {name: fn(epoch) for name, fn in self.images.items()}
        images = {name: grid for name, grid in images.items() if grid is not None and len(grid)}
        if not values and not images:
            return
        with self._file_writer().as_default():
            for key, value in values.items():
                tf.summary.scalar(f"epoch_{key}", value, step=epoch)
            for name, grid in images.items():
                tf.summary.image(name, np.asarray(grid, np.float32) / 255.0, step=epoch,
                                 max_outputs=len(grid))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def write_summaries(log_dir: str, name: str, values: dict, step: int = 0) -> None:
    """Writes the numeric ``values`` (nested dicts flattened with "/") as scalars
    ``<name>/<key>`` in ``log_dir`` (e.g. the generator stage's reconstruction check)."""
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}/{key}", item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(float(value)):
                flat[prefix] = float(value)

    walk(name, values)
    if not flat:
        return
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for key, value in flat.items():
            tf.summary.scalar(key, value, step=step)
    writer.close()


# =============================================================================== one stage
class _StageVariables(tf.Module):
    """Every variable of a stage model, by position in ``model.variables``, for its checkpoint.

    Keras 3 on TensorFlow does not make every Keras object a dependency of a
    ``tf.train.Checkpoint``: not the layers that a model keeps in Python lists
    (``self.blocks = [...]``: the deconvolution head of PosePredictor, the hourglass blocks of
    WarpingModule and Generator, ...), nor ``keras.random.SeedGenerator`` states. Their variables
    are saved only when another path reaches them (an optimizer reaches the trained ones).
    Without this list a checkpoint misses the BatchNorm statistics of those layers, every weight
    of an untrained model in the same lists (the mean teacher's head) and the seed states, and
    ``assert_consumed`` cannot notice, since the objects are not in the graph.
    Positions are structural (not the process-dependent names ``pose_predictor_1/...``): the
    same stage built by the same code lists its variables in the same order.
    """

    def __init__(self, model):
        super().__init__(name=None)
        self.every = list(model.variables)


class StageRunner:
    """Runs one stage model for ``epochs`` x ``iterations`` with checkpoints and resume.

    Args:
        name: str. Stage name (folder under RUN).
        run_dir: str. RUN.
        model: the stage's keras.Model (compiled).
        make_dataset: callable(epoch) -> tf.data.Dataset of that epoch's batches.
        epochs, iterations: schedule.
        trackables: dict of extra objects for the checkpoint (e.g. a second optimizer).
        on_epoch_end: optional callable(epoch, logs) -> dict of extra logs.
        lr_schedule: optional callable(epoch) -> learning rate.
        checkpoint_every: int. Also checkpoint every N steps inside an epoch (0: epoch ends only).
        verbose: int. Progress (1) or silent (0). Progress is Keras's bar on a terminal and
            plain lines (:class:`synpose_keras.training.progress.LineProgress`) otherwise.
        progress_every: optional int. Print a plain progress line every N steps, also on a
            terminal. Default (None): Keras's bar on a terminal, else about ten lines per epoch.
        epoch_images: optional callable(epoch) -> uint8 (N, H, W, 3): prediction overlays
            written to TensorBoard at each epoch end (:class:`EpochSummaries`); or a dict
            {image name: such a callable}.
        extra_state: callable() -> JSON state saved with each checkpoint, and
            restore_state: callable(state) to restore it.
        lr_key: str. The config field of the stage's learning rate, named in the NaN guard's
            advice. Defaults to ``"<name>.lr"``.

    The checkpoint holds every variable of ``model`` (which must be built, its optimizers too)
    and of the ``trackables``; see ``_StageVariables``.
    """

    _VARIABLES_KEY = "model_variables"

    def __init__(self, name, run_dir, model, make_dataset, epochs, iterations, trackables=None,
                 on_epoch_end=None, lr_schedule=None, checkpoint_every=0, verbose=1,
                 extra_state=None, restore_state=None, log=print, lr_key=None,
                 progress_every=None, epoch_images=None):
        self.name = name
        self.lr_key = lr_key or f"{name}.lr"
        self.dir = os.path.join(run_dir, name)
        self.log_dir = os.path.join(run_dir, "logs", name)
        os.makedirs(self.dir, exist_ok=True)
        self.model = model
        self.make_dataset = make_dataset
        self.epochs = int(epochs)
        self.iterations = int(iterations)
        self.on_epoch_end = on_epoch_end
        self.lr_schedule = lr_schedule
        self.checkpoint_every = int(checkpoint_every)
        self.verbose = verbose
        self.progress_every = progress_every
        self.epoch_images = epoch_images
        self.extra_state = extra_state
        self.restore_state = restore_state
        self.log = log
        objects = {"model": model, "optimizer": model.optimizer}
        self.trackables = dict(trackables or {})
        objects.update(self.trackables)
        # the model must be built: its variables now are the ones every checkpoint holds
        self.stage_variables = _StageVariables(model)
        objects[self._VARIABLES_KEY] = self.stage_variables
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.state_path = os.path.join(self.dir, "progress.json")
        self.history_path = os.path.join(self.dir, "history.json")

    # ---------------------------------------------------------------------------- checkpoints
    def _checked_variables(self) -> list:
        """Every variable the checkpoint holds: the model's, its optimizer's, the trackables'."""
        variables = list(self.model.variables)
        seen = {id(v) for v in variables}
        for obj in [self.model.optimizer, *self.trackables.values()]:
            for variable in getattr(obj, "variables", []) or []:
                if id(variable) not in seen:
                    seen.add(id(variable))
                    variables.append(variable)
        return variables

    def nonfinite(self) -> list:
        """Paths of the stage's variables that hold NaN or inf (empty when every one is finite)."""
        return nonfinite_variables(self._checked_variables())

    def save(self, epoch: int, step: int, epoch_logs=None) -> bool:
        """Verifies the weights, writes the checkpoint, then (atomically) the progress file that
        points to it; the checkpoint before it is kept as a fallback, older ones are removed.

        Returns False, writing nothing, when a variable holds NaN or inf (the previous
        checkpoints stay the last good ones).
        """
        if len(self.model.variables) != len(self.stage_variables.every):
            raise RuntimeError(
                f"Stage '{self.name}': the stage model created variables after its StageRunner "
                f"was built ({len(self.stage_variables.every)} then "
                f"{len(self.model.variables)}); its checkpoint would miss them. Build every "
                "weight (and the optimizers) before creating the runner."
            )
        if self.nonfinite():
            return False
        prefix = os.path.join(self.dir, f"ckpt-e{epoch:03d}-s{step:06d}")
        path = self.checkpoint.write(prefix)
        tf.train.load_checkpoint(path)  # the index and data files are readable
        state = {"epoch": epoch, "step": step, "checkpoint": os.path.basename(path),
                 "time": time.time()}
        if self.extra_state is not None:
            state["extra"] = self.extra_state()
        if epoch_logs is not None:
            state["epoch_logs"] = epoch_logs
        try:
            previous = _read_json(self.state_path)
        except RunConfigError:  # a corrupt progress file: this save replaces it
            previous = None
        if previous and previous.get("checkpoint") == state["checkpoint"]:
            previous = previous.get("previous")
        if previous:
            state["previous"] = {k: v for k, v in previous.items() if k != "previous"}
        _write_json(self.state_path, state)
        keep = {state["checkpoint"], (state.get("previous") or {}).get("checkpoint")}
        for fname in os.listdir(self.dir):
            if fname.startswith("ckpt-") and fname.split(".")[0] not in keep:
                os.remove(os.path.join(self.dir, fname))
        return True

    def restore(self) -> tuple:
        """Restores the last checkpoint; returns (epoch, step) to continue from (the running
        means of the interrupted epoch's steps before it go to ``self.restored_epoch_logs``).

        A checkpoint whose files were deleted is replaced by the previous one, when kept; an
        unreadable one stops with how to recover.
        """
        self.restored_epoch_logs = None
        state = _read_json(self.state_path)
        if state is None:
            return 0, 0
        path = os.path.join(self.dir, state["checkpoint"])
        previous = state.get("previous")
        if not os.path.exists(path + ".index") and not any(
                f.startswith(state["checkpoint"] + ".") for f in os.listdir(self.dir)):
            if previous and os.path.exists(os.path.join(self.dir, previous["checkpoint"] + ".index")):
                self.log(f"[{self.name}] {path} was deleted: resuming from the previous "
                         f"checkpoint {previous['checkpoint']}")
                state, path = previous, os.path.join(self.dir, previous["checkpoint"])
                previous = None
            else:
                raise RunConfigError(
                    f"The checkpoint {path} named by {self.state_path} is missing (no "
                    f"{state['checkpoint']}.index). Delete {self.dir} and rerun with --resume "
                    f"to restart stage '{self.name}' from its start."
                )
        configured = self._learning_rates()
        try:
            children = _checkpoint_root_children(path)
            if self._VARIABLES_KEY not in children:
                raise RunConfigError(
                    f"The checkpoint {path} was written by an older synpose_keras that did not "
                    f"save every variable of the stage (BatchNorm statistics, the teacher's "
                    f"head); resuming from it would not continue the same run. Delete {self.dir} "
                    f"and rerun with --resume to restart stage '{self.name}' from its start."
                )
            status = self.checkpoint.read(path)
            # every saved value has a live variable (an optimizer not built yet would silently
            # drop its slots) and every live object got a value
            status.assert_consumed()
        except RunConfigError:
            raise
        except (tf.errors.OpError, IndexError, ValueError, KeyError, AssertionError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if previous:
                advice = (f"The previous checkpoint {previous['checkpoint']} (epoch "
                          f"{previous['epoch'] + 1}, step {previous['step']}) is kept: delete "
                          f"{path}.* and rerun with --resume to continue from it, or delete "
                          f"{self.dir} to restart stage '{self.name}'.")
            else:
                advice = (f"Delete {self.dir} and rerun with --resume to restart stage "
                          f"'{self.name}' from its start.")
            raise RunConfigError(
                f"The checkpoint {path} of stage '{self.name}' cannot be read "
                f"({type(err).__name__}: {reason}); expected the index and data files "
                f"tf.train.Checkpoint writes (a crash or a full disk can cut them short). "
                f"{advice}"
            ) from err
        self._apply_configured_learning_rates(configured)
        if self.restore_state is not None and "extra" in state:
            self.restore_state(state["extra"])
        self.log(f"[{self.name}] resumed from epoch {state['epoch'] + 1}, step {state['step']}")
        self.restored_epoch_logs = state.get("epoch_logs")
        return state["epoch"], state["step"]

    def _optimizers(self) -> list:
        return [obj for obj in [self.model.optimizer, *self.trackables.values()]
                if isinstance(obj, keras.optimizers.Optimizer)]

    def _learning_rates(self) -> list:
        """(optimizer, configured rate) for optimizers with a plain (variable) learning rate."""
        out = []
        for optimizer in self._optimizers():
            rate = getattr(optimizer, "_learning_rate", None)
            if isinstance(rate, keras.Variable):
                out.append((optimizer, float(rate.numpy())))
        return out

    def _apply_configured_learning_rates(self, configured) -> None:
        """A checkpoint restores the optimizer's rate; the run's (possibly overridden, see
        ``--resume --set``) configuration decides it from the next step on. Stages with a
        schedule get theirs at the start of each epoch."""
        if self.lr_schedule is not None:
            return
        for optimizer, rate in configured:
            restored = float(optimizer._learning_rate.numpy())
            if restored != rate:
                optimizer._learning_rate.assign(rate)
                self.log(f"[{self.name}] learning rate {restored:g} -> {rate:g} (configuration)")

    # ---------------------------------------------------------------------------- the loop
    def run(self, resume: bool) -> list:
        """Trains the remaining epochs; one ``fit`` call (two when resuming mid-epoch), so the
        step function is traced once per call, not once per epoch."""
        epoch, step = self.restore() if resume else (0, 0)
        partial = self.restored_epoch_logs if resume else None
        history = _read_json(self.history_path, []) if resume else []
        history = [row for row in history if row["epoch"] < epoch]
        if step > 0 and epoch < self.epochs:  # finish the interrupted epoch first
            dataset = self.make_dataset(epoch).take(self.iterations).skip(step)
            self._fit(dataset, epoch, epoch + 1, self.iterations - step, step, history, partial)
            epoch += 1
        if epoch < self.epochs:
            dataset = self.make_dataset(epoch).take(self.iterations)
            for later in range(epoch + 1, self.epochs):
                dataset = dataset.concatenate(self.make_dataset(later).take(self.iterations))
            self._fit(dataset, epoch, self.epochs, self.iterations, 0, history)
        return history

    def _fit(self, dataset, first_epoch, end_epoch, steps, first_step, history, prior=None):
        callback = _StageCallback(self, first_step, history, prior)
        tensorboard = keras.callbacks.TensorBoard(self.log_dir, write_graph=False)
        callbacks = [callback, tensorboard,
                     EpochSummaries(self.log_dir, history, images=self.epoch_images)]
        keras_verbose = self.verbose
        if self.verbose:
            self.log(f"[{self.name}] epochs {first_epoch + 1}-{end_epoch} of {self.epochs}, "
                     f"{self.iterations} iterations each")
            if use_line_progress(self.progress_every):
                keras_verbose = 0
                callbacks.append(LineProgress(
                    self.name, self.epochs, self.iterations, first_step=first_step,
                    every=self.progress_every or default_every(self.iterations), log=self.log,
                    history=history))
        try:
            self.model.fit(dataset, steps_per_epoch=steps, initial_epoch=first_epoch,
                           epochs=end_epoch, callbacks=callbacks,
                           verbose=keras_verbose, shuffle=False)
        except tf.errors.InvalidArgumentError:
            # an op refused non-finite inputs (e.g. a gather indexed by NaN keypoints) before
            # any loss was seen: divergence if the weights hold NaN or inf, else a real error
            if not self.nonfinite():
                raise
            callback.diverged = (callback.epoch if callback.epoch is not None else first_epoch,
                                 callback.last_step + 1)
        if callback.diverged is not None:
            epoch, bad_step = callback.diverged
            state = _read_json(self.state_path) or {}
            good = (state.get("step", 0) if state.get("epoch") == epoch else 0)
            kept = (f"The last good checkpoint is kept ({state['checkpoint']}, every weight "
                    "checked finite before it was written)" if state.get("checkpoint") else
                    "The stage had no checkpoint with finite weights yet; it restarts")
            raise TrainingDivergedError(
                f"Stage '{self.name}': the loss or the weights became NaN or inf between step "
                f"{good} and step {bad_step} of epoch {epoch + 1}. {kept}. Lower the learning "
                f"rate and continue: synpose train --out {os.path.dirname(self.dir)} --resume "
                f"--set {self.lr_key}=<smaller> (applied from the next step on and recorded in "
                "config.json)."
            )


def lr_with_milestones(base_lr: float, milestones) -> Callable:
    milestones = sorted(int(m) for m in milestones)
    return lambda epoch: base_lr * (0.1 ** sum(epoch >= m for m in milestones))
