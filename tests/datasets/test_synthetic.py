"""The embedded synthetic benchmark: determinism, label geometry, annotation gap, sequences,
domain shift, proportions and joint limits, the converter contract and the two-dataset writer."""

import json
import os

import numpy as np
import pytest

from synpose_keras.datasets.converters import load_all
from synpose_keras.datasets.converters.synthetic import SyntheticConverter
from synpose_keras.datasets.synthetic import body_model, domains, hand_model
from synpose_keras.datasets.synthetic.body_model import BodyModel
from synpose_keras.datasets.synthetic.hand_model import HandModel
from synpose_keras.datasets.synthetic.scene_generator import SceneGenerator
from synpose_keras.datasets.synthetic.statistics import domain_statistics
from synpose_keras.datasets.writer import validate_record
from synpose_keras.ops.geometry import procrustes, project
from synpose_keras.skeletons import get_skeleton

SIZE = 64
SMALL = dict(image_size=SIZE, source_train=6, source_test=3, target_sequences=2, target_frames=3,
             target_views=2, target_test=5)
HAND_TIPS = (4, 8, 12, 16, 20)


def _records(converter, split):
    return [item.load() for item in converter.items(split)]


@pytest.fixture(scope="module", params=["hand", "body"])
def task(request):
    return request.param


@pytest.fixture(scope="module")
def generator(task):
    return SceneGenerator(task, seed=3, image_size=SIZE, frames=4, views=3)


# ---- converter contract ------------------------------------------------------------------------------


def test_registered_and_skeleton_follows_task():
    assert load_all()["synthetic"] is SyntheticConverter
    assert SyntheticConverter("", task="hand").skeleton == "hand21"
    assert SyntheticConverter("", task="body").skeleton == "body16"
    assert SyntheticConverter.has_3d is True


@pytest.mark.parametrize("options, message", [
    ({"task": "foot"}, "Received: task='foot'"),
    ({"domain": "real"}, "Received: domain='real'"),
    ({"seed": -1}, "Received: seed=-1"),
    ({"image_size": 8}, "Received: image_size=8"),
    ({"target_views": 0}, "Received: target_views=0"),
])
def test_bad_options_raise(options, message):
    with pytest.raises(ValueError, match=message):
        SyntheticConverter("", **options)


def test_item_counts_and_ids():
    src = SyntheticConverter("", domain="source", **SMALL)
    tgt = SyntheticConverter("", domain="target", **SMALL)
    assert len(src.items("train")) == 6
    assert len(src.items("test")) == 3
    assert len(tgt.items("train")) == 2 * 3 * 2
    test_ids = [it.source_id for it in tgt.items("test")]
    assert test_ids == ["target/test/0000/f00/cam0", "target/test/0000/f00/cam1", "target/test/0000/f01/cam0",
                        "target/test/0000/f01/cam1", "target/test/0000/f02/cam0"]
    with pytest.raises(ValueError, match="Received: split='val'"):
        src.items("val")


def test_records_are_valid_and_visibility_is_inside_image(task):
    for domain in ("source", "target"):
        conv = SyntheticConverter("", task=task, domain=domain, **SMALL)
        k = get_skeleton(task).num_keypoints
        for r in _records(conv, "train")[:4]:
            validate_record(r, k, True, "test")
            assert r.image.shape == (SIZE, SIZE, 3) and r.image.dtype == np.uint8
            inside = np.all((r.keypoints >= 0) & (r.keypoints <= SIZE - 1), axis=1)
            np.testing.assert_array_equal(r.visible, inside.astype(np.float32))
            if domain == "source":
                assert (r.sequence, r.frame, r.view) == ("", 0, "")
            else:
                assert r.sequence == "target-train-0000" and r.view in ("cam0", "cam1")


# ---- determinism -------------------------------------------------------------------------------------


