"""Exit status of ``pytest checks`` (pytest's own codes, plus runner-health's own)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Precedence when several apply: UNHEALTHY > UNKNOWN > HEALED > HEALTHY."""

    HEALTHY = 0  # every check passed at the first attempt
    UNHEALTHY = 1  # a check still fails after its remediation (or had none)
    INTERRUPTED = 2
    INTERNAL_ERROR = 3
    USAGE_ERROR = 4  # bad command line or config: nothing was touched
    NO_CHECKS = 5
    LOCKED = 6  # another run holds the lock: nothing was touched
    HEALED = 7  # something failed, a remediation fixed it, and every check now passes
    STALE_LOCK = 8  # the lock is held for longer than a run can last: no run can heal anything
    UNKNOWN = 9  # nothing failed, but a check could not observe: its condition is not known

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")
