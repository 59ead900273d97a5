"""Hostile and unlucky input: every bad value gets one line naming the field and the fix.

Durations, instants, job files, the `plan` and `backtest` command lines and trace files, fed
what a careless or malicious user would write: NaN, infinities, negatives, huge numbers, naive
times, empty and malformed files.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.cli import main
from carbonshift.job import DURATION_SCHEMA, JobSpec, load_jobs, parse_jobs
from carbonshift.traces import bundled_traces_dir
from carbonshift.units import (
    DURATION_EXAMPLES,
    DURATION_PATTERN,
    MAX_DURATION_S,
    DurationError,
    InstantError,
    parse_duration_s,
    parse_utc_instant,
)

TRACES = bundled_traces_dir()
DE = str(TRACES / "DE-LU_2023_hourly.csv")
NOW = "2023-06-01T00:00Z"
GOOD_JOB = (
    "  - name: good\n"
    "    work: {duration: 4h, instance_type: p4d.24xlarge}\n"
    "    within: 24h\n"
    "    regions: [aws:us-east-1, aws:eu-central-1]\n"
)

# -- one duration grammar ----------------------------------------------------------------------

GOOD_DURATIONS = {
    "4h": 14400.0,
    "90min": 5400.0,
    "90m": 5400.0,
    "90MIN": 5400.0,
    "1h30m": 5400.0,
    "1h 30m": 5400.0,
    " 2d ": 172800.0,
    "45s": 45.0,
    "3600": 3600.0,
    "3600s": 3600.0,
    "1.5h": 5400.0,
    "0": 0.0,
    "0s": 0.0,
    "1min30s": 90.0,
    "3650d": float(MAX_DURATION_S),
}
BAD_DURATIONS = [
    "",
    " ",
    "h",
    "four hours",
    "1h1",
    "-1h",
    "-5",
    "nan",
    "inf",
    "-inf",
    "1e300",
    ".5h",
    "1.h",
    "1h-30m",
    "1y",
    "1 0h",
    "1mon",
    "٣h",  # a non-ASCII digit: Python's \d takes it, ECMA's does not; both must refuse
    "4h\n",
    "4h\x1c",  # Python's \s takes the file separator, ECMA's does not
]


def _schema_string_pattern() -> str:
    (string,) = [s for s in DURATION_SCHEMA["anyOf"] if s["type"] == "string"]
    pattern: str = string["pattern"]
    return pattern


@pytest.mark.parametrize(("text", "seconds"), GOOD_DURATIONS.items())
def test_good_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", BAD_DURATIONS)
def test_bad_durations_raise_our_error(text: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration_s(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, -1.0, -1, 10**400, 1e300, True, None, [1], timedelta(days=-1)],
)
def test_non_text_durations(value: object) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration_s(value)
    assert len(str(info.value)) < 200


def test_schema_advertises_exactly_what_the_parser_reads() -> None:
    """The Prefect schema's examples parse, and its pattern agrees with the parser on a table."""
    assert _schema_string_pattern() == DURATION_PATTERN
    validator = jsonschema.Draft202012Validator(DURATION_SCHEMA)
    for example in DURATION_SCHEMA["examples"]:
        assert example in DURATION_EXAMPLES
        parse_duration_s(example)
        assert validator.is_valid(example), example
    for text in GOOD_DURATIONS:
        assert validator.is_valid(text), text
    for text in BAD_DURATIONS:
        assert not validator.is_valid(text), text
    for number in (0, 3600, 1.5, MAX_DURATION_S):
        assert validator.is_valid(number) and parse_duration_s(number) == number
    for number in (-1, MAX_DURATION_S + 1):
        assert not validator.is_valid(number)
        with pytest.raises(DurationError):
            parse_duration_s(number)
    # The description names the units the parser reads.
    assert "min" in DURATION_SCHEMA["description"] and "3600" in DURATION_SCHEMA["description"]


