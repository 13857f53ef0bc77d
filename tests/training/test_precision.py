"""mixed_precision = true / false / "auto": the CPU-feature check, the config and a run."""

import json

import keras
import pytest
from typer.testing import CliRunner

from synpose_keras.training.configs import apply_overrides, get_preset
from synpose_keras.training.precision import cpu_bf16_flags, resolve_mixed_precision

_CPUINFO = """processor\t: {i}
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse2 avx2 {extra}
bogomips\t: 4000.00

"""


def _cpuinfo(tmp_path, extra, cores=2):
    path = tmp_path / "cpuinfo"
    path.write_text("".join(_CPUINFO.format(i=i, extra=extra) for i in range(cores)))
    return str(path)


@pytest.mark.parametrize("extra, flags", [
    ("avx512f avx512_bf16", ("avx512_bf16",)),
    ("amx_tile amx_bf16 amx_int8", ("amx_bf16",)),
    ("avx512f avx512_bf16 amx_bf16", ("avx512_bf16", "amx_bf16")),
    ("avx512f avx512_vnni", ()),
])
def test_auto_follows_the_cpu_flags(tmp_path, extra, flags):
    path = _cpuinfo(tmp_path, extra)
    assert cpu_bf16_flags(path) == flags
    use, reason = resolve_mixed_precision("auto", cpuinfo=path, gpus=0)
    assert use is bool(flags)
    assert reason.startswith("on (auto: this CPU has" if flags else "off (auto: this CPU has "
                             "neither AVX-512 BF16 nor AMX")
    for flag in flags:
        assert flag in reason


def test_auto_is_off_with_a_gpu_or_unreadable_flags(tmp_path):
    path = _cpuinfo(tmp_path, "avx512_bf16")
    use, reason = resolve_mixed_precision("auto", cpuinfo=path, gpus=1)
    assert not use and "1 GPU(s) visible" in reason
    missing = str(tmp_path / "no-such-file")
    assert cpu_bf16_flags(missing) is None
    use, reason = resolve_mixed_precision("auto", cpuinfo=missing, gpus=0)
    assert not use and missing in reason


def test_explicit_settings_are_kept_and_others_refused(tmp_path):
    path = _cpuinfo(tmp_path, "")  # no bfloat16 on this CPU: an explicit true still wins
    assert resolve_mixed_precision(True, cpuinfo=path, gpus=0)[0] is True
    assert resolve_mixed_precision(False, cpuinfo=str(tmp_path / "avx"), gpus=0)[0] is False
    with pytest.raises(ValueError, match="Received: mixed_precision='maybe'"):
        resolve_mixed_precision("maybe")


def test_config_parses_and_validates_the_three_settings():
    config = get_preset("tiny")
    assert config.mixed_precision is False
    for text, value in (("auto", "auto"), ("true", True), ("off", False)):
        parsed = apply_overrides(get_preset("tiny"), {"mixed_precision": text})
        assert parsed.mixed_precision == value and type(parsed.mixed_precision) is type(value)
    for bad in ("maybe", 1):
        config = get_preset("tiny")
        config.mixed_precision = bad
        with pytest.raises(ValueError, match="mixed_precision must be true, false or 'auto'"):
            config.validate()


def test_a_bfloat16_run_says_so_records_it_and_restores_the_policy(tiny_domains, tmp_path):
    from synpose_keras.cli.app import app

    before = keras.mixed_precision.global_policy().name
    result = CliRunner().invoke(app, [
        "train", "--preset", "tiny", "--stages", "pretrain", "--method", "source-only",
        "--source", str(tiny_domains / "source"), "--target", str(tiny_domains / "target"),
        "--out", str(tmp_path / "run"), "--set", "mixed_precision=true"])
    assert result.exit_code == 0, result.output
    assert "[train] mixed bfloat16: on (mixed_precision=true)" in result.output
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert evaluation["mixed_bfloat16"] is True
    assert keras.mixed_precision.global_policy().name == before
    model = keras.models.load_model(str(tmp_path / "run" / "pose_predictor.keras"))
    assert model.compute_dtype == "bfloat16"
