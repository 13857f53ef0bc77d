"""Generator (G): shapes, range, warping/occlusion wiring, resizing of D and C, the full-resolution
blend, serialization."""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from synpose_keras.models.generator import Generator
from synpose_keras.ops.warp import grid_sample, make_coordinate_grid
from tests.models.helpers import (
    assert_config_complete,
    assert_save_load_identical,
    init_arguments,
    randomize_batchnorm_statistics,
)

SIZE = 64
TINY = dict(block_expansion=8, max_features=64, num_residual_blocks=2)


def _image(seed, batch=2, size=SIZE):
    return np.random.default_rng(seed).random((batch, size, size, 3)).astype("float32")


def _identity(batch, size):
    grid = np.asarray(make_coordinate_grid(size, size))
    return np.broadcast_to(grid, (batch, size, size, 2)).copy()


def _ones(batch, size):
    return np.ones((batch, size, size, 1), "float32")


def test_output_shape_range_and_widths():
    keras.utils.set_random_seed(0)
    generator = Generator(**TINY)
    out = generator([_image(0), _identity(2, 16), _ones(2, 16)])
    assert tuple(out.shape) == (2, SIZE, SIZE, 3)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    out = np.asarray(out)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.std() > 0.0
    assert generator.first.filters == 8
    assert [b.filters for b in generator.down_blocks] == [16, 32]
    assert [b.filters for b in generator.up_blocks] == [16, 8]
    assert generator.bottleneck_features == 32
    assert len(generator.residual_blocks) == 2


