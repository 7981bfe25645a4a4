# ruff: noqa: RUF001, RUF002  (the multiplication sign in "tried 3 times" is meant)
"""What runs remember: each check's story across runs, each fix's recent attempts.

>>> store, warnings = Store.open(Path("/var/lib/runner-health/state.json"))
>>> store.hold_reason("free_disk", now, max_attempts=3, window_minutes=60)
'held: tried 3× in 60 min, last result failed'
>>> events = store.record_run(summary, now, settings)  # [Event("unhealthy", ...)] on changes
>>> store.save()

Root writes this file every 5 minutes on a machine where hostile jobs run, and a user-level
install keeps it next to its reports: so it is read without following a link, only from a
folder no other user can write, only when it is a plain file of ours of a sane size in our
schema. Anything else is set aside as ``state.json.corrupt`` (for a person to look at) and
the store starts afresh with a warning: forgetting costs one more fix attempt, never a run.
It is replaced atomically (temp file, fsync, rename, fsync the folder): a run killed at any
point leaves the old file or the new one, whole.

``python -m runner_health.state --reset`` lifts every hold; ``--show`` prints the history.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from runner_health import atomic, lock, redact
from runner_health.exitcodes import ExitCode

SCHEMA = "runner-health-state"
VERSION = 1
# The GitHub client's ETag cache may take 4 MiB; history stays far below the rest.
MAX_BYTES = 16 * 1024 * 1024
BAD = ("failed", "held")  # a check in a bad spell
GOOD = ("passed", "healed")  # unknown, skipped and silenced say nothing new about the spell
RESULTS = ("done", "failed", "refused")  # what a fix that really ran can end with


class StateError(Exception):
    """The state file cannot be written safely (its folder could be another user's)."""


@dataclass(frozen=True)
class Event:
    """A change worth telling people about: never one per run."""

    kind: str  # unhealthy | held | flapping | recovered
    check: str  # the check's name (summary.json's "name")
    condition: str
    text: str  # one line, for a person, scrubbed
    at: str  # ISO 8601, UTC


class Store:
    """The state file's content, and the rules that read and change it."""

    def __init__(self, path: Path, data: Mapping[str, Any] | None = None) -> None:
        data = data or {}
        self.path = path
        self.checks: dict[str, dict[str, Any]] = dict(data.get("checks", {}))
        self.fixes: dict[str, dict[str, Any]] = dict(data.get("fixes", {}))
        self.counts: dict[str, dict[str, int]] = dict(data.get("remediation_counts", {}))
        self.etags: dict = dict(data.get("etags", {}))
        self.probe: dict = dict(data.get("probe", {}))
        # When the last completed run started: checks that report events since then read it.
        self.last_run_at: datetime | None = _when(data.get("last_run_at"))

    # -- the file ------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> tuple[Store, list[str]]:
        """The store at ``path`` and what was wrong with the file; never raises on its content
        (a missing file is an empty store)."""
        try:
            raw = _read(path)
        except StateError as exc:
            return cls(path), [f"state file {path}: {exc}: started afresh"]
        if raw is None:
            return cls(path), []
        try:
            if len(raw) > MAX_BYTES:
                raise ValueError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
            data = _validated(json.loads(raw))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            return cls(path), [_set_aside(path, f"is corrupt or not runner-health's ({exc})")]
        return cls(path, data), []

    def save(self) -> None:
        """Replace the file atomically (mode 0600; its folder made 0700 when missing)."""
        data = {
            "schema": SCHEMA,
            "version": VERSION,
            "checks": self.checks,
            "fixes": self.fixes,
            "remediation_counts": self.counts,
            "etags": self.etags,
            "probe": self.probe,
            "last_run_at": _iso(self.last_run_at) if self.last_run_at else None,
        }
        payload = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
        if len(payload) > MAX_BYTES:  # a cache, never history, makes way: the next read works
            self.etags.clear()
            self.probe.clear()
            return self.save()
        with _folder(self.path, create=True) as folder:
            atomic.write(self.path, payload, mode=0o600)
            os.fsync(folder)  # the rename itself reaches the disk

    # -- budget --------------------------------------------------------------------------

    def record_attempt(self, fix: str, result: str, now: datetime) -> None:
        """A fix really ran (not a dry run), whatever its result: it counts toward its budget."""
        entry = self.fixes.setdefault(fix, {"attempts": [], "last_result": None})
        entry["attempts"] = [*entry["attempts"], _iso(now)]
        entry["last_result"] = result
        counts = self.counts.setdefault(fix, {})
        counts[result] = counts.get(result, 0) + 1

    def hold_reason(
        self, fix: str, now: datetime, max_attempts: int, window_minutes: float
    ) -> str | None:
        """Why ``fix`` may not run now ("held: tried 3× in 60 min, last result failed"), or None
        while it has runs left in its window."""
        entry = self.fixes.get(fix)
        if entry is None:
            return None
        tried = len(_within(entry["attempts"], now, window_minutes))
        if tried < max_attempts:
            return None
        return (
            f"held: tried {tried}× in {window_minutes:g} min, "
            f"last result {entry['last_result'] or 'unknown'}"
        )

    def reset_holds(self) -> list[str]:
        """Forget every fix's recent attempts (its hold lifts); returns the fixes it held back."""
        cleared = sorted(fix for fix, entry in self.fixes.items() if entry["attempts"])
        self.fixes = {}
        for check in self.checks.values():
            check["held"] = False
        return cleared

    # -- history and events --------------------------------------------------------------

    def record_run(self, summary: Mapping[str, Any], now: datetime, settings: Any) -> list[Event]:
        """Fold one run's summary into the history; the events are what changed."""
        window = settings.remediation.window_minutes
        max_attempts = settings.remediation.max_attempts
        self.last_run_at = _when(summary.get("started_at")) or now
        for entry in self.fixes.values():
            entry["attempts"] = _within(entry["attempts"], now, window)
        events = []
        for check in summary.get("checks", []):
            if isinstance(check, Mapping) and isinstance(check.get("name"), str):
                events += self._record_check(check, now, window, max_attempts)
        return events

    def _record_check(
        self, check: Mapping[str, Any], now: datetime, window: float, max_attempts: int
    ) -> list[Event]:
        name, outcome = check["name"], str(check.get("outcome"))
        condition = str(check.get("condition", ""))
        entry = self.checks.setdefault(
            name,
            {"first_failure": None, "last_heal": None, "heals": [], "held": False,
             "flapping_alerted": None, "time_to_heal_seconds": None, "remediation": None,
             "bad": False},
        )  # fmt: skip
        was_bad = entry["bad"]
        entry["condition"] = condition
        entry["outcome"] = outcome
        entry["heals"] = _within(entry["heals"], now, window)
        if check.get("remediation"):
            entry["remediation"] = str(check["remediation"])
        if outcome == "silenced":  # a known issue: no alert, and its spell waits for the end
            return []
        events = []

        def event(kind: str, text: str) -> None:
            line = redact.scrub(" ".join(f"{name} ({condition}): {text}".split()))
            events.append(Event(kind, name, condition, line, _iso(now)))

        if outcome in BAD and not was_bad:
            entry["bad"], entry["first_failure"] = True, _iso(now)
            event("unhealthy", f"unhealthy: {check.get('failure') or outcome}")
        if outcome == "held" and not entry["held"]:
            event("held", f"{check.get('fix_result') or 'held'}".removeprefix("not run: "))
        if outcome in BAD + GOOD:  # an unknown run says nothing about the hold
            entry["held"] = outcome == "held"
        if outcome == "healed" or (outcome in GOOD and was_bad):
            entry["heals"] = [*entry["heals"], _iso(now)]
            entry["last_heal"] = _iso(now)
            started = _when(entry["first_failure"]) if was_bad else None
            took = (now - started).total_seconds() if started else check.get("duration_seconds")
            entry["time_to_heal_seconds"] = float(took) if isinstance(took, (int, float)) else None
        if outcome in GOOD and was_bad:
            entry["bad"], entry["first_failure"] = False, None
            event("recovered", f"recovered ({outcome})")
        alerted = _when(entry["flapping_alerted"])
        if len(entry["heals"]) >= max_attempts and (
            alerted is None or now - alerted >= timedelta(minutes=window)
        ):
            entry["flapping_alerted"] = _iso(now)
            event(
                "flapping", f"flapping: broke and healed {len(entry['heals'])}× in {window:g} min"
            )
        return events

    def history(self) -> dict[str, dict]:
        """Each check's story (summary.json's names), as metrics and the history page read it."""
        result = {}
        for name, entry in self.checks.items():
            fix = self.fixes.get(entry.get("remediation") or "", {})
            result[name] = {
                "condition": entry.get("condition", ""),
                "outcome": entry.get("outcome"),
                "first_failure": entry["first_failure"],
                "last_heal": entry["last_heal"],
                "heals": len(entry["heals"]),
                "attempts": len(fix.get("attempts", [])),
                "last_result": fix.get("last_result"),
                "time_to_heal_seconds": entry["time_to_heal_seconds"],
            }
        return result

    def remediation_counts(self) -> dict[str, dict[str, int]]:
        """How often each fix ran, by result, since the store began."""
        return {fix: dict(counts) for fix, counts in self.counts.items()}


# -- reading and writing safely ------------------------------------------------------------


@contextlib.contextmanager
def _folder(path: Path, *, create: bool) -> Iterator[int]:
    """The state file's folder, opened without following a link, refused when another user
    could write to it (StateError); FileNotFoundError when it is missing and not created."""
    if create:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StateError(f"its folder cannot be opened safely: {exc.strerror}") from None
    try:
        problem = lock._unsafe(os.fstat(folder), owners={0, os.geteuid()})
        if problem:
            raise StateError(f"its folder {path.parent} {problem}")
        yield folder
    finally:
        os.close(folder)


def _read(path: Path) -> bytes | None:
    """The file's bytes, None when there is none; what is not a plain file of ours of a sane
    size is set aside (StateError)."""
    try:
        with _folder(path, create=False) as folder:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            try:
                fd = os.open(path.name, flags, dir_fd=folder)
            except FileNotFoundError:
                return None
            except OSError as exc:
                why = "is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
                raise StateError(_set_aside(path, f"{why} (not followed)", folder)) from None
            try:
                info = os.fstat(fd)
                problem = _foreign(info)
                if problem:
                    raise StateError(_set_aside(path, problem, folder))
                return os.read(fd, MAX_BYTES + 1)
            finally:
                os.close(fd)
    except FileNotFoundError:
        return None


def _foreign(info: os.stat_result) -> str | None:
    if not stat.S_ISREG(info.st_mode):
        return "is not a plain file"
    if info.st_uid != os.geteuid():
        return f"belongs to uid {info.st_uid}, not to uid {os.geteuid()}"
    if info.st_nlink != 1:
        return f"has {info.st_nlink} names (hard links)"
    if info.st_size > MAX_BYTES:
        return f"is larger than {MAX_BYTES // (1024 * 1024)} MiB"
    return None


def _set_aside(path: Path, problem: str, folder: int | None = None) -> str:
    """Move the bad file to ``<name>.corrupt`` (a rename: a link moves, never its target) and
    say so; the warning ends in "started afresh" unless the caller adds it."""
    try:
        if folder is None:
            with _folder(path, create=False) as opened:
                os.replace(path.name, f"{path.name}.corrupt", src_dir_fd=opened, dst_dir_fd=opened)
        else:
            os.replace(path.name, f"{path.name}.corrupt", src_dir_fd=folder, dst_dir_fd=folder)
        kept = f"kept as {path.name}.corrupt"
    except (OSError, StateError) as exc:
        kept = f"could not be set aside: {exc}"
    message = f"{problem}; {kept}"
    return message if folder is not None else f"state file {path}: {message}: started afresh"


def _validated(data: Any) -> dict[str, Any]:
    """The file's content when it is ours and well formed; raises ValueError/TypeError/KeyError."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError("no runner-health schema marker")
    if data.get("version") != VERSION:
        raise ValueError(f"schema version {data.get('version')!r}, expected {VERSION}")
    for section in ("checks", "fixes", "remediation_counts", "etags", "probe"):
        if not isinstance(data.setdefault(section, {}), dict):
            raise TypeError(f"{section} is not an object")
    _when(data.get("last_run_at"))
    for entry in data["checks"].values():
        for key in ("first_failure", "last_heal", "flapping_alerted"):
            _when(entry[key])
        entry["heals"] = [_iso(_when(t)) for t in entry["heals"]]
        if not all(isinstance(entry[k], bool) for k in ("held", "bad")):
            raise TypeError("held/bad are not booleans")
        if not isinstance(entry["time_to_heal_seconds"], (int, float, type(None))):
            raise TypeError("time_to_heal_seconds is not a number")
        if not all(isinstance(entry.get(k), (str, type(None))) for k in ("remediation", "outcome")):
            raise TypeError("remediation/outcome are not strings")
    for entry in data["fixes"].values():
        entry["attempts"] = [_iso(_when(t)) for t in entry["attempts"]]
        if entry["last_result"] not in (*RESULTS, None):
            raise ValueError(f"unknown result {entry['last_result']!r}")
    for counts in data["remediation_counts"].values():
        if not all(isinstance(n, int) and r in RESULTS for r, n in counts.items()):
            raise ValueError("remediation counts are not counts of results")
    return data


def _iso(moment: datetime | None) -> str:
    assert moment is not None
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _when(value: object) -> datetime | None:
    """An ISO time the store wrote (aware); None stays None, anything else raises ValueError."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a time")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment


