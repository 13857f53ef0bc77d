"""COCO-keypoints JSON (+ an image folder) -> Body16 / Hand21 records: the generic labelled route.

Layout (the official COCO 2017 release by default; any COCO-style keypoint dataset works)::

    SRC/annotations/person_keypoints_train2017.json   --train-json (relative to SRC, or absolute)
    SRC/annotations/person_keypoints_val2017.json     --test-json  ("" disables the split)
    SRC/train2017/<file_name>                         --train-images
    SRC/val2017/<file_name>                           --test-images

JSON fields read: ``images[]`` (``id``, ``file_name``), ``annotations[]`` (``image_id``,
``keypoints`` flat ``[x, y, v] * N`` or nested ``[[x, y, v], ...]``, ``iscrowd``, ``id``),
``categories[].keypoints`` (joint names). One record per annotation (person/hand instance), with the whole image; convert with
``--crop`` to store the square crop around each instance. Visibility: ``v > 0`` (labelled,
occluded or not) -> 1. COCO pixel coordinates are used as they are.

Optional fields for multi-view / video datasets in COCO form (e.g. MVHand, see its card):
``images[].sequence`` (or ``video_id``), ``images[].frame`` (or ``frame_id``), ``images[].view``
(or ``camera``); records are then ordered by (sequence, frame, view) so pairs can be formed. With
``--with-3d``: ``annotations[].keypoints_3d`` (flat ``[X, Y, Z] * N``, camera frame) and
``images[].intrinsics`` (or ``annotations[].intrinsics``) 3x3.

Joint mapping onto the canonical skeleton (``--mapping``):

- built in, COCO-17 -> Body16 (when the category names are COCO's): limbs by name; pelvis =
  mid-hips and thorax = mid-shoulders (visible when both sources are); upper neck and head top
  are not derivable from COCO (it has no neck or head-top joint): stored invisible, at the
  mid-point of thorax and nose and at the nose respectively (when the nose is unlabelled: at the
  mean of the labelled eyes and ears, else of the labelled joints, never at the origin). Note
  the annotation gap: COCO shoulders/hips are not MPII's (see ``datasets/coco.md``).
- built in, 21 joints -> Hand21: identity (the source must already be in Hand21 order).
- a JSON file: either a dict ``{target_name: source}`` or a list (one entry per target joint in
  canonical order), where ``source`` is a source joint name, a source index, a list of them
  (mid-point / mean, visible when all are) or ``null`` (not derivable: invisible). Targets left
  out of a dict are invisible.

Mapping checks (a ``ConversionWarning``, shown as ``Warning: ...`` by ``synpose convert``): a body
mapping that sends a ``left``/``l_`` source joint to an ``r_`` target (or the reverse) swaps the
sides (Body16's sides are the person's, as COCO's); a hand mapping under which the fingertip is
nearer the wrist than its MCP for at least three quarters of the labelled fingers (at least 10
checked, on the first 2000 instances) has the joints in another order than Hand21's (wrist, then
thumb to little finger, each MCP, PIP, DIP, tip).
"""

from __future__ import annotations

import json
import os
import re
import warnings

import numpy as np

from synpose_keras.datasets.converters._image import load_image
from synpose_keras.datasets.converters.base import (
    BadSampleError,
    ConversionWarning,
    Converter,
    DatasetLayoutError,
    Item,
    Option,
    Record,
    register_converter,
)
from synpose_keras.skeletons import get_skeleton

COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)

#: Built-in COCO-17 -> Body16 mapping (target -> source names; a list = mid-point; None = absent).
COCO17_TO_BODY16 = {
    "r_ankle": "right_ankle",
    "r_knee": "right_knee",
    "r_hip": "right_hip",
    "l_hip": "left_hip",
    "l_knee": "left_knee",
    "l_ankle": "left_ankle",
    "pelvis": ["left_hip", "right_hip"],
    "thorax": ["left_shoulder", "right_shoulder"],
    "upper_neck": None,
    "head_top": None,
    "r_wrist": "right_wrist",
    "r_elbow": "right_elbow",
    "r_shoulder": "right_shoulder",
    "l_shoulder": "left_shoulder",
    "l_elbow": "left_elbow",
    "l_wrist": "left_wrist",
}