def test_the_job_schema_uses_the_shared_duration_schema() -> None:
    schema = json.dumps(JobSpec.model_json_schema(by_alias=True))
    assert json.dumps(DURATION_PATTERN)[1:-1] in schema
    assert schema.count(json.dumps(DURATION_PATTERN)) == 3  # duration, within, resume_overhead


_GRAMMAR_ALPHABET = st.sampled_from(list("0123456789.dhmsinDHMSIN \t-+eE") + ["٣", "\n", "\x1c"])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(_GRAMMAR_ALPHABET, max_size=12)))
def test_duration_parser_never_crashes_and_agrees_with_the_schema(text: str) -> None:
    """Any text: a finite number in [0, MAX] or DurationError; the schema pattern says which."""
    matches = re.search(DURATION_PATTERN, text) is not None
    try:
        seconds = parse_duration_s(text)
    except DurationError as e:
        assert "\n" not in str(e)
        assert not matches or "longer than" in str(e)
        return
    assert math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION_S
    assert matches


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_numeric_durations_are_finite_and_bounded(value: float) -> None:
    try:
        seconds = parse_duration_s(value)
    except DurationError:
        assert not (0 <= value <= MAX_DURATION_S)
        return
    assert seconds == value


# -- instants: naive means UTC everywhere ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2023-06-01T00:00",
        "2023-06-01T00:00Z",
        "2023-06-01T00:00:00+00:00",
        "2023-06-01 00:00",
        "2023-06-01T02:00+02:00",
        datetime(2023, 6, 1),
        datetime(2023, 6, 1, tzinfo=UTC),
    ],
)
def test_instants_without_offset_are_utc(text: str | datetime) -> None:
    assert parse_utc_instant(text) == datetime(2023, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("garbage", "cannot read time 'garbage'"),
        ("2023-06-01", "no time of day"),
        (date(2023, 6, 1), "no time of day"),
        ("0001-01-01T00:00+01:00", "between 1970 and 8999"),
        ("9999-12-31T23:59-05:00", "between 1970 and 8999"),
        (12, "expected a time"),
        ("x" * 500, "cannot read time"),
    ],
)
def test_bad_instants(value: object, message: str) -> None:
    with pytest.raises(InstantError, match=message) as info:
        parse_utc_instant(value)
    assert len(str(info.value)) < 200


# -- job files: one bad job never stops the others ---------------------------------------------


def _queue_with_bad(tmp_path: Path, bad_fields: str) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "jobs:\n" + GOOD_JOB + "  - name: bad\n    regions: [aws:us-east-1]\n" + bad_fields
    )
    return path


_WORK = "    work: {duration: 4h, instance_type: p4d.24xlarge}\n"
_WITHIN = "    within: 24h\n"