def test_same_seed_same_records_any_order_and_other_seed_differs(task):
    for domain in ("source", "target"):
        a = SyntheticConverter("", task=task, domain=domain, seed=5, **SMALL).items("train")
        b = SyntheticConverter("", task=task, domain=domain, seed=5, **SMALL).items("train")
        c = SyntheticConverter("", task=task, domain=domain, seed=6, **SMALL).items("train")
        late = b[-1].load()  # loaded first: nothing depends on the order of loading
        ra = [it.load() for it in a]
        rb = [it.load() for it in b]
        np.testing.assert_array_equal(ra[-1].image, late.image)
        for x, y in zip(ra, rb):
            assert x.image.tobytes() == y.image.tobytes()
            np.testing.assert_array_equal(x.keypoints, y.keypoints)
            np.testing.assert_array_equal(x.keypoints_3d, y.keypoints_3d)
            np.testing.assert_array_equal(x.intrinsics, y.intrinsics)
        rc = c[0].load()
        assert not np.array_equal(ra[0].image, rc.image)
        assert not np.allclose(ra[0].keypoints, rc.keypoints)


def test_records_do_not_depend_on_the_process(tmp_path):
    """Same seed in another interpreter (other hash seed) -> the same images and labels."""
    import subprocess
    import sys

    out = tmp_path / "records.npz"
    code = (
        "import numpy as np\n"
        "from synpose_keras.datasets.converters.synthetic import SyntheticConverter\n"
        "recs = []\n"
        "for task in ('hand', 'body'):\n"
        "    for domain in ('source', 'target'):\n"
        "        c = SyntheticConverter('', task=task, domain=domain, seed=7, image_size=32, source_train=2,\n"
        "                               target_sequences=1, target_frames=2, target_views=1)\n"
        "        recs += [it.load() for it in c.items('train')]\n"
        f"np.savez({str(out)!r}, images=np.stack([r.image for r in recs]),\n"
        "         keypoints=np.concatenate([r.keypoints_3d.ravel() for r in recs]))\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="123")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    recs = []
    for t in ("hand", "body"):
        for domain in ("source", "target"):
            c = SyntheticConverter("", task=t, domain=domain, seed=7, image_size=32, source_train=2,
                                   target_sequences=1, target_frames=2, target_views=1)
            recs += [it.load() for it in c.items("train")]
    theirs = np.load(out)
    np.testing.assert_array_equal(theirs["images"], np.stack([r.image for r in recs]))
    np.testing.assert_array_equal(theirs["keypoints"], np.concatenate([r.keypoints_3d.ravel() for r in recs]))


# ---- label geometry and the annotation gap ---------------------------------------------------------------


def test_keypoints_are_projection_of_keypoints_3d(generator):
    samples = [generator.source_sample("train", i) for i in range(5)]
    samples += [generator.target_sample("train", 0, f, v) for f in range(4) for v in range(3)]
    for s in samples:
        r = s["record"]
        err = np.abs(project(r.keypoints_3d.astype(np.float64), r.intrinsics.astype(np.float64)) - r.keypoints)
        assert err.max() < 0.01
        assert np.all(r.keypoints_3d[:, 2] > 0)


def test_annotation_gap_is_the_documented_offset(task, generator):
    model = generator.model
    gap = hand_model.HAND_GAP if task == "hand" else body_model.BODY_GAP
    assert model.gap == gap
    if task == "hand":
        assert sorted(gap) == [0, *HAND_TIPS]
    else:
        assert sorted(gap) == [9, 12, 13]
    for f in range(4):
        s = generator.target_sample("train", 1, f, 2)
        posed = s["posed"]
        np.testing.assert_allclose(s["record"].keypoints_3d, posed.keypoints_target, atol=1e-6)
        diff = posed.keypoints_target - posed.keypoints_source
        others = [k for k in range(len(diff)) if k not in gap]
        np.testing.assert_allclose(diff[others], 0.0, atol=1e-12)
        for k, offset in gap.items():
            local = posed.frames[k].T @ diff[k]  # the offset in the joint's documented frame
            np.testing.assert_allclose(local, np.asarray(offset) * posed.scale, atol=1e-9)
    # the gap's size, as the card states it (metres at s = 1)
    if task == "hand":
        assert np.linalg.norm(hand_model.WRIST_GAP) == pytest.approx(0.012)
        assert np.linalg.norm(hand_model.TIP_GAP) == pytest.approx(0.0075)
    else:
        assert np.linalg.norm(body_model.SHOULDER_GAP) == pytest.approx(0.1097, abs=1e-4)
        assert np.linalg.norm(body_model.HEAD_GAP) == pytest.approx(0.105)


def test_source_labels_sit_on_the_rendered_subject(task, generator):
    """Every source keypoint inside the image lies on the rendered body (alpha > 0.5)."""
    for i in range(6):
        s = generator.source_sample("test", i)
        r = s["record"]
        xy = np.round(r.keypoints[r.visible > 0]).astype(int)
        assert np.all(s["alpha"][xy[:, 1], xy[:, 0]] > 0.5)


# ---- proportions and joint limits --------------------------------------------------------------------------


def _bone_ranges(task, convention):
    if task == "hand":
        nominal = dict(zip(get_skeleton("hand").bones, hand_model.nominal_bone_lengths()))
        jitter, reference = hand_model.BONE_JITTER, (10, 9)  # middle proximal phalanx
        if convention == "target":  # bones touching the gap joints follow from the gap
            nominal = {b: v for b, v in nominal.items() if not set(b) & {0, *HAND_TIPS}}
    else:
        nominal = body_model.nominal_bone_lengths(convention)
        jitter, reference = body_model.BONE_JITTER, (7, 6)
    lo, hi = (1 - jitter) / (1 + jitter), (1 + jitter) / (1 - jitter)
    return {b: (v / nominal[reference] * lo, v / nominal[reference] * hi) for b, v in nominal.items()}, reference


def test_bone_length_ratios_stay_in_documented_ranges(task, generator):
    for convention in ("source", "target"):
        ranges, reference = _bone_ranges(task, convention)
        if convention == "source":
            poses = [generator.source_sample("train", i)["record"].keypoints_3d for i in range(12)]
        else:
            poses = [generator.target_sample("train", s, f, 0)["record"].keypoints_3d for s in range(2) for f in range(4)]
        for kp in poses:
            kp = kp.astype(np.float64)
            ref = np.linalg.norm(kp[reference[0]] - kp[reference[1]])
            for (c, p), (lo, hi) in ranges.items():
                ratio = np.linalg.norm(kp[c] - kp[p]) / ref
                assert lo - 1e-5 <= ratio <= hi + 1e-5, (convention, (c, p), ratio, lo, hi)
    if task == "body":  # the gap shows in the labels: collar vs shoulder joint
        src, _ = _bone_ranges("body", "source")
        tgt, _ = _bone_ranges("body", "target")
        assert src[(12, 7)][1] < tgt[(12, 7)][0]


def _bend(kp, child, parent, grand):
    u = kp[parent] - kp[grand]
    v = kp[child] - kp[parent]
    return np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))


