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
    assert model_handedness(run("synthetic", {"task": "hand"})) == "left"  # left hands only
    assert model_handedness(run("synthetic", {"task": "body"}, skeleton="body16")) is None
    assert model_handedness(tmp_path / "missing") is None
    assert model_handedness(None) is None


def _without_handedness(path):
    """Rewrites a .keras archive's config as models saved before ``handedness`` existed."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    assert config["config"].pop("handedness") == "left"
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def test_the_keras_file_states_its_handedness(tmp_path):
    import keras
    import pytest

    from synpose_keras.inference.loading import model_handedness

    model = PosePredictor(num_keypoints=21, backbone="resnet18", input_size=64,
                          width_multiplier=0.125, deconv_filters=8, handedness="left")
    path = tmp_path / "elsewhere" / "hand.keras"  # no run folder around it
    path.parent.mkdir()
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.handedness == "left"
    assert model_handedness(model=loaded) == "left"
    assert model_handedness(tmp_path / "missing", model=loaded) == "left"

    # a model saved before the field existed loads with None (and falls back to its run)
    _without_handedness(path)
    old = keras.saving.load_model(path)
    assert old.handedness is None and model_handedness(model=old) is None
    assert PosePredictor(num_keypoints=21, input_size=64).handedness is None
    with pytest.raises(ValueError, match="handedness"):
        PosePredictor(num_keypoints=21, input_size=64, handedness="both")


def test_training_states_the_sources_handedness_in_the_predictor():
    from types import SimpleNamespace

    from synpose_keras.training.configs import get_preset
    from synpose_keras.training.train import Trainer, build_predictor

    rhd = {"dataset": "rhd", "skeleton": "hand21", "converter": {"options": {}}}
    h3d = {"dataset": "h3d", "skeleton": "hand21", "converter": {"options": {}}}
    assert Trainer.handedness.fget(SimpleNamespace(meta={"source": rhd})) == "left"
    assert Trainer.handedness.fget(SimpleNamespace(meta={"source": h3d})) is None
    config = get_preset("tiny")
    assert build_predictor(config, handedness="left").get_config()["handedness"] == "left"
    assert build_predictor(config).get_config()["handedness"] is None
