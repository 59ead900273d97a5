"""Checkpoints against the unlucky and the hostile: forged and broken manifests, missing parts,
two writers, threads, a full disk, a kill -9 in the middle of a write, resume_from nowhere."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import IO, Any

import pytest

from carbonshift.checkpoint import CheckpointManager, LocalStore
from carbonshift.checkpoint.manager import NoCheckpointToResume, WriterConflict
from carbonshift.examples import tiny_train
from carbonshift.training import Progress, TrainingContext

REPO = Path(__file__).resolve().parents[2]
GOOD = {"model": b"weights", "optim": b"moments"}


def manager(tmp: Path, keep: int = 3) -> CheckpointManager:
    return CheckpointManager(LocalStore(tmp), "run", keep=keep)


def forge(tmp: Path, step: int, manifest: Any, files: dict[str, bytes] | None = None) -> None:
    folder = tmp / "run" / f"ckpt-{step:012d}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {}).items():
        (folder / name).write_bytes(data)
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (folder / "MANIFEST.json").write_text(text)


def entry(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


BAD_MANIFESTS: list[tuple[str, Any]] = [
    ("empty parts", {"step": 9, "parts": {}, "meta": {"step": 9}}),
    ("parts a list", {"step": 9, "parts": [], "meta": {}}),
    ("parts a string", {"step": 9, "parts": "model", "meta": {}}),
    ("no parts key", {"step": 9, "meta": {}}),
    ("entry not an object", {"step": 9, "parts": {"model": 7}}),
    ("entry without sha256", {"step": 9, "parts": {"model": {"bytes": 7}}}),
    ("negative size", {"step": 9, "parts": {"model": {"bytes": -1, "sha256": "0" * 64}}}),
    ("size a string", {"step": 9, "parts": {"model": {"bytes": "7", "sha256": "0" * 64}}}),
    ("size a bool", {"step": 9, "parts": {"model": {"bytes": True, "sha256": "0" * 64}}}),
    ("bad hex", {"step": 9, "parts": {"model": {"bytes": 7, "sha256": "zz" * 32}}}),
    ("short hex", {"step": 9, "parts": {"model": {"bytes": 7, "sha256": "ab"}}}),
    ("manifest a list", [1, 2]),
    ("manifest null", "null"),
    ("not JSON", "{not json"),
    ("not UTF-8", "\udcff"),
    ("step of another folder", {"step": 3, "parts": {"model": entry(b"weights")}}),
    ("part outside its folder",
     {"step": 9, "parts": {"../ckpt-000000000001/model": entry(b"weights")}}),
    ("required part missing",
     {"step": 9, "parts": {"model": entry(b"weights")}, "required": ["model", "optim"]}),
    ("required a string", {"step": 9, "parts": {"model": entry(b"weights")}, "required": "x"}),
    ("meta a list", {"step": 9, "parts": {"model": entry(b"weights")}, "meta": []}),
]


@pytest.mark.parametrize(("case", "manifest"), BAD_MANIFESTS, ids=[c for c, _ in BAD_MANIFESTS])
def test_a_bad_manifest_is_skipped_for_the_previous_good_one(
    tmp_path: Path, case: str, manifest: Any, caplog: pytest.LogCaptureFixture
) -> None:
    m = manager(tmp_path)
    m.save(1, GOOD, {"step": 1})
    if manifest == "\udcff":
        folder = tmp_path / "run" / "ckpt-000000000009"
        folder.mkdir(parents=True)
        (folder / "MANIFEST.json").write_bytes(b"\xff\xfe{")
    else:
        forge(tmp_path, 9, manifest, {"model": b"weights"})
    with caplog.at_level(logging.WARNING, "carbonshift.checkpoint"):
        found = manager(tmp_path).latest()
    assert found is not None and found.step == 1, case
    assert "skipping checkpoint 9" in caplog.text


def test_a_checkpoint_needs_every_part_its_trainer_requires(tmp_path: Path) -> None:
    m = manager(tmp_path)
    m.save(1, {"model.pt": b"m", "optimizer.pt": b"o"}, {"step": 1})
    # A manifest (forged or from another trainer) that lists only the model.
    forge(tmp_path, 2, {"step": 2, "parts": {"model.pt": entry(b"m2")}}, {"model.pt": b"m2"})
    found = manager(tmp_path).latest(required=["model.pt", "optimizer.pt"])
    assert found is not None and found.step == 1
    # The manifest says what it needs: a part it requires but does not list is a broken one.
    m.save(3, {"model.pt": b"m3", "optimizer.pt": b"o3"}, {}, required=["model.pt"])
    found = manager(tmp_path).latest(required=["model.pt", "optimizer.pt"])
    assert found is not None and found.step == 3 and found.required == {"model.pt"}


def test_save_refuses_what_cannot_be_loaded(tmp_path: Path) -> None:
    m = manager(tmp_path)
    with pytest.raises(ValueError, match="at least one part"):
        m.save(1, {}, {})
    with pytest.raises(ValueError, match="part name"):
        m.save(1, {"../x": b"1"}, {})
    with pytest.raises(ValueError, match="required"):
        m.save(1, {"a": b"1"}, {}, required=["b"])


# -- the harness: required parts and resume_from --------------------------------------------

def ctx(store: Path, prefix: str, **kw: Any) -> TrainingContext:
    return TrainingContext(CheckpointManager(LocalStore(store), prefix),
                           options={"steps": "20"}, **kw)


def test_the_harness_skips_a_checkpoint_without_its_optimizer(tmp_path: Path) -> None:
    stop = threading.Event()

    def stop_at_7(progress: Progress) -> None:
        if progress.step == 7:
            stop.set()

    first = tiny_train.train(ctx(tmp_path, "run", stop=stop, on_progress=stop_at_7))
    assert first.step == 7
    good = manager(tmp_path).load(7)
    parts = {k: v for k, v in good.parts.items() if k != "optimizer.pt"}
    forge(tmp_path, 15, {"step": 15, "parts": {k: entry(v) for k, v in parts.items()},
                         "meta": {"step": 15}}, parts)
    seen: list[int] = []
    again = tiny_train.train(ctx(tmp_path, "run", on_progress=lambda p: seen.append(p.step)))
    assert again.completed and again.step == 20
    assert seen[0] == 8  # resumed from 7: the forged 15 lacks the optimizer


@pytest.mark.parametrize("what", ["missing folder", "empty folder", "corrupt checkpoint"])
def test_resume_from_without_a_valid_checkpoint_fails_naming_it(tmp_path: Path,
                                                               what: str) -> None:
    folder = tmp_path / "job" / "run-1"
    if what == "empty folder":
        folder.mkdir(parents=True)
    if what == "corrupt checkpoint":
        forge(tmp_path / "job", 5, {"step": 5, "parts": {}}, {})
        (tmp_path / "job" / "run").rename(folder)
    uri = f"file://{folder}/ckpt-000000000005"
    context = TrainingContext(_manager_for(uri), options={"steps": "20"}, resume_from=uri)
    with pytest.raises(NoCheckpointToResume) as raised:
        tiny_train.train(context)
    message = str(raised.value)
    assert message.startswith(f"resume_from {uri}: no valid checkpoint")
    assert "allow_fresh_start" in message and "\n" not in message
    if what == "corrupt checkpoint":
        assert "ckpt-000000000005: unreadable" in message and "non-empty" in message


def _manager_for(uri: str) -> CheckpointManager:
    from carbonshift.checkpoint import manager_for

    return manager_for(uri)


def test_resume_from_with_allow_fresh_start_starts_at_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"file://{tmp_path}/job/run-1/ckpt-000000000005"
    context = TrainingContext(_manager_for(uri), options={"steps": "20"}, resume_from=uri,
                              allow_fresh_start=True)
    with caplog.at_level(logging.WARNING, "carbonshift.checkpoint"):
        outcome = tiny_train.train(context)
    assert outcome.completed and outcome.step == 20
    assert "starting at step 0 (allow_fresh_start)" in caplog.text
    assert outcome.checkpoint_uri == f"file://{tmp_path}/job/run-1/ckpt-000000000020"


# -- the store: threads, processes, a full disk, kill -9 -------------------------------------

def test_threads_putting_one_key_never_collide(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    errors: list[BaseException] = []
    payloads = [bytes([i]) * 50_000 for i in range(8)]

    def write(data: bytes) -> None:
        try:
            for _ in range(30):
                store.put("run/shared.bin", data)
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.get("run/shared.bin") in payloads
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["shared.bin"]


def test_threads_saving_through_one_manager(tmp_path: Path) -> None:
    m = manager(tmp_path, keep=20)
    errors: list[BaseException] = []

    def save(step: int) -> None:
        try:
            m.save(step, {"model": f"model {step}".encode() * 1000, "optim": b"o"}, {})
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=save, args=(s,)) for s in range(1, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(m.steps()) == list(range(1, 17))
    for step in range(1, 17):
        assert m.load(step).parts["model"] == f"model {step}".encode() * 1000
    m.close()


def test_a_second_writer_in_this_process_gets_a_clear_error(tmp_path: Path) -> None:
    first = manager(tmp_path)
    first.save(1, GOOD, {})
    second = manager(tmp_path)
    with pytest.raises(WriterConflict, match=f"being written by pid {os.getpid()}"):
        second.save(2, GOOD, {})
    assert second.latest() is not None  # readers are welcome
    first.close()
    second.save(2, GOOD, {})  # the folder is free once the first lets go
    second.close()


WRITER = textwrap.dedent("""
    import sys, time
    from carbonshift.checkpoint import CheckpointManager, LocalStore
    from carbonshift.checkpoint.manager import WriterConflict

    class Slow(LocalStore):
        def _write(self, f, data):
            half = len(data) // 2
            f.write(data[:half]); f.flush()
            if data.startswith(b"HANG"):
                print("mid-write", flush=True)
                time.sleep(600)
            f.write(data[half:])

    m = CheckpointManager(Slow(sys.argv[1]), "run")
    try:
        m.save(int(sys.argv[2]), {"model": sys.argv[3].encode() * 1000, "optim": b"o"}, {})
    except WriterConflict as e:
        print("conflict:", e, flush=True)
        raise SystemExit(5)
    print("saved", flush=True)
    if len(sys.argv) > 4:
        time.sleep(float(sys.argv[4]))
