"""Which physical GPUs a process may use, read from `CUDA_VISIBLE_DEVICES` as CUDA reads it.

Entries are comma-separated: an index (`0,2`), a GPU UUID or a unique prefix of one
(`GPU-8932f937`), or a MIG device (`MIG-<uuid>`, or the older `MIG-GPU-<uuid>/<gi>/<ci>`).
Unset means every GPU; an empty value means none; the first entry that names no device (`-1`, an
index out of range, an unknown or ambiguous UUID) ends the list, and the entries before it stay
visible, as CUDA does. Energy is a property of the physical board, so a MIG entry selects its
parent GPU, and a board named twice is counted once.

Indices are NVML's (PCI bus order). CUDA's default order is fastest first, which agrees on
machines with identical GPUs; elsewhere set `CUDA_DEVICE_ORDER=PCI_BUS_ID` or give UUIDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gpu:
    """A physical GPU as NVML lists it: its index, UUID and the UUIDs of its MIG devices."""

    index: int
    uuid: str
    mig_uuids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Selection:
    """The GPUs an environment makes visible, in the order it names them."""

    gpus: tuple[Gpu, ...]
    via_mig: frozenset[int] = field(default_factory=frozenset)
    stopped_at: str | None = None  # the entry that ended the list, if one did


def names_mig(visible: str | None) -> bool:
    """Whether resolving `visible` needs the MIG devices' UUIDs (costly to list)."""
    return visible is not None and "MIG-" in visible.upper()


def select(visible: str | None, gpus: Sequence[Gpu]) -> Selection:
    """The physical GPUs `CUDA_VISIBLE_DEVICES=visible` makes visible (None: the variable is
    unset)."""
    if visible is None:
        return Selection(tuple(gpus))
    chosen: list[Gpu] = []
    via_mig: set[int] = set()
    for raw in visible.split(","):
        entry = raw.strip()
        gpu, is_mig = _resolve(entry, gpus)
        if gpu is None:
            if not entry and not chosen and visible.strip() == "":
                break  # an empty variable: no GPU, and nothing was refused
            return Selection(tuple(chosen), frozenset(via_mig), stopped_at=entry)
        if is_mig:
            via_mig.add(gpu.index)
        if gpu not in chosen:
            chosen.append(gpu)
    return Selection(tuple(chosen), frozenset(via_mig))


def _resolve(entry: str, gpus: Sequence[Gpu]) -> tuple[Gpu | None, bool]:
    if entry.isdigit():
        found = [g for g in gpus if g.index == int(entry)]
        return (found[0] if found else None), False
    upper = entry.upper()
    if upper.startswith("MIG-GPU-"):  # MIG-GPU-<uuid>/<gi>/<ci>: the parent is named
        return _unique(entry[4:].split("/")[0], [(g.uuid, g) for g in gpus]), True
    if upper.startswith("MIG-"):
        return _unique(entry, [(m, g) for g in gpus for m in g.mig_uuids]), True
    if upper.startswith("GPU-"):
        return _unique(entry, [(g.uuid, g) for g in gpus]), False
    return None, False


def _unique(prefix: str, named: Sequence[tuple[str, Gpu]]) -> Gpu | None:
    """The one GPU whose UUID starts with `prefix`; None when none or several do."""
    if len(prefix) <= 4:  # "GPU-" or "MIG-" alone names nothing
        return None
    found = {g for uuid, g in named if uuid.upper().startswith(prefix.upper())}
    return found.pop() if len(found) == 1 else None