_SEQUENCE_KEYS = ("sequence", "video_id", "seq")
_CHECKED_INSTANCES = 2000  # instances read by the hand-mapping check
_MIN_FINGERS = 10  # labelled fingers needed before it warns
_INVERTED_SHARE = 0.75  # share of them with the tip nearer the wrist than the MCP
_FRAME_KEYS = ("frame", "frame_id")
_VIEW_KEYS = ("view", "camera", "cam_idx", "camera_id")


def _first(d: dict, keys, default):
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return default


def keypoint_triplets(raw, num_joints: int, where: str) -> np.ndarray:
    """COCO ``keypoints``, flat ``[x, y, v] * N`` or nested ``[[x, y, v], ...]`` -> (N, 3).

    Raises:
        BadSampleError: another shape or count (names ``where`` and what was expected).
    """
    try:
        values = np.asarray(raw, np.float64)
    except (TypeError, ValueError):
        raise BadSampleError(f"{where}: keypoints must be numbers, flat [x, y, v] * "
                             f"{num_joints} or nested [[x, y, v], ...]") from None
    if values.shape in ((3 * num_joints,), (num_joints, 3)):
        return values.reshape(num_joints, 3)
    raise BadSampleError(f"{where}: expected {num_joints} keypoints, flat ({3 * num_joints} values "
                         f"[x, y, v, ...]) or nested ({num_joints} x [x, y, v]); got an array of "
                         f"shape {list(values.shape)}")


_LEFT = re.compile(r"(^|[^a-z])(left|l)([^a-z]|$)")
_RIGHT = re.compile(r"(^|[^a-z])(right|r)([^a-z]|$)")


def _side(name: str):
    name = name.lower()
    left, right = bool(_LEFT.search(name)), bool(_RIGHT.search(name))
    return "l" if left and not right else "r" if right and not left else None


def swapped_sides(mapping: list, target_names, source_names) -> list:
    """``[(target, source), ...]`` where the mapping sends a left source joint (by name:
    ``left_*``, ``l_*``, ``*_l``) to a right target or the reverse."""
    out = []
    for target, sources in zip(target_names, mapping):
        t_side = _side(target)
        for i in sources:
            s_side = _side(source_names[i])
            if t_side and s_side and t_side != s_side:
                out.append((target, source_names[i]))
    return out


def inverted_fingers(keypoints: np.ndarray, visible: np.ndarray) -> tuple:
    """Counts, over (instance, finger), the Hand21 fingers whose tip is nearer the wrist than
    their MCP. ``keypoints``: (M, 21, 2); ``visible``: (M, 21). Returns ``(inverted, labelled)``
    over the fingers with the wrist, MCP and tip labelled."""
    kp, vis = np.asarray(keypoints, np.float64), np.asarray(visible) > 0
    mcp, tip = np.arange(1, 21, 4), np.arange(4, 21, 4)
    wrist = kp[:, :1]
    d_mcp = np.linalg.norm(kp[:, mcp] - wrist, axis=-1)
    d_tip = np.linalg.norm(kp[:, tip] - wrist, axis=-1)
    labelled = vis[:, :1] & vis[:, mcp] & vis[:, tip]
    return int(np.sum((d_tip < d_mcp) & labelled)), int(np.sum(labelled))


