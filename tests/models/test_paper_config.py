"""The paper's f_kp (ResNet-101, 256 × 256 -> 64 × 64, 21 keypoints) builds and trains one step."""

import keras
import numpy as np
import pytest

from synpose_keras.models import PosePredictor
from synpose_keras.ops.heatmaps import encode_heatmaps
from synpose_keras.training.supervised_trainer import SupervisedPoseTrainer

# keras.applications ResNet101 without top: 42,658,176. Head: deconvs 2048·256·16 + 2·256·256·16,
# 3 BatchNorms × 4 × 256, final 1×1 conv 256·21 + 21.
PAPER_PARAMETERS = 42_658_176 + (2048 + 2 * 256) * 256 * 16 + 3 * 4 * 256 + 256 * 21 + 21


@pytest.mark.slow
def test_paper_configuration_trains_one_step():
    keras.utils.set_random_seed(0)
    model = PosePredictor.paper()  # backbone_weights=None: nothing to download
    assert (model.backbone_name, model.input_size, model.num_keypoints) == ("resnet101", 256, 21)
    assert model.normalization == "caffe" and model.heatmap_size == 64
    assert model.count_params() == PAPER_PARAMETERS == 53_152_405

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 256, 256, 3)).astype("uint8")
    keypoints = rng.uniform(8, 248, (2, 21, 2)).astype("float32")
    heatmaps, weights = encode_heatmaps(keypoints, np.ones((2, 21), "float32"), 256, 64)
    assert tuple(model(images).shape) == (2, 64, 64, 21)

    trainer = SupervisedPoseTrainer(model)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-4))
    watched = [model.backbone.get_layer("conv1_conv").kernel, model.final_conv.kernel]
    before = [keras.ops.convert_to_numpy(v).copy() for v in watched]
    logs = trainer.train_step((images, heatmaps, weights))
    loss = float(logs["loss"])
    assert np.isfinite(loss) and loss > 0
    for old, variable in zip(before, watched):
        new = keras.ops.convert_to_numpy(variable)
        assert np.all(np.isfinite(new)) and not np.array_equal(old, new)
