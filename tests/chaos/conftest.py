# train-model/default on the test server (no worker): a re-plan's rest is scheduled there.
from tests.flows.conftest import deployment  # noqa: F401
