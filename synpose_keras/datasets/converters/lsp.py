"""Leeds Sports Pose (LSP, Johnson & Everingham, BMVC 2010): 2000 single images of athletes.

Layout (``lsp_dataset.zip``)::

    SRC/images/im0001.jpg ... im2000.jpg
    SRC/joints.mat            variable "joints", shape (3, 14, 2000): x, y, flag

Facts this converter relies on:

- LSP-14 order: r-ankle, r-knee, r-hip, l-hip, l-knee, l-ankle, r-wrist, r-elbow, r-shoulder,
  l-shoulder, l-elbow, l-wrist, neck, head-top (the dataset's README).
- The README calls the third row "a binary value indicating the visbility of each joint", but in
  ``lsp_dataset`` the value is 1 for *occluded* joints: TLlib uses ``visible = 1 - flag``, and
  other public loaders invert it too (``np.logical_not(joints[2])`` for LSP, not for LSP-extended).
  We follow TLlib by default (option ``flag``).
- Body16 index -> LSP index: (0, 1, 2, 3, 4, 5, -, -, 12, 13, 6, 7, 8, 9, 10, 11): TLlib's
  ``joints_index`` lists, for each Body16 keypoint, the LSP joint it reads. Pelvis and thorax
  have no LSP counterpart: they are stored invisible, placed at the mid-hip / mid-shoulder point.
- TLlib adapts *and* tests on the same 2000 images (option ``split_rule``).
"""

from __future__ import annotations

import os

import numpy as np

from synpose_keras.datasets.converters._image import load_image
from synpose_keras.datasets.converters.base import (
    BadSampleError,
    Converter,
    DatasetLayoutError,
    Item,
    Option,
    Record,
    check_keypoints,
    register_converter,
)

#: For each Body16 keypoint, its LSP-14 joint (-1: no counterpart, stored invisible).
LSP_TO_BODY16 = (0, 1, 2, 3, 4, 5, -1, -1, 12, 13, 6, 7, 8, 9, 10, 11)
PELVIS, THORAX = 6, 7
R_HIP, L_HIP, R_SHOULDER, L_SHOULDER = 2, 3, 12, 13  # Body16 indices


def lsp_to_body16(joints14: np.ndarray, visible14: np.ndarray) -> tuple:
    """(14, 2) LSP keypoints and (14,) visibility -> Body16 (16, 2) and (16,).

    Pelvis and thorax are invisible; their coordinates are the mid-hip and mid-shoulder points.
    """
    kp = np.zeros((16, 2), np.float64)
    vis = np.zeros(16, np.float32)
    for b, l in enumerate(LSP_TO_BODY16):
        if l >= 0:
            kp[b] = joints14[l]
            vis[b] = visible14[l]
    kp[PELVIS] = 0.5 * (kp[R_HIP] + kp[L_HIP])
    kp[THORAX] = 0.5 * (kp[R_SHOULDER] + kp[L_SHOULDER])
    return kp, vis


