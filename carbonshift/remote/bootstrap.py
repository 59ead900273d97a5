"""The user data (EC2) / startup script (GCE) of a remote run: a bash script that creates a
virtualenv, installs carbonshift (and the job's code), then execs the agent on the run's spec.

It holds no credential: the instance reads and writes the store as its own role (EC2 instance
profile, GCE service account). Every value is shell-quoted; values that could still do harm (a
pip option where a requirement belongs, a password in a URL, a signed URL) are refused.

Emulation (CARBONSHIFT_EMULATE_INSTANCES=1, see carbonshift.remote.emulate): the stand-in process
runs this same script with CARBONSHIFT_EMULATED=1 and CARBONSHIFT_PYTHON set; then nothing is
installed and the agent runs on that interpreter, with the environment it was given.
"""

from __future__ import annotations

import re
import shlex
from importlib import metadata
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from carbonshift.remote.protocol import no_userinfo

USER_DATA_LIMIT_BYTES = 16384  # EC2's limit (GCE allows 256 KB)
_SIGNED = re.compile(r"(signature|sig|token|credential|security-token)=", re.I)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_USERINFO = re.compile(r"://[^/\s@]*@")


def _version() -> str:
    try:
        return metadata.version("carbonshift")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "0.1.0"


def _safe(field: str, value: str) -> str:
    if not value.strip():
        raise ValueError(f"{field}: empty")
    if _CONTROL.search(value):
        raise ValueError(f"{field}: {value!r} holds a control character (a newline?)")
    if value.startswith("-"):
        raise ValueError(f"{field}: {value!r} is a pip option, not a requirement or URI")
    if _SIGNED.search(urlsplit(value).query):
        raise ValueError(
            f"{field}: a signed URL carries a credential into the user data; give the store "
            "URI and let the instance's role read it"
        )
    if _USERINFO.search(value):  # also inside a PEP 508 direct reference: `name @ https://...`
        raise ValueError(
            f"{field}: a URL in it carries a user or password; the instance reads through its "
            "own role (instance profile / service account): leave them out"
        )
    return no_userinfo(field, value)


class BootstrapConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    install: list[str] = Field(
        default_factory=lambda: [f"carbonshift=={_version()}"],
        min_length=1,
        description="pip requirements (or wheel/sdist URLs) that bring carbonshift",
    )
    code_requirement: str | None = Field(default=None, description="the job's code, for pip")
    code_archive: str | None = Field(
        default=None,
        description="or: a .tar.gz/.tgz/.zip (store or https URI) put on PYTHONPATH",
    )
    power_off: bool = Field(
        default=True,
        description="power the instance off when the agent ends or the script fails: EC2 then "
        "terminates it (InstanceInitiatedShutdownBehavior); GCE stops it (the reaper deletes it)",
    )
    python: str = "python3"
    workdir: str = "/var/lib/carbonshift"
    spec_wait_s: float = Field(default=900.0, gt=0)

    @field_validator("install")
    @classmethod
    def _check_install(cls, values: list[str]) -> list[str]:
        return [_safe(f"install[{i}]", v) for i, v in enumerate(values)]

    @field_validator("code_requirement", "code_archive", "python", "workdir")
    @classmethod
    def _check(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _safe(str(info.field_name), value)


def render_bootstrap(config: BootstrapConfig, spec_uri: str, job: str, run_id: str) -> str:
    """The script, as user data or a startup script. ValueError when a value is unsafe or the
    script is over EC2's user-data limit."""
    q = shlex.quote
    spec_uri = _safe("spec URI", spec_uri)
    job_line = _CONTROL.sub("?", job)  # for the log line only; quoted like everything else
    lines = [
        "#!/bin/bash",
        "# carbonshift remote run, rendered by carbonshift.remote.bootstrap. No credential in",
        "# here: the instance reads the store as its own role.",
        "set -euo pipefail",
    ]
    if config.power_off:
        # Whatever ends this script (the agent, a failed install) ends the instance, so that
        # nothing idles on the bill when nobody is left to release it. Never on an emulated one.
        lines.append(
            'trap \'if [ "${CARBONSHIFT_EMULATED:-0}" != 1 ]; then '
            "shutdown -h now || poweroff; fi' EXIT"
        )
    lines += [
        f"JOB={q(job_line)}",
        f"RUN_ID={q(_CONTROL.sub('?', run_id))}",
        f"SPEC_URI={q(spec_uri)}",
        f"WORKDIR={q(config.workdir)}",
        'WORKDIR="${CARBONSHIFT_REMOTE_DIR:-$WORKDIR}"  # an emulated instance works elsewhere',
        'mkdir -p "$WORKDIR"',
        'exec >>"$WORKDIR/bootstrap.log" 2>&1',
        'echo "$(date -u +%FT%TZ) carbonshift bootstrap: job $JOB, run $RUN_ID"',
        'if [ "${CARBONSHIFT_EMULATED:-0}" = 1 ]; then',
        "  # An emulated instance: the project as installed where the emulator runs.",
        '  PY="${CARBONSHIFT_PYTHON:?CARBONSHIFT_PYTHON: set by the emulator}"',
        '  echo "emulated instance: nothing installed, running on $PY"',
        "else",
        f'  {q(config.python)} -m venv "$WORKDIR/venv"',
        '  PY="$WORKDIR/venv/bin/python"',
        '  "$PY" -m pip install --quiet --upgrade pip',
        '  "$PY" -m pip install --quiet ' + " ".join(q(r) for r in config.install),
    ]
    if config.code_requirement is not None:
        lines.append(f'  "$PY" -m pip install --quiet {q(config.code_requirement)}')
    lines.append("fi")
    if config.code_requirement is not None:
        lines += [
            'if [ "${CARBONSHIFT_EMULATED:-0}" = 1 ]; then',
            f"  echo {q('emulated instance: not installed: ' + config.code_requirement)}",
            "fi",
        ]
    if config.code_archive is not None:
        lines += [
            f'"$PY" -m carbonshift.remote.fetch {q(config.code_archive)} "$WORKDIR/code"',
            'export PYTHONPATH="$WORKDIR/code${PYTHONPATH:+:$PYTHONPATH}"',
        ]
    lines += [
        'echo "starting the agent on $SPEC_URI"',
        # Not exec: the EXIT trap must run when the agent ends.
        f'"$PY" -m carbonshift.remote.agent --spec "$SPEC_URI" '
        f"--spec-wait-s {config.spec_wait_s:g}",
    ]
    script = "\n".join(lines) + "\n"
    if len(script.encode()) > USER_DATA_LIMIT_BYTES:
        raise ValueError(
            f"bootstrap script: {len(script.encode())} bytes, over EC2's user-data limit of "
            f"{USER_DATA_LIMIT_BYTES}; install from fewer or shorter requirements"
        )
    return script
