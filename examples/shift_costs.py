"""What each kind of domain shift of the embedded benchmark costs a model, measured.

For every kind of shift the card lists (datasets/synthetic.md), the target test split is
generated again with that one shift switched off (set to the source's value), and the model is
evaluated on it (PCK@0.05 All, the protocol). The cost of a shift is the PCK gained by
removing it alone. Shifts interact, so the costs do not add up to the whole gap.

Usage::

    python examples/shift_costs.py RUN_OR_MODEL --task hand --out /tmp/shift-costs [--seed 0]
        [--images 300] [--json costs.json]

The images are drawn from the same seed as the default benchmark's target test split: poses,
cameras and subjects are the same draws; switching off the background or the clutter changes
how many random numbers the background uses, so the later per-sequence draws (the occluder)
can differ for those two rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os

SHIFTS = ("none", "sensor noise", "blur", "camera colour", "occluders", "clutter",
          "background", "subject appearance and light", "annotation gap")


@contextlib.contextmanager
def switched_off(shift: str):
    """Patches the generator so that ``shift`` takes the source's value; restores it on exit."""
    from synpose_keras.datasets.synthetic import domains, scene_generator

    saved = []

    def patch(obj, name, value):
        saved.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    if shift == "sensor noise":
        patch(domains, "NOISE_SIGMA", (0.0, 0.0))
    elif shift == "blur":
        patch(domains, "BLUR_SIGMA", (0.0, 0.0))
    elif shift == "camera colour":
        patch(domains, "WHITE_BALANCE", (1.0, 1.0))
        patch(domains, "GAMMA", (1.0, 1.0))
    elif shift == "occluders":
        patch(domains, "OCCLUDER_PROBABILITY", 0.0)
    elif shift == "clutter":
        patch(domains, "CLUTTER_SHAPES", (0, 0))
        patch(domains, "DISTRACTOR_PROBABILITY", 0.0)
    elif shift == "background":
        patch(domains, "target_background",
              lambda rng, width, height, skin, floor: domains.source_background(rng, width, height))
    elif shift == "subject appearance and light":
        original = domains.Appearance.sample_target

        def source_look(rng, num_views, upper_light, towards=None):
            drawn = original(rng, num_views, upper_light, towards)  # same draws as before
            look = domains.Appearance.source()
            for name in ("white_balance", "gamma", "blur_sigma", "noise_sigma"):
                setattr(look, name, getattr(drawn, name))  # the camera effects stay
            return look

        patch(domains.Appearance, "sample_target", staticmethod(source_look))
    elif shift == "annotation gap":
        original_record = scene_generator.SceneGenerator._record

        def source_convention(self, image, posed_cam, camera, convention, *args, **kwargs):
            return original_record(self, image, posed_cam, camera, "source", *args, **kwargs)

        patch(scene_generator.SceneGenerator, "_record", source_convention)
    elif shift != "none":
        raise ValueError(f"shift must be one of {SHIFTS}. Received: shift={shift!r}")
    try:
        yield
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)


def measure(model_path: str, task: str, out_dir: str, seed: int = 0, images: int = 300,
            log=print) -> dict:
    import keras

    from synpose_keras.datasets.converters.synthetic import SyntheticConverter
    from synpose_keras.datasets.writer import convert
    from synpose_keras.training.evaluation import evaluate_predictor

    if os.path.isdir(model_path):
        model_path = os.path.join(model_path, "pose_predictor.keras")
    model = keras.models.load_model(model_path)
    results = {}
    for shift in SHIFTS:
        folder = os.path.join(out_dir, shift.replace(" ", "_"))
        if not os.path.exists(os.path.join(folder, "meta.json")):
            with switched_off(shift):
                converter = SyntheticConverter("", task=task, domain="target", seed=seed,
                                               target_sequences=0, target_test=images)
                convert(converter, folder, splits=["test"], image_format="png", progress=False)
        row = evaluate_predictor(model, folder, "test")
        results[shift] = {"All": row["table"]["All"], "table": row["table"],
                          "inversion_rate": row["inversion_rate"]}
        log(f"{shift:>30s}: PCK@0.05 All {row['table']['All']:5.1f}")
    base = results["none"]["All"]
    for shift in SHIFTS[1:]:
        results[shift]["cost"] = results[shift]["All"] - base
    return {"model": model_path, "task": task, "seed": seed, "images": images,
            "shifts": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a run folder (its pose_predictor.keras) or a .keras file")
    parser.add_argument("--task", default="hand", choices=("hand", "body"))
    parser.add_argument("--out", required=True, help="folder for the generated test splits")
    parser.add_argument("--seed", type=int, default=0, help="benchmark seed")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    result = measure(args.model, args.task, args.out, args.seed, args.images)
    print("\nshift switched off              PCK@0.05 All   cost of the shift (points)")
    for shift, row in result["shifts"].items():
        cost = "" if shift == "none" else f"{row['cost']:+.1f}"
        print(f"{shift:<32s}{row['All']:>10.1f}   {cost}")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=2)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
