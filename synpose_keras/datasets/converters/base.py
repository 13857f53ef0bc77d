"""The converter contract: what every dataset converter provides to the shared writer.

A converter reads one benchmark in its *official* on-disk layout and yields, per split, an ordered
list of :class:`Item`. Each item knows its ``source_id`` without touching the image, and loads the
final :class:`Record` lazily (so the writer can resume, skip bad samples and stream in constant
memory). Everything the dataset's protocol needs (joint mapping to the canonical skeleton,
handedness flips, split rules, filtering) happens inside the converter; the generic parts (square
crop around the subject, downscaling, sharding, atomic writes, ``meta.json``) happen in
``synpose_keras.datasets.writer.convert``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, ClassVar, Optional, Sequence

import numpy as np


class DatasetLayoutError(FileNotFoundError):
    """The source folder does not have the official layout (names the file that was expected)."""


class ConversionWarning(UserWarning):
    """The source looks inconsistent with what the converter assumes (a joint mapping that swaps
    sides, fingertips nearer the wrist than their MCPs, ...). ``synpose convert`` prints it as a
    ``Warning:`` line; converters keep their warnings in ``describe()`` (``meta.json``)."""


class BadSampleError(ValueError):
    """One sample is corrupt or inconsistent (truncated image, NaN keypoints, ...).

    Raised by ``Item.load``; the writer stops with this message, or records the skip when
    ``skip_bad=True``.
    """


@dataclasses.dataclass
class Record:
    """One converted sample, in the canonical schema.

    Shapes: K keypoints of the dataset's canonical skeleton.

    Args:
        image: np.ndarray uint8 (H, W, 3), RGB.
        keypoints: np.ndarray float32 (K, 2), (x, y) in pixels of ``image``, canonical order.
        visible: np.ndarray float32 (K,), 1 visible / labelled, 0 otherwise.
        sequence: str. Video or capture id; records sharing it can form base/driving pairs.
            Empty string when the dataset has no sequences.
        frame: int. Frame index inside the sequence (time), 0 when not applicable.
        source_id: str. Where the sample comes from in the original release (file name, index).
        view: str. Camera / view id inside a multi-view capture, "" when not applicable.
        keypoints_3d: optional np.ndarray float32 (K, 3), camera coordinates (same camera as the
            image), in the dataset's unit (documented in its card).
        intrinsics: optional np.ndarray float32 (3, 3) for ``image``'s pixel grid.
    """

    image: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    sequence: str = ""
    frame: int = 0
    source_id: str = ""
    view: str = ""
    keypoints_3d: Optional[np.ndarray] = None
    intrinsics: Optional[np.ndarray] = None


@dataclasses.dataclass
class Item:
    """A sample before loading: its id, and a callable that returns the :class:`Record`."""

    source_id: str
    load: Callable[[], Record]


@dataclasses.dataclass(frozen=True)
class Option:
    """A converter-specific option, exposed on the command line as ``--<name with dashes>``.

    ``choices``: the accepted values of a ``str`` option, listed as choices in the help and
    checked by the command line (the converter checks them too, with :meth:`Converter.check_choice`).
    """

    name: str
    type: type
    default: Any
    help: str
    choices: Optional[tuple] = None


class Converter(abc.ABC):
    """Base class of dataset converters.

    Subclasses set the class attributes, validate the layout in ``__init__`` (raising
    :class:`DatasetLayoutError` naming the missing file and what to pass instead) and implement
    :meth:`items`.

    Args:
        src: str. Folder of the official release.
        **options: values for the converter's ``OPTIONS`` (unknown names raise ``ValueError``).
    """

    name: ClassVar[str]
    skeleton: ClassVar[str]  # "hand21" or "body16"
    has_3d: ClassVar[bool] = False
    splits: ClassVar[Sequence[str]] = ("train", "test")
    OPTIONS: ClassVar[Sequence[Option]] = ()
    #: Help of the SRC argument of ``synpose convert <name> SRC``.
    src_help: ClassVar[str] = "Folder of the official release."

    def __init__(self, src: str, **options: Any) -> None:
        self.src = str(src)
        known = {o.name: o for o in self.OPTIONS}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(
                f"Unknown option(s) for converter {self.name!r}: {unknown}. "
                f"Expected some of {sorted(known)}."
            )
        self.options = {n: o.default for n, o in known.items()}
        self.options.update(options)

    def check_choice(self, name: str, choices: Optional[Sequence[str]] = None) -> str:
        """Returns option ``name``; a ValueError says the allowed values if it is not one.
        ``choices`` defaults to the option's own ``Option.choices``."""
        if choices is None:
            choices = next(o.choices for o in self.OPTIONS if o.name == name)
        value = self.options[name]
        if value not in choices:
            allowed = (" or ".join(repr(c) for c in choices) if len(choices) == 2
                       else f"one of {list(choices)}")
            raise ValueError(f"{name} must be {allowed}. Received: {name}={value!r}")
        return value

    def check_at_least(self, name: str, minimum: int) -> int:
        """Returns option ``name`` as an int; a ValueError if it is below ``minimum``."""
        value = int(self.options[name])
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}. Received: {name}={value}")
        return value

    @abc.abstractmethod
    def items(self, split: str) -> list[Item]:
        """Ordered, deterministic list of items of ``split`` (one of ``self.splits``)."""

    def describe(self) -> dict:
        """Protocol facts written into ``meta.json`` (split rule, flips, mappings, options)."""
        return {"options": dict(self.options)}


CONVERTERS: dict[str, type[Converter]] = {}


def register_converter(cls: type[Converter]) -> type[Converter]:
    """Class decorator that makes a converter available to ``synpose convert <name>``."""
    CONVERTERS[cls.name] = cls
    return cls


def check_keypoints(keypoints: np.ndarray, num_keypoints: int, where: str) -> np.ndarray:
    """Validates a (K, 2) keypoint array; raises :class:`BadSampleError` naming ``where``."""
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.shape != (num_keypoints, 2):
        raise BadSampleError(f"{where}: expected keypoints of shape ({num_keypoints}, 2), got {kp.shape}")
    if not np.all(np.isfinite(kp)):
        raise BadSampleError(f"{where}: keypoints contain NaN or inf")
    return kp
