"""`predict --flip`: mirror before the model, un-mirror after (and rename left/right joints of
bodies): a mirrored image predicted with --flip gives the mirrored prediction of the original."""

import json

import numpy as np
from PIL import Image

from synpose_keras.inference.predict import predict_arrays, predict_images
from synpose_keras.models import PosePredictor
from synpose_keras.skeletons import BODY16, HAND21


def _model(k):
    return PosePredictor(num_keypoints=k, backbone="resnet18", input_size=64,
                         width_multiplier=0.125, deconv_filters=8)


def _image(seed, w=90, h=60):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_flip_round_trip_hand_and_body(tmp_path):
    for skeleton in (HAND21, BODY16):
        model = _model(skeleton.num_keypoints)
        image = _image(skeleton.num_keypoints)
        mirrored = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        plain = predict_arrays(model, [image])[0]
        flipped = predict_arrays(model, [mirrored], flip=True, skeleton=skeleton)[0]
        expected = plain["keypoints"].copy()
        expected[:, 0] = (image.size[0] - 1) - expected[:, 0]
        order = list(skeleton.flip_index)
        np.testing.assert_allclose(flipped["keypoints"], expected[order], atol=1e-4)
        np.testing.assert_allclose(flipped["scores"], plain["scores"][order], atol=1e-6)


def test_predict_images_records_flip(tmp_path):
    model = _model(21)
    path = tmp_path / "right.png"
    _image(0).save(path)
    rows = predict_images(model, [path], tmp_path / "out", flip=True, overlays=False,
                          progress=False)
    assert rows[0]["flip"] is True
    assert json.loads((tmp_path / "out" / "right.json").read_text())["flip"] is True


def test_model_handedness_from_the_runs_source(tmp_path):
    from synpose_keras.inference.loading import model_handedness

    def run(dataset, options, skeleton="hand21"):
        source = tmp_path / dataset / "data"
        source.mkdir(parents=True, exist_ok=True)
        (source / "meta.json").write_text(json.dumps(
            {"dataset": dataset, "skeleton": skeleton, "converter": {"options": options}}))
        (tmp_path / dataset / "config.json").write_text(json.dumps({"source": str(source)}))
        return tmp_path / dataset

    assert model_handedness(run("rhd", {"flip_right": True})) == "left"
    assert model_handedness(run("freihand", {})) == "left"  # the converter's default: mirrored
    assert model_handedness(run("h3d", {})) is None
    assert model_handedness(tmp_path / "missing") is None
    assert model_handedness(None) is None
