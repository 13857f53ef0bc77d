import json
import math

import pytest
from typer.testing import CliRunner

from synpose_keras.cli.app import app
from synpose_keras.training import ablation

runner = CliRunner()


def _ablate(args):
    return runner.invoke(app, ["ablate", "--preset", "tiny", *args])


@pytest.mark.slow
def test_ablate_end_to_end_then_rerun_is_a_no_op(tiny_domains, tmp_path, monkeypatch):
    out = tmp_path / "abl"
    args = ["--source", str(tiny_domains / "source"), "--target", str(tiny_domains / "target"),
            "--out", str(out), "--seeds", "0", "--variants", "+rec (λ=0)", "--variants", "oracle"]
    result = _ablate(args)
    assert result.exit_code == 0, result.output

    results = json.loads((out / "ablation.json").read_text())
    assert list(results) == ["pretrain", "+rec (λ=0)", "oracle"]
    for row in results.values():
        assert list(row) == ["0"]
        assert list(row["0"]) == ["MCP", "PIP", "DIP", "Fin", "All"]
        assert 0.0 <= row["0"]["All"] <= 100.0
    # the table holds each run's final model, as its own evaluation.json scored it
    lam0 = out / "seed0" / "plus_rec_lambda0"
    evaluation = json.loads((lam0 / "evaluation.json").read_text())
    assert results["+rec (λ=0)"]["0"] == evaluation["rows"]["after adapt"]["table"]
    oracle = json.loads((out / "seed0" / "oracle" / "evaluation.json").read_text())
    assert results["oracle"]["0"] == oracle["rows"]["oracle"]["table"]

    markdown = (out / "ablation.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0][2:] for r in rows[1:]] == list(results)
    assert rows[0] == "| variant | MCP | PIP | DIP | Fin | All | n | All per seed |"
    assert rows[-1].endswith(f"| 1 | 0: {results['oracle']['0']['All']:.1f} |")
    assert "mean ± std over seeds" in markdown

    # the λ=0 variant: +rec's batches, no reconstruction gradient, no source-only reference
    config = json.loads((lam0 / "config.json").read_text())
    assert config["adapt"]["rec"] is True
    assert config["adapt"]["lambda_rec"] == 0.0
    assert config["adapt"]["pseudo"] == "2d"
    assert config["adapt"]["source_only_reference"] is False
    assert json.loads((lam0 / "state.json").read_text())["completed"] == [
        "style", "pretrain", "generator", "adapt"]
    shared = json.loads((out / "seed0" / "shared" / "config.json").read_text())
    assert shared["adapt"]["source_only_reference"] is False
    assert shared["stages"] == ["style", "pretrain", "generator"]
    oracle_config = json.loads((out / "seed0" / "oracle" / "config.json").read_text())
    assert oracle_config["method"] == "oracle"
    assert oracle_config["stages"] == ["pretrain", "adapt"]
    for folder in ("shared", "plus_rec_lambda0", "oracle"):
        assert not (out / "seed0" / folder / "source_only").exists(), folder

    # a second invocation trains and evaluates nothing
    def no_training(*args, **kwargs):
        raise AssertionError("the re-run trained again")

    monkeypatch.setattr(ablation, "train", no_training)
    before = (out / "ablation.json").read_text()
    again = _ablate(args)
    assert again.exit_code == 0, again.output
    assert again.output.count("skipped") == 3
    assert (out / "ablation.json").read_text() == before

    # examples/ablation.py wraps the same function: nothing re-runs, PCK@0.2 is added
    _example([*args[:6], "--preset", "tiny", "--seeds", "0", "--variants", "+rec (λ=0)",
              "oracle"])
    coarse = json.loads((out / "ablation_pck20.json").read_text())
    assert list(coarse) == list(results) and list(coarse["oracle"]) == ["0"]
    assert coarse["oracle"]["0"]["All"] >= results["oracle"]["0"]["All"]
    assert "PCK@0.2 (%), the same models:" in (out / "ablation.md").read_text()
    assert json.loads((out / "ablation.json").read_text()) == json.loads(before)
    (out / "ablation.md").unlink()
    _example(["--out", str(out), "--rewrite"])
    assert "| +rec (λ=0) |" in (out / "ablation.md").read_text()

    # other settings in the same folder are refused
    other = _ablate([*args, "--set", "adapt.lr=1e-2"])
    assert other.exit_code == 2
    assert "other settings (overrides" in other.output


def _example(argv):
    import os
    import runpy
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "ablation.py")
    saved = sys.argv
    sys.argv = [script, *argv]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv = saved


