"""The object-store port: what the checkpoint manager needs of a store (a folder, S3, GCS)."""

from __future__ import annotations

import builtins
from typing import Protocol, runtime_checkable


class WriterBusy(Exception):
    """Another writer holds the lock: the message says who."""


@runtime_checkable
class WriterLock(Protocol):
    def release(self) -> None: ...

    def held(self) -> bool:
        """False once the lock was lost (a lease another writer took over) or released."""
        ...


@runtime_checkable
class ObjectStore(Protocol):
    """Keys are `/`-separated paths under the store's root."""

    uri: str

    def put(self, key: str, data: bytes) -> None: ...

    def create(self, key: str, data: bytes) -> None:
        """Write only if nothing is at `key` (atomically): FileExistsError otherwise."""
        ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def modified_s(self, key: str) -> float | None:
        """When the object was last written, on the store's clock (seconds since the epoch);
        None when there is none. Ages judged by it do not depend on the writer's clock."""
        ...

    def list(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...

    def lock(self, key: str, owner: str) -> WriterLock:
        """An exclusive lock held until released or until the holder dies; raises WriterBusy
        (naming the holder's `owner` text) while another holds it."""
        ...

    def sweep(self, prefix: str) -> builtins.list[str]:
        """Remove what interrupted writes left under `prefix` (not live writers' writes);
        returns what was removed."""
        ...