""")


def writer(tmp: Path, step: int, text: str, hold_s: float | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, "-c", WRITER, str(tmp), str(step), text]
    if hold_s is not None:
        args.append(str(hold_s))
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def test_two_processes_on_one_run_folder(tmp_path: Path) -> None:
    holder = writer(tmp_path, 1, "first", hold_s=60)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "saved"
        second = writer(tmp_path, 2, "second")
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 5, out
        assert f"being written by pid {holder.pid}" in out and "one writer per run folder" in out
        assert manager(tmp_path).steps() == [1]
    finally:
        holder.kill()
        holder.communicate()
    # Its writer died: the lock went with it.
    third = writer(tmp_path, 2, "third")
    assert third.communicate(timeout=60)[0].strip() == "saved"
    found = manager(tmp_path).latest()
    assert found is not None and found.step == 2 and found.parts["model"] == b"third" * 1000


def test_kill_9_mid_write_leaves_the_previous_loadable_and_no_debris(tmp_path: Path) -> None:
    assert writer(tmp_path, 1, "before").communicate(timeout=60)[0].strip() == "saved"
    victim = writer(tmp_path, 2, "HANG")
    assert victim.stdout is not None and victim.stdout.readline().strip() == "mid-write"
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    leftovers = list((tmp_path / "run").rglob(".*.tmp"))
    assert leftovers, "the kill left a partial write"
    found = manager(tmp_path).latest()
    assert found is not None and found.step == 1 and found.parts["model"] == b"before" * 1000
    # The next writer takes over and sweeps what the dead one left.
    m = manager(tmp_path)
    m.save(2, GOOD, {})
    m.close()
    assert list((tmp_path / "run").rglob(".*.tmp")) == []


class FullDisk(LocalStore):
    """Writes half of the armed part, then fails as a full disk does."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fail_on: bytes | None = None

    def _write(self, f: IO[bytes], data: bytes) -> None:
        if self.fail_on is not None and data == self.fail_on:
            f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        f.write(data)


