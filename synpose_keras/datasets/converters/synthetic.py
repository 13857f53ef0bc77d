"""The embedded synthetic -> real benchmark, generated on the fly (no download).

One converter instance produces *one* domain of the benchmark; :func:`synpose_keras.datasets.
synthetic.benchmark.generate_benchmark` runs the writer twice (``domain="source"`` and
``domain="target"``) so that ``DIR/source`` and ``DIR/target`` are two ordinary converted datasets.
What each domain looks like, its annotation convention and the gap between the two are documented
in ``datasets/synthetic.md``.
"""

from __future__ import annotations

import math

from synpose_keras.datasets.converters.base import Converter, Item, Option, register_converter
from synpose_keras.datasets.synthetic import body_model, domains, hand_model
from synpose_keras.datasets.synthetic.scene_generator import SceneGenerator
from synpose_keras.skeletons import get_skeleton

_SIZE_OPTIONS = ("image_size", "source_train", "source_test", "target_sequences", "target_frames",
                 "target_views", "target_test")
_SIZE_MINIMUM = {"image_size": 16, "target_frames": 1, "target_views": 1}  # others: 0


@register_converter
class SyntheticConverter(Converter):
    """Synthetic hands (Hand21) or bodies (Body16) in the source or the target domain.

    ``src`` is ignored (pass ""): every image is rendered from the seed. Source records are
    independent images (``sequence`` ""); target records are sequences of one subject seen by
    several cameras (``sequence`` "target-<split>-NNNN", ``frame``, ``view`` "camV"). Labels follow
    the domain's annotation convention (``describe()["annotation_gap"]``): 2D keypoints are the
    projection of ``keypoints_3d`` (camera frame, metres) by ``intrinsics``; ``visible`` is 1
    for every keypoint inside the image, self-occluded or covered by an occluder included
    (labels come from the 3D model, like motion-capture datasets).

    Args:
        src: str. Ignored.
        task: str. "hand" (Hand21, left hands) or "body" (Body16). Defaults to "hand".
        domain: str. "source" (canonical synthetic look) or "target" (real-like look, sequences,
            other annotation convention). Defaults to "source".
        seed: int. Seed of the benchmark; the same seed gives the same records. Defaults to 0.
        image_size: int. Side of the square images. Defaults to 128.
        source_train, source_test: int. Source images per split. Defaults to 2000 and 200.
        target_sequences: int. Target "train" sequences. Defaults to 300.
        target_frames, target_views: int. Frames and cameras per target sequence. Defaults to 4, 2.
        target_test: int. Target "test" images (whole sequences, the last one cut). Defaults to 300.

    Example:

    ```python
    from synpose_keras.datasets import convert
    from synpose_keras.datasets.converters.synthetic import SyntheticConverter
    convert(SyntheticConverter("", task="hand", domain="target", seed=0), "data/synth/target",
            image_format="png")
    ```
    """

    name = "synthetic"
    skeleton = "hand21"  # replaced per instance by the task's skeleton
    has_3d = True
    splits = ("train", "test")
    OPTIONS = (
        Option("task", str, "hand", "'hand' (Hand21) or 'body' (Body16).",
               choices=("hand", "body")),
        Option("domain", str, "source", "'source' (synthetic look) or 'target' (real look, sequences).",
               choices=("source", "target")),
        Option("seed", int, 0, "Seed; the same seed gives the same benchmark."),
        Option("image_size", int, 128, "Side of the square images, in pixels."),
        Option("source_train", int, 2000, "Source 'train' images."),
        Option("source_test", int, 200, "Source 'test' images."),
        Option("target_sequences", int, 300, "Target 'train' sequences (frames x views images each)."),
        Option("target_frames", int, 4, "Frames per target sequence."),
        Option("target_views", int, 2, "Cameras per target sequence."),
        Option("target_test", int, 300, "Target 'test' images (whole sequences, the last one cut)."),
    )

    def __init__(self, src: str = "", **options) -> None:
        super().__init__(src, **options)
        o = self.options
        self.check_choice("task", ("hand", "body"))
        self.check_choice("domain", ("source", "target"))
        self.check_at_least("seed", 0)
        for name in _SIZE_OPTIONS:
            self.check_at_least(name, _SIZE_MINIMUM.get(name, 0))
        self.skeleton = get_skeleton(o["task"]).name
        self.generator = SceneGenerator(o["task"], int(o["seed"]), int(o["image_size"]),
                                        frames=int(o["target_frames"]), views=int(o["target_views"]))

    def items(self, split: str) -> list:
        if split not in self.splits:
            raise ValueError(f"split must be one of {self.splits}. Received: split={split!r}")
        o, gen = self.options, self.generator
        if o["domain"] == "source":
            n = int(o["source_train"] if split == "train" else o["source_test"])
            return [Item(f"source/{split}/{i:06d}", _loader(gen.source_sample, split, i)) for i in range(n)]
        frames, views = int(o["target_frames"]), int(o["target_views"])
        per_sequence = frames * views
        n = int(o["target_sequences"]) * per_sequence if split == "train" else int(o["target_test"])
        items = []
        for s in range(math.ceil(n / per_sequence)):
            for f in range(frames):
                for v in range(views):
                    if len(items) < n:
                        items.append(Item(f"target/{split}/{s:04d}/f{f:02d}/cam{v}",
                                          _loader(gen.target_sample, split, s, f, v)))
        return items

    def describe(self) -> dict:
        o = self.options
        task, domain = o["task"], o["domain"]
        skeleton = get_skeleton(task)
        model = hand_model if task == "hand" else body_model
        gap = model.HAND_GAP if task == "hand" else model.BODY_GAP
        frame = {0: "hand frame (x ulnar, y distal, z palmar)"} if task == "hand" else {}
        if task == "hand":
            frame.update({k: "distal phalanx frame (y along the bone, z towards the pad)" for k in gap if k})
        else:
            frame.update({9: "head frame (x left, y up, z forward)",
                          12: "torso frame (x left, y up, z forward)", 13: "torso frame (x left, y up, z forward)"})
        return {
            "options": dict(o),
            "domain": domain,
            "generator": "synpose_keras.datasets.synthetic (see datasets/synthetic.md)",
            "units": "metres (keypoints_3d, camera frame: x right, y down, z forward)",
            "annotation_convention": ("source: " + ("fingertip = end of the finger's axis, wrist = wrist joint"
                                                    if task == "hand" else
                                                    "shoulders at the collar points, head label at the head centre")
                                      if domain == "source" else
                                      "target: " + ("fingertip = centre of the pad, wrist 12 mm towards the forearm"
                                                    if task == "hand" else
                                                    "shoulders at the shoulder joints, head label at the top of the head")),
            "annotation_gap": {
                skeleton.keypoint_names[k]: {"target_minus_source_m_times_scale": list(v), "frame": frame[k]}
                for k, v in gap.items()
            },
            "visibility": "1 inside the image (self-occluded and occluder-covered keypoints stay labelled), 0 outside",
            "appearance": ("one canonical appearance, plain/gradient backgrounds, no blur, no noise"
                           if domain == "source" else
                           f"per-sequence skin/clothes/light, textured cluttered backgrounds, blur sigma "
                           f"{domains.BLUR_SIGMA} px, noise sigma {domains.NOISE_SIGMA}/255, occluder p="
                           f"{domains.OCCLUDER_PROBABILITY}"),
            "sequences": ("none (independent images)" if domain == "source" else
                          f"{o['target_frames']} frames x {o['target_views']} views of one subject per sequence"),
        }


def _loader(fn, *args):
    def load():
        return fn(*args)["record"]

    return load
