"""The run lock: only ever our own file, who holds it, and a holder past the bound is stale."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runner_health.lock import LockBusy, LockStale, LockUnusable, default_path, take

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def test_the_holder_is_recorded_and_a_second_run_is_told_who(tmp_path):
    path = tmp_path / "lock"
    lock = take(path, stale_after=60)
    try:
        record = json.loads(path.read_text())
        assert record["pid"] == os.getpid() and record["since"] and record["groups"] == {}
        with pytest.raises(LockBusy, match=f"in progress .*held by pid {os.getpid()} since"):
            take(path, stale_after=60)
    finally:
        lock.close()
    take(path, stale_after=60).close()  # released


def test_a_holder_past_the_bound_is_stale_not_busy(tmp_path):
    path = tmp_path / "lock"
    lock = take(path, stale_after=60)
    try:
        time.sleep(0.3)
        with pytest.raises(LockStale, match=r"longer than a run can last .* which still runs"):
            take(path, stale_after=0.1)
    finally:
        lock.close()


def test_the_folder_is_made_private_and_the_file_ours_alone(tmp_path):
    path = tmp_path / "new" / "lock"
    take(path, stale_after=60).close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)  # readable is enough to hold a flock
    take(path, stale_after=60).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _link(path: Path, precious: Path) -> None:
    path.symlink_to(precious)


def _dangling_link(path: Path, precious: Path) -> None:
    path.symlink_to(path.parent / "created-through-the-link")


def _hard_link(path: Path, precious: Path) -> None:
    path.hardlink_to(precious)


def _not_ours(path: Path, precious: Path) -> None:
    path.touch()
    os.chown(path, NOBODY, NOBODY)


def _writable_by_others(path: Path, precious: Path) -> None:
    path.touch()
    path.chmod(0o666)


def _folder_writable_by_others(path: Path, precious: Path) -> None:
    path.parent.chmod(0o1777)  # /tmp: anyone could take the name first


def _folder_not_ours(path: Path, precious: Path) -> None:
    os.chown(path.parent, NOBODY, NOBODY)


@pytest.mark.parametrize(
    ("plant", "message"),
    [
        (_link, "is a symbolic link"),
        (_dangling_link, "is a symbolic link"),
        (_hard_link, "has 2 names"),
        pytest.param(_not_ours, "belongs to uid 65534", marks=root_only),
        (_writable_by_others, "is writable by other users"),
        (_folder_writable_by_others, "folder is writable by other users"),
        pytest.param(_folder_not_ours, "folder belongs to uid 65534", marks=root_only),
    ],
)
def test_a_lock_file_someone_else_could_have_put_there_is_refused_untouched(
    tmp_path: Path, plant: Callable[[Path, Path], None], message: str
):
    precious = tmp_path / "precious"
    precious.write_text("root's own\n")
    folder = tmp_path / "locks"
    folder.mkdir()
    plant(folder / "lock", precious)
    with pytest.raises(LockUnusable, match=message):
        take(folder / "lock", stale_after=60)
    assert precious.read_text() == "root's own\n"
    assert not (folder / "created-through-the-link").exists()


def test_a_linked_folder_and_a_relative_path_are_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    with pytest.raises(LockUnusable, match="linked: is a symbolic link"):
        take(tmp_path / "linked" / "lock", stale_after=60)
    with pytest.raises(LockUnusable, match="expected an absolute path"):
        take(Path("lock"), stale_after=60)


def test_default_path_root_runtime_dir_or_home(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_path() == Path("/run/runner-health/lock")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert default_path() == Path("/run/user/1000/runner-health/lock")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_path() == tmp_path / ".cache" / "runner-health" / "lock"
