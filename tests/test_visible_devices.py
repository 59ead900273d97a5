"""CUDA_VISIBLE_DEVICES read as CUDA reads it: indices, UUID prefixes, MIG, empty, invalid."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbonshift.meters.visible import Gpu, names_mig, select

GPUS = [
    Gpu(0, "GPU-aaaa1111-0000-0000-0000-000000000000"),
    Gpu(1, "GPU-aaaa2222-0000-0000-0000-000000000000",
        ("MIG-11111111-0000-0000-0000-000000000000", "MIG-22222222-0000-0000-0000-000000000000")),
    Gpu(2, "GPU-bbbb3333-0000-0000-0000-000000000000"),
]


@pytest.mark.parametrize(("visible", "indices", "stopped_at"), [
    (None, [0, 1, 2], None),  # unset: every GPU
    ("", [], None),  # empty: none, and nothing refused
    ("   ", [], None),
    ("0,2", [0, 2], None),
    ("2,0", [2, 0], None),  # the order given is the order kept
    (" 1 , 0 ", [1, 0], None),
    ("0,2,-1,1", [0, 2], "-1"),  # CUDA's own example: the list stops at the invalid entry
    ("0,7,1", [0], "7"),  # out of range
    ("-1", [], "-1"),
    ("0,,1", [0], ""),
    ("0,nvidia0", [0], "nvidia0"),
    ("GPU-bbbb3333-0000-0000-0000-000000000000", [2], None),  # a full UUID
    ("GPU-bbbb", [2], None),  # a unique prefix
    ("gpu-BBBB", [2], None),  # hex is hex, in either case
    ("GPU-aaaa,2", [], "GPU-aaaa"),  # ambiguous: two GPUs start so
    ("GPU-", [], "GPU-"),
    ("GPU-cccc", [], "GPU-cccc"),
    ("MIG-22222222", [1], None),  # a MIG device: its parent board
    ("MIG-11111111,MIG-22222222,0", [1, 0], None),  # two slices of one board: counted once
    ("MIG-GPU-aaaa2222-0000-0000-0000-000000000000/1/0", [1], None),  # the older form
    ("MIG-33333333", [], "MIG-33333333"),
    ("0,0,2", [0, 2], None),  # a board named twice is metered once
])
def test_select(visible: str | None, indices: list[int], stopped_at: str | None) -> None:
    chosen = select(visible, GPUS)
    assert [g.index for g in chosen.gpus] == indices
    assert chosen.stopped_at == stopped_at


def test_mig_entries_are_marked() -> None:
    chosen = select("0,MIG-1111", GPUS)
    assert chosen.via_mig == {1} and [g.index for g in chosen.gpus] == [0, 1]
    assert names_mig("0,MIG-1111") and names_mig("mig-1111") and not names_mig("0,1")
    assert not names_mig(None)


@given(st.lists(st.integers(min_value=-2, max_value=4), max_size=6))
def test_indices_stop_at_the_first_invalid_one(entries: list[int]) -> None:
    chosen = select(",".join(map(str, entries)), GPUS)
    prefix: list[int] = []
    for e in entries:
        if not 0 <= e < len(GPUS):
            assert chosen.stopped_at == str(e)
            break
        if e not in prefix:
            prefix.append(e)
    else:
        assert chosen.stopped_at is None
    assert [g.index for g in chosen.gpus] == prefix
