import pytest

from carbonshift.checkpoint.lease import LEASE_ENV

# train-model/default on the test server (no worker): a re-plan's rest is scheduled there.
from tests.flows.conftest import deployment  # noqa: F401

# The writer lease of every process a chaos test starts (the flow, the stand-in VMs, the CLI):
# a resumed run waits out a killed writer's lease, the same code at 15 s as at the default 60.
CHAOS_LEASE_S = "15"


@pytest.fixture(autouse=True)
def short_writer_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEASE_ENV, CHAOS_LEASE_S)
