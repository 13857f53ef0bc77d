"""The integration-switch summary of `synpose report` for each kind of adaptation history."""

import json

from synpose_keras.inference import make_report
from synpose_keras.inference.report import integration_switch


def test_switch_found_in_the_adaptation_history_first():
    adapt = [{"epoch": 0, "overlap": 0.5, "combined": 0.0},
             {"epoch": 1, "overlap": 0.85, "combined": 1.0}]
    pseudo = [{"epoch": 0, "overlap": 0.45, "combined": False},
              {"epoch": 1, "overlap": 0.9, "combined": True}]
    assert integration_switch(pseudo, adapt) == {"switched": True, "epoch": 2, "overlap": 0.85}
    assert integration_switch(pseudo, None) == {"switched": True, "epoch": 2, "overlap": 0.9}


def test_no_switch_reports_the_largest_overlap_and_no_history_gives_none():
    adapt = [{"epoch": e, "overlap": o, "combined": 0.0}
             for e, o in enumerate([0.3, 0.62, float("nan"), 0.5])]
    assert integration_switch(None, adapt) == {"switched": False, "epoch": None, "overlap": 0.62}
    assert integration_switch(None, [{"epoch": 0, "loss": 1.0}]) is None
    assert integration_switch([], None) is None


def _run(tmp_path, pseudo_mode, combined):
    run = tmp_path / "run"
    (run / "adapt").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(
        {"task": "body", "adapt": {"pseudo": pseudo_mode, "overlap_threshold": 0.8}}))
    (run / "adapt" / "history.json").write_text(json.dumps(
        [{"epoch": e, "loss": 1.0, "overlap": 0.4 + 0.1 * e, "combined": combined}
         for e in range(2)]))
    return make_report(run, num_overlays=0)


def test_readme_says_when_the_schedule_did_not_switch(tmp_path):
    report = _run(tmp_path, "integrated", 0.0)
    readme = open(report["readme"]).read()
    assert "did not switch to the combined mask: the largest M_2D/M_3D overlap was 0.500 " \
           "(threshold 0.8)" in readme
    assert report["skipped"]["pck"] == "no evaluation.json rows"
    assert "No evaluation in this run" in readme
    assert set(report["figures"]) == {"training"}


def test_readme_names_a_fixed_mask_strategy(tmp_path):
    report = _run(tmp_path, "union", 1.0)
    readme = open(report["readme"]).read()
    assert "Mask strategy `union`: no switch to a combined mask by design." in readme