def test_sampled_poses_respect_joint_limits(task):
    model = HandModel() if task == "hand" else BodyModel()
    rng = np.random.default_rng(0)
    params = np.stack([model.sample_pose(rng) for _ in range(300)])
    assert np.all(params >= model.limits_low) and np.all(params <= model.limits_high)
    # the samples use the ranges (not just a neighbourhood of the rest pose)
    spread = (params.max(0) - params.min(0)) / (model.limits_high - model.limits_low)
    assert np.median(spread) > 0.5


def test_geometry_respects_joint_limits_and_bend_directions(task, generator):
    skeleton = get_skeleton(task)
    parents = skeleton.parents
    for i in range(12):
        posed = generator.source_sample("train", i)["posed"]
        kp, frames = posed.keypoints_source, posed.frames
        for child, limit in skeleton.bend_limits.items():
            parent = parents[child]
            grand = parents[parent]
            assert _bend(kp, child, parent, grand) <= limit + 1e-6
        if task == "hand":
            for f in range(1, 5):  # PIP <= 105 deg, DIP <= 80 deg, both towards the palm
                mcp, pip, dip, tip = 1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f
                for joint, child, limit in ((pip, dip, 105.0), (dip, tip, 80.0)):
                    assert _bend(kp, child, joint, parents[joint]) <= limit + 1e-6
                    u, v = kp[joint] - kp[parents[joint]], kp[child] - kp[joint]
                    assert np.cross(u, v) @ frames[joint][:, 0] >= -1e-12  # flexion, not extension
        else:
            for knee, ankle in ((1, 0), (4, 5)):  # knees bend backwards, at most 140 deg
                assert _bend(kp, ankle, knee, parents[knee]) <= 140.0 + 1e-6
                u, v = kp[knee] - kp[parents[knee]], kp[ankle] - kp[knee]
                assert np.cross(u, v) @ frames[knee][:, 0] >= -1e-12
            for elbow, wrist in ((11, 10), (14, 15)):  # elbows bend forwards, at most 145 deg
                shoulder = posed.keypoints_target[parents[elbow]]  # the joint, not the collar label
                u, v = kp[elbow] - shoulder, kp[wrist] - kp[elbow]
                angle = np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
                assert angle <= 145.0 + 1e-6
                assert np.cross(u, v) @ frames[elbow][:, 0] <= 1e-12