def _resolve_mapping(spec, target_names, source_names, where: str) -> list:
    """Mapping spec -> list (one per target joint) of source index lists ([] = invisible)."""
    k = len(target_names)
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(target_names))
        if unknown:
            raise ValueError(f"{where}: unknown target joint name(s) {unknown}; expected names of "
                             f"{list(target_names)}")
        entries = [spec.get(name) for name in target_names]
    elif isinstance(spec, (list, tuple)):
        if len(spec) != k:
            raise ValueError(f"{where}: a list mapping needs one entry per target joint ({k}), got {len(spec)}")
        entries = list(spec)
    else:
        raise ValueError(f"{where}: a mapping must be a JSON object (target -> source) or a list")

    def index(src):
        if isinstance(src, bool):
            raise ValueError(f"{where}: invalid source joint {src!r}")
        if isinstance(src, int):
            if src < 0:
                return None
            if src >= len(source_names):
                raise ValueError(f"{where}: source index {src} out of range (the JSON has "
                                 f"{len(source_names)} keypoints)")
            return src
        if isinstance(src, str):
            if src not in source_names:
                raise ValueError(f"{where}: source joint {src!r} not in categories[].keypoints "
                                 f"{list(source_names)}")
            return source_names.index(src)
        raise ValueError(f"{where}: invalid source joint {src!r} (expected a name, an index, a list or null)")

    out = []
    for entry in entries:
        if entry is None:
            out.append([])
        elif isinstance(entry, (list, tuple)):
            idx = [index(e) for e in entry]
            out.append([] if any(i is None for i in idx) else idx)
        else:
            i = index(entry)
            out.append([] if i is None else [i])
    return out


def apply_mapping(keypoints: np.ndarray, visible: np.ndarray, mapping: list, fallback=None) -> tuple:
    """Source (N, 2)/(N,) -> target (K, 2)/(K,) with a resolved mapping (see module docstring).

    Args:
        fallback: optional callable (target index, target keypoints so far) -> (x, y) position of
            an invisible, non-derivable joint (defaults to the origin).
    """
    k = len(mapping)
    kp = np.zeros((k, 2), np.float64)
    vis = np.zeros(k, np.float32)
    for t, sources in enumerate(mapping):
        if sources:
            kp[t] = np.mean(keypoints[sources], axis=0)
            vis[t] = float(np.all(visible[sources] > 0))
    if fallback is not None:
        for t, sources in enumerate(mapping):
            if not sources:
                kp[t] = fallback(t, kp)
    return kp, vis


