"""The plan's forecast as a series, and actual intensity from a provider chain."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from carbonshift.catalog import Catalog
from carbonshift.plan import PlannedSeries
from carbonshift.providers import ProviderChain
from carbonshift.providers.replay import Replay
from carbonshift.run import ChainActuals, planned_series
from carbonshift.series import Signal
from tests.helpers import T0, series_at


def test_planned_series() -> None:
    assert planned_series(None) is None
    s = planned_series(PlannedSeries(start=T0, step_s=900, g_per_kwh=[1.0, 2.5], signal="moer",
                                     source="replay:GB"))
    assert s is not None
    assert (s.start_s, s.step_s, s.signal, s.source) == (T0.timestamp(), 900, Signal.MOER,
                                                         "replay:GB")
    assert np.array_equal(s.g_per_kwh, [1.0, 2.5])


def test_actuals_from_the_chain_or_none(catalog: Catalog) -> None:
    london = catalog.region("aws:eu-west-2")
    chain = ProviderChain([Replay({"GB": series_at([120.0] * 24, zone="GB")})])
    got = ChainActuals(chain, london).actuals(T0.timestamp(), T0.timestamp() + 1800)
    assert got is not None and got.mean_over(T0.timestamp(), T0.timestamp() + 1800) == 120.0
    # A zone the provider has no trace for: missing, not an error (the run carries on).
    elsewhere = ChainActuals(chain, catalog.region("aws:us-east-1"))
    assert elsewhere.actuals(T0.timestamp(), T0.timestamp() + 1800) is None
    later = (T0 + timedelta(days=3)).timestamp()
    assert ChainActuals(chain, london).actuals(later, later + 600) is None


@pytest.mark.parametrize("signal", list(Signal))
def test_every_signal_round_trips(signal: Signal) -> None:
    s = planned_series(PlannedSeries(start=T0, step_s=300, g_per_kwh=[1.0], signal=signal.value,
                                     source="x"))
    assert s is not None and s.signal == signal