@pytest.mark.parametrize(
    ("bad_fields", "field", "message"),
    [
        (
            "    work: {duration: .inf, instance_type: p4d.24xlarge}\n" + _WITHIN,
            "work.duration",
            "not a finite duration",
        ),
        (
            "    work: {duration: .nan, instance_type: p4d.24xlarge}\n" + _WITHIN,
            "work.duration",
            "not a finite duration",
        ),
        (
            "    work: {duration: -5, instance_type: p4d.24xlarge}\n" + _WITHIN,
            "work.duration",
            "negative",
        ),
        (
            "    work: {duration: 0, instance_type: p4d.24xlarge}\n" + _WITHIN,
            "work.duration",
            "greater than 0",
        ),
        (
            "    work: {duration: 1.0e+300, instance_type: p4d.24xlarge}\n" + _WITHIN,
            "work.duration",
            "longer than 3650d",
        ),
        ("    work: {gpu_hours: .inf}\n" + _WITHIN, "work.gpu_hours", "finite"),
        ("    work: {gpu_hours: .nan}\n" + _WITHIN, "work.gpu_hours", "finite"),
        ("    work: {gpu_hours: -1}\n" + _WITHIN, "work.gpu_hours", "greater than 0"),
        ("    work: 4h\n" + _WITHIN, "work", "give {duration: 4h"),
        (_WORK + "    within: .inf\n", "within", "not a finite duration"),
        (_WORK + "    within: .nan\n", "within", "not a finite duration"),
        (_WORK + "    within: -1h\n", "within", "negative"),
        (_WORK + "    within: 0\n", "within", "greater than 0"),
        (_WORK + "    within: 1.0e+300\n", "within", "longer than 3650d"),
        (_WORK + "    deadline: 2023-06-02\n", "deadline", "no time of day"),
        (_WORK + "    deadline: 99999-01-01T00:00Z\n", "deadline", "cannot read time"),
        (_WORK + _WITHIN + "    resume_overhead: .inf\n", "resume_overhead", "finite"),
        (_WORK + _WITHIN + "    resume_overhead: -1m\n", "resume_overhead", "negative"),
        (_WORK + _WITHIN + "    utilisation: .nan\n", "utilisation", "finite"),
        (_WORK + _WITHIN + "    utilisation: .inf\n", "utilisation", "finite"),
        (_WORK + _WITHIN + "    utilisation: -0.5\n", "utilisation", "greater than 0"),
        (_WORK + _WITHIN + "    placement: spread\n    replicas: .inf\n", "replicas", "finite"),
        (_WORK + _WITHIN + "    placement: spread\n    replicas: -2\n", "replicas", "greater"),
        (
            _WORK + _WITHIN + "    carbon_price_usd_per_t: .inf\n",
            "carbon_price_usd_per_t",
            "finite",
        ),
        (
            _WORK + _WITHIN + "    carbon_price_usd_per_t: .nan\n",
            "carbon_price_usd_per_t",
            "finite",
        ),
        (
            _WORK + _WITHIN + "    carbon_price_usd_per_t: -1\n",
            "carbon_price_usd_per_t",
            "greater than or equal to 0",
        ),
        (_WORK + _WITHIN + "    carbon_budget_kg: .inf\n", "carbon_budget_kg", "finite"),
        (_WORK + _WITHIN + "    carbon_budget_kg: .nan\n", "carbon_budget_kg", "finite"),
        (_WORK + _WITHIN + "    cost_cap_usd: .inf\n", "cost_cap_usd", "finite"),
        (_WORK + _WITHIN + "    cost_cap_usd: -.inf\n", "cost_cap_usd", "finite"),
    ],
)
def test_a_hostile_job_is_refused_and_the_rest_planned(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    bad_fields: str,
    field: str,
    message: str,
) -> None:
    path = _queue_with_bad(tmp_path, bad_fields)
    queue = load_jobs(path)
    assert [j.name for j in queue.jobs] == ["good"]
    (error,) = queue.errors
    assert (error.job, error.field) == ("bad", field), error
    assert message in str(error)
    code = main(["plan", "--jobs", str(path), "--now", NOW])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines()[2].startswith("good ")
    assert err == f"carbonshift: {error}\n"


@pytest.mark.parametrize("key", ["deadline", "earliest_start"])
def test_job_times_without_offset_are_utc(key: str) -> None:
    item: dict[str, Any] = {"name": "j", "work": {"gpu_hours": 1}, "within": "4h"}
    if key == "deadline":
        item = {**item, "within": None, "deadline": "2023-06-02T06:00"}
        item.pop("within")
    else:
        item[key] = "2023-06-01T02:00"
    (spec,) = parse_jobs([item]).jobs
    assert getattr(spec, key).tzinfo is not None
    assert getattr(spec, key).hour in (2, 6)
    # A YAML timestamp without an offset arrives as a naive datetime: also UTC.
    (spec,) = parse_jobs([{**item, key: datetime(2023, 6, 1, 2)}]).jobs
    assert getattr(spec, key) == datetime(2023, 6, 1, 2, tzinfo=UTC)


def test_huge_gpu_hours_get_a_readable_answer(tmp_path: Path) -> None:
    path = _queue_with_bad(tmp_path, "    work: {gpu_hours: 1.0e+300}\n" + _WITHIN)
    code = main(["plan", "--jobs", str(path), "--now", NOW])
    assert code == 1