# ---- target sequences -------------------------------------------------------------------------------------


def test_views_of_one_frame_share_the_3d_pose(generator):
    transforms = []
    for f in range(4):
        poses = [generator.target_sample("train", 0, f, v)["record"].keypoints_3d.astype(np.float64)
                 for v in range(3)]
        for v in (1, 2):
            scale, rotation, translation = procrustes(poses[0], poses[v])
            aligned = scale * poses[0] @ rotation.T + translation
            assert scale == pytest.approx(1.0, abs=1e-5)
            assert np.abs(aligned - poses[v]).max() < 1e-5  # metres
            transforms.append((v, rotation, translation))
        # views really differ (not the same camera twice)
        assert np.abs(poses[0] - poses[1]).max() > 0.01
    for v in (1, 2):  # the cameras do not move during the sequence
        rs = [r for w, r, _ in transforms if w == v]
        for r in rs[1:]:
            np.testing.assert_allclose(r, rs[0], atol=1e-5)


def test_sequences_move_smoothly_with_fixed_appearance(generator):
    within_kp, between_kp, within_img, between_img = [], [], [], []
    for s in range(3):
        recs = [generator.target_sample("train", s, f, 0)["record"] for f in range(4)]
        for a, b in zip(recs[:-1], recs[1:]):
            within_kp.append(np.linalg.norm(a.keypoints - b.keypoints, axis=1).mean())
            within_img.append(np.median(np.abs(a.image.astype(float) - b.image.astype(float))))
    for s in range(2):
        a = generator.target_sample("train", s, 1, 0)["record"]
        b = generator.target_sample("train", s + 1, 1, 0)["record"]
        between_kp.append(np.linalg.norm(a.keypoints - b.keypoints, axis=1).mean())
        between_img.append(np.median(np.abs(a.image.astype(float) - b.image.astype(float))))
    assert np.mean(within_kp) < 0.5 * np.mean(between_kp)
    assert np.mean(within_kp) > 0.0  # they do move
    # same camera, same subject and background: consecutive frames differ by noise and motion only
    assert np.mean(within_img) < 0.5 * np.mean(between_img)
    spec = generator.target_sequence("train", 0)
    assert spec["params"].shape[0] == 4
    steps = np.abs(np.diff(spec["params"], axis=0))
    assert steps.max() <= np.abs(spec["params"][-1] - spec["params"][0]).max() * 0.6 + 1e-9


# ---- the two domains differ as documented ------------------------------------------------------------------


