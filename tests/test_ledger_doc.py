"""The ledger's schema page names every field of every model of schema 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from carbonshift.ledger import (
    SCHEMA,
    Counterfactual,
    DeviceEnergy,
    EnergyStep,
    Estimated,
    LedgerRecord,
)

DOC = (Path(__file__).resolve().parents[1] / "docs" / "ledger.md").read_text()


@pytest.mark.parametrize(
    "model", [LedgerRecord, Counterfactual, DeviceEnergy, EnergyStep, Estimated])
def test_every_field_is_documented(model: type[BaseModel]) -> None:
    missing = [f.alias or name for name, f in model.model_fields.items()
               if f"`{f.alias or name}`" not in DOC]
    assert missing == [], f"docs/ledger.md lacks {model.__name__} fields {missing}"


def test_the_page_is_of_this_schema() -> None:
    assert f"# The run ledger, schema {SCHEMA}" in DOC
