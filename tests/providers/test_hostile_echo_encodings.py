"""A server that echoes a credential cut short, split by a newline, as unpadded or offset base64,
or as hex: none of it reaches a human (the project's rule: no form of a secret, and no piece of
8 characters or more of one)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from carbonshift.cli import main
from carbonshift.providers.secrets import Scrubber
from tests.providers.local_server import Answer, serving

EM_TOKEN = "emTokSECRETabcdefghij0123"
WT_USER = "alice"
WT_PASSWORD = "wtPassSECRET9876543210zz"
WT_TOKEN = "wtBearerTOKEN1234567890abcdef"
SECRETS = (EM_TOKEN, WT_PASSWORD, WT_TOKEN)

ENCODINGS: dict[str, Callable[[str], str]] = {
    "first-half": lambda s: s[: len(s) // 2 + 2],
    "second-half": lambda s: s[len(s) // 2 - 2 :],
    "newline-inside": lambda s: s[:5] + "\n" + s[5:],
    "base64-unpadded": lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    "base64-at-offset-1": lambda s: base64.b64encode(b"x" + s.encode()).decode(),
    "base64-at-offset-2": lambda s: base64.b64encode(b"xy" + s.encode()).decode(),
    "base64url": lambda s: base64.urlsafe_b64encode(b"?" + s.encode()).decode(),
    "hex": lambda s: s.encode().hex(),
}


def leaks(text: str) -> list[str]:
    low = text.lower().replace("\\n", "").replace("\n", "")
    found = []
    for secret in SECRETS:
        raw = {secret[i : i + 8].lower() for i in range(len(secret) - 7)}
        b64 = {base64.b64encode(bytes(k) + secret.encode()).decode() for k in range(3)}
        hexed = secret.encode().hex()
        inner = {b[4:-4].lower() for b in b64} | {hexed.lower()}
        encoded = {f[i : i + 8] for f in inner for i in range(len(f) - 7)}
        found += [p for p in raw | encoded if p in low]
    return sorted(found)


def echoing(encoding: str) -> Callable[[BaseHTTPRequestHandler], Answer]:
    def answer(handler: BaseHTTPRequestHandler) -> Answer:
        sent = []
        for name in ("auth-token", "Authorization"):
            value = handler.headers.get(name)
            if value:
                scheme, _, token = value.partition(" ")
                if scheme == "Basic":
                    sent.append(base64.b64decode(token).decode().split(":", 1)[1])
                elif scheme == "Bearer":
                    sent.append(token)
                else:
                    sent.append(value)
        return 400, {"error": "you sent " + " | ".join(ENCODINGS[encoding](s) for s in sent)}

    return answer


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_cut_split_and_encoded_echoes_are_scrubbed(
    encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ELECTRICITYMAPS_API_TOKEN", EM_TOKEN)
    monkeypatch.setenv("WATTTIME_USERNAME", WT_USER)
    monkeypatch.setenv("WATTTIME_PASSWORD", WT_PASSWORD)
    routes = {
        "/login": (200, {"token": WT_TOKEN}),
        "/carbon-intensity/forecast": echoing(encoding),
        "/v3/forecast": echoing(encoding),
    }
    seen = []
    with serving(routes) as url:
        for provider in ("electricitymaps", "watttime"):
            for chain, more in ((f"{provider},static", ["--json"]), (provider, [])):
                code = main(
                    ["forecast", "--provider", chain, "--region", "aws:us-west-1",
                     "--base-url", url, "--retries", "0", "--hours", "2",
                     "--cache-dir", str(tmp_path / "cache"), *more]
                )
                assert code in (0, 2)
                out = capsys.readouterr()
                seen += [out.out, out.err]
    text = "\n".join(seen)
    assert "HTTP 400" in text  # the echo did reach the messages
    assert not leaks(text), encoding


def test_a_short_secret_masks_only_itself() -> None:
    """Pieces are 8 characters: a short secret is masked whole, and text around it is kept."""
    scrubber = Scrubber(["abc"])
    assert scrubber.scrub("xx abc yy") == "xx *** yy"
    scrubber = Scrubber([EM_TOKEN])
    assert scrubber.scrub("nothing secret here at all") == "nothing secret here at all"
    assert scrubber.scrub(f"a {EM_TOKEN[3:14]} b") == "a *** b"
