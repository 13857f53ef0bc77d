"""TensorBoard with what matters: per epoch the target PCK, the pseudo-label statistics and
prediction overlays (RUN/logs/<stage>/diagnostics), and the reconstruction check's values."""

import glob
import os

import numpy as np
import tensorflow as tf

from synpose_keras.training.runner import EpochSummaries, write_summaries


def event_tags(folder) -> dict:
    """{tag: number of events} of every event file under ``folder``."""
    tags = {}
    for path in glob.glob(os.path.join(str(folder), "**", "events.out.tfevents.*"),
                          recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags[value.tag] = tags.get(value.tag, 0) + 1
    return tags


def test_epoch_summaries_write_the_history_row_and_overlays(tmp_path):
    history = []
    callback = EpochSummaries(str(tmp_path), history,
                              images=lambda epoch: np.full((2, 8, 8, 3), 200, np.uint8))
    for epoch in range(2):
        history.append({"epoch": epoch, "loss": 1.0, "target_pck_all": 40.0 + epoch,
                        "pl_overlap": 0.5, "pl_inversion": 0.1, "pl_selected": 12,
                        "combined": 0.0, "analysis": "not a number"})
        callback.on_epoch_end(epoch, {"loss": 1.0})
    callback.on_train_end()
    tags = event_tags(tmp_path / "diagnostics")
    for tag in ("epoch_target_pck_all", "epoch_pl_overlap", "epoch_pl_inversion",
                "epoch_pl_selected", "epoch_combined", "predictions"):
        assert tags.get(tag) == 2, (tag, tags)
    assert "epoch_loss" not in tags  # Keras's own callback logs the losses


def test_write_summaries_flattens_the_reconstruction_check(tmp_path):
    write_summaries(str(tmp_path), "reconstruction_check",
                    {"l1": 0.2, "copy": {"l1": 0.3, "ratio": 0.66}, "passed": True, "note": "x"})
    assert set(event_tags(tmp_path)) == {"reconstruction_check/l1",
                                         "reconstruction_check/copy/l1",
                                         "reconstruction_check/copy/ratio"}
