"""Spot and preemption notices from fake metadata services on 127.0.0.1."""

from __future__ import annotations

import logging
import socket

import pytest

from carbonshift.remote.notice import Ec2Notice, GceNotice, NoNotice, notice_source
from tests.remote.fakes import fake_metadata


def test_ec2_no_notice_until_the_instance_action_appears() -> None:
    with fake_metadata() as imds:
        source = Ec2Notice(imds.url)
        assert source.notice() is None  # 404: nothing planned
        imds.action = {"action": "terminate", "time": "2026-01-01T00:02:00Z"}
        assert source.notice() == "EC2 spot terminate at 2026-01-01T00:02:00Z"
    assert ("PUT", "/latest/api/token") in imds.requests
    assert imds.token_serial == 1  # the token is kept between probes


def test_ec2_takes_a_fresh_token_when_the_old_one_is_refused() -> None:
    with fake_metadata() as imds:
        source = Ec2Notice(imds.url)
        assert source.notice() is None
        imds.token_serial += 1  # the service forgot the token (expired)
        imds.action = {"action": "stop", "time": "soon"}
        assert source.notice() == "EC2 spot stop at soon"


def test_ec2_endpoint_comes_from_botocores_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_metadata() as imds:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url + "/")
        imds.action = {"action": "hibernate", "time": "t"}
        assert notice_source("aws").notice() == "EC2 spot hibernate at t"
    monkeypatch.delenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
    assert Ec2Notice().base == "http://169.254.169.254"


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_unreachable_metadata_is_no_notice_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "carbonshift.remote")
    for source in (Ec2Notice(f"http://{_closed_port()}"), GceNotice(_closed_port())):
        assert [source.notice() for _ in range(3)] == [None, None, None]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all("unreachable" in w for w in warnings)


def test_gce_preemption_needs_the_metadata_flavor_header(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_metadata() as imds:
        monkeypatch.setenv("GCE_METADATA_HOST", imds.url.removeprefix("http://"))
        source = notice_source("gcp")
        assert source.notice() is None
        imds.preempted = True
        assert source.notice() == "GCE preemption notice"
    assert ("GET", "/computeMetadata/v1/instance/preempted") in imds.requests
    assert not any(path.startswith("/latest") for _, path in imds.requests)


def test_a_local_run_asks_no_metadata_service() -> None:
    assert isinstance(notice_source("local"), NoNotice)
    assert NoNotice().notice() is None