def test_domains_differ_in_the_documented_direction(task):
    gen = SceneGenerator(task, seed=0, image_size=SIZE, frames=2, views=2)
    src = [gen.source_sample("train", i)["record"] for i in range(16)]
    tgt = [gen.target_sample("train", s, f, v)["record"] for s in range(4) for f in range(2) for v in range(2)]
    a, b = domain_statistics(src), domain_statistics(tgt)
    # one statistic per kind of shift the card lists (datasets/synthetic.md)
    assert a["noise_sigma"] < 1.0 < 1.5 < b["noise_sigma"]           # sensor noise only in the target
    assert 1.5 * a["background_texture"] < b["background_texture"]    # smooth vs cluttered backgrounds
    assert 4 * a["background_edges"] < b["background_edges"]          # clutter: shapes, distractors
    assert 2 * a["subject_colour_spread"] < b["subject_colour_spread"]  # skin tones: one look vs many
    assert 2 * a["subject_brightness_spread"] < b["subject_brightness_spread"]  # lighting
    # camera blur and occluders are per view / per sequence draws of the target only
    source_look = domains.Appearance.source()
    assert np.all(source_look.blur_sigma == 0) and np.all(source_look.noise_sigma == 0)
    specs = [gen.target_sequence("train", s) for s in range(24)]
    blur = np.concatenate([s["appearance"].blur_sigma for s in specs])
    assert np.all((blur >= domains.BLUR_SIGMA[0]) & (blur <= domains.BLUR_SIGMA[1]))
    # camera colour: per-view white balance and gamma drawn over the card's ranges; none in the source
    assert np.all(source_look.white_balance == 1) and np.all(source_look.gamma == 1)
    balance = np.concatenate([s["appearance"].white_balance for s in specs])
    gamma = np.concatenate([s["appearance"].gamma for s in specs])
    assert np.all((balance >= domains.WHITE_BALANCE[0]) & (balance <= domains.WHITE_BALANCE[1]))
    assert np.all((gamma >= domains.GAMMA[0]) & (gamma <= domains.GAMMA[1]))
    assert np.std(balance) > 0.09 and np.std(np.log(gamma)) > 0.12  # v4: ×0.80–1.20, gamma 0.70–1.40
    occluded = np.mean([s["occluder"] for s in specs])
    assert 0 < occluded < 1  # OCCLUDER_PROBABILITY of the sequences, never a source image


# ---- end to end: both domains through the shared writer ------------------------------------------------------


@pytest.mark.parametrize("bench_task", ["hand", "body"])
def test_generate_benchmark_end_to_end(tmp_path, bench_task):
    from synpose_keras.datasets import load_records, read_meta
    from synpose_keras.datasets.synthetic import generate_benchmark

    sizes = dict(image_size=48, source_train=5, source_test=2, target_sequences=2, target_frames=2,
                 target_views=2, target_test=3)
    out = generate_benchmark(str(tmp_path / "a"), task=bench_task, seed=1, progress=False, **sizes)
    again = generate_benchmark(str(tmp_path / "b"), task=bench_task, seed=1, progress=False, **sizes)
    other = generate_benchmark(str(tmp_path / "c"), task=bench_task, seed=2, progress=False, **sizes)
    expected = {"source": {"train": 5, "test": 2}, "target": {"train": 8, "test": 3}}
    for domain in ("source", "target"):
        meta = read_meta(out[domain])
        assert meta["counts"] == expected[domain]
        assert meta["skeleton"] == get_skeleton(bench_task).name
        assert meta["converter"]["domain"] == domain
        for split, n in expected[domain].items():
            recs = list(load_records(out[domain], split).as_numpy_iterator())
            assert len(recs) == n
            assert recs[0]["image"].shape == (48, 48, 3)
            for shard in meta["shards"][split]:
                with open(os.path.join(out[domain], shard), "rb") as f1, \
                        open(os.path.join(again[domain], shard), "rb") as f2, \
                        open(os.path.join(other[domain], shard), "rb") as f3:
                    data = f1.read()
                    assert data == f2.read()
                    assert data != f3.read()
    assert read_meta(out["target"])["num_sequences"] == {"train": 2, "test": 1}
    recs = list(load_records(out["target"], "train").as_numpy_iterator())
    assert {(r["sequence"].decode(), int(r["frame"]), r["view"].decode()) for r in recs} == {
        (f"target-train-{s:04d}", f, f"cam{v}") for s in range(2) for f in range(2) for v in range(2)}
    with open(tmp_path / "a" / "benchmark.json") as f:
        summary = json.load(f)
    assert summary["task"] == bench_task and summary["sizes"] == sizes


def test_contact_sheet_layout():
    from synpose_keras.datasets.synthetic.figures import contact_sheet

    sheet = contact_sheet("body", seed=0, image_size=32, columns=2, scale=2, frames=(0, 1))
    assert sheet.mode == "P"
    assert sheet.size == (2 * 64, 4 * (64 + 14))
    with pytest.raises(ValueError, match="Received: frames="):
        contact_sheet("hand", image_size=32, columns=3, frames=(0, 1))