@register_converter
class LSPConverter(Converter):
    """LSP (official ``lsp_dataset``) -> Body16 records (2D only, no sequences).

    Args:
        src: str. The folder that contains ``joints.mat`` and ``images/``.
        flag: str. How to read the third row of ``joints``: "occluded" (visible = 1 - flag, TLlib
            and common practice; default) or "visible" (visible = flag, the README's wording).
        split_rule: str. "tllib" (default): train and test are both all images, the protocol of
            TLlib/RegDA/UniFrame (adaptation and test sets coincide). "paper": images 1-1000 train,
            1001-2000 test, the split of the original LSP paper.

    Example:

    >>> from synpose_keras.datasets.converters.lsp import LSPConverter
    >>> items = LSPConverter("/data/lsp_dataset").items("test")  # doctest: +SKIP
    >>> len(items)  # doctest: +SKIP
    2000

    Reference: Johnson & Everingham, "Clustered Pose and Nonlinear Appearance Models for Human
    Pose Estimation", BMVC 2010; SURREAL->LSP in RegDA/UniFrame.
    """

    name = "lsp"
    skeleton = "body16"
    has_3d = False
    splits = ("train", "test")
    OPTIONS = (
        Option("flag", str, "occluded",
               "Third row of joints.mat: 'occluded' (visible = 1 - flag, TLlib) or 'visible'.",
               choices=("occluded", "visible")),
        Option("split_rule", str, "tllib",
               "'tllib' (train = test = all images) or 'paper' (first half train, second half test).",
               choices=("tllib", "paper")),
    )

    def __init__(self, src: str, **options) -> None:
        super().__init__(src, **options)
        self.check_choice("flag", ("occluded", "visible"))
        self.check_choice("split_rule", ("tllib", "paper"))
        self.joints_path = os.path.join(self.src, "joints.mat")
        self.image_dir = os.path.join(self.src, "images")
        if not os.path.isfile(self.joints_path):
            raise DatasetLayoutError(
                f"LSP annotation file not found: {self.joints_path}; pass the folder that contains "
                "joints.mat and images/ (the unpacked lsp_dataset)"
            )
        if not os.path.isdir(self.image_dir):
            raise DatasetLayoutError(
                f"LSP image folder not found: {self.image_dir}; pass the folder that contains "
                "joints.mat and images/"
            )
        self.joints = self._read_joints(self.joints_path)

    @staticmethod
    def _read_joints(path: str) -> np.ndarray:
        from scipy.io import loadmat

        try:
            mat = loadmat(path)
        except Exception as err:
            raise DatasetLayoutError(f"{path}: cannot read MATLAB file ({type(err).__name__}: {err})") from err
        if "joints" not in mat:
            raise DatasetLayoutError(f"{path}: variable 'joints' not found (expected the LSP joints.mat)")
        joints = np.asarray(mat["joints"], np.float64)
        if joints.ndim != 3 or joints.shape[:2] != (3, 14):
            hint = " (this looks like LSP-extended, which stores (14, 3, N))" if joints.shape[:2] == (14, 3) else ""
            raise DatasetLayoutError(f"{path}: 'joints' has shape {joints.shape}, expected (3, 14, N){hint}")
        return joints

    def describe(self) -> dict:
        n = self.joints.shape[2]
        rule = (f"train = test = all {n} images (TLlib)" if self.options["split_rule"] == "tllib"
                else f"train = images 1-{n // 2}, test = images {n // 2 + 1}-{n} (LSP paper)")
        return {
            "options": dict(self.options),
            "split_rule": rule,
            "joint_mapping": {"from": "LSP-14", "index": list(LSP_TO_BODY16),
                              "invisible": ["pelvis", "thorax"]},
            "visibility": "1 - flag" if self.options["flag"] == "occluded" else "flag",
        }

    def _indices(self, split: str) -> range:
        n = self.joints.shape[2]
        if self.options["split_rule"] == "tllib":
            return range(n)
        return range(0, n // 2) if split == "train" else range(n // 2, n)

    def items(self, split: str) -> list:
        if split not in self.splits:
            raise ValueError(f"split must be one of {self.splits}. Received: split={split!r}")
        items = []
        for i in self._indices(split):
            name = f"im{i + 1:04d}.jpg"
            items.append(Item(f"images/{name}", self._loader(i, name)))
        return items

    def _loader(self, index: int, name: str):
        def load() -> Record:
            return self._load(index, name)

        return load

    def _load(self, index: int, name: str) -> Record:
        path = os.path.join(self.image_dir, name)
        xy = self.joints[:2, :, index].T
        flag = self.joints[2, :, index]
        check_keypoints(xy, 14, f"{path} ({self.joints_path}, column {index + 1})")
        if not np.all(np.isfinite(flag)):
            raise BadSampleError(f"{path}: visibility flags contain NaN or inf in {self.joints_path}")
        visible14 = (1.0 - flag) if self.options["flag"] == "occluded" else flag
        keypoints, visible = lsp_to_body16(xy, np.clip(visible14, 0.0, 1.0))
        image = load_image(path)
        return Record(
            image=image,
            keypoints=keypoints.astype(np.float32),
            visible=visible,
            sequence="",
            frame=0,
            source_id=f"images/{name}",
        )
