"""Tiny converted datasets written by test code (random poses drawn as coloured dots)."""

import numpy as np

from synpose_keras.datasets.converters.base import Converter, Item, Record
from synpose_keras.datasets.writer import convert
from synpose_keras.skeletons import get_skeleton


class TinyConverter(Converter):
    """A few 64x64 images per split; sequences of `frames` frames; optional 3D."""

    name = "tiny"
    skeleton = "hand21"
    has_3d = True
    splits = ("train", "test")

    def __init__(self, src="", skeleton="hand21", n=8, seed=0, frames=4, with_3d=True,
                 labelled=True):
        super().__init__(src)
        self.skeleton = skeleton
        self.has_3d = with_3d
        self.n, self.seed, self.frames, self.labelled = n, seed, frames, labelled

    def items(self, split):
        offset = 0 if split == "train" else 1000
        return [Item(f"{split}/{i}", lambda i=i: self._record(offset + i))
                for i in range(self.n)]

    def _record(self, i):
        sk = get_skeleton(self.skeleton)
        rng = np.random.default_rng(self.seed * 10_000 + i)
        k = sk.num_keypoints
        pose3d = np.concatenate([rng.uniform(-0.05, 0.05, (k, 2)), rng.uniform(0.45, 0.55, (k, 1))],
                                axis=1).astype(np.float32)
        intr = np.array([[300, 0, 31.5], [0, 300, 31.5], [0, 0, 1]], np.float32)
        uv = pose3d @ intr.T
        kp = (uv[:, :2] / uv[:, 2:]).astype(np.float32)
        image = rng.integers(0, 60, (64, 64, 3)).astype(np.uint8)
        for j, (x, y) in enumerate(np.round(kp).astype(int)):
            if 0 <= x < 64 and 0 <= y < 64:
                image[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = (200, 20 + 10 * j % 200, 90)
        visible = np.ones(k, np.float32) if self.labelled else np.zeros(k, np.float32)
        if not self.labelled:
            kp = np.zeros_like(kp)
        return Record(image=image, keypoints=kp, visible=visible,
                      sequence=f"seq{i // self.frames}" if self.frames else "",
                      frame=i % max(self.frames, 1), source_id=str(i),
                      keypoints_3d=pose3d if self.has_3d else None,
                      intrinsics=intr if self.has_3d else None)


def write_tiny(out_dir, **kwargs):
    return convert(TinyConverter(**kwargs), str(out_dir), progress=False)
