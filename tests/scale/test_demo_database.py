"""`carbonshift demo --database URL`: the demo's server keeps its records in that database
(here a fresh database on the tier's PostgreSQL), read back from PostgreSQL itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flows.local_stack import LocalStack
from tools.pgstack import create_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def deployment_names(db_url: str) -> set[str]:
    import asyncpg  # type: ignore[import-untyped]

    async def read() -> set[str]:
        connection = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return {row["name"] for row in await connection.fetch("SELECT name FROM deployment")}
        finally:
            await connection.close()

    return asyncio.run(read())


def test_demo_stack_keeps_its_records_in_the_given_database(pg_url: str, tmp_path: Path) -> None:
    url = create_database(pg_url, "demo")
    said: list[str] = []
    with LocalStack(REPO, tmp_path / "home", database_url=url, log=said.append) as stack:
        assert stack.deployment("train-model", "default")["name"] == "default"
        assert {"daily", "default"} <= deployment_names(url)
    assert any("postgresql+asyncpg://postgres@127.0.0.1" in line for line in said), said
    assert not (tmp_path / "home" / "prefect.db").exists()  # not on SQLite
