"""Copies of training state for a checkpoint written in the background (CheckFreq's snapshot).

The training thread copies the state here (tensors into CPU buffers, containers rebuilt, so
that the next optimisation step cannot change what is being written) and a writer thread
serialises the copy. The buffers are kept from one snapshot to the next: a checkpoint then
costs the training thread one memory copy of the state, not an allocation of it (page faults
included). The caller must not take a snapshot while the previous one is still being written.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import torch

_IMMUTABLE = (int, float, complex, bool, str, bytes, type(None), torch.dtype, torch.device)


class StateCopier:
    def __init__(self) -> None:
        self._buffers: dict[tuple[object, ...], torch.Tensor] = {}
        self._used: dict[tuple[object, ...], torch.Tensor] = {}

    def copy(self, states: dict[str, Any]) -> dict[str, Any]:
        """A copy of each named state (a state_dict, nested dicts, lists and tuples of tensors
        and plain values) that shares no memory the training thread writes to."""
        self._used = {}
        try:
            return {name: self._copy(state, (name,)) for name, state in states.items()}
        finally:
            self._buffers = self._used  # buffers of state that went away are let go

    @property
    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for b in self._buffers.values())

    def _copy(self, obj: object, path: tuple[object, ...]) -> Any:
        if isinstance(obj, torch.Tensor):
            return self._tensor(obj, path)
        if isinstance(obj, _IMMUTABLE):
            return obj
        if type(obj) in (dict, OrderedDict):
            assert isinstance(obj, dict)
            out = type(obj)((k, self._copy(v, (*path, k))) for k, v in obj.items())
            metadata = getattr(obj, "_metadata", None)  # a module's state_dict versions
            if metadata is not None:
                out._metadata = copy.deepcopy(metadata)  # type: ignore[attr-defined]
            return out
        if type(obj) is list:
            return [self._copy(v, (*path, i)) for i, v in enumerate(obj)]
        if type(obj) is tuple:
            return tuple(self._copy(v, (*path, i)) for i, v in enumerate(obj))
        return copy.deepcopy(obj)  # anything else (rare in a state_dict): copied the slow way

    def _tensor(self, tensor: torch.Tensor, path: tuple[object, ...]) -> torch.Tensor:
        source = tensor.detach()
        if source.layout != torch.strided or source.is_quantized:
            return source.clone().cpu()
        buffer = self._buffers.get(path)
        if buffer is None or buffer.shape != source.shape or buffer.dtype != source.dtype:
            # Contiguous on the CPU: a GPU's memory is not doubled, and the writer thread
            # serialises plain host memory.
            buffer = torch.empty(source.shape, dtype=source.dtype, pin_memory=source.is_cuda)
        buffer.copy_(source)
        self._used[path] = buffer
        return buffer
