"""Shared helpers for the shell-script tests: fake commands on PATH, a runner dir tree, and
local sources (runner tarball, runner-health, wheels) for provisioning the test-bed VM."""

from __future__ import annotations

import fcntl
import hashlib
import http.server
import io
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def write_fake(bin_dir: Path, name: str, body: str) -> Path:
    """An executable ``bin_dir/name`` running ``body`` (bash); it logs its argv to $FAKE_LOG."""
    path = bin_dir / name
    path.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "{name} $*" >> "${{FAKE_LOG:-/dev/null}}"\n' + body + "\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fakes(tmp_path: Path) -> tuple[Path, Path]:
    """A bin dir to put fakes in (first on PATH) and the log every fake appends to."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    log = tmp_path / "fake.log"
    log.touch()
    return bin_dir, log


def run_script(
    argv: list[str],
    *,
    fakes: tuple[Path, Path] | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a script with the fakes first on PATH and a controlled environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_"))}
    if fakes is not None:
        full_env["PATH"] = f"{fakes[0]}:{full_env['PATH']}"
        full_env["FAKE_LOG"] = str(fakes[1])
    full_env.update(env or {})
    return subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd or ROOT,
        check=False,
    )


# --- cron, as its daemon reads a line (no cron on this machine is needed or touched) -------


def cron_jobs(table: str) -> list[str]:
    """The job lines of a crontab or /etc/cron.d file: not blank, not a comment, not a
    ``NAME=value`` environment line (a job starts with its minute field or an @keyword)."""
    return [line for line in table.splitlines() if re.match(r"\s*[0-9*@]", line)]


def cron_command(line: str, fields: int = 5) -> tuple[str, str | None]:
    """What cron runs for one job line: (the shell command, its stdin or None).

    The command is the text after ``fields`` fields (5 in a user's crontab; 6 in /etc/cron.d,
    the user sixth), through cron's own pass (do_command.c, shared by Vixie cron, Debian's cron
    and cronie): ``\\%`` is a literal %, the first unescaped % ends the command and the rest is
    its stdin (each further % a newline). A backslash before anything else is where the crons
    differ (Debian's folds ``\\\\`` into ``\\``, cronie keeps both), so it is an error here.
    """
    parts = line.split(None, fields)
    if len(parts) <= fields:
        raise ValueError(f"no command after {fields} fields: {line!r}")
    text, command, i = parts[fields], [], 0
    while i < len(text):
        if text[i] == "\\":
            if text[i + 1 : i + 2] != "%":
                raise ValueError(f"a backslash before {text[i + 1 : i + 2]!r}: crons differ")
            command.append("%")
            i += 2
        elif text[i] == "%":
            return "".join(command), text[i + 1 :].replace("%", "\n")
        else:
            command.append(text[i])
            i += 1
    return "".join(command), None


def run_like_cron(
    command: str, home: Path, shell: str = "/bin/sh", stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a job's command the way cron does: ``SHELL -c``, from HOME, with cron's bare
    environment (no PATH beyond /usr/bin:/bin, none of the caller's variables)."""
    return subprocess.run(
        [shell, "-c", command],
        input=stdin,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "SHELL": shell, "LOGNAME": "root"},
        cwd=home,
        timeout=60,
        check=False,
    )


# --- local sources for provisioning the test-bed VM (no internet in there) -------------------

TESTBED_CACHE = ROOT / "tests" / "testbed" / ".cache"
RUNNER_STAND_IN = ROOT / "tests" / "testbed" / "runner"
# What provision/setup.sh copies into /opt/runner-health (its install_runner_health list).
RUNNER_HEALTH_ITEMS = (
    "checks",
    "remediations",
    "runner_health",
    "provision",
    "conftest.py",
    "pyproject.toml",
    "requirements.lock",
    "Makefile",
    "health_check.sh",
    "runner-health.example.toml",
    "README.md",
)
# The guest reaches the host's 127.0.0.1 as 10.0.2.2 (QEMU user-mode network).
GUEST_HOST = "10.0.2.2"


def _skip_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    name = Path(info.name)
    if "__pycache__" in name.parts or name.suffix == ".pyc" or ".venv" in name.parts:
        return None
    return info