def test_handedness_and_body_sides_match_the_skeleton_conventions():
    """Left hands: seen palm-on with the fingers up, the thumb is on the image's left. Bodies: seen
    from the front, the subject's right side is on the image's left (MPII), so a horizontal flip
    maps it onto BODY16.flip_pairs."""
    from synpose_keras.datasets.synthetic.camera import PinholeCamera, intrinsics_matrix
    from synpose_keras.datasets.synthetic.rotations import look_at

    k = intrinsics_matrix(100.0, 63.5, 63.5)
    hand = HandModel()
    subject = {"scale": 1.0, "bone_factors": np.ones(20)}
    rest = np.clip(np.zeros(len(hand.param_names)), hand.limits_low, hand.limits_high)
    kp = hand.pose(subject, rest).keypoints_source  # palm faces +z, fingers +y
    cam = PinholeCamera(k, look_at([0, 0.05, 0.6], [0, 0.05, 0], [0, 1, 0]), np.array([0, 0.05, 0.6]), 128, 128)
    uv = cam.project(kp)
    assert uv[4, 0] < uv[8, 0] < uv[20, 0]  # thumb, index, little tips from left to right
    assert uv[12, 1] < uv[0, 1]  # fingers up
    body = BodyModel()
    kp = body.pose({"scale": 1.0, "bone_factors": np.ones(10)}, np.clip(
        np.zeros(len(body.param_names)), body.limits_low, body.limits_high)).keypoints_source  # faces +z
    cam = PinholeCamera(k, look_at([0, 0, 4.0], [0, 0, 0], [0, 1, 0]), np.array([0, 0, 4.0]), 128, 128)
    uv = cam.project(kp)
    for right, left in get_skeleton("body").flip_pairs:
        assert uv[right, 0] < uv[left, 0]
    assert uv[9, 1] < uv[6, 1] < uv[0, 1]  # head above pelvis above ankle


def test_hands_are_seen_upright_from_the_palm_or_back_side():
    """The viewing regime of datasets/synthetic.md: the hand's distal axis (wrist -> middle MCP
    in the image) points up to within the roll range, in both domains."""
    from synpose_keras.datasets.synthetic.scene_generator import HAND_ROLL_DEG

    gen = SceneGenerator("hand", seed=3, image_size=64, frames=2, views=2)
    records = [gen.source_sample("train", i)["record"] for i in range(40)]
    records += [gen.target_sample("train", s, 0, v)["record"] for s in range(10) for v in range(2)]
    angles = []
    for r in records:
        d = r.keypoints[9] - r.keypoints[0]  # wrist -> middle MCP
        angles.append(np.degrees(np.arctan2(d[0], -d[1])))
    angles = np.abs(angles)
    # the MCP sits a few degrees off the distal axis; the roll is uniform in +-HAND_ROLL_DEG
    assert angles.max() < HAND_ROLL_DEG + 10
    assert np.percentile(angles, 75) > HAND_ROLL_DEG / 3  # rolled, not all upright


def _shift_costs_module():
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "shift_costs.py")
    spec = importlib.util.spec_from_file_location("shift_costs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shift_costs_switches_one_shift_off_and_restores_it():
    """examples/shift_costs.py: each switch gives the source's value, and nothing leaks out."""
    shift_costs = _shift_costs_module()
    before = (domains.NOISE_SIGMA, domains.OCCLUDER_PROBABILITY)

    def target_record(**kwargs):
        return SceneGenerator("hand", seed=0, image_size=64, frames=2, views=2).target_sample(
            "test", 0, 0, 0)

    with shift_costs.switched_off("sensor noise"):
        spec = SceneGenerator("hand", seed=0, image_size=64, frames=2, views=2).target_sequence(
            "test", 0)
        assert np.all(spec["appearance"].noise_sigma == 0)
    with shift_costs.switched_off("annotation gap"):
        same = target_record()
    gapped = target_record()
    source_convention = same["posed"].keypoints("source")
    assert np.allclose(same["record"].keypoints_3d, source_convention, atol=1e-6)
    assert not np.allclose(gapped["record"].keypoints_3d, source_convention, atol=1e-4)
    assert (domains.NOISE_SIGMA, domains.OCCLUDER_PROBABILITY) == before
    with pytest.raises(ValueError, match="shift must be one of"):
        with shift_costs.switched_off("gravity"):
            pass
