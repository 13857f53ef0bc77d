"""Overrides given with ``synpose train --resume``: applied from the next step on, or refused.

Policy (docs/reliability.md, "Resuming with --set"):

- A run resumed with ``--resume`` continues its saved ``RUN/config.json``. Options and ``--set``
  overrides given with ``--resume`` are never ignored: each one that changes a value is either
  applied, from the next training step on, and recorded in ``config.json`` under
  ``resume_overrides`` (the old and new values, and where each stage stood), or refused with a
  message before anything is loaded or written.
- Applied: learning rates and their milestones (``<section>.lr``, ``<section>.lr_milestones``,
  ``regda.lr_gamma``/``lr_decay``/``feature_lr_mult``), loss weights (``adapt.lambda_*``),
  ``strategy``, and the epoch counts of the stages with checkpoints (``pretrain.epochs``,
  ``generator.epochs``, ``adapt.epochs``). A larger epoch count extends a finished stage from its
  last checkpoint, as long as no later stage of the run has already used its result.
- Refused: every other field (the model, the data, the seed, the method, batch and image sizes,
  iterations per epoch, ...), since the checkpoints and the position inside the epoch were made
  with the old values; a shorter epoch count than a stage already trained; and an override that
  only concerns stages already completed (it would change nothing).
"""

from __future__ import annotations

import os
import time

from synpose_keras.training.configs import STAGES, TrainConfig, apply_overrides

# config sections -> the run's stages (state.json names) whose training reads them
_SECTION_STAGES = {
    "style": ("style",),
    "pretrain": ("pretrain",),
    "generator": ("generator", "adapt"),
    "adapt": ("adapt", "source-only"),
    "source_only": ("pretrain", "adapt", "source-only"),
    "uniframe": ("adapt",),
    "regda": ("adapt",),
    "ccssl": ("adapt",),
}
_RATE_LEAVES = ("lr", "lr_milestones", "lr_gamma", "lr_decay", "feature_lr_mult")
_EXTENSIBLE = {"pretrain": ("pretrain",), "generator": ("generator",),
               "adapt": ("adapt", "source-only")}
_ORDER = STAGES + ("source-only",)


class ResumeOverrideError(ValueError):
    """An override given with ``--resume`` cannot be applied to the saved run."""


def _flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _same(key: str, old, new) -> bool:
    if key in ("source", "target") and old is not None and new is not None:
        return os.path.abspath(str(old)) == os.path.abspath(str(new))
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return list(old) == list(new)
    return old == new


def config_differences(saved: TrainConfig, given: TrainConfig) -> dict:
    """``{dotted key: given value}`` of the fields where ``given`` differs from ``saved``
    (``stages`` and ``preset`` excluded; a ``source``/``target`` of None means "the saved one")."""
    old, new = _flatten(saved.to_dict()), _flatten(given.to_dict())
    out = {}
    for key, value in new.items():
        if key in ("stages", "preset") or (key in ("source", "target") and value is None):
            continue
        if not _same(key, old.get(key), value):
            out[key] = value
    return out


def _allowed(key: str) -> bool:
    if key == "strategy":
        return True
    section, _, leaf = key.rpartition(".")
    if section not in _SECTION_STAGES:
        return False
    if leaf in _RATE_LEAVES or (section == "adapt" and leaf.startswith("lambda_")):
        return True
    return leaf == "epochs" and section in _EXTENSIBLE


def resolve_resume_overrides(saved: TrainConfig, overrides: dict, completed: list,
                             run_stages: tuple, positions: dict) -> tuple:
    """Applies the overrides given with ``--resume`` to the saved config, or refuses them.

    Args:
        saved: TrainConfig. The run's ``config.json``.
        overrides: dict. Dotted-path overrides given now (``{"adapt.lr": "1e-4"}``).
        completed: list of str. Stages completed (``state.json``).
        run_stages: tuple of str. The stages this run trains (method and ``--stages``), plus
            ``"source-only"`` when it trains the reference.
        positions: dict. ``{stage: (epoch, step)}`` of the stages with a checkpoint.

    Returns:
        tuple ``(config, changes, reopen)``: the config to continue with; ``{key: [old, new]}``
        of the values that changed; the completed stages to extend (removed from
        ``completed`` by the caller).

    Raises:
        ResumeOverrideError: naming the override and why it cannot apply.
    """
    try:
        config = apply_overrides(saved, overrides)
    except ValueError as err:
        raise ResumeOverrideError(str(err)) from err
    old, new = _flatten(saved.to_dict()), _flatten(config.to_dict())
    changes = {key: [old[key], new[key]] for key in sorted(overrides)
               if key in new and not _same(key, old.get(key), new[key])}
    for key in changes:
        if not _allowed(key):
            raise ResumeOverrideError(
                f"--resume cannot change {key} ({changes[key][0]!r} -> {changes[key][1]!r}): "
                "the run's checkpoints and its position inside the epoch were made with the "
                "saved value. With --resume, only learning rates, loss weights (adapt.lambda_*), "
                "strategy and pretrain/generator/adapt.epochs can change; start a new run with "
                "another --out to change it."
            )
    reopen = []
    for key, (before, after) in changes.items():
        section, _, leaf = key.rpartition(".")
        if leaf != "epochs":
            continue
        for stage in _EXTENSIBLE[section]:
            if stage not in run_stages:
                continue
            trained = positions.get(stage, (0, 0))[0]
            if after < before and (stage in completed or trained > after):
                raise ResumeOverrideError(
                    f"--resume cannot shorten {key} from {before} to {after}: stage '{stage}' "
                    f"has already trained {trained} "
                    "epoch(s). Start a new run with another --out."
                )
            if after > before and stage in completed:
                reopen.append(stage)
    if reopen:
        first = min(_ORDER.index(s) for s in reopen)
        later = [s for s in completed if _ORDER.index(s) > first and s not in reopen]
        if later:
            raise ResumeOverrideError(
                f"--resume cannot extend stage '{_ORDER[first]}': the later stage(s) {later} of "
                "this run were trained on its result and would not be retrained. Extend only "
                "the last completed stage, or start a new run with another --out."
            )
    for key in changes:
        section = key.rpartition(".")[0]
        if key == "strategy" or not section:
            continue
        concerned = [s for s in _SECTION_STAGES[section] if s in run_stages]
        if concerned and all(s in completed and s not in reopen for s in concerned):
            raise ResumeOverrideError(
                f"--resume --set {key}={changes[key][1]!r} would change nothing: the stage(s) "
                f"{concerned} that use it are already completed. Extend a stage with --set "
                "<stage>.epochs=N, or start a new run with another --out."
            )
    return config, changes, reopen


def record(raw: dict, changes: dict, positions: dict, reopen: list) -> dict:
    """``raw`` (config.json's content) with this resume's changes appended to
    ``resume_overrides``."""
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "changes": changes,
             "from": {stage: {"epoch": int(e), "step": int(s)}
                      for stage, (e, s) in sorted(positions.items())},
             "extended": list(reopen),
             "applies": "from the next training step of each stage on"}
    out = dict(raw)
    out["resume_overrides"] = list(raw.get("resume_overrides", [])) + [entry]
    return out
