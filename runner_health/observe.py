"""When a check cannot observe its fact, it says so in words, and no fix runs.

>>> read(target, "cat /sys/kernel/security/lsm")
'lockdown,capability,landlock,yama,apparmor,bpf\\n'

A check fails (an ``assert``) only on a fact it observed. When the reading itself failed
(a command exited non-zero or timed out, GitHub refused or could not be reached, a tool
printed something unparseable) the check raises ``CannotObserve``; ``GitHubError``,
``CommandTimeout``, ``TargetUnreachable`` (ssh could not connect) and ``GarbledPrefetch`` (the
batched read printed something else than its sections) count the same. The
healing hook then records the check as "unknown" with the reason and runs no remediation: a
fix chosen on a reading nobody made is a guess.
"""

from __future__ import annotations

from testinfra.backend.base import CommandResult
from testinfra.host import Host

from runner_health.github import GitHubError
from runner_health.targets import CommandTimeout, GarbledPrefetch, TargetUnreachable, run


class CannotObserve(Exception):
    """The reading failed, not the condition: nothing is known, so nothing may be fixed."""


# Every error that means "could not observe" (the healing hook's rule).
UNOBSERVABLE: tuple[type[Exception], ...] = (
    CannotObserve,
    GitHubError,
    CommandTimeout,
    TargetUnreachable,
    GarbledPrefetch,
)


def read(host: Host, command: str, *, timeout: float = 30) -> str:
    """The stdout of a read-only command; CannotObserve when it exits non-zero."""
    result = run(host, command, timeout=timeout)
    if result.rc != 0:
        raise CannotObserve(failed(command, result))
    return result.stdout


def failed(command: str, result: CommandResult) -> str:
    """A command that did not answer, in words: what ran, its exit status, its last stderr."""
    return f"`{command}` exited {result.rc}: {result.stderr.strip()[-300:]}"


def testinfra_failure(error: AssertionError) -> CannotObserve | None:
    """testinfra's ``check_output``, ``run_test`` and its modules (``host.file(...).exists``)
    assert on a command's exit status with the CommandResult's repr as the message: that is
    a reading that failed, not a failed check. Said in words; None for any other assert."""
    trace = error.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    if trace is None or trace.tb_frame.f_globals.get("__name__") != "testinfra.host":
        return None
    result = trace.tb_frame.f_locals.get("out")
    if not isinstance(result, CommandResult):
        return None
    return CannotObserve(failed(result.backend.decode(result.command), result))