def test_zero_occlusion_discards_the_image():
    # C = 0 zeroes the warped features: the output no longer depends on the base image.
    keras.utils.set_random_seed(1)
    generator = Generator(**TINY)
    zeros = np.zeros((2, 16, 16, 1), "float32")
    a = generator([_image(1), _identity(2, 16), zeros], training=False)
    b = generator([_image(2), _identity(2, 16), zeros], training=False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    c = generator([_image(2), _identity(2, 16), _ones(2, 16)], training=False)
    assert np.abs(np.asarray(c) - np.asarray(b)).max() > 1e-6


def test_field_pointing_outside_reads_zeros():
    # A sampling grid entirely outside [-1, 1] reads zero features (zero padding), like C = 0.
    keras.utils.set_random_seed(2)
    generator = Generator(**TINY, output_mode="decoder")
    outside = np.full((2, 16, 16, 2), 3.0, "float32")
    a = generator([_image(3), outside, _ones(2, 16)], training=False)
    zeros = np.zeros((2, 16, 16, 1), "float32")
    b = generator([_image(4), _identity(2, 16), zeros], training=False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_deformation_and_occlusion_at_another_resolution():
    # D and C are resized to the feature resolution (16×16 here); an identity field stays the
    # identity and a constant map stays constant, whatever their own resolution.
    keras.utils.set_random_seed(3)
    generator = Generator(**TINY)
    image = _image(5)
    reference = generator([image, _identity(2, 16), _ones(2, 16)], training=False)
    for size in (8, 32):
        got = generator([image, _identity(2, size), _ones(2, size)], training=False)
        np.testing.assert_allclose(np.asarray(got), np.asarray(reference), atol=1e-6)


# ------------------------------------------------------------------------------------------------
# output_mode="blend": C↑ · grid_sample(base, D↑) + (1 - C↑) · decoder
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("motion_size", [8, 16, 64])
def test_blend_with_identity_field_and_no_occlusion_returns_the_base_image(motion_size):
    # D = identity (zero displacement) and C = 1: copying the base image is exact, whatever the
    # decoder's weights and whatever the resolution of D and C.
    keras.utils.set_random_seed(6)
    generator = Generator(**TINY)
    assert generator.output_mode == "blend"
    image = _image(8)
    for training in (False, True):
        out = generator([image, _identity(2, motion_size), _ones(2, motion_size)],
                        training=training)
        np.testing.assert_allclose(np.asarray(out), image, atol=1e-5, rtol=0)


def test_blend_is_the_occlusion_weighted_sum_of_warp_and_decoder():
    keras.utils.set_random_seed(7)
    blend = Generator(**TINY)
    decoder = Generator(**TINY, output_mode="decoder")
    rng = np.random.default_rng(7)
    image = _image(9)
    field = _identity(2, 16) + rng.normal(0, 0.1, (2, 16, 16, 2)).astype("float32")
    occlusion = rng.random((2, 16, 16, 1)).astype("float32")
    inputs = [image, field, occlusion]
    blend(inputs)
    decoder(inputs)
    decoder.set_weights(blend.get_weights())
    decoded = np.asarray(decoder(inputs, training=False))
    got = np.asarray(blend(inputs, training=False))

    field_up = Generator.resize_deformation(field, SIZE, SIZE)
    occlusion_up = np.asarray(Generator.resize_occlusion(occlusion, SIZE, SIZE))
    warped = np.asarray(grid_sample(image, field_up))
    expected = occlusion_up * warped + (1.0 - occlusion_up) * decoded
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.abs(got - decoded).max() > 1e-3  # the full-resolution path changes the output
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_blend_gradient_reaches_the_displacement_field():
    # At full resolution the output depends on D through the warped base image: the gradient
    # with respect to D is finite and non-zero at every motion-grid point (C = 1, so the decoder
    # has no weight in the output).
    keras.utils.set_random_seed(8)
    generator = Generator(**TINY)
    image = tf.constant(_image(10))
    target = tf.constant(_image(11))
    rng = np.random.default_rng(8)
    field = tf.Variable(_identity(2, 16) + rng.normal(0, 0.05, (2, 16, 16, 2)).astype("float32"))
    with tf.GradientTape() as tape:
        out = generator([image, field, tf.ones((2, 16, 16, 1))], training=True)
        loss = tf.reduce_mean(tf.abs(out - target))
    gradient = np.asarray(tape.gradient(loss, field))
    assert np.all(np.isfinite(gradient))
    assert np.all(np.abs(gradient).max(axis=-1) > 0.0)


def test_resize_deformation_keeps_identity_and_translation():
    shift = np.float32([0.25, -0.5])
    field = _identity(1, 8) + shift
    resized = np.asarray(Generator.resize_deformation(field, 32, 32))
    np.testing.assert_allclose(resized, _identity(1, 32) + shift, atol=1e-6)
    same = Generator.resize_deformation(field, 8, 8)
    np.testing.assert_array_equal(np.asarray(same), field)


def test_hourglass_refinement():
    keras.utils.set_random_seed(4)
    generator = Generator(**TINY, hourglass_refinement=True, hourglass_num_blocks=3)
    out = generator([_image(6), _identity(2, 16), _ones(2, 16)])
    assert tuple(out.shape) == (2, SIZE, SIZE, 3)
    assert generator.hourglass.num_blocks == 3
    assert generator.hourglass_projection.filters == generator.bottleneck_features
    plain = Generator(**TINY)
    plain([_image(6), _identity(2, 16), _ones(2, 16)])
    assert generator.count_params() > plain.count_params()
    assert plain.hourglass is None


def test_image_size_is_validated():
    generator = Generator(**TINY)
    with pytest.raises(ValueError, match=r"multiples of 4\. Received: image_size=62×62"):
        generator([_image(0, size=62), _identity(2, 15), _ones(2, 15)])
    deep = Generator(**TINY, hourglass_refinement=True, hourglass_num_blocks=5)
    with pytest.raises(ValueError, match=r"hourglass_num_blocks=5.*multiples of 128"):
        deep([_image(0), _identity(2, 16), _ones(2, 16)])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"block_expansion": 0}, r"Received: block_expansion=0"),
        ({"num_down_blocks": -1}, r"Received: num_down_blocks=-1"),
        ({"num_residual_blocks": 1.0}, r"Received: num_residual_blocks=1.0"),
        ({"max_features": None}, r"Received: max_features=None"),
        ({"hourglass_refinement": 1}, r"Received: hourglass_refinement=1"),
        ({"hourglass_num_blocks": 0}, r"Received: hourglass_num_blocks=0"),
        ({"output_mode": "sigmoid"}, r"Received: output_mode='sigmoid'"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Generator(**{**TINY, **kwargs})


def test_input_shapes_are_validated():
    generator = Generator(**TINY)
    with pytest.raises(ValueError, match=r"`deformation` must have shape \(B, h, w, 2\)"):
        generator([_image(0), _ones(2, 16), _ones(2, 16)])


def test_get_config_holds_every_argument():
    arguments = dict(
        block_expansion=4,
        num_down_blocks=1,
        num_residual_blocks=3,
        max_features=12,
        hourglass_refinement=True,
        hourglass_num_blocks=2,
        output_mode="decoder",
    )
    assert sorted(arguments) == sorted(init_arguments(Generator))
    assert_config_complete(Generator, Generator(**arguments), arguments)
    assert_config_complete(Generator, Generator(), {})


def test_paper_configuration():
    generator = Generator.paper()
    assert generator.first.filters == 64
    assert [b.filters for b in generator.down_blocks] == [128, 256]
    assert len(generator.residual_blocks) == 6
    assert [b.filters for b in generator.up_blocks] == [128, 64]
    assert generator.hourglass is None


@pytest.mark.parametrize(
    "hourglass_refinement, output_mode", [(False, "blend"), (True, "blend"), (False, "decoder")]
)
def test_save_and_load_give_identical_outputs(tmp_path, hourglass_refinement, output_mode):
    keras.utils.set_random_seed(5)
    generator = Generator(
        **TINY, hourglass_refinement=hourglass_refinement, hourglass_num_blocks=2,
        output_mode=output_mode,
    )
    rng = np.random.default_rng(5)
    inputs = [
        _image(7),
        _identity(2, 16) + rng.normal(0, 0.05, (2, 16, 16, 2)).astype("float32"),
        rng.random((2, 16, 16, 1)).astype("float32"),
    ]
    generator(inputs)
    randomize_batchnorm_statistics(generator, 5)
    expected = generator(inputs, training=False)
    loaded = assert_save_load_identical(generator, inputs, tmp_path)
    assert loaded.get_config() == generator.get_config()
    np.testing.assert_array_equal(np.asarray(loaded(inputs, training=False)), np.asarray(expected))


def test_files_saved_before_output_mode_load_as_decoder(tmp_path):
    # A .keras file written before the option existed has no "output_mode" in its config: it
    # loads with the behaviour it was trained with, the decoder's image alone.
    keras.utils.set_random_seed(9)
    generator = Generator(**TINY, output_mode="decoder")
    inputs = [_image(12), _identity(2, 16), np.random.default_rng(9).random((2, 16, 16, 1))
              .astype("float32")]
    expected = np.asarray(generator(inputs, training=False))
    new_path, old_path = tmp_path / "new.keras", tmp_path / "old.keras"
    generator.save(new_path)
    with zipfile.ZipFile(new_path) as source, zipfile.ZipFile(old_path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                del config["config"]["output_mode"]
                data = json.dumps(config).encode()
            target.writestr(item, data)
    loaded = keras.models.load_model(old_path)
    assert loaded.output_mode == "decoder"
    np.testing.assert_array_equal(np.asarray(loaded(inputs, training=False)), expected)
    assert Generator.from_config({"block_expansion": 8}).output_mode == "decoder"
    assert Generator(block_expansion=8).output_mode == "blend"
