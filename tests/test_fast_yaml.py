"""carbonshift.fast_yaml against the reference, `yaml.safe_load`: the same values (types too) on
every document, the same errors, and the fast path really taken on plain job files."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift import fast_yaml

# Plain scalars that YAML 1.1 resolves to something other than a string, or nearly does.
TRICKY = [
    "yes", "No", "on", "OFF", "y", "true", "~", "null", "", "0", "-0", "+1", "0x1F", "0o17", "017",
    "0b101", "1_000", "1:20", "190:20:30", "1e3", "1.5e3", "-.inf", ".NaN", "1.", ".5", "3.14",
    "2023-06-01", "2023-06-01T12:00:00Z", "2023-06-01 12:00:00.5 +02:00", "2023-6-1T1:2:3",
    "<<", "=", "!", "&a", "*a", "- a", "a: b", "#x", "a #b", "'q'", '"q"', "é", "\t", " x ",
    "multi\nline", "4h", "aws:us-east-1", "90min",
]  # fmt: skip


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (True == 1 and 1 == 1.0 are not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(
            same(a[k], b[k]) and same(k, k2) for k, k2 in zip(a, b, strict=True)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)


def outcome(load: Any, text: str) -> tuple[str, Any]:
    try:
        return "value", load(text)
    except Exception as e:  # the reference's error is the expected one
        return type(e).__name__, str(e)


def check(text: str) -> None:
    want = outcome(yaml.safe_load, text)
    got = outcome(fast_yaml.safe_load, text)
    assert got[0] == want[0], text
    if want[0] == "value":
        assert same(got[1], want[1]), text
    elif want[0] != "RecursionError":  # whose message depends on where the stack overflowed
        assert got[1] == want[1], text


def _queue(seed: int, jobs: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = datetime(2023, 6, 1, 12, tzinfo=UTC)
    out: list[dict[str, Any]] = []
    for n in range(jobs):
        job: dict[str, Any] = {
            "name": f"job-{n}",
            "work": rng.choice(
                [
                    {"duration": f"{rng.randint(1, 9)}h", "instance_type": "g5.xlarge"},
                    {"gpu_hours": rng.choice([8, 16.5, 64]), "reference_gpu": "A100"},
                ]
            ),
            "regions": rng.sample(["aws:us-east-1", "aws:eu-west-2", "gcp:us-east4"], 2),
        }
        if rng.random() < 0.5:
            job["within"] = f"{rng.randint(6, 40)}h"
        else:
            job["deadline"] = now + timedelta(hours=rng.randint(6, 40))
        for key, value in [
            ("interruptible", True),
            ("urgent", False),
            ("resume_overhead", "5m"),
            ("carbon_price_usd_per_t", 1e6),
            ("utilisation", 0.7),
            ("earliest_start", "2023-06-01T13:00:00"),
            ("entrypoint", "carbonshift.examples.tiny_train:train"),
            ("cost_cap_usd", None),
            ("note", rng.choice(TRICKY)),
        ]:
            if rng.random() < 0.3:
                job[key] = value
        out.append(job)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_queues_load_as_the_reference_loads_them(seed: int) -> None:
    queue = {"jobs": _queue(seed, 60)}
    check(yaml.safe_dump(queue, sort_keys=False))
    check(yaml.safe_dump(queue, default_flow_style=True, width=60))
    check(yaml.safe_dump(queue["jobs"], default_style='"', allow_unicode=True))


def test_plain_job_files_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    text = yaml.safe_dump({"jobs": _queue(1, 50)}, sort_keys=False)
    want = yaml.safe_load(text)

    def refused(text: str) -> Any:
        raise AssertionError("fell back to yaml.safe_load")

    monkeypatch.setattr(fast_yaml.yaml, "safe_load", refused)
    assert same(fast_yaml.safe_load(text), want)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        "---\n...\n",
        "a: 1\n---\nb: 2\n",  # two documents: the reference refuses
        "base: &b {x: 1}\nother: *b\n",
        "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n",
        "a: !!str 12\nb: !!float 1\nc: !custom x\n",
        "a: 1\na: 2\nb: 3\n",  # a repeated key keeps its place, takes the last value
        "? [a, b]\n: c\n",
        "? {a: 1}\n: c\n",
        "{a: 1}: x\n",
        "=: 1\n",
        "x: =\n",
        "x: !\n",
        "x: <<\n",
        "- &a 1\n- *a\n",
        "jobs: [unclosed\n",
        "a: b: c\n",
        "a:\n\t- b\n",
        "a: 'unterminated\n",
        "- 1\n- {a: [1, {b: [2, 3]}], c: ~}\n- [[], {}]\n",
        "x: " + "[" * 150 + "]" * 150 + "\n",  # deeper than the fast path goes
        "x: " + "[" * 1200 + "]" * 1200 + "\n",  # too deep for the reference too
        "x: 1e400\ny: -1e400\nz: " + "9" * 5000 + "\n",
        "t: 2023-02-30\n",
        "t: 2023-06-01 25:00:00\n",
        "\ufeffa: 1\n",
        "a: \x07\n",
        "a: 1\r\nb: [x,\r\n  y]\r\n",
        "%YAML 1.1\n---\na: yes\n",
        "plain: a\n  continued\nfolded: >\n  x\n  y\nliteral: |\n  x\n   y\n",
    ],
)
def test_hand_written_documents(text: str) -> None:
    check(text)


scalars = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=8),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.datetimes(timezones=st.just(UTC)),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(scalars, inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(documents, st.sampled_from([None, True, False]), st.sampled_from([None, '"', "'"]))
def test_any_dumped_document(value: Any, flow: bool | None, style: str | None) -> None:
    check(yaml.safe_dump(value, default_flow_style=flow, default_style=style))