def test_a_full_disk_mid_write_leaves_no_tmp_and_the_previous_checkpoint(tmp_path: Path) -> None:
    store = FullDisk(tmp_path)
    m = CheckpointManager(store, "run")
    m.save(1, GOOD, {})
    store.fail_on = b"second optimizer"
    with pytest.raises(OSError, match="No space left"):
        m.save(2, {"model": b"second model", "optim": b"second optimizer"}, {})
    assert list(tmp_path.rglob("*.tmp")) == []
    found = m.latest()
    assert found is not None and found.step == 1 and found.parts == GOOD
    m.close()


def test_tmp_files_of_dead_writers_are_pruned(tmp_path: Path) -> None:
    m = manager(tmp_path, keep=1)
    m.save(1, GOOD, {})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / "run" / "ckpt-000000000001" / f".model.{dead}.{'a' * 32}.tmp"
    stale.write_bytes(b"half")
    m.save(2, GOOD, {})
    m.save(3, GOOD, {})
    assert not stale.exists()
    assert not (tmp_path / "run" / "ckpt-000000000001").exists()  # the folder went too
    m.close()


def test_save_never_returns_a_pruned_checkpoint(tmp_path: Path) -> None:
    m = manager(tmp_path, keep=2)
    m.save(12, GOOD, {})
    m.save(13, GOOD, {})
    uri = m.save(5, {"model": b"five", "optim": b"5"}, {})  # e.g. resumed from an older one
    assert uri.endswith("ckpt-000000000005")
    assert m.load(5).parts["model"] == b"five"
    assert 5 in m.steps() and len(m.steps()) == 2
    m.close()


def test_rewriting_a_step_drops_its_old_parts(tmp_path: Path) -> None:
    m = manager(tmp_path)
    m.save(4, {"model": b"old", "extra": b"old"}, {})
    m.save(4, {"model": b"new"}, {})
    assert m.load(4).parts == {"model": b"new"}
    assert not (tmp_path / "run" / "ckpt-000000000004" / "extra").exists()
    m.close()
