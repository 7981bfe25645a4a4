"""The actions/runner install on the target: its files, processes and logs.

>>> install = RunnerInstall(host, "/opt/actions-runner", "github-runner")
>>> install.unit()
'actions.runner.acme-kernel-ci.assay-bpf-runner.service'
>>> diagnose(install.recent_log())
[Finding(cause='clock', line='... Current server time is ...')]
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from testinfra.host import Host

from runner_health.targets import as_root, run

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


class RunnerInstall:
    """Read-only views of the runner directory; changes go through remediations."""

    def __init__(self, host: Host, directory: str, user: str) -> None:
        self.host = host
        self.directory = directory
        self.user = user

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
        """The systemd unit name svc.sh installed (read, never computed: long names get a suffix)."""
        text = self._read(".service")
        return text.strip() if text and text.strip() else None

    # -x matches the process name (the runner's binaries are called so), not command lines:
    # neither the shell running pgrep nor a `tail ... Runner.Worker` counts.
    def listener_running(self) -> bool:
        return run(self.host, "pgrep -x Runner.Listener", timeout=30).rc == 0

    def job_running(self) -> bool:
        """A Runner.Worker process means a job is running right now."""
        return run(self.host, "pgrep -x Runner.Worker", timeout=30).rc == 0

    def recent_log(self, lines: int = 300) -> str:
        """The newest _diag/Runner_*.log tail, then the journal of the unit's last run."""
        diag = shlex.quote(f"{self.directory}/_diag")
        command = (
            f"f=$(ls -1t {diag}/Runner_*.log 2>/dev/null | head -n 1); "
            f'[ -n "$f" ] && tail -n {lines} "$f"; '
        )
        unit = self.unit()
        if unit:
            command += (
                f"i=$(systemctl show -p InvocationID --value {shlex.quote(unit)}); "
                f'[ -n "$i" ] && journalctl _SYSTEMD_INVOCATION_ID="$i" -n {lines} --no-pager -o cat'
            )
        return run(self.host, as_root(self.host, command), timeout=30).stdout
