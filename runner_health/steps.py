"""What a remediation does, step by step: run for real, or only say it in a dry run.

>>> steps = Steps(host, dry_run=False, echo=print)
>>> steps.run("systemctl start actions.runner.acme-kernel-ci.vm.service", why="service is inactive")
>>> steps.lines
['$ systemctl start ... (service is inactive) -> exit 0']

Every change a remediation makes goes through ``run`` (``call`` for an API call, ``after_run``
for a change that must wait until the reports are written); reads go straight to the host.
That is what makes ``--dry-run`` honest and the report complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from testinfra.backend.base import CommandResult
from testinfra.host import Host

from runner_health import redact
from runner_health.targets import as_root, run

T = TypeVar("T")


class RemediationRefused(Exception):
    """A safety rule forbids the fix (GitHub unreachable, runner busy, ...); nothing was changed."""


class RemediationFailed(Exception):
    """The fix ran but did not have its effect."""


class Steps:
    """The ordered record of one remediation run."""

    def __init__(
        self, host: Host | None, *, dry_run: bool, echo: Callable[[str], None], timeout: float = 300
    ) -> None:
        self.host = host
        self.dry_run = dry_run
        self.echo = echo
        self.timeout = timeout
        self.lines: list[str] = []
        self.deferred: list[tuple[Host, str]] = []  # (host, command) for after the reports

    def note(self, text: str) -> None:
        """Record an observation or decision."""
        self._add(text)

    def run(
        self,
        command: str,
        *,
        why: str,
        host: Host | None = None,
        stdin: str | None = None,
        root: bool = True,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult | None:
        """Run a changing command (as root unless ``root=False``); None in a dry run."""
        on = host or self.host
        assert on is not None, "Steps.run needs a host"
        if self.dry_run:
            self._add(f"would run: {command}  ({why})")
            return None
        result = run(
            on,
            as_root(on, command) if root else command,
            stdin=stdin,
            timeout=timeout or self.timeout,
        )
        output = (result.stdout + result.stderr).strip()
        self._add(
            f"$ {command}  ({why}) -> exit {result.rc}" + (f"\n{output[-2000:]}" if output else "")
        )
        if check and result.rc != 0:
            raise RemediationFailed(f"`{command}` exited {result.rc}: {output[-500:]}")
        return result

    def call(self, action: Callable[[], T], *, what: str, why: str) -> T | None:
        """Make a change that is an API call, not a command (GitHub's REST API); None in a
        dry run."""
        if self.dry_run:
            self._add(f"would {what}  ({why})")
            return None
        result = action()
        self._add(f"{what}  ({why}) -> done")
        return result

    def after_run(self, command: str, *, why: str, host: Host | None = None) -> None:
        """Run ``command`` as root once this run's reports are written (the plugin does it).

        For a change that ends the run itself, such as rebooting the machine it runs on.
        """
        on = host or self.host
        assert on is not None, "Steps.after_run needs a host"
        if self.dry_run:
            self._add(f"would run after the reports are written: {command}  ({why})")
            return
        self.deferred.append((on, command))
        self._add(f"after the reports are written: {command}  ({why})")

    def wait_until(
        self, predicate: Callable[[], bool], what: str, timeout: float, every: float = 2
    ) -> None:
        """Poll ``predicate`` until true; RemediationFailed if ``timeout`` passes first."""
        if self.dry_run:
            self._add(f"would wait up to {timeout:.0f}s until {what}")
            return
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        while True:
            if predicate():
                self._add(f"ok: {what} (after {time.monotonic() - started:.0f}s)")
                return
            if time.monotonic() >= deadline:
                raise RemediationFailed(f"gave up after {timeout:.0f}s waiting until {what}")
            time.sleep(every)

    def _add(self, text: str) -> None:
        text = redact.scrub(text)
        self.lines.append(text)
        self.echo(text)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)
