"""Shared helpers of the reliability tests (issue 18): folder hashes and the CLI runner."""

import hashlib
import os

from typer.testing import CliRunner

from synpose_keras.cli.app import app

cli = CliRunner()


def tree_hashes(root, ignore=()) -> dict:
    """``{relative path: sha256}`` of every file under ``root`` (names in ``ignore`` skipped)."""
    out = {}
    root = os.fspath(root)
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if any(part in ignore for part in rel.split(os.sep)):
                continue
            with open(path, "rb") as f:
                out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def invoke(*args):
    """``synpose ARGS`` in-process; returns the click Result (exit_code, output)."""
    return cli.invoke(app, [str(a) for a in args])
