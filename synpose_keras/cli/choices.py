"""The values the ``synpose`` options accept, as ``typing.Literal`` types: the help lists them as
choices (``--preset <demo|paper|tiny>``) and a wrong value is refused with the list.

They are spelled out here, not imported from the library, so that ``synpose --help`` does not load
TensorFlow; ``tests/cli/test_cli_help.py`` checks that they equal the library's constants.
"""

from __future__ import annotations

from typing import Literal

TASKS = ("hand", "body")
PRESETS = ("demo", "paper", "tiny")
METHODS = ("ours", "source-only", "uniframe", "ccssl", "regda", "oracle")
PSEUDO_MODES = ("integrated", "independent", "union", "2d", "3d", "none")
STRATEGIES = ("default", "mirrored", "multiworker")
DECODINGS = ("argmax", "dark")
EXPORT_FORMATS = ("saved_model", "tflite")
INPUT_DTYPES = ("float32", "uint8")
SKELETONS = ("hand21", "body16")

Task = Literal[TASKS]
Preset = Literal[PRESETS]
Method = Literal[METHODS]
PseudoMode = Literal[PSEUDO_MODES]
Strategy = Literal[STRATEGIES]
Decoding = Literal[DECODINGS]
ExportFormat = Literal[EXPORT_FORMATS]
InputDtype = Literal[INPUT_DTYPES]
SkeletonName = Literal[SKELETONS]