# -- the command line --------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse: usage + one error line, exit 2
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _backtest(*extra: str) -> list[str]:
    return ["backtest", DE, "--duration", "4h", "--slack", "24h", "--json", *extra]


@pytest.mark.parametrize(
    ("argv", "option", "message"),
    [
        (_backtest("--forecast-error", "nan"), "--forecast-error", "from 0 to 10"),
        (_backtest("--forecast-error", "inf"), "--forecast-error", "from 0 to 10"),
        (_backtest("--forecast-error", "-0.5"), "--forecast-error", "from 0 to 10"),
        (_backtest("--forecast-error", "1e308"), "--forecast-error", "from 0 to 10"),
        (_backtest("--forecast-error", "abc"), "--forecast-error", "from 0 to 10"),
        (_backtest("--forecast-error", "0.1", "--seed", "-1"), "--seed", "integer from 0"),
        (_backtest("--seed", "9" * 30), "--seed", "integer from 0"),
        (_backtest("--resume-overhead", "nan"), "--resume-overhead", "not a finite duration"),
        (_backtest("--resume-overhead", "1000000000h"), "--resume-overhead", "longer than"),
        (
            ["backtest", DE, "--duration", "1000000000h", "--slack", "1h"],
            "--duration",
            "longer than 3650d",
        ),
        (["backtest", DE, "--duration", "9" * 400 + "h", "--slack", "1h"], "--duration", "longer"),
        (["backtest", DE, "--duration", "0", "--slack", "1h"], "--duration", "more than 0"),
        (["backtest", DE, "--duration", "inf", "--slack", "1h"], "--duration", "finite"),
        (["backtest", DE, "--duration", "4h", "--slack=-1h"], "--slack", "negative"),
        (["plan", "--jobs", "x.yaml", "--now", "2023-06-01"], "--now", "no time of day"),
        (["plan", "--jobs", "x.yaml", "--now", "soon"], "--now", "cannot read time 'soon'"),
        (
            ["plan", "--jobs", "x.yaml", "--now", NOW, "--throughput", "H100=nan"],
            "--throughput",
            "more than 0",
        ),
        (
            ["plan", "--jobs", "x.yaml", "--now", NOW, "--throughput", "H100=inf"],
            "--throughput",
            "at most 1000",
        ),
        (
            ["plan", "--jobs", "x.yaml", "--now", NOW, "--throughput", "H100=0"],
            "--throughput",
            "more than 0",
        ),
        (
            ["plan", "--jobs", "x.yaml", "--now", NOW, "--throughput", "H100=-2"],
            "--throughput",
            "more than 0",
        ),
        (
            ["plan", "--jobs", "x.yaml", "--now", NOW, "--throughput", "H100"],
            "--throughput",
            "write GPU=FACTOR",
        ),
        (
            ["plan", "--jobs", "x.yaml", "--now", NOW, "--throughput", "=2"],
            "--throughput",
            "write GPU=FACTOR",
        ),
    ],
)
def test_bad_options_get_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], option: str, message: str
) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    line = _error_line(err)
    assert f"argument {option}: " in line and message in line, line


