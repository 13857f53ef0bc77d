"""Issue item 2: one ``adapt`` iteration of the paper preset against the work it cannot avoid.

The stage is built as ``synpose train --preset paper`` builds it (``PosePredictor`` ResNet-101 at
256², student + EMA teacher, Lifter, paper-size WarpingModule and Generator, integrated 2D/3D
pseudo-labels, reconstruction loss) at a small batch: ``--batch`` source + ``--batch`` target
images + ``--batch`` base/driving pairs (the stage feeds 4 x batch images through the student).
With ``--vgg`` (default) the reconstruction loss is the paper's VGG-19 perceptual pyramid; the
VGG weights are random (a local file written by this script; no ImageNet download), which costs
the same arithmetic.

Timed, interleaved:

- ``iteration``: ``AdaptStage.train_step`` in a ``tf.function`` (what ``fit`` compiles);
- the parts it cannot avoid, each in its own ``tf.function``:
  ``student``   forward + backward + Adam of the student on the concatenated 4 x batch images
                (source step, student on target, predictor on base and driving: one pass);
  ``teacher``   teacher forward on the teacher views;
  ``pseudo``    ``AdaptStage.pseudo_labels`` (teacher forward + lifter + kinematic projection);
                reported to show what the pseudo-label ops add to the teacher forward;
  ``wg``        W + G forward + backward (weights and keypoints) + their Adam, with the
                reconstruction loss;
  ``ema``       the teacher EMA update.

``necessary = student + teacher + wg + ema``; target ``iteration <= 1.15 x necessary``.

``--two-backward`` also times ``two_backward_step`` (below): the iteration as it was written
before finding F2 was applied (benchmarks/README.md), with a second backward pass through the
reconstruction loss, G and W for W/G's own gradient. (The library kept that path for
``lambda_rec == 0``; the benchmark only selects it. The perceptual loss is the library's in both,
i.e. with F3 of benchmarks/README.md applied.)

``--fit`` also times the iteration through ``fit`` (one epoch of n steps) and reports the
number of traces of the train function across two ``fit`` epochs (must be 1: no retracing).

Usage::

    python benchmarks/adapt_iteration.py [--batch 2] [--reps 3] [--two-backward] [--fit]
    python benchmarks/adapt_iteration.py --preset demo --batch 16     # the demo preset
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

_common.quiet_tensorflow()

import numpy as np  # noqa: E402


def vgg_weights_file(folder):
    """A Keras VGG-19 (include_top=False) weights file with random values (same arithmetic)."""
    import keras

    path = os.path.join(folder, "vgg19_random_notop.weights.h5")
    if not os.path.exists(path):
        keras.applications.VGG19(include_top=False, weights=None).save_weights(path)
    return path


def build_stage(preset, batch, vgg_path, stage_class=None, overrides=None):
    import keras

    from synpose_keras.models import Generator, Lifter, WarpingModule
    from synpose_keras.skeletons import get_skeleton
    from synpose_keras.training.adapt_stage import AdaptStage
    from synpose_keras.training.configs import apply_overrides, get_preset
    from synpose_keras.training.train import build_predictor

    c = get_preset(preset)
    if overrides:
        c = apply_overrides(c, overrides)
    c.generator.vgg_weights = vgg_path
    a, g = c.adapt, c.generator
    skeleton = get_skeleton(c.task)
    k = skeleton.num_keypoints
    student, teacher = build_predictor(c), build_predictor(c)
    lifter = Lifter(num_keypoints=k, hidden_units=c.lifter.hidden_units,
                    num_blocks=c.lifter.num_blocks, root_index=skeleton.parents.index(-1))
    lifter.trainable = False
    ratios = np.full((len(skeleton.bones),), 1.0 / len(skeleton.bones), np.float32)
    warp = WarpingModule(num_keypoints=k, block_expansion=g.block_expansion,
                         num_blocks=g.num_blocks, max_features=g.max_features)
    gen = Generator(block_expansion=g.block_expansion, max_features=g.max_features,
                    num_residual_blocks=g.num_residual_blocks)
    cls = stage_class or AdaptStage
    stage = cls(student, teacher, skeleton, lifter=lifter, bone_ratios=ratios,
                warping_module=warp, generator=gen, pseudo=a.pseudo, rec=a.rec,
                lambda_pl=a.lambda_pl, lambda_rec=a.lambda_rec, mask_fraction=a.mask_fraction,
                agreement_px=a.agreement_px, ema_decay=a.ema_decay, vgg_weights=vgg_path)
    stage.compile(optimizer=keras.optimizers.Adam(a.lr),
                  generator_optimizer=keras.optimizers.Adam(g.lr, beta_1=0.5, beta_2=0.999))
    stage.build_all(c.model.input_size)
    stage.initialize_teacher()
    return c, stage


def make_batch(c, batch, k, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    s, h = c.model.input_size, c.model.heatmap_size

    def images():
        return tf.constant(rng.uniform(0, 255, (batch, s, s, 3)).astype("float32"))

    return {
        "source": {"image": images(),
                   "heatmaps": tf.constant(rng.uniform(0, 1, (batch, h, h, k)).astype("float32")),
                   "weights": tf.ones((batch, k))},
        "target": {"teacher_image": images(), "student_image": images(),
                   "affine": tf.eye(3, batch_shape=[batch]),
                   "teacher_index": tf.tile(tf.range(k)[None], [batch, 1])},
        "pairs": {"base": images(), "driving": images()},
    }


def predictor_parts(stage, student, teacher, images, targets, weights, teacher_images):
    """The two predictor parts every iteration needs, as traced functions: the student's
    forward + backward + optimizer step on ``images``, and the teacher's forward."""
    import tensorflow as tf

    from synpose_keras.training.losses import heatmap_mse

    @tf.function
    def student_step():
        variables = student.trainable_variables
        with tf.GradientTape() as tape:
            loss = heatmap_mse(targets, student(images, training=True), weights)
        grads = tape.gradient(loss, variables)
        stage.optimizer.apply_gradients(zip(grads, variables))
        return loss

    @tf.function
    def teacher_forward():
        return tf.reduce_sum(teacher(teacher_images, training=False))

    return student_step, teacher_forward


