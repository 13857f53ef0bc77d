"""Per-epoch pseudo-label analysis of the ``adapt`` stage (Table B(b), supplementary C.2).

After each adaptation epoch the teacher labels a fixed subset of the *labelled* target training
split (no augmentation, protocol crop) exactly as it does during training (M_2D, 3D
pseudo-labels, M_3D, the current mask strategy), and the labels are compared with the ground
truth. This uses target labels, so it is analysis only: nothing here reaches the training step.
A label counts as the 2D label where the 2D mask selected it, else the 3D label. The inversion
rate is measured on the teacher's 2D peaks of every analysed sample.
"""

from __future__ import annotations

import numpy as np

from synpose_keras.metrics import inversions
from synpose_keras.pseudo_labels import PseudoLabelStatistics, mask_overlap, strategy_masks


class PseudoLabelAnalysis:
    """Runs the teacher over ``limit`` labelled target training samples after each epoch.

    Args:
        stage: AdaptStage.
        config: TrainConfig.
        skeleton: Skeleton.
        limit: int. Number of target training samples analysed each epoch.
    """

    def __init__(self, stage, config, skeleton, limit: int = 256, batch_size: int = 32):
        self.stage = stage
        self.config = config
        self.skeleton = skeleton
        self.limit = limit
        self.batch_size = batch_size
        self.stats = PseudoLabelStatistics(heatmap_size=config.model.heatmap_size)
        self._batches = None

    def _data(self):
        if self._batches is None:
            from synpose_keras.datasets.pipeline import eval_pipeline

            ds = eval_pipeline(self.config.target, input_size=self.config.model.input_size,
                               heatmap_size=self.config.model.heatmap_size,
                               batch_size=self.batch_size, split="train")
            batches = []
            for batch in ds.unbatch().take(self.limit).batch(self.batch_size):
                batches.append({k: batch[k].numpy() for k in
                                ("image", "keypoints", "weights", "source_id")})
            labelled = sum(float(b["weights"].sum()) for b in batches) > 0
            self._batches = batches if labelled else []
        return self._batches

    def run_epoch(self, epoch: int) -> dict:
        """Labels the subset with the current teacher and returns the epoch's statistics row."""
        batches = self._data()
        if not batches:
            return {}
        stride = self.config.model.input_size / self.config.model.heatmap_size
        for batch in batches:
            labels = self.stage.pseudo_labels(batch["image"])
            m2, m3 = strategy_masks(self.stage.pseudo, labels["mask_2d"], labels["mask_3d"],
                                    self.stage.combined)
            m2, m3 = np.asarray(m2), np.asarray(m3)
            use_2d = m2 > 0
            chosen = np.where(use_2d[..., None], np.asarray(labels["keypoints_2d"]),
                              np.asarray(labels["keypoints_3d"]))
            selected = np.maximum(m2, m3)
            swaps = inversions(np.asarray(labels["keypoints_2d"]), batch["keypoints"],
                               batch["weights"], self.skeleton)
            self.stats.update(batch["source_id"], chosen / stride, batch["keypoints"] / stride,
                              batch["weights"], selected,
                              overlap=float(mask_overlap(labels["mask_2d"], labels["mask_3d"])),
                              combined=bool(float(self.stage.combined.numpy()) > 0.5),
                              inversions=swaps)
        return self.stats.end_epoch()

    def state(self) -> dict:
        return self.stats.state()

    def load_state(self, state: dict) -> None:
        self.stats.load_state(state)