@register_converter
class COCOConverter(Converter):
    """COCO-style keypoint annotations -> Body16 / Hand21 records (one per instance).

    Args:
        src: str. Dataset root; relative JSON and image paths are resolved against it.
        task: str. "body" (Body16) or "hand" (Hand21). Defaults to "body".
        train_json: str. Annotation file of the ``train`` split ("" = no train split).
            Defaults to "annotations/person_keypoints_train2017.json".
        test_json: str. Annotation file of the ``test`` split ("" = no test split).
            Defaults to "annotations/person_keypoints_val2017.json".
        train_images: str. Image folder of ``train``. Defaults to "train2017".
        test_images: str. Image folder of ``test``. Defaults to "val2017".
        mapping: str. JSON mapping file onto the skeleton ("" = built in). Defaults to "".
        min_keypoints: int. Skip instances with fewer visible (mapped) joints. Defaults to 1.
        include_crowd: bool. Keep ``iscrowd`` annotations. Defaults to False.
        with_3d: bool. Read ``keypoints_3d`` and ``intrinsics`` (see the module docstring).
            Defaults to False.

    A default JSON path that does not exist just drops its split; an explicitly given one that
    does not exist is an error.

    Example:

    >>> from synpose_keras.datasets.converters.coco import COCOConverter
    >>> conv = COCOConverter("/data/coco", task="body")  # doctest: +SKIP

    Reference: Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014 (keypoint format).
    """

    name = "coco"
    src_help = ("Dataset root: the annotation JSON files and image folders are relative to it "
                "(the official COCO 2017 layout by default).")
    skeleton = "body16"
    has_3d = False
    splits = ("train", "test")
    OPTIONS = (
        Option("task", str, "body", "Skeleton: 'body' (Body16) or 'hand' (Hand21).",
               choices=("body", "hand")),
        Option("train_json", str, "annotations/person_keypoints_train2017.json",
               "Annotation JSON of the train split, relative to SRC ('' = none)."),
        Option("test_json", str, "annotations/person_keypoints_val2017.json",
               "Annotation JSON of the test split, relative to SRC ('' = none)."),
        Option("train_images", str, "train2017", "Image folder of the train split, relative to SRC."),
        Option("test_images", str, "val2017", "Image folder of the test split, relative to SRC."),
        Option("mapping", str, "", "JSON joint mapping onto the skeleton ('' = built in)."),
        Option("min_keypoints", int, 1, "Skip instances with fewer visible mapped joints."),
        Option("include_crowd", bool, False, "Keep iscrowd annotations."),
        Option("with_3d", bool, False, "Read keypoints_3d and intrinsics from the JSON."),
    )

    def __init__(self, src: str, **options) -> None:
        super().__init__(src, **options)
        task = self.check_choice("task", ("body", "hand"))
        self.skeleton = get_skeleton(task).name
        self.has_3d = bool(self.options["with_3d"])
        self.check_at_least("min_keypoints", 0)
        defaults = {o.name: o.default for o in self.OPTIONS}
        self._json = {}
        for split in ("train", "test"):
            value = self.options[f"{split}_json"]
            if not value:
                continue
            path = self._path(value)
            if os.path.isfile(path):
                self._json[split] = path
            elif value != defaults[f"{split}_json"]:
                raise DatasetLayoutError(f"COCO annotation file not found: {path} (--{split}-json); pass "
                                         "a path relative to SRC or an absolute path")
        if not self._json:
            raise DatasetLayoutError(
                f"no COCO annotation file found under {self.src}: expected "
                f"{self._path(self.options['train_json'] or defaults['train_json'])} and/or "
                f"{self._path(self.options['test_json'] or defaults['test_json'])}; pass --train-json "
                "/ --test-json"
            )
        self.splits = tuple(s for s in ("train", "test") if s in self._json)
        self._mapping_spec = None
        if self.options["mapping"]:
            mpath = self._path(self.options["mapping"])
            if not os.path.isfile(mpath):
                raise DatasetLayoutError(f"joint mapping file not found: {mpath} (--mapping)")
            try:
                with open(mpath, "r", encoding="utf-8") as f:
                    self._mapping_spec = json.load(f)
            except ValueError as err:
                raise ValueError(f"{mpath}: not valid JSON ({err})") from err
        self._cache: dict = {}
        self.mapping_warnings: list = []

    def _path(self, value: str) -> str:
        return value if os.path.isabs(value) else os.path.join(self.src, value)

    # ------------------------------------------------------------------ annotations

    def _load_json(self, split: str) -> dict:
        if split in self._cache:
            return self._cache[split]
        path = self._json[split]
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
        except ValueError as err:
            raise DatasetLayoutError(f"{path}: not valid JSON ({err})") from err
        for key in ("images", "annotations", "categories"):
            if key not in data:
                raise DatasetLayoutError(f"{path}: field '{key}' missing (expected a COCO keypoints file)")
        cats = [c for c in data["categories"] if c.get("keypoints")]
        if not cats:
            raise DatasetLayoutError(f"{path}: no category with 'keypoints' names")
        names = list(cats[0]["keypoints"])
        mapping = self._mapping(names, path)
        info = {"path": path, "data": data, "names": names, "mapping": mapping}
        self._cache[split] = info
        return info

    def _mapping(self, names: list, path: str) -> list:
        target = get_skeleton(self.skeleton).keypoint_names
        if self._mapping_spec is not None:
            return _resolve_mapping(self._mapping_spec, target, names, self._path(self.options["mapping"]))
        if self.skeleton == "body16" and tuple(names) == COCO17_NAMES:
            return _resolve_mapping(COCO17_TO_BODY16, target, names, "built-in COCO-17 -> Body16")
        if self.skeleton == "hand21" and len(names) == 21:
            return [[i] for i in range(21)]
        if self.skeleton == "body16" and len(names) == 21:
            raise DatasetLayoutError(
                f"{path}: these 21 keypoints ({names[:3]}...) look like a hand, and the task is "
                "'body' (the default); pass --task hand (Hand21, the joints in Hand21 order), or "
                "--mapping FILE for another order"
            )
        raise DatasetLayoutError(
            f"{path}: no built-in mapping from these {len(names)} keypoints ({names[:5]}...) onto "
            f"{self.skeleton}; pass --mapping FILE (a JSON object target -> source joint name)"
        )

    def _fallback(self, names, src_kp, src_vis):
        """Positions of non-derivable Body16 joints (stored invisible): head top at the nose,
        upper neck half-way between thorax and nose; None when there is no nose joint.

        An unlabelled nose (COCO stores it at (0, 0)) is replaced by the mean of the labelled
        eyes and ears, else of every labelled joint (else the origin: nothing is labelled)."""
        if self.skeleton != "body16" or "nose" not in names:
            return None
        nose = src_kp[names.index("nose")]
        if not src_vis[names.index("nose")] > 0:
            face = [names.index(n) for n in ("left_eye", "right_eye", "left_ear", "right_ear")
                    if n in names and src_vis[names.index(n)] > 0]
            labelled = face or [i for i in range(len(names)) if src_vis[i] > 0]
            nose = src_kp[labelled].mean(axis=0) if labelled else np.zeros(2)
        target = get_skeleton(self.skeleton).keypoint_names
        thorax = target.index("thorax")

        def fallback(t, kp):
            if target[t] == "head_top":
                return nose
            if target[t] == "upper_neck":
                return 0.5 * (kp[thorax] + nose)
            return kp[t]

        return fallback

    def items(self, split: str) -> list:
        if split not in self.splits:
            raise ValueError(f"split must be one of {self.splits}. Received: split={split!r}")
        info = self._load_json(split)
        data, path = info["data"], info["path"]
        images = {}
        order = {}
        for n, img in enumerate(data["images"]):
            if "id" not in img or "file_name" not in img:
                raise DatasetLayoutError(f"{path}: images[{n}] lacks 'id' or 'file_name'")
            images[img["id"]] = img
            order[img["id"]] = n
        image_dir = self._path(self.options[f"{split}_images"])
        n_src = len(info["names"])
        entries = []
        checked = []  # keypoints of the first instances, for the mapping checks
        for a, ann in enumerate(data["annotations"]):
            if ann.get("iscrowd", 0) and not self.options["include_crowd"]:
                continue
            flat = ann.get("keypoints")
            if flat is None or ann.get("image_id") not in images:
                continue
            # a malformed keypoint list is listed anyway: the writer reports it (or skips it)
            try:
                triplets = keypoint_triplets(flat, n_src, path)
            except BadSampleError:
                triplets = None
            if triplets is not None:
                v = triplets[:, 2]
                mapped_vis = [bool(src) and all(v[i] > 0 for i in src) for src in info["mapping"]]
                if sum(mapped_vis) < self.options["min_keypoints"]:
                    continue
                if len(checked) < _CHECKED_INSTANCES:
                    checked.append(triplets)
            img = images[ann["image_id"]]
            key = (str(_first(img, _SEQUENCE_KEYS, "")), int(_first(img, _FRAME_KEYS, 0)),
                   str(_first(img, _VIEW_KEYS, "")), order[ann["image_id"]], a)
            entries.append((key, ann, img))
        self._check_mapping(info, checked)
        if any(e[0][0] for e in entries):
            entries.sort(key=lambda e: e[0])
        else:
            entries.sort(key=lambda e: e[0][3:])
        items = []
        for _, ann, img in entries:
            source_id = f"{img['file_name']}#{ann.get('id', 'ann')}"
            items.append(Item(source_id, self._loader(split, ann, img, image_dir, source_id)))
        return items

    def _check_mapping(self, info: dict, instances: list) -> None:
        """Warns (``ConversionWarning``, once per annotation file) when the joint mapping
        looks wrong: sides swapped by name, or fingertips nearer the wrist than their MCPs on
        most labelled fingers. The warnings are kept in :meth:`describe` (``meta.json``)."""
        if info.get("checked"):
            return
        info["checked"] = True
        target = get_skeleton(self.skeleton).keypoint_names
        found = []
        swaps = swapped_sides(info["mapping"], target, info["names"])
        if swaps:
            pairs = ", ".join(f"{t} <- {s}" for t, s in swaps[:4])
            found.append(f"{info['path']}: the joint mapping swaps left and right ({pairs}"
                         f"{', ...' if len(swaps) > 4 else ''}); Body16's l_/r_ joints are the "
                         "person's left/right, as COCO's. Check --mapping.")
        if self.skeleton == "hand21" and instances:
            kp, vis = [], []
            for triplets in instances:
                k, v = apply_mapping(triplets[:, :2], (triplets[:, 2] > 0).astype(np.float32),
                                     info["mapping"])
                kp.append(k)
                vis.append(v)
            inverted, labelled = inverted_fingers(np.stack(kp), np.stack(vis))
            if labelled >= _MIN_FINGERS and inverted >= _INVERTED_SHARE * labelled:
                found.append(
                    f"{info['path']}: the hand mapping looks wrong: on {inverted} of {labelled} "
                    "labelled fingers the fingertip is nearer the wrist than its MCP (expected on "
                    "few, e.g. a fist). Hand21's order is the wrist, then thumb, index, middle, "
                    "ring and little finger, each MCP, PIP, DIP, tip; pass --mapping FILE if the "
                    "JSON's order differs.")
        for message in found:
            self.mapping_warnings.append(message)
            warnings.warn(message, ConversionWarning, stacklevel=2)

    def _loader(self, split, ann, img, image_dir, source_id):
        def load() -> Record:
            return self._load(split, ann, img, image_dir, source_id)

        return load

    def _load(self, split, ann, img, image_dir, source_id) -> Record:
        info = self._cache[split] if split in self._cache else self._load_json(split)
        names, mapping = info["names"], info["mapping"]
        where = f"{info['path']} annotation {ann.get('id')} ({img['file_name']})"
        src = keypoint_triplets(ann["keypoints"], len(names), where)
        if not np.all(np.isfinite(src)):
            raise BadSampleError(f"{where}: keypoints contain NaN or inf")
        src_kp, src_vis = src[:, :2], (src[:, 2] > 0).astype(np.float32)
        kp, vis = apply_mapping(src_kp, src_vis, mapping, self._fallback(names, src_kp, src_vis))
        kp3d = intrinsics = None
        if self.has_3d:
            kp3d_src = ann.get("keypoints_3d")
            intr = ann.get("intrinsics", img.get("intrinsics"))
            if kp3d_src is None or intr is None:
                raise BadSampleError(f"{where}: --with-3d needs annotations[].keypoints_3d and "
                                     "images[].intrinsics")
            p3 = np.asarray(kp3d_src, np.float64)
            if p3.size != 3 * len(names):
                raise BadSampleError(f"{where}: expected {3 * len(names)} keypoints_3d values, got {p3.size}")
            p3 = p3.reshape(-1, 3)
            kp3d = np.stack([p3[s].mean(0) if s else np.zeros(3) for s in mapping]).astype(np.float32)
            intrinsics = np.asarray(intr, np.float32).reshape(3, 3)
        image = load_image(os.path.join(image_dir, img["file_name"]))
        return Record(
            image=image,
            keypoints=kp.astype(np.float32),
            visible=vis,
            sequence=str(_first(img, _SEQUENCE_KEYS, "")),
            frame=int(_first(img, _FRAME_KEYS, 0)),
            view=str(_first(img, _VIEW_KEYS, "")),
            source_id=source_id,
            keypoints_3d=kp3d,
            intrinsics=intrinsics,
        )

    def describe(self) -> dict:
        mapping = {}
        for split in self.splits:
            info = self._load_json(split)
            target = get_skeleton(self.skeleton).keypoint_names
            mapping = {t: [info["names"][i] for i in src] for t, src in zip(target, info["mapping"])}
            break
        return {
            "options": dict(self.options),
            "skeleton": self.skeleton,
            "annotation_files": dict(self._json),
            "joint_mapping": mapping,
            "not_derivable": sorted(t for t, s in mapping.items() if not s),
            "visibility": "v > 0 (labelled, occluded or not) -> 1",
            "split_rule": "one JSON file per split (train_json, test_json)",
            "records": "one per annotation (instance); whole image unless converted with --crop",
            **({"mapping_warnings": list(self.mapping_warnings)} if self.mapping_warnings else {}),
        }
