"""Shared split helper: TLlib's seed-42 shuffle, reproduced exactly, and the grouped variant."""

import random

import pytest

from synpose_keras.datasets.converters._split import (
    num_test_items,
    seeded_shuffle,
    seeded_test_split,
    select_split,
)


def _tllib(samples, seed=42):
    """What TLlib does in FreiHand / Hand3DStudio.__init__ (global random state)."""
    samples = list(samples)
    random.seed(seed)
    random.shuffle(samples)
    n_test = min(int(len(samples) * 0.2), 3200)
    return samples[n_test:], samples[:n_test]


@pytest.mark.parametrize("n", [0, 1, 4, 5, 37, 1000, 16001, 20000])
def test_reproduces_tllib(n):
    ids = [f"img{i:06d}" for i in range(n)]
    state = random.getstate()
    train, test = seeded_test_split(ids)
    assert random.getstate() == state  # the global random state is untouched
    assert (train, test) == _tllib(ids)
    assert len(test) == min(int(n * 0.2), 3200)


def test_cap_and_sizes():
    assert num_test_items(130240) == 3200  # FreiHAND x4 versions
    assert num_test_items(15999) == 3199
    assert num_test_items(16000) == 3200
    assert num_test_items(9) == 1
    assert num_test_items(100, fraction=0.5, max_test=None) == 50
    with pytest.raises(ValueError, match="fraction=1.5"):
        num_test_items(10, fraction=1.5)


def test_permutation_depends_only_on_length_and_seed():
    a = seeded_shuffle(list(range(50)))
    b = seeded_shuffle([f"x{i}" for i in range(50)])
    assert [f"x{i}" for i in a] == b
    assert seeded_shuffle(list(range(50)), seed=1) != a


def test_grouped_split_keeps_groups_whole():
    ids = [(v, f) for v in ("gs", "auto", "sample", "hom") for f in range(25)]  # 100 items
    train, test = seeded_test_split(ids, group_by=lambda i: i[1])
    assert len(test) == 20 and len(train) == 80
    assert {f for _, f in train}.isdisjoint({f for _, f in test})
    frames = list(range(25))
    random.Random(42).shuffle(frames)
    assert [f for _, f in test] == [f for f in frames[:5] for _ in range(4)]
    # sequence of keys instead of a callable
    assert seeded_test_split(ids, group_by=[i[1] for i in ids]) == (train, test)


def test_grouped_split_never_exceeds_the_bound():
    ids = list(range(23))
    groups = [i // 5 for i in ids]  # sizes 5, 5, 5, 5, 3; bound int(23 * 0.2) = 4
    train, test = seeded_test_split(ids, group_by=groups)
    assert len(test) <= 4
    assert sorted(train + test) == ids


def test_select_split():
    ids = list(range(30))
    assert select_split(ids, "test") == seeded_test_split(ids)[1]
    assert select_split(ids, "train") == seeded_test_split(ids)[0]
    with pytest.raises(ValueError, match="split='val'"):
        select_split(ids, "val")
    with pytest.raises(ValueError, match="len"):
        seeded_test_split(ids, group_by=[0, 1])
