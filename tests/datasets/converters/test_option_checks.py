"""Converters refuse bad option values with a message naming the option and what it accepts."""

import pytest

from synpose_keras.datasets.converters.frames import FramesConverter
from synpose_keras.datasets.converters.h36m import H36MConverter
from synpose_keras.datasets.converters.lsp import LSPConverter
from synpose_keras.datasets.converters.surreal import SurrealConverter
from synpose_keras.datasets.converters.synthetic import SyntheticConverter
from synpose_keras.datasets.converters.threedpw import ThreeDPWConverter


@pytest.mark.parametrize("cls, options, message", [
    (H36MConverter, {"every": 0}, "every must be >= 1. Received: every=0"),
    (H36MConverter, {"sample_by": "clip"},
     "sample_by must be 'frame' or 'list'. Received: sample_by='clip'"),
    (H36MConverter, {"test_draws": -1}, "test_draws must be >= 0. Received: test_draws=-1"),
    (ThreeDPWConverter, {"head_top": "guess"},
     "head_top must be 'invisible' or 'estimate'. Received: head_top='guess'"),
    (LSPConverter, {"split_rule": "random"},
     "split_rule must be 'tllib' or 'paper'. Received: split_rule='random'"),
    (SurrealConverter, {"shoulders": "neck"},
     "shoulders must be 'collar' or 'smpl'. Received: shoulders='neck'"),
    (FramesConverter, {"task": "face"}, "task must be 'body' or 'hand'. Received: task='face'"),
    (SyntheticConverter, {"image_size": 8}, "image_size must be >= 16. Received: image_size=8"),
    (SyntheticConverter, {"domain": "real"},
     "domain must be 'source' or 'target'. Received: domain='real'"),
])
def test_bad_option_values_are_refused_before_reading_anything(tmp_path, cls, options, message):
    with pytest.raises(ValueError) as info:
        cls(str(tmp_path / "missing"), **options)
    assert str(info.value) == message
