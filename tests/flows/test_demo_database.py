"""`carbonshift demo --database`: the URL reaches the demo's stack; a bad one, or one given
while PREFECT_API_URL names a server, is a one-line error naming the option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import flows.demo
from carbonshift.cli import main
from flows.local_stack import redact_url

URL = "postgresql+asyncpg://carbon:s3cret@db.example:5432/prefect"


class Given(Exception):
    pass


def test_the_url_reaches_the_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def stack(project: Path, home: Path, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise Given

    monkeypatch.setattr(flows.demo, "LocalStack", stack)
    monkeypatch.setenv("CARBONSHIFT_DEMO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(Given):
        flows.demo._main(["--database", URL, "--exit"])
    assert seen["database_url"] == URL
    with pytest.raises(Given):
        flows.demo._main(["--exit"])
    assert seen["database_url"] is None  # Prefect's own setting, else SQLite


def test_a_bad_url_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--database", "mysql://x/y"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--database" in err and "postgresql+asyncpg://" in err, err


def test_database_with_a_running_server_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    with pytest.raises(SystemExit) as exit_:
        flows.demo._main(["--database", URL])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--database" in err and "unset PREFECT_API_URL" in err, err


def test_printed_urls_hide_the_password() -> None:
    assert redact_url(URL) == "postgresql+asyncpg://carbon:***@db.example:5432/prefect"
    assert redact_url("postgresql+asyncpg://postgres@127.0.0.1:5/p") == (
        "postgresql+asyncpg://postgres@127.0.0.1:5/p")