def test_unknown_variant_is_refused_before_training(tiny_domains, tmp_path):
    result = _ablate(["--source", str(tiny_domains / "source"), "--target",
                      str(tiny_domains / "target"), "--out", str(tmp_path / "abl"),
                      "--variants", "baseline,+magic"])
    assert result.exit_code == 2
    assert "Unknown ablation variant '+magic'" in result.output
    assert "'+rec (λ=0)'" in result.output
    assert not (tmp_path / "abl").exists()


def test_reserved_and_bad_overrides_are_refused(tmp_path):
    result = _ablate(["--out", str(tmp_path / "abl"), "--set", "method=regda"])
    assert result.exit_code == 2
    assert "sets ['method'] itself" in result.output
    result = _ablate(["--out", str(tmp_path / "abl"), "--set", "adapt.nope=1"])
    assert result.exit_code == 2
    assert "adapt.nope" in result.output
    assert not (tmp_path / "abl").exists()


def test_bad_seeds_are_refused(tmp_path):
    result = _ablate(["--out", str(tmp_path / "abl"), "--seeds", "0,x"])
    assert result.exit_code == 2
    assert "--seeds expects integers" in result.output


def test_seed_lists_and_variant_aliases():
    from synpose_keras.cli.ablate import _split_seeds, _split_variants

    assert _split_seeds(["0 1 2"]) == [0, 1, 2]
    assert _split_seeds(["0,1", "2"]) == [0, 1, 2]
    names = _split_variants(["+rec (λ=0), plus_pseudoplus_rec", "oracle-labels"])
    assert [v.name for v in ablation.resolve_variants(names)] == [
        "+rec (λ=0)", "+pseudo+rec", "oracle-labels"]
    assert [v.name for v in ablation.resolve_variants(None)] == [
        "source-only", "baseline", "+pseudo", "+rec", "+rec (λ=0)", "+pseudo+rec", "oracle"]
    folders = [v.folder for v in ablation.resolve_variants(
        list(ablation.VARIANTS) + list(ablation.ANALYSIS_VARIANTS))]
    assert all(f.replace("_", "").replace("-", "").isalnum() for f in folders)
    assert len(set(folders)) == len(folders)


def test_summarise_and_markdown():
    results = {"pretrain": {"0": {"MCP": 10.0, "PIP": 0.0, "DIP": 0.0, "Fin": 0.0, "All": 8.0},
                            "1": {"MCP": 20.0, "PIP": 0.0, "DIP": 0.0, "Fin": 0.0, "All": 12.0}},
               "+rec": {"0": {"MCP": 5.0, "PIP": 1.0, "DIP": 1.0, "Fin": 1.0, "All": 3.0}}}
    summary = ablation.summarise(results)
    assert summary["pretrain"]["All"] == {"mean": 10.0, "std": 2.0, "n": 2}
    assert summary["pretrain"]["MCP"]["mean"] == 15.0
    assert math.isnan(summary["+rec"]["All"]["std"]) and summary["+rec"]["All"]["n"] == 1
    lines = ablation.markdown_table(results, "hand")
    assert lines[2] == ("| pretrain | 15.0 ± 5.0 | 0.0 ± 0.0 | 0.0 ± 0.0 | 0.0 ± 0.0 | "
                        "10.0 ± 2.0 | 2 | 0: 8.0, 1: 12.0 |")
    assert lines[3] == "| +rec | 5.0 | 1.0 | 1.0 | 1.0 | 3.0 | 1 | 0: 3.0 |"


def test_rewrite_tables(tmp_path):
    results = {"pretrain": {"0": {"MCP": 1.0, "PIP": 2.0, "DIP": 3.0, "Fin": 4.0, "All": 5.0}}}
    settings = {"task": "hand", "preset": "tiny", "overrides": {"adapt.lr": "1e-3"},
                "source": None, "target": None, "coarse_threshold": None}
    ablation.write_tables(str(tmp_path), results, settings)
    (tmp_path / "ablation.md").unlink()
    ablation.rewrite_tables(str(tmp_path))
    markdown = (tmp_path / "ablation.md").read_text()
    assert "| pretrain | 1.0 | 2.0 | 3.0 | 4.0 | 5.0 | 1 | 0: 5.0 |" in markdown
    assert "`adapt.lr=1e-3`" in markdown
    with pytest.raises(FileNotFoundError, match="no ablation.json"):
        ablation.rewrite_tables(str(tmp_path / "none"))


def test_unlabelled_target_is_refused_before_training(tiny_domains, tmp_path):
    from tests.training.tiny_data import write_tiny

    write_tiny(tmp_path / "footage", n=2)
    meta_path = tmp_path / "footage" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["labels"] = "none (unlabelled footage)"
    meta_path.write_text(json.dumps(meta))
    result = _ablate(["--source", str(tiny_domains / "source"), "--target",
                      str(tmp_path / "footage"), "--out", str(tmp_path / "abl")])
    assert result.exit_code == 2
    assert "labelled test split" in result.output
    assert not (tmp_path / "abl").exists()