def runner_tarball(dest: Path, marker: str) -> str:
    """An actions/runner-shaped tarball (files at the top, like the release's) made from the
    stand-in, plus a ``.testbed-tarball`` marker naming where it came from; returns its SHA-256
    (what a test passes as the pinned checksum)."""
    with tarfile.open(dest, "w:gz") as tar:
        for path in sorted(RUNNER_STAND_IN.iterdir()):
            tar.add(path, arcname=path.name, filter=_skip_caches)
        data = (marker + "\n").encode()
        info = tarfile.TarInfo(".testbed-tarball")
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(dest.read_bytes()).hexdigest()


def runner_health_tarball(dest: Path) -> None:
    """This checkout's runner-health, as RUNNER_HEALTH_SOURCE=...tar.gz expects it."""
    with tarfile.open(dest, "w:gz") as tar:
        for item in RUNNER_HEALTH_ITEMS:
            if (ROOT / item).exists():
                tar.add(ROOT / item, arcname=item, filter=_skip_caches)


def wheelhouse() -> Path:
    """Wheels for requirements.lock (and the setuptools that ``pip install -e .`` builds with)
    for the guest's Python 3.11, cached by the lock's SHA-256: ``make .venv/.installed`` in the
    VM installs from them with ``PIP_NO_INDEX=1 PIP_FIND_LINKS=<url>``. Downloaded once from
    the package index with the host's pip (the guest has no internet)."""
    lock = (ROOT / "requirements.lock").read_bytes()
    digest = hashlib.sha256(lock + b"setuptools>=68 wheel").hexdigest()[:16]
    done = TESTBED_CACHE / f"wheels-{digest}"
    if done.is_dir():
        return done
    TESTBED_CACHE.mkdir(parents=True, exist_ok=True)
    with open(TESTBED_CACHE / ".wheels.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if done.is_dir():
            return done
        scratch = TESTBED_CACHE / f"wheels-{digest}.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--only-binary=:all:", "--python-version", "3.11", "-r", str(ROOT / "requirements.lock"),
             "setuptools>=68", "wheel", "-d", str(scratch)],
            check=True,
            timeout=600,
        )  # fmt: skip
        scratch.rename(done)
    for old in TESTBED_CACHE.glob("wheels-*"):
        if old != done and not old.name.endswith(".partial"):
            shutil.rmtree(old, ignore_errors=True)
    return done


def prepare_for_a_vm() -> None:
    """Before a test boots a VM of its own (not the session's): stop VMs that dead sessions
    left, and make a CI timeout's SIGTERM an interrupt so that the fixture's teardown runs."""
    from tests.testbed.fixtures import _sigterm_as_interrupt
    from tests.testbed.vm import kill_stale_testbeds

    kill_stale_testbeds()
    _sigterm_as_interrupt()


@dataclass
class LocalSources:
    """An HTTP server on the host's 127.0.0.1 serving what provisioning downloads: the runner
    tarball, runner-health, and wheels. ``url`` is what the guest uses; ``requests`` lists the
    paths asked for (proof that the guest fetched from here)."""

    directory: Path
    url: str
    runner_sha256: str
    marker: str
    requests: list[str] = field(default_factory=list)

    @property
    def runner_tarball_url(self) -> str:
        return f"{self.url}/actions-runner.tar.gz"

    @property
    def runner_health_url(self) -> str:
        return f"{self.url}/runner-health.tar.gz"

    @property
    def wheels_url(self) -> str:
        return f"{self.url}/wheels/"

    def pip_env(self) -> dict[str, str]:
        """pip settings for ``make .venv/.installed`` in the guest: these wheels, no index.
        (Python compiles what it imports on first use instead.)"""
        return {
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": self.wheels_url,
            "PIP_TRUSTED_HOST": GUEST_HOST,  # plain HTTP on the host: pip ignores it otherwise
            "PIP_NO_COMPILE": "1",  # no .pyc up front: minutes under TCG (githubkit's schemas)
            "PIP_NO_CACHE_DIR": "1",  # the wheels are local: no second copy in ~/.cache
        }


@pytest.fixture(scope="session")
def local_sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSources]:
    directory = tmp_path_factory.mktemp("local-sources")
    marker = f"runner stand-in tarball {secrets.token_hex(8)} (tests/testbed/runner)"
    sha = runner_tarball(directory / "actions-runner.tar.gz", marker)
    runner_health_tarball(directory / "runner-health.tar.gz")
    (directory / "wheels").symlink_to(wheelhouse(), target_is_directory=True)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalSources(
            directory,
            f"http://{GUEST_HOST}:{server.server_address[1]}",
            sha,
            marker,
            requests,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
