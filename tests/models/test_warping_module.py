"""WarpingModule (W) and the shared Hourglass: shapes, identity motion, warping, serialization."""

import keras
import numpy as np
import pytest

from synpose_keras.models.hourglass import Hourglass
from synpose_keras.models.warping_module import WarpingModule
from synpose_keras.ops.warp import (
    displacement_field,
    grid_sample,
    make_coordinate_grid,
    normalize_keypoints,
)
from tests.models.helpers import (
    assert_config_complete,
    assert_save_load_identical,
    init_arguments,
    randomize_batchnorm_statistics,
)

SIZE = 64
K = 5
TINY = dict(num_keypoints=K, block_expansion=8, num_blocks=4, max_features=64)


def _inputs(seed, batch=2, size=SIZE, num_keypoints=K):
    rng = np.random.default_rng(seed)
    image = rng.random((batch, size, size, 3)).astype("float32")
    kp_base = rng.uniform(-0.8, 0.8, (batch, num_keypoints, 2)).astype("float32")
    kp_driving = rng.uniform(-0.8, 0.8, (batch, num_keypoints, 2)).astype("float32")
    return image, kp_base, kp_driving






# ------------------------------------------------------------------------------------------------
# Hourglass
# ------------------------------------------------------------------------------------------------


def test_hourglass_output_shape_and_widths():
    keras.utils.set_random_seed(0)
    hourglass = Hourglass(block_expansion=8, num_blocks=3, max_features=16)
    out = hourglass(np.zeros((2, 16, 16, 4), "float32"))
    assert tuple(out.shape) == (2, 16, 16, 8 + 4)
    # Encoder widths 16, 16 (capped), 16; decoder widths 16, 16, 8.
    assert [b.filters for b in hourglass.down_blocks] == [16, 16, 16]
    assert [b.filters for b in hourglass.up_blocks] == [16, 16, 8]


def test_hourglass_rejects_sizes_it_cannot_halve():
    hourglass = Hourglass(block_expansion=8, num_blocks=3, max_features=16)
    with pytest.raises(ValueError, match=r"multiples of 2\*\*3=8.*12×16"):
        hourglass(np.zeros((1, 12, 16, 4), "float32"))


def test_hourglass_paper_size_parameter_count():
    # FOMM's dense-motion hourglass (64 -> 1024 features, 5 blocks) on (K+1)(3+1) = 88 channels.
    hourglass = Hourglass(block_expansion=64, num_blocks=5, max_features=1024)
    hourglass.build((None, None, None, 88))
    # conv3×3 + BN (4 vectors, 2 trainable) per block; counted by hand from the FOMM layout.
    down = [(88, 128), (128, 256), (256, 512), (512, 1024), (1024, 1024)]
    up = [(1024, 1024), (2048, 512), (1024, 256), (512, 128), (256, 64)]
    expected = sum(9 * cin * cout + cout + 4 * cout for cin, cout in down + up)
    assert hourglass.count_params() == expected


# ------------------------------------------------------------------------------------------------
# WarpingModule: outputs
# ------------------------------------------------------------------------------------------------


