"""The actions/runner install on the target: its files, processes and logs.

>>> install = RunnerInstall(host, "/opt/actions-runner", "github-runner")
>>> install.unit()
'actions.runner.acme-kernel-ci.assay-bpf-runner.service'
>>> diagnose(install.recent_log())
[Finding(cause='clock', line='... Current server time is ...')]
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from testinfra.backend.base import CommandResult
from testinfra.host import Host

from runner_health.steps import RemediationRefused
from runner_health.targets import as_root, run

SYSTEMD_DIR = "/etc/systemd/system"

# svc.sh's unit name: actions.runner.<scope>.<name>.service, where <scope> is owner-repo or
# the org with every character outside [0-9a-zA-Z._-] turned into "-", spaces in the whole
# name become "_", and a name over 150 characters is cut and given a -NNNN suffix
# (actions/runner: ServiceControlManager.CalculateServiceName, SystemdControlManager.cs,
# systemd.svc.sh.template). Runner names are letters, digits, ".", "_" and "-" (config.py).
UNIT_NAME = re.compile(r"actions\.runner\.[0-9A-Za-z._-]+\.[0-9A-Za-z._-]+\.service")
UNIT_NAME_MAX = 150


class UnsafeUnit(RemediationRefused):
    """``.service`` names something other than this runner's installed unit.

    The runner user (so every job) can write ``.service``, and root stops, kills and restarts
    the unit it names: every fix that reads it refuses, and the service check fails.
    """


# Lines the real runner writes to _diag/Runner_*.log or the journal, by cause
# (actions/runner: MessageListener.cs, Runner.cs, JobDispatcher.cs; see docs/README).
CAUSES: dict[str, tuple[str, ...]] = {
    "registration_gone": (
        "The runner registration has been deleted from the server",
        "The runner no longer exists on the server",
        "was not found.",
    ),
    "clock": (
        "clock may be out of sync with the server time",
        "Current server time is",
        "The bearer token expired on",
        "is not valid until",
        "Stopped retrying OAuth token request exception",
    ),
    "deprecated": ("is deprecated and cannot receive messages",),
    "session_conflict": ("A session for this runner already exists",),
    "disk_full": ("No space left on device", "You are running out of disk space"),
    "token_expired": ("Http response code: NotFound from 'POST",),
}


@dataclass(frozen=True)
class Finding:
    cause: str
    line: str


def diagnose(log: str) -> list[Finding]:
    """Known causes in a runner log, newest last, each cause once (its latest line)."""
    latest: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(log.splitlines()):
        for cause, needles in CAUSES.items():
            if any(needle in line for needle in needles):
                latest[cause] = (number, line.strip())
    return [Finding(cause, line) for cause, (_, line) in sorted(latest.items(), key=lambda x: x[1])]


def _text(result: CommandResult) -> str:
    """A command's stdout as text: bytes that are not UTF-8 (anyone can log them) are replaced."""
    return result.stdout_bytes.decode("utf-8", "replace")


class RunnerInstall:
    """Read-only views of the runner directory; changes go through remediations."""

    def __init__(
        self, host: Host, directory: str, user: str, systemd_dir: str = SYSTEMD_DIR
    ) -> None:
        self.host = host
        self.directory = directory
        self.user = user
        self.systemd_dir = systemd_dir

    def _read(self, name: str) -> str | None:
        path = shlex.quote(f"{self.directory}/{name}")
        result = run(self.host, as_root(self.host, f"cat {path}"), timeout=30)
        return result.stdout if result.rc == 0 else None

    def registration(self) -> dict[str, Any] | None:
        """The parsed ``.runner`` file (None when the runner is not configured)."""
        text = self._read(".runner")
        if text is None:
            return None
        try:
            return json.loads(text.lstrip("\ufeff"))
        except ValueError:
            return {}

    def unit(self) -> str | None:
        """The systemd unit svc.sh installed (read, never computed: long names get a suffix).

        None when ``.service`` is missing or empty: the service is not installed. UnsafeUnit
        unless it names a runner unit (UNIT_NAME) whose unit file is a regular file in the
        systemd directory.
        """
        path = f"{self.directory}/.service"
        quoted = shlex.quote(path)
        # Never through a link (root reading, say, /etc/shadow into the report): refused.
        read = (
            f"[ -e {quoted} ] || [ -L {quoted} ] || exit 0; "
            f"[ -f {quoted} ] && [ ! -L {quoted} ] || exit 3; "
            f"dd if={quoted} iflag=nofollow,nonblock bs=1024 count=1 status=none"
        )
        result = run(self.host, as_root(self.host, read), timeout=30)
        if result.rc != 0:
            raise UnsafeUnit(f"{path} is not a regular file (a link?): refusing to act on it")
        name = _text(result).strip()
        if not name:
            return None
        if len(name) > UNIT_NAME_MAX or not UNIT_NAME.fullmatch(name):
            raise UnsafeUnit(
                f"{path} names {name[:UNIT_NAME_MAX]!r}, not a runner unit "
                "(actions.runner.<scope>.<name>.service): refusing to act on it"
            )
        unit_file = f"{self.systemd_dir}/{name}"
        check = f"[ -f {shlex.quote(unit_file)} ] && [ ! -L {shlex.quote(unit_file)} ]"
        if run(self.host, as_root(self.host, check), timeout=30).rc != 0:
            raise UnsafeUnit(
                f"{path} names {name}, but {unit_file} is missing or not a regular file "
                "(a link?): refusing to act on it"
            )
        return name

    # -x matches the process name (the runner's binaries are called so), not command lines:
    # neither the shell running pgrep nor a `tail ... Runner.Worker` counts.
    def listener_running(self) -> bool:
        return run(self.host, "pgrep -x Runner.Listener", timeout=30).rc == 0

    def job_running(self) -> bool:
        """A Runner.Worker process means a job is running right now."""
        return run(self.host, "pgrep -x Runner.Worker", timeout=30).rc == 0

    def recent_log(self, lines: int = 300) -> str:
        """The newest _diag/Runner_*.log tail, then the journal of the unit's last run (if safe)."""
        diag = shlex.quote(f"{self.directory}/_diag")
        command = (
            f"f=$(ls -1t {diag}/Runner_*.log 2>/dev/null | head -n 1); "
            f'[ -n "$f" ] && tail -n {lines} "$f"; '
        )
        try:
            unit = self.unit()
        except UnsafeUnit:
            unit = None  # not the runner's unit: its journal is not the runner's log
        if unit:
            command += (
                f"i=$(systemctl show -p InvocationID --value {shlex.quote(unit)}); "
                f'[ -n "$i" ] && journalctl _SYSTEMD_INVOCATION_ID="$i" -n {lines} --no-pager -o cat'
            )
        return run(self.host, as_root(self.host, command), timeout=30).stdout