@pytest.mark.parametrize(
    ("duration", "slack"),
    [("90min", "24h"), ("1h30m", "30m"), ("4h", "0"), ("4h", "3600"), ("14400", "3600s")],
)
def test_backtest_reads_every_duration_form(
    capsys: pytest.CaptureFixture[str], duration: str, slack: str
) -> None:
    code, out, err = _run(
        capsys, "backtest", DE, "--duration", duration, "--slack", slack, "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["duration_s"] == parse_duration_s(duration)
    assert result["slack_s"] == parse_duration_s(slack)


def _strict_loads(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("error", ["0", "0.3", "10"])
def test_backtest_json_is_strict_json(capsys: pytest.CaptureFixture[str], error: str) -> None:
    code, out, err = _run(
        capsys,
        "backtest",
        DE,
        "--duration",
        "4h",
        "--slack",
        "24h",
        "--forecast-error",
        error,
        "--json",
    )
    assert code == 0, err
    _strict_loads(out)


def test_plan_now_without_offset_is_utc(capsys: pytest.CaptureFixture[str]) -> None:
    jobs = str(Path(__file__).resolve().parents[1] / "deployments" / "jobs.yaml")
    code_naive, naive, _ = _run(
        capsys, "plan", "--jobs", jobs, "--now", "2023-06-01T00:00", "--json"
    )
    code_utc, utc, _ = _run(capsys, "plan", "--jobs", jobs, "--now", "2023-06-01T00:00Z", "--json")
    assert code_naive == code_utc == 0
    assert _strict_loads(naive) == _strict_loads(utc)
    assert _strict_loads(naive)["now"] == "2023-06-01T00:00:00+00:00"


def test_plan_warns_about_a_trace_of_no_catalog_zone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A generic CSV named so its zone is unknown: never planned silently on the static default."""
    folder = tmp_path / "traces"
    folder.mkdir()
    rows = "".join(f"2023-06-{d:02d}T{h:02d}:00Z,{100 + h}\n" for d in (1, 2, 3) for h in range(24))
    (folder / "mytrace.csv").write_text("timestamp,g_per_kwh\n" + rows)
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("jobs:\n" + GOOD_JOB)
    code, out, err = _run(
        capsys, "plan", "--traces", str(folder), "--jobs", str(jobs), "--now", NOW
    )
    assert code == 2 and out == ""
    warning, error = err.splitlines()
    assert warning.startswith(f"carbonshift: warning: {folder / 'mytrace.csv'}: zone 'mytrace'")
    assert "name the file <ZONE>_<anything>.csv" in warning and "US-MIDA-PJM" in warning
    assert error.startswith("carbonshift: error: ") and "no trace of a catalog zone" in error
    # Named by zone, the same data is used, and a second unknown file is still named.
    (folder / "US-MIDA-PJM_2023.csv").write_text("timestamp,g_per_kwh\n" + rows)
    code, out, err = _run(
        capsys, "plan", "--traces", str(folder), "--jobs", str(jobs), "--now", NOW
    )
    assert code == 0
    assert "replay:csv:US-MIDA-PJM_2023.csv" in out
    assert err.count("warning:") == 1 and "mytrace.csv" in err


def test_plan_refuses_a_now_no_trace_covers(capsys: pytest.CaptureFixture[str]) -> None:
    jobs = str(Path(__file__).resolve().parents[1] / "deployments" / "jobs.yaml")
    code, out, err = _run(capsys, "plan", "--jobs", jobs, "--now", "2030-01-01T00:00Z")
    assert code == 2 and out == ""
    line = _error_line(err)
    assert "no trace of a catalog zone covers --now 2030-01-01" in line
    assert "DE 2023-01-01 to 2024-01-01" in line


def test_backtest_slack_under_a_step_is_refused_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """1h30m with no slack on an hourly trace was an IndexError out of the interruptible policy."""
    code, out, err = _run(capsys, "backtest", DE, "--duration", "1h30m", "--slack", "0")
    assert code == 2 and out == ""
    assert _error_line(err) == (
        "carbonshift: error: slack + duration must span the job's whole 60-min steps: use a "
        "slack of at least 30 min, or a duration in whole steps"
    )


# -- trace files: the error names the file and the fix, never an option the CLI lacks ---------

_H = "timestamp,g_per_kwh\n"
_TWO = "2023-06-01T00:00Z,100\n2023-06-01T01:00Z,200\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty: a trace has a header"),
        (b"\n\n", "the file is empty"),
        (_H.encode(), "no data rows under the header"),
        (b"a,b\n1,2\n", "unknown trace format (columns ['a', 'b'])"),
        (b"timestamp,g,h\n2023-06-01T00:00Z,1,2\n", "one g/kWh column, found ['g', 'h']"),
        ((_H + "yesterday,100\nlater,200\n").encode(), "line 2: timestamp 'yesterday' is not"),
        ((_H + "2023-06-01T00:00Z,100\n,200\n").encode(), "line 3: timestamp empty is not"),
        ((_H + "99999-06-01T00:00Z,1\n").encode(), "line 2: timestamp '99999-06-01T00:00Z'"),
        ((_H + "2023-06-01T00:00Z,abc\n2023-06-01T01:00Z,1\n").encode(), "value 'abc' is not"),
        ((_H + "2023-06-01T00:00Z,\n2023-06-01T01:00Z,1\n").encode(), "is missing: give"),
        ((_H + "2023-06-01T00:00Z,inf\n2023-06-01T01:00Z,1\n").encode(), "not a finite number"),
        ((_H + "2023-06-01T00:00Z,-1\n2023-06-01T01:00Z,1\n").encode(), "negative"),
        ((_H + "2023-06-01T00:00Z,1\n2023-06-01T03:00Z,1\n").encode(), "resample the data"),
        ((_H + "2023-06-01T00:00Z,1\n2023-06-01T00:07Z,1\n").encode(), "mostly 420s apart"),
        ((_H + "2023-06-01T00:00Z,1\n").encode(), "give at least two points"),
        (
            (_H + "2023-06-01T00:00Z,1\n2023-06-01T01:00Z,1\n2023-06-01T03:00Z,1\n").encode(),
            "add the missing data",
        ),
        ((_H + _TWO + "2023-06-01T02:00Z,1,7\n").encode(), "not a well-formed CSV"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b"Datetime (UTC),Zone Id\n2023-06-01T00:00Z,DE\n", "no column 'Carbon Intensity"),
    ],
)
def test_malformed_traces_name_the_file_and_the_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "DE_bad.csv"
    path.write_bytes(content)
    code, out, err = _run(capsys, "backtest", str(path), "--duration", "1h", "--slack", "1h")
    assert code == 2 and out == ""
    line = _error_line(err)
    assert line.startswith(f"carbonshift: error: {path}: "), line
    assert message in line, line
    for missing_option in ("fill_gaps_up_to", "step_s", "format="):
        assert missing_option not in line


def test_a_trace_that_cannot_be_opened(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "backtest", str(tmp_path), "--duration", "1h", "--slack", "1h")
    assert code == 2
    assert _error_line(err).startswith(f"carbonshift: error: {tmp_path}: cannot read it")


def test_an_export_with_an_empty_zone_id_is_named_from_its_file(tmp_path: Path) -> None:
    from carbonshift.traces import read_trace

    path = tmp_path / "GB_2023.csv"
    path.write_text(
        "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (LCA)\n"
        "2023-06-01 00:00:00,,100\n2023-06-01 01:00:00,,120\n"
    )
    assert read_trace(path).zone == "GB"  # was 'nan'


def test_prefect_parameter_checks_accept_what_the_parser_reads() -> None:
    """The flows' parameter schema (enforce_parameter_schema) takes every advertised form."""
    callables = pytest.importorskip("prefect.utilities.callables")
    validation = pytest.importorskip("prefect.utilities.schema_tools.validation")
    from flows.plan import plan_training

    schema = callables.parameter_schema(plan_training.fn).model_dump_for_openapi()

    # The jobs list also takes any object, so that the flow refuses a bad job by name and plans
    # the rest; a job's own schema (the UI's form) is JobSpec's.
    job_schema = {"$ref": "#/definitions/JobSpec", "definitions": schema["definitions"]}

    def errors(within: object) -> list[str]:
        job = {"name": "a", "work": {"gpu_hours": 5}, "within": within}
        assert [e.message for e in validation.validate({"jobs": [job]}, schema, False)] == []
        return [e.message for e in validation.validate(job, job_schema, False)]

    for text in [*DURATION_EXAMPLES, *GOOD_DURATIONS]:
        assert errors(text) == [], text
    for text in BAD_DURATIONS:
        assert errors(text) != [], text