def test_output_shapes_and_ranges():
    keras.utils.set_random_seed(1)
    module = WarpingModule(**TINY)
    image, kp_base, kp_driving = _inputs(1)
    out = module([image, kp_base, kp_driving])
    assert sorted(out) == ["deformation", "mask", "occlusion"]
    assert tuple(out["mask"].shape) == (2, 16, 16, K + 1)
    assert tuple(out["deformation"].shape) == (2, 16, 16, 2)
    assert tuple(out["occlusion"].shape) == (2, 16, 16, 1)
    for value in out.values():
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
    mask = np.asarray(out["mask"])
    np.testing.assert_allclose(mask.sum(axis=-1), 1.0, atol=1e-5)
    assert mask.min() >= 0.0
    occlusion = np.asarray(out["occlusion"])
    assert occlusion.min() > 0.0 and occlusion.max() < 1.0
    # The module's D is exactly the agreed op applied to its own mask.
    expected = displacement_field(out["mask"], kp_base, kp_driving)
    np.testing.assert_allclose(np.asarray(out["deformation"]), np.asarray(expected), atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identical_keypoints_give_the_identity_field(seed):
    keras.utils.set_random_seed(seed)
    module = WarpingModule(**TINY)
    image, kp_base, _ = _inputs(seed)
    out = module([image, kp_base, kp_base])
    mask = np.asarray(out["mask"])
    assert mask.std() > 1e-4  # a non-trivial mask: the identity must not rely on it
    identity = np.broadcast_to(np.asarray(make_coordinate_grid(16, 16)), (2, 16, 16, 2))
    np.testing.assert_allclose(np.asarray(out["deformation"]), identity, rtol=0, atol=1e-7)


def test_single_keypoint_field_is_mask_weighted_translation():
    keras.utils.set_random_seed(3)
    module = WarpingModule(**{**TINY, "num_keypoints": 1})
    image, kp_base, kp_driving = _inputs(3, num_keypoints=1)
    out = module([image, kp_base, kp_driving])
    mask = np.asarray(out["mask"])[..., 1:]  # (B, h, w, 1)
    grid = np.asarray(make_coordinate_grid(16, 16))[None]
    expected = grid + mask * (kp_base - kp_driving)[:, None, :, :]
    np.testing.assert_allclose(np.asarray(out["deformation"]), expected, atol=1e-6)


def test_without_occlusion_estimation_the_map_is_ones():
    keras.utils.set_random_seed(4)
    module = WarpingModule(**TINY, estimate_occlusion=False)
    out = module(list(_inputs(4)))
    np.testing.assert_array_equal(np.asarray(out["occlusion"]), np.ones((2, 16, 16, 1)))
    assert module.occlusion_head is None


def test_full_resolution_motion():
    keras.utils.set_random_seed(5)
    module = WarpingModule(**{**TINY, "num_blocks": 3}, scale_factor=1.0)
    image, kp_base, kp_driving = _inputs(5, size=16)
    out = module([image, kp_base, kp_driving])
    assert tuple(out["deformation"].shape) == (2, 16, 16, 2)


# ------------------------------------------------------------------------------------------------
# The warp does what it should: a bright square follows its keypoint
# ------------------------------------------------------------------------------------------------


def _square_image(center_xy, size=SIZE, half=2):
    image = np.zeros((1, size, size, 3), "float32")
    x, y = center_xy
    image[0, y - half : y + half + 1, x - half : x + half + 1] = 1.0
    return image


def test_one_hot_region_moves_square_from_base_to_driving_keypoint():
    base_px, driving_px = (20, 18), (41, 35)
    image = _square_image(base_px)
    kp_base = np.asarray(normalize_keypoints(np.float32([[base_px]]), SIZE))
    kp_driving = np.asarray(normalize_keypoints(np.float32([[driving_px]]), SIZE))
    # Region 1 owns a disc of radius 8 px around the DRIVING keypoint; the rest is background.
    yy, xx = np.mgrid[:SIZE, :SIZE]
    inside = (xx - driving_px[0]) ** 2 + (yy - driving_px[1]) ** 2 <= 8**2
    mask = np.zeros((1, SIZE, SIZE, 2), "float32")
    mask[..., 1] = inside
    mask[..., 0] = ~inside
    field = displacement_field(mask, kp_base, kp_driving)
    warped = np.asarray(grid_sample(image, field))[0, ..., 0]

    expected = np.zeros((SIZE, SIZE), "float32")
    x, y = driving_px
    expected[y - 2 : y + 3, x - 2 : x + 3] = 1.0  # the square, now at the driving keypoint
    x, y = base_px
    expected[y - 2 : y + 3, x - 2 : x + 3] = 1.0  # background keeps the base content (C inpaints)
    np.testing.assert_allclose(warped, expected, atol=1e-5)


def test_per_keypoint_deformed_copies_put_base_content_at_driving_keypoints():
    # The hourglass input: copy k is the base image translated by p_drv_k - p_base_k; copy 0 is
    # the image itself.
    module = WarpingModule(**{**TINY, "num_keypoints": 2})
    base_px, driving_px = (20, 18), [(41, 35), (10, 44)]
    image = _square_image(base_px)
    kp_base = np.asarray(normalize_keypoints(np.float32([[base_px, base_px]]), SIZE))
    kp_driving = np.asarray(normalize_keypoints(np.float32([driving_px]), SIZE))
    motions = module.sparse_motions(kp_base, kp_driving, SIZE, SIZE)
    copies = np.asarray(module.deformed_images(image, motions))  # (1, 3, H, W, 3)
    np.testing.assert_array_equal(copies[0, 0], image[0])
    for k, target in enumerate(driving_px, start=1):
        np.testing.assert_allclose(copies[0, k], _square_image(target)[0], atol=1e-5)


def test_module_with_forced_region_translates_the_image():
    # Force the module's mask to region 1 everywhere: D = z + (p_base - p_drv) at every pixel.
    keras.utils.set_random_seed(6)
    module = WarpingModule(**{**TINY, "num_keypoints": 1}, mask_prior="none")
    base_px, driving_px = (20, 28), (36, 20)
    image = _square_image(base_px)
    kp_base = np.asarray(normalize_keypoints(np.float32([[base_px]]), SIZE))
    kp_driving = np.asarray(normalize_keypoints(np.float32([[driving_px]]), SIZE))
    module([image, kp_base, kp_driving])
    kernel, bias = module.mask_head.get_weights()
    module.mask_head.set_weights([np.zeros_like(kernel), np.float32([0.0, 60.0])])
    out = module([image, kp_base, kp_driving])
    np.testing.assert_allclose(np.asarray(out["mask"])[..., 1], 1.0, atol=1e-6)

    # Take D up to the image resolution (as the generator does) and warp the full image.
    from synpose_keras.models.generator import Generator

    field = Generator.resize_deformation(out["deformation"], SIZE, SIZE)
    warped = np.asarray(grid_sample(image, field))[0, ..., 0]
    expected = _square_image(driving_px)[0, ..., 0]
    np.testing.assert_allclose(warped, expected, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------


def test_hourglass_depth_is_validated_against_the_motion_resolution():
    module = WarpingModule(**{**TINY, "num_blocks": 5})
    match = r"64×64 image at scale_factor=0.25.*16×16.*num_blocks <= 4"
    with pytest.raises(ValueError, match=match):
        module(list(_inputs(0)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_keypoints": 0}, r"Received: num_keypoints=0"),
        ({"block_expansion": 2.5}, r"Received: block_expansion=2.5"),
        ({"num_blocks": True}, r"Received: num_blocks=True"),
        ({"scale_factor": 0.3}, r"Received: scale_factor=0.3"),
        ({"scale_factor": 0.0}, r"Received: scale_factor=0.0"),
        ({"kp_variance": 0.0}, r"Received: kp_variance=0.0"),
        ({"estimate_occlusion": "yes"}, r"Received: estimate_occlusion='yes'"),
        ({"mask_prior": "learned"}, r"Received: mask_prior='learned'"),
        ({"mask_prior": "analytic", "motion_consensus": 0.0}, r"Received: motion_consensus=0.0"),
        ({"mask_prior": "analytic", "motion_consensus": True}, r"Received: motion_consensus=True"),
        ({"motion_consensus": 0.1}, r"needs mask_prior='gaussian' or 'analytic'"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WarpingModule(**{**TINY, **kwargs})


def test_keypoint_count_must_match():
    module = WarpingModule(**TINY)
    image, kp_base, kp_driving = _inputs(0, num_keypoints=K + 1)
    with pytest.raises(ValueError, match=r"kp_base.*\(B, 5, 2\).*Received: kp_base_shape"):
        module([image, kp_base, kp_driving])


# ------------------------------------------------------------------------------------------------
# Serialization
# ------------------------------------------------------------------------------------------------


def test_get_config_holds_every_argument():
    arguments = dict(
        num_keypoints=3,
        block_expansion=4,
        num_blocks=2,
        max_features=24,
        scale_factor=0.5,
        kp_variance=0.02,
        estimate_occlusion=False,
        mask_prior="gaussian",
        motion_consensus=0.05,
    )
    assert sorted(arguments) == sorted(init_arguments(WarpingModule))
    assert_config_complete(WarpingModule, WarpingModule(**arguments), arguments)
    assert_config_complete(WarpingModule, WarpingModule(), {})


def test_paper_configuration():
    module = WarpingModule.paper(num_keypoints=16)
    assert (module.num_keypoints, module.block_expansion, module.num_blocks) == (16, 64, 5)
    assert (module.max_features, module.scale_factor, module.kp_variance) == (1024, 0.25, 0.01)


@pytest.mark.parametrize("estimate_occlusion", [True, False])
def test_save_and_load_give_identical_outputs(tmp_path, estimate_occlusion):
    keras.utils.set_random_seed(7)
    module = WarpingModule(**TINY, kp_variance=0.02, estimate_occlusion=estimate_occlusion)
    inputs = list(_inputs(7))
    module(inputs)
    randomize_batchnorm_statistics(module, 7)
    expected = module(inputs, training=False)
    loaded = assert_save_load_identical(module, inputs, tmp_path)
    assert loaded.get_config() == module.get_config()
    got = loaded(inputs, training=False)
    for key in ("mask", "deformation", "occlusion"):
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(expected[key]), err_msg=key)


# ------------------------------------------------------------------------------------------------
# The "gaussian" mask prior
# ------------------------------------------------------------------------------------------------


def test_untrained_gaussian_prior_moves_each_keypoint_neighbourhood_with_it():
    # two keypoints far apart, each translated differently; an untrained module (mask head at zero)
    # already samples the base at p_base_k around driving keypoint k and leaves far pixels still
    module = WarpingModule(num_keypoints=2, block_expansion=8, num_blocks=3, max_features=32,
                           scale_factor=1.0, kp_variance=0.01, mask_prior="gaussian")
    size = 32
    grid = np.asarray(make_coordinate_grid(size, size))
    kp_driving = np.array([[[-0.5, -0.5], [0.5, 0.5]]], "float32")
    kp_base = kp_driving + np.array([[[0.0625, 0.0], [0.0, -0.125]]], "float32")
    image = np.random.default_rng(0).random((1, size, size, 3)).astype("float32")
    out = module([image, kp_base, kp_driving])
    field = np.asarray(out["deformation"])[0]
    for k in range(2):
        col, row = [int(round((c + 1) * (size - 1) / 2)) for c in kp_driving[0, k]]
        shift = kp_base[0, k] - kp_driving[0, k]
        np.testing.assert_allclose(field[row, col] - grid[row, col], shift, atol=2e-3)
    # the corner opposite both keypoints is background: no motion
    np.testing.assert_allclose(field[0, -1], grid[0, -1], atol=1e-3)
    # the mask there is the background's
    assert float(np.asarray(out["mask"])[0, 0, -1, 0]) > 0.99


def test_prior_gives_the_driving_keypoints_a_gradient_through_the_mask():
    import tensorflow as tf

    module = WarpingModule(**TINY, scale_factor=1.0, mask_prior="gaussian")
    image, kp_base, kp_driving = _inputs(3)
    kp = tf.Variable(kp_driving)
    with tf.GradientTape() as tape:
        mask = module([image, kp_base, kp])["mask"]
        loss = tf.reduce_sum(mask[..., 1:] * tf.random.stateless_uniform(mask.shape[:3] + (K,),
                                                                          (1, 2)))
    grad = tape.gradient(loss, kp)
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0


def test_files_saved_before_the_prior_load_with_fomms_mask():
    config = WarpingModule(**TINY, mask_prior="gaussian").get_config()
    config.pop("mask_prior")
    assert WarpingModule.from_config(config).mask_prior == "none"
    assert WarpingModule.from_config({**config, "mask_prior": "gaussian"}).mask_prior == "gaussian"


# ------------------------------------------------------------------------------------------------
# The "analytic" motion
# ------------------------------------------------------------------------------------------------


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_analytic_motion_is_the_gaussian_softmax_at_full_resolution():
    module = WarpingModule(**TINY, mask_prior="analytic", kp_variance=0.004)
    image, kp_base, kp_driving = _inputs(5)
    out = module([image, kp_base, kp_driving])
    assert tuple(out["mask"].shape) == (2, SIZE, SIZE, K + 1)
    assert tuple(out["deformation"].shape) == (2, SIZE, SIZE, 2)
    assert tuple(out["occlusion"].shape) == (2, SIZE // 4, SIZE // 4, 1)
    grid = np.asarray(make_coordinate_grid(SIZE, SIZE))
    d2 = ((grid[None, :, :, None] - kp_driving[:, None, None]) ** 2).sum(-1)
    logits = np.concatenate([np.full(d2.shape[:3] + (1,), -4.5), -d2 / (2 * 0.004)], -1)
    expected = _softmax(logits)
    np.testing.assert_allclose(np.asarray(out["mask"]), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(out["deformation"]),
                               np.asarray(displacement_field(expected, kp_base, kp_driving)),
                               atol=1e-5)
    # no learned mask; the occlusion starts near one (the warped base image)
    assert module.mask_head is None
    assert float(np.asarray(out["occlusion"]).min()) > 0.9


def test_analytic_keypoints_act_through_the_motion_only():
    import tensorflow as tf

    module = WarpingModule(**TINY, mask_prior="analytic")
    image, kp_base, kp_driving = _inputs(6)
    kb, kd = tf.Variable(kp_base), tf.Variable(kp_driving)
    with tf.GradientTape(persistent=True) as tape:
        out = module([image, kb, kd])
        occlusion = tf.reduce_sum(out["occlusion"])
        motion = tf.reduce_sum(out["deformation"] * tf.random.stateless_uniform(
            out["deformation"].shape, (1, 2)))
    for kp in (kb, kd):
        grad = tape.gradient(occlusion, kp)
        assert grad is None or float(tf.reduce_max(tf.abs(grad))) == 0.0
        assert float(tf.reduce_max(tf.abs(tape.gradient(motion, kp)))) > 0


def test_analytic_module_and_blend_generator_reconstruct_a_translated_image():
    # an untrained analytic W with a blend G already explains a rigid translation of the subject:
    # the reconstruction with the true keypoints is far closer to the driving image than copying
    from synpose_keras.models import Generator

    size = 64
    rng = np.random.default_rng(0)
    base = np.zeros((1, size, size, 3), "float32")
    base[0, 20:36, 16:32] = rng.random((16, 16, 3))  # a textured patch
    driving = np.roll(base, (4, 6), axis=(1, 2))
    px_base = np.array([[[18.0, 22.0], [29.0, 22.0], [18.0, 33.0], [29.0, 33.0], [24.0, 28.0]]],
                       "float32")
    px_driving = px_base + np.array([6.0, 4.0], "float32")
    warp = WarpingModule(**TINY, mask_prior="analytic")
    gen = Generator(block_expansion=8, max_features=32, num_residual_blocks=1)
    kb, kd = (normalize_keypoints(k, (size, size)) for k in (px_base, px_driving))
    motion = warp([base, kb, kd])
    out = np.asarray(gen([base, motion["deformation"], motion["occlusion"]]))
    patch = (slice(None), slice(26, 38), slice(24, 36))
    err = np.abs(out - driving)[patch].mean()
    assert err < 0.3 * np.abs(base - driving)[patch].mean()


def test_bad_generator_mask_prior_or_variance_is_refused_by_the_config():
    from synpose_keras.training.configs import get_preset

    config = get_preset("tiny")
    config.generator.mask_prior = "learned"
    with pytest.raises(ValueError, match="generator.mask_prior"):
        config.validate()
    config = get_preset("tiny")
    config.generator.kp_variance = 0.0
    with pytest.raises(ValueError, match="generator.kp_variance"):
        config.validate()


# ------------------------------------------------------------------------------------------------
# Consensus weighting of the regions (motion_consensus)
# ------------------------------------------------------------------------------------------------


def test_consensus_is_the_analytic_mask_with_each_region_lowered_by_its_motion_deviation():
    sigma = 0.05
    module = WarpingModule(**TINY, mask_prior="analytic", kp_variance=0.004,
                           motion_consensus=sigma)
    image, kp_base, kp_driving = _inputs(7)
    out = module([image, kp_base, kp_driving])
    grid = np.asarray(make_coordinate_grid(SIZE, SIZE))
    d2 = ((grid[None, :, :, None] - kp_driving[:, None, None]) ** 2).sum(-1)
    motion = kp_driving - kp_base
    deviation = ((motion - np.median(motion, axis=1, keepdims=True)) ** 2).sum(-1)  # (B, K)
    logits = np.concatenate([np.full(d2.shape[:3] + (1,), -4.5),
                             -d2 / (2 * 0.004) - deviation[:, None, None, :] / sigma**2], -1)
    np.testing.assert_allclose(np.asarray(out["mask"]), _softmax(logits), atol=1e-5)


def test_consensus_leaves_a_common_motion_alone_and_hands_an_outlier_to_the_background():
    rng = np.random.default_rng(8)
    image = rng.random((1, SIZE, SIZE, 3)).astype("float32")
    kp_base = np.array([[[-0.5, -0.5], [0.5, -0.5], [0.0, 0.0], [-0.5, 0.5], [0.5, 0.5]]],
                       "float32")
    kp_driving = kp_base + np.array([0.05, -0.03], "float32")  # the subject moves as a whole
    plain = WarpingModule(**TINY, mask_prior="analytic")
    weighted = WarpingModule(**TINY, mask_prior="analytic", motion_consensus=0.05)
    np.testing.assert_allclose(np.asarray(plain([image, kp_base, kp_driving])["mask"]),
                               np.asarray(weighted([image, kp_base, kp_driving])["mask"]),
                               atol=1e-6)
    # one keypoint misread on the driving frame: its region shrinks to nothing, the others stay
    outlier = kp_driving.copy()
    outlier[0, 2] += np.array([0.4, 0.3], "float32")
    a = np.asarray(plain([image, kp_base, outlier])["mask"])
    b = np.asarray(weighted([image, kp_base, outlier])["mask"])
    assert a[..., 3].max() > 0.9 and b[..., 3].max() < 1e-3
    np.testing.assert_allclose(b[..., 1:3], a[..., 1:3], atol=1e-3)


def test_consensus_weight_carries_no_gradient_but_the_motion_still_does():
    import tensorflow as tf

    module = WarpingModule(**TINY, mask_prior="analytic", motion_consensus=0.05)
    image, kp_base, kp_driving = _inputs(9)
    kb, kd = tf.Variable(kp_base), tf.Variable(kp_driving)
    with tf.GradientTape() as tape:
        logits = module.consensus_logits(kb, kd)
    assert tape.gradient(logits, [kb, kd]) == [None, None]
    with tf.GradientTape() as tape:
        out = module([image, kb, kd])
        motion = tf.reduce_sum(out["deformation"] * tf.random.stateless_uniform(
            out["deformation"].shape, (3, 4)))
    for grad in tape.gradient(motion, [kb, kd]):
        assert float(tf.reduce_max(tf.abs(grad))) > 0


def test_consensus_round_trips_through_a_saved_file(tmp_path):
    module = WarpingModule(**TINY, mask_prior="analytic", motion_consensus=0.05)
    image, kp_base, kp_driving = _inputs(10)
    expected = np.asarray(module([image, kp_base, kp_driving])["deformation"])
    path = str(tmp_path / "w.keras")
    module.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.motion_consensus == 0.05
    np.testing.assert_allclose(np.asarray(loaded([image, kp_base, kp_driving])["deformation"]),
                               expected, atol=1e-6)


def test_bad_generator_motion_consensus_is_refused_by_the_config():
    from synpose_keras.training.configs import get_preset

    config = get_preset("tiny")
    config.generator.motion_consensus = -1.0
    with pytest.raises(ValueError, match="generator.motion_consensus must be None or a positive"):
        config.validate()
    config = get_preset("tiny")
    config.generator.mask_prior = "none"
    config.generator.motion_consensus = 0.08
    with pytest.raises(ValueError, match="needs generator.mask_prior 'gaussian' or 'analytic'"):
        config.validate()
