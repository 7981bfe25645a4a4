"""The Mac's sleep policy, from ``pmset``: a Mac that sleeps takes cron, launchd's runs and the
runner VM with it (actions/runner#3464; runner-failures-in-the-field.md, C.6).

>>> policy = sleep_policy(workstation)
>>> policy.ac_sleep_minutes
0

``pmset -g`` prints "System-wide power settings:" (``SleepDisabled 1`` after ``pmset -a
disablesleep 1``: no sleep at all) and "Currently in use:"; ``pmset -g custom`` prints one
section per power source ("Battery Power:", "AC Power:", "UPS Power:"). Each setting is a line
" <key> <value>", the key may hold spaces ("Sleep On Power Button 1"), and pmset may add why
it is overridden ("sleep 1 (sleep prevented by sharingd)"). Apple's pmset(8): ``sleep`` is
the system sleep timer in minutes, 0 never. Only it decides whether an idle Mac sleeps:
standby, autopoweroff, hibernatemode and networkoversleep act once it is asleep, and disksleep
spins disks down without stopping anything (the VM's reads wake them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from testinfra.host import Host

from runner_health.observe import CannotObserve, read

COMMAND = "pmset -g && pmset -g custom"
FIX = "sudo pmset -c sleep 0"  # never sleep on AC power; pmset changes settings only as root
MAX_OUTPUT = 64 * 1024  # a few dozen short lines; more is not pmset
MAX_MINUTES = 60 * 24 * 366
SECTION = re.compile(r"(?P<name>[A-Za-z][A-Za-z -]{0,40}):")
SETTING = re.compile(
    r"\s+(?P<key>\S(?:.{0,60}?\S)?)\s+(?P<value>\S{1,200})(?:\s+\((?P<why>[^()]{0,300})\))?\s*"
)


@dataclass(frozen=True)
class SleepPolicy:
    ac_sleep_minutes: int  # "AC Power" sleep: 0 never
    sleep_disabled: bool  # System-wide SleepDisabled 1: never, whatever the timer says
    prevented_by: str | None  # "sleep prevented by caffeinate" in the settings in use
    has_battery: bool  # a laptop: it also sleeps when its lid closes

    @property
    def sleeps(self) -> bool:
        return self.ac_sleep_minutes != 0 and not self.sleep_disabled


def parse(output: str) -> dict[str, dict[str, tuple[str, str | None]]]:
    """pmset's sections: {section: {key: (value, why)}}; lines that are neither are ignored."""
    if len(output) > MAX_OUTPUT:
        raise CannotObserve(f"`{COMMAND}` printed {len(output)} characters: not pmset's settings")
    sections: dict[str, dict[str, tuple[str, str | None]]] = {}
    current: dict[str, tuple[str, str | None]] | None = None
    for line in output.splitlines():
        if header := SECTION.fullmatch(line):
            current = sections.setdefault(header["name"], {})
        elif current is not None and (setting := SETTING.fullmatch(line)):
            current[setting["key"]] = (setting["value"], setting["why"])
    return sections


def _minutes(value: str, what: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_MINUTES:
        raise CannotObserve(f"pmset: {what} is {value[:40]!r}, not a number of minutes")
    return int(value)


def policy_of(output: str) -> SleepPolicy:
    """The sleep policy in ``pmset -g`` and ``pmset -g custom``'s output; CannotObserve when
    it has no "AC Power" sleep timer (not pmset's output, or pmset changed)."""
    sections = parse(output)
    ac = sections.get("AC Power", {})
    if "sleep" not in ac:
        raise CannotObserve(f"`{COMMAND}` printed no AC Power sleep setting")
    disabled = sections.get("System-wide power settings", {}).get("SleepDisabled", ("0", None))
    why = sections.get("Currently in use", {}).get("sleep", ("", None))[1]
    return SleepPolicy(
        ac_sleep_minutes=_minutes(ac["sleep"][0], "AC Power sleep"),
        sleep_disabled=disabled[0] == "1",
        prevented_by=why if why and why.startswith("sleep prevented by ") else None,
        has_battery="Battery Power" in sections,
    )


def sleep_policy(workstation: Host) -> SleepPolicy:
    """This Mac's sleep policy (pmset needs no root to read)."""
    return policy_of(read(workstation, COMMAND, timeout=30))
