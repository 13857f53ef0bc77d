"""Split helpers shared by the converters (the seeded shuffle of the TLlib/UniFrame protocol).

TLlib splits FreiHAND, H3D and SURREAL-like single-folder releases with::

    random.seed(42)
    random.shuffle(samples)
    n_test = min(int(len(samples) * 0.2), 3200)
    test, train = samples[:n_test], samples[n_test:]

:func:`seeded_test_split` reproduces that permutation exactly (``random.shuffle`` only depends on
the list length and the seed, so shuffling ids gives the same permutation as shuffling samples)
without touching Python's global random state. With ``group_by`` it shuffles *groups* instead
(e.g. the four appearance versions of one FreiHAND frame, or the camera views of one H3D capture),
so that no group straddles the two splits.

Public API (kept stable, other converters import it):

- ``num_test_items(num_items, fraction=0.2, max_test=3200) -> int``
- ``seeded_shuffle(ids, seed=42) -> list``
- ``seeded_test_split(ids, seed=42, fraction=0.2, max_test=3200, group_by=None) -> (train, test)``
- ``select_split(ids, split, ...) -> list`` (``split`` is ``"train"`` or ``"test"``)
"""

from __future__ import annotations

import random
from typing import Any, Callable, Hashable, Optional, Sequence, Union

GroupBy = Union[Callable[[Any], Hashable], Sequence[Hashable], None]


def num_test_items(num_items: int, fraction: float = 0.2, max_test: Optional[int] = 3200) -> int:
    """Size of the test split: ``min(int(num_items * fraction), max_test)`` (TLlib's rule).

    Args:
        num_items: int. Number of items before the split.
        fraction: float. Fraction of items in the test split. Defaults to 0.2.
        max_test: int or None. Cap on the test size; None for no cap. Defaults to 3200.
    """
    if num_items < 0:
        raise ValueError(f"num_items must be >= 0. Received: num_items={num_items}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]. Received: fraction={fraction}")
    n = int(num_items * fraction)
    if max_test is not None:
        n = min(n, int(max_test))
    return n


def seeded_shuffle(ids: Sequence[Any], seed: int = 42) -> list:
    """Returns ``ids`` shuffled exactly as ``random.seed(seed); random.shuffle(ids)`` would.

    Uses a private ``random.Random(seed)``, so the global random state is untouched.
    """
    out = list(ids)
    random.Random(seed).shuffle(out)
    return out


def _group_keys(ids: Sequence[Any], group_by: GroupBy) -> list:
    if callable(group_by):
        return [group_by(i) for i in ids]
    keys = list(group_by)
    if len(keys) != len(ids):
        raise ValueError(
            "group_by must be a callable or a sequence as long as ids. "
            f"Received: len(group_by)={len(keys)}, len(ids)={len(ids)}"
        )
    return keys


def seeded_test_split(
    ids: Sequence[Any],
    seed: int = 42,
    fraction: float = 0.2,
    max_test: Optional[int] = 3200,
    group_by: GroupBy = None,
) -> tuple[list, list]:
    """Splits ``ids`` into (train, test) by TLlib's seeded shuffle.

    Without ``group_by``: ``ids`` are shuffled as ``random.seed(seed); random.shuffle(ids)``, the
    first ``num_test_items(len(ids), fraction, max_test)`` form the test split and the rest the
    train split, both in shuffled order. This is TLlib's FreiHAND/H3D split, bit for bit.

    With ``group_by`` (a callable id -> key, or a sequence of keys parallel to ``ids``): the
    distinct keys (in order of first appearance) are shuffled with the same seed, and whole groups
    are moved to the test split in shuffled order until the next group would make the test split
    larger than ``num_test_items(len(ids), ...)`` items. Items keep their original order inside a
    group. No group is split between train and test (no leak of one frame/capture across splits).

    Args:
        ids: sequence. Item ids, in the dataset's canonical order (the order TLlib builds its
            sample list in; the permutation depends on it).
        seed: int. Random seed. Defaults to 42.
        fraction: float. Fraction of items in the test split. Defaults to 0.2.
        max_test: int or None. Cap on the number of test items. Defaults to 3200.
        group_by: callable, sequence or None. Group key of every id. Defaults to None.

    Returns:
        (train, test): two lists of ids.

    Example:

    >>> from synpose_keras.datasets.converters._split import seeded_test_split
    >>> train, test = seeded_test_split(list(range(100)))
    >>> len(train), len(test)
    (80, 20)
    """
    ids = list(ids)
    n_test = num_test_items(len(ids), fraction, max_test)
    if group_by is None:
        shuffled = seeded_shuffle(ids, seed)
        return shuffled[n_test:], shuffled[:n_test]

    keys = _group_keys(ids, group_by)
    groups: dict = {}
    for item, key in zip(ids, keys):
        groups.setdefault(key, []).append(item)
    order = seeded_shuffle(list(groups), seed)
    test: list = []
    split_at = len(order)
    for g, key in enumerate(order):
        if len(test) + len(groups[key]) > n_test:
            split_at = g
            break
        test.extend(groups[key])
    train = [item for key in order[split_at:] for item in groups[key]]
    return train, test


def select_split(
    ids: Sequence[Any],
    split: str,
    seed: int = 42,
    fraction: float = 0.2,
    max_test: Optional[int] = 3200,
    group_by: GroupBy = None,
) -> list:
    """The ``split`` part (``"train"`` or ``"test"``) of :func:`seeded_test_split`."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'. Received: split={split!r}")
    train, test = seeded_test_split(ids, seed, fraction, max_test, group_by)
    return train if split == "train" else test