def _within(times: list[str], now: datetime, window_minutes: float) -> list[str]:
    """The times that fall within the window ending now (a clock stepped back keeps them)."""
    start = now - timedelta(minutes=window_minutes)
    return [t for t in times if (moment := _when(t)) is not None and moment > start]


# -- the command line ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``--reset`` lifts every hold (and says which; 6 while a run holds the lock);
    ``--show`` prints the history."""
    from runner_health import config as config_module

    parser = argparse.ArgumentParser(prog="python -m runner_health.state", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--reset", action="store_true", help="lift every hold (forget attempts)")
    action.add_argument("--show", action="store_true", help="print each check's history")
    parser.add_argument("--config", help="config file (default: as `pytest checks` finds it)")
    args = parser.parse_args(argv)
    try:
        settings = config_module.load(config_module.find_config(args.config))
    except config_module.ConfigError as exc:
        print(f"runner-health config: {exc}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    path = (
        settings.state_file
        if settings.state_file.is_absolute()
        else Path.cwd() / settings.state_file
    )
    if args.show:
        store, warnings = Store.open(path)
        print("\n".join([*(f"warning: {w}" for w in warnings), _table(store)]))
        return 0
    try:  # a run in progress would write back the holds it read
        held_lock = lock.take(settings.lock_file, stale_after=math.inf)
    except lock.LockBusy as exc:
        print(f"runner-health: {exc}: try again when it has ended", file=sys.stderr)
        return ExitCode.LOCKED
    except lock.LockUnusable as exc:
        print(f"runner-health lock_file: {exc}", file=sys.stderr)
        return ExitCode.USAGE_ERROR
    try:
        store, warnings = Store.open(path)
        cleared = store.reset_holds()
        store.save()
    except (OSError, StateError) as exc:
        print(f"runner-health: cannot write {path}: {exc}", file=sys.stderr)
        return 1
    finally:
        held_lock.close()
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"cleared the attempts of: {', '.join(cleared)}" if cleared else "nothing was held")
    return 0


def _table(store: Store) -> str:
    """The history as a person reads it: one row per check."""
    columns = ("check", "condition", "last outcome", "failing since", "last heal", "heals",
               "attempts", "last fix result", "time to heal")  # fmt: skip
    rows = [
        (name, h["condition"], h["outcome"] or "-", h["first_failure"] or "-",
         h["last_heal"] or "-", str(h["heals"]), str(h["attempts"]), h["last_result"] or "-",
         "-" if h["time_to_heal_seconds"] is None else f"{h['time_to_heal_seconds']:.0f} s")
        for name, h in sorted(store.history().items())
    ]  # fmt: skip
    if not rows:
        return f"no history yet in {store.path}"
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [columns, *rows]
    )


if __name__ == "__main__":
    sys.exit(main())
