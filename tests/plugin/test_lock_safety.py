"""The run lock against another local user (a CI job is one): root never writes through a link
they planted, they cannot hold the lock, and a lock held too long is a failure, not exit 6."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_health.config import load
from tests.plugin import test_healing
from tests.plugin.test_healing import CONFIG, write_check

pytest_plugins = ["pytester"]

project = test_healing.project
PASSING = "def test_fine():\n    pass\n"


@pytest.fixture
def other_user() -> Iterator[str]:
    """A second local user, made for this test and removed after it."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("a second user needs root, useradd and setpriv")
    name = f"rh{uuid.uuid4().hex[:12]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def as_user(user: str, *argv: str) -> list[str]:
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]


def use_lock(project: pytest.Pytester, lock: Path | None, extra: str = "") -> Path:
    """Point the project's config at ``lock`` (None: the default lock path)."""
    text = CONFIG.format(lock=lock, reports=project.path / "reports")
    if lock is None:
        text = text.replace('lock_file = "None"\n', "")
    config = project.path / "runner-health.toml"
    config.write_text(text + extra)
    return config


def test_a_link_another_user_planted_at_the_lock_path_is_not_followed(project, other_user):
    """The old default: a lock in /tmp, where anyone can plant a link to a root file."""
    precious = project.path / "precious"
    precious.write_text("root's own\n")
    with tempfile.TemporaryDirectory(dir="/tmp") as shared:
        Path(shared).chmod(0o1777)
        lock = Path(shared) / "runner-health.lock"
        subprocess.run(as_user(other_user, "ln", "-s", str(precious), str(lock)), check=True)
        use_lock(project, lock)
        write_check(project, "thing", PASSING)
        result = project.runpytest_subprocess("checks")
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["*lock_file*folder is writable by other users*"])
    assert precious.read_text() == "root's own\n"


def test_a_link_at_the_lock_path_is_never_followed(project):
    precious = project.path / "precious"
    precious.write_text("root's own\n")
    (project.path / "lock").symlink_to(precious)
    write_check(project, "thing", PASSING)
    result = project.runpytest_subprocess("checks")
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines(["*lock_file*lock: is a symbolic link (not followed)*"])
    assert precious.read_text() == "root's own\n"


# What another user (a CI job) would do to stop every run: take the lock first and keep it.
HOLD = """
import fcntl, os, sys
path = sys.argv[1]
try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError as exc:
    print(type(exc).__name__, flush=True)
    sys.exit()
print("held", flush=True)
sys.stdin.read()
"""


def test_another_user_cannot_hold_the_default_lock(project, other_user):
    config = use_lock(project, None)
    default = load(config).lock_file
    write_check(project, "thing", PASSING)
    assert project.runpytest_subprocess("checks").ret == 0  # root's run made its lock folder
    python = shutil.which("python3", path="/usr/bin:/bin")  # one the other user may run
    if python is None:
        pytest.skip("no system python3")
    attempt = subprocess.run(
        as_user(other_user, python, "-c", HOLD, str(default)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert attempt == "PermissionError", f"another user could take {default}: {attempt}"


STALLING = """
import time

def test_stalls(settings):
    here = settings.path.parent
    (here / "running").touch()
    deadline = time.monotonic() + 60
    while not (here / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
"""


def test_a_lock_held_longer_than_a_run_can_last_is_a_failure_not_exit_6(project):
    # The bound is 4 x (command_timeout_seconds + online_wait_seconds): 4 s here.
    use_lock(
        project,
        project.path / "lock",
        "[remediation]\ncommand_timeout_seconds = 1\nonline_wait_seconds = 0\n",
    )
    write_check(project, "stalls", STALLING)
    first = project.popen(
        [*project._getpytestargs(), "checks", "-p", "no:cacheprovider"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (project.path / "running").exists():
            assert time.monotonic() < deadline and first.poll() is None, "the first run stopped"
            time.sleep(0.1)
        time.sleep(4.5)
        second = project.runpytest_subprocess("checks")
    finally:
        (project.path / "release").touch()
        first.wait(timeout=60)
    assert second.ret == 8, second.stdout.str() + second.stderr.str()
    second.stderr.fnmatch_lines(
        [f"*stale runner-health lock*held since*longer than a run can last*pid {first.pid}*"]
    )
    assert first.returncode == 0