def part_functions(stage, data):
    """The unavoidable passes of one iteration, each a blocking callable."""
    import tensorflow as tf

    from synpose_keras.models.reconstruction import reconstruct
    from synpose_keras.ops.warp import normalize_keypoints
    from synpose_keras.training.mean_teacher import ema_update

    student, teacher = stage.student, stage.teacher
    src, tgt, pairs = data["source"], data["target"], data["pairs"]
    size = int(src["image"].shape[1])
    all_images = tf.concat([src["image"], tgt["student_image"], pairs["base"], pairs["driving"]], 0)
    n = int(all_images.shape[0])
    targets = tf.concat([src["heatmaps"]] * (n // int(src["image"].shape[0])), 0)
    weights = tf.ones((n, targets.shape[-1]))

    student_step, teacher_forward = predictor_parts(stage, student, teacher, all_images,
                                                    targets, weights, tgt["teacher_image"])

    @tf.function
    def pseudo_labels():
        return tf.reduce_sum(stage.pseudo_labels(tgt["teacher_image"])["keypoints_3d"])

    rng = np.random.default_rng(1)
    kp_shape = (int(pairs["base"].shape[0]), targets.shape[-1], 2)
    kp_base = tf.constant(normalize_keypoints(rng.uniform(0, size - 1, kp_shape), size))
    kp_drv = tf.constant(normalize_keypoints(rng.uniform(0, size - 1, kp_shape), size))
    base01, driving01 = pairs["base"] / 255.0, pairs["driving"] / 255.0

    @tf.function
    def wg_step():
        variables = stage._generator_variables()
        with tf.GradientTape() as tape:
            tape.watch([kp_base, kp_drv])
            generated, _ = reconstruct(stage.warping_module, stage.generator, base01, kp_base,
                                       kp_drv, training=True)
            loss = stage.reconstruction_loss(driving01, generated)
        grads = tape.gradient(loss, variables + [kp_base, kp_drv])
        stage.generator_optimizer.apply_gradients(zip(grads[:len(variables)], variables))
        return loss + tf.reduce_sum(grads[-1]) * 0.0

    @tf.function
    def ema():
        ema_update(teacher, student, stage.ema_decay)
        return tf.constant(0.0)

    def blocking(fn):
        return lambda: float(fn())

    return {"student": blocking(student_step), "teacher": blocking(teacher_forward),
            "pseudo": blocking(pseudo_labels), "wg": blocking(wg_step), "ema": blocking(ema)}


def two_backward_step(stage):
    """``stage.train_step`` as written before F2 (two gradients from one persistent tape), traced.

    The library kept that path for ``lambda_rec == 0``; this selects it for the trace (Python
    runs only while tracing) on the same stage object, so both steps share weights and optimizers.
    """
    import tensorflow as tf

    def step(data):
        object.__setattr__(stage, "_one_backward", lambda: False)
        try:
            return type(stage).train_step(stage, data)
        finally:
            object.__delattr__(stage, "_one_backward")

    return tf.function(step)


def full_restyle_step(stage):
    """UniFrame's ``train_step`` as written before F4 (every image restyled, the drawn ones kept).

    Traced with ``restyle(..., subset=False)`` (the path the library keeps for XLA) on the same
    stage object.
    """
    import tensorflow as tf

    from synpose_keras.training.methods import uniframe_stage

    def step(data):
        original = uniframe_stage.restyle
        uniframe_stage.restyle = lambda *a, **k: original(*a, **dict(k, subset=False))
        try:
            return type(stage).train_step(stage, data)
        finally:
            uniframe_stage.restyle = original

    return tf.function(step)


def fit_timing(stage, data, steps):
    """Per-step time through ``fit`` and the train function's trace count over two epochs."""
    import time

    import keras
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensors(data).repeat()
    times = []
    traces = []
    original = stage.train_step

    def counting_train_step(batch):  # Python runs only while tracing: counts the traces
        traces.append(1)
        return original(batch)

    stage.train_step = counting_train_step

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # what the runner's NaN guard does every step
            times.append(time.perf_counter() - self.t0)

    stage.fit(ds, steps_per_epoch=steps, epochs=2, verbose=0, callbacks=[Timer()])
    stage.train_step = original
    traces = len(traces)
    steady = times[1:]  # the first includes the trace
    return {"step_times": [round(t, 3) for t in times], "traces_over_two_epochs": traces,
            "steady_median": round(float(np.median(steady)), 4) if steady else None}


def build_uniframe(preset, overrides):
    """UniFrame's adapt stage as ``--method uniframe`` builds it (StyleNet of the preset)."""
    from synpose_keras.models import StyleNet
    from synpose_keras.training.configs import apply_overrides, get_preset
    from synpose_keras.training.methods import build_adapt_stage
    from synpose_keras.training.train import build_predictor

    c = apply_overrides(get_preset(preset), dict(overrides, method="uniframe"))
    style_net = StyleNet(encoder_weights=None, width_multiplier=c.style.width_multiplier,
                         style_weight=c.style.style_weight)
    style_net.trainable = False
    s = c.model.input_size
    style_net.stylize(np.zeros((1, s, s, 3), "float32"), np.zeros((1, s, s, 3), "float32"))
    stage = build_adapt_stage("uniframe", c, build_predictor(c), build_predictor(c), style_net)
    return c, stage


def uniframe_batch(c, batch, k):
    import tensorflow as tf

    from synpose_keras.training.methods.uniframe import make_draws

    data = make_batch(c, batch, k)
    data.pop("pairs")
    data["draws"] = make_draws(tf.constant([0, 1], tf.int64), batch, batch)
    return data


def uniframe_parts(stage, data):
    """UniFrame's unavoidable passes: student (2B images), teacher, restyling, EMA.

    Also (not in ``necessary``): the step's two ``restyle`` calls on the batch's draws as the
    library runs them (``restyle_drawn``: the drawn images only, F4) and as before F4
    (``restyle_all_then_select``: every image restyled, the drawn ones kept).
    """
    import tensorflow as tf

    from synpose_keras.training.mean_teacher import ema_update
    from synpose_keras.training.methods.uniframe import restyle

    student, teacher = stage.student, stage.teacher
    src, tgt = data["source"], data["target"]
    images = tf.concat([src["image"], tgt["student_image"]], 0)
    targets = tf.concat([src["heatmaps"]] * 2, 0)
    weights = tf.ones((int(images.shape[0]), targets.shape[-1]))
    contents = tf.concat([src["image"], tgt["teacher_image"]], 0)
    styles = tf.concat([tgt["teacher_image"], src["image"]], 0)

    student_step, teacher_forward = predictor_parts(stage, student, teacher, images, targets,
                                                    weights, tgt["teacher_image"])

    @tf.function
    def restyle_all():  # both restylings (source -> target, teacher view -> source), every image
        return tf.reduce_sum(stage.style_net.stylize(contents, styles, tf.ones((int(contents.shape[0]),))))

    @tf.function
    def ema():
        ema_update(teacher, student, stage.ema_decay)
        return tf.constant(0.0)

    draws = data["draws"]

    def both_restylings(subset):  # the step's two restyle calls, with the batch's draws
        @tf.function
        def run():
            a = restyle(stage.style_net, src["image"], tgt["teacher_image"],
                        draws["source_restyle"], draws["source_alpha"],
                        stage.source_restyle_prob, subset=subset)
            b = restyle(stage.style_net, tgt["teacher_image"], src["image"],
                        draws["teacher_restyle"], draws["teacher_alpha"],
                        stage.teacher_restyle_prob, subset=subset)
            return tf.reduce_sum(a) + tf.reduce_sum(b)
        return run

    def blocking(fn):
        return lambda: float(fn())

    return {"student": blocking(student_step), "teacher": blocking(teacher_forward),
            "restyle": blocking(restyle_all), "ema": blocking(ema),
            "restyle_drawn": blocking(both_restylings(True)),
            "restyle_all_then_select": blocking(both_restylings(False))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--method", choices=("ours", "uniframe"), default="ours")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--vgg", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--two-backward", action="store_true",
                        help="also time the iteration as written before F2 (two W/G backwards)")
    parser.add_argument("--full-restyle", action="store_true",
                        help="uniframe: also time the iteration as written before F4 "
                        "(every image restyled)")
    parser.add_argument("--fit", type=int, default=0, help="also time N steps through fit")
    parser.add_argument("--lambda-rec", type=float, default=None,
                        help="override adapt.lambda_rec (the preset's is 1.0)")
    parser.add_argument("--parts", action=argparse.BooleanOptionalAction, default=True,
                        help="time the necessary parts too (--no-parts: iterations only)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import tensorflow as tf

    tmp = tempfile.mkdtemp(prefix="synpose-bench-")
    overrides = {"adapt.batch_size": args.batch, "adapt.target_batch_size": args.batch}
    if args.lambda_rec is not None:
        overrides["adapt.lambda_rec"] = args.lambda_rec
    result = {"config": vars(args)}
    if args.method == "uniframe":
        c, stage = build_uniframe(args.preset, overrides)
        data = uniframe_batch(c, args.batch, stage.student.num_keypoints)
        parts = uniframe_parts(stage, data)
        necessary = ["student", "teacher", "restyle", "ema"]
        result["model"] = {"student_weights": int(stage.student.count_params()),
                           "style_net_weights": int(stage.style_net.count_params()),
                           "student_images_per_iteration": 2 * args.batch,
                           "restyled_images_per_iteration": 2 * args.batch}
    else:
        vgg = vgg_weights_file(tmp) if args.vgg else None
        c, stage = build_stage(args.preset, args.batch, vgg, None, overrides)
        data = make_batch(c, args.batch, stage.skeleton.num_keypoints)
        parts = part_functions(stage, data)
        necessary = ["student", "teacher", "wg", "ema"]
        result["model"] = {
            "student_weights": int(stage.student.count_params()),
            "wg_weights": int(stage.warping_module.count_params() + stage.generator.count_params()),
            "student_images_per_iteration": 4 * args.batch}

    step = tf.function(stage.train_step)
    cases = {"iteration": lambda: float(step(data)["loss"])}
    if args.two_backward and args.method == "ours":
        # the same stage object, its train_step run with the pre-F2 two-backward path
        step_two = two_backward_step(stage)
        cases["iteration_two_backward"] = lambda: float(step_two(data)["loss"])
        result["note"] = ("iteration = AdaptStage (library, F2 + F3); iteration_two_backward = "
                          "the pre-F2 path (second W/G backward), F3 applied")
    if args.full_restyle and args.method == "uniframe":
        step_full = full_restyle_step(stage)
        cases["iteration_full_restyle"] = lambda: float(step_full(data)["loss"])
        drawn = {k: int(np.sum(np.asarray(data["draws"][k]) < p)) for k, p in (
            ("source_restyle", stage.source_restyle_prob),
            ("teacher_restyle", stage.teacher_restyle_prob))}
        result["restyled_drawn"] = drawn
        print("images drawn for restyling (of", args.batch, "each):", drawn)
    if args.parts:
        cases.update(parts)
    else:
        necessary = []
    env = _common.environment({"mem_available_gib": round(_common.mem_available_gib(), 1)})
    r = _common.interleave(cases, args.reps, args.warmup)
    for stat in ("median", "min") if necessary else ():
        total = sum(r[p][stat] for p in necessary)
        r[f"necessary_{stat}"] = round(total, 4)
        r[f"ratio_{stat}"] = round(r["iteration"][stat] / total, 3)
        if "iteration_two_backward" in r:
            r[f"ratio_two_backward_{stat}"] = round(r["iteration_two_backward"][stat] / total, 3)
    if necessary:  # per repetition (the parts ran right after the iteration): robust to load drift
        per_rep = [r["iteration"]["times"][i] / sum(r[p]["times"][i] for p in necessary)
                   for i in range(args.reps)]
        r["ratio_per_rep"] = [round(v, 3) for v in per_rep]
        r["ratio_per_rep_median"] = round(float(np.median(per_rep)), 3)
    if "iteration_full_restyle" in r:
        r["full_restyle_over_library"] = _common.ratio(r, "iteration_full_restyle", "iteration")
        r["full_restyle_over_library_per_rep"] = [
            round(a / b, 3)
            for a, b in zip(r["iteration_full_restyle"]["times"], r["iteration"]["times"])]
    if "iteration_two_backward" in r:
        r["two_backward_over_library"] = _common.ratio(r, "iteration_two_backward", "iteration")
        r["two_backward_over_library_per_rep"] = [
            round(a / b, 3)
            for a, b in zip(r["iteration_two_backward"]["times"], r["iteration"]["times"])]
        if necessary:
            per_rep = [r["iteration_two_backward"]["times"][i]
                       / sum(r[p]["times"][i] for p in necessary) for i in range(args.reps)]
            r["ratio_two_backward_per_rep"] = [round(v, 3) for v in per_rep]
    if "restyle_drawn" in r:  # F4 in isolation: library restyle (drawn subset) vs before
        r["restyle_all_then_select_over_drawn_per_rep"] = [
            round(a / b, 3) for a, b in zip(r["restyle_all_then_select"]["times"],
                                            r["restyle_drawn"]["times"])]
    if args.method == "uniframe":  # restyling drawn with p = 0.5 per image: expected half
        for stat in ("median", "min"):
            expected = r[f"necessary_{stat}"] - 0.5 * r["restyle"][stat]
            r[f"necessary_expected_{stat}"] = round(expected, 4)
            r[f"ratio_expected_{stat}"] = round(r["iteration"][stat] / expected, 3)
    r["step_traces"] = int(step.experimental_get_tracing_count())
    # host round trips: Python callbacks inside the step graph (py_function / numpy_function)
    graph = step.get_concrete_function(data).graph
    op_types = set()

    def collect(g):
        for op in g.get_operations():
            op_types.add(op.type)
        for f in getattr(g, "_functions", {}).values():
            if hasattr(f, "graph"):
                collect(f.graph)

    collect(graph)
    r["python_ops_in_step"] = sorted(t for t in op_types if "PyFunc" in t)
    r["step_graph_op_types"] = len(op_types)
    result["timing"] = r
    print({k: v for k, v in r.items() if k.startswith(("ratio", "necessary"))})
    if args.fit:
        result["fit"] = fit_timing(stage, data, args.fit)
        print("fit:", result["fit"])
    result["peak_rss_mib"] = round(_common.peak_rss_mib(), 1)
    result["environment"] = env
    name = args.out or (f"adapt_iteration_{args.method}_{args.preset}_b{args.batch}"
                        + ("_two_backward" if args.two_backward else "")
                        + (f"_lambda{args.lambda_rec:g}" if args.lambda_rec is not None else ""))
    _common.write_result(name, result)


if __name__ == "__main__":
    main()
