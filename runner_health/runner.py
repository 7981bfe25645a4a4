"""The actions/runner install on the target: its files, processes and logs.

>>> install = RunnerInstall(host, "/opt/actions-runner", "github-runner")
>>> install.unit()
'actions.runner.acme-kernel-ci.assay-bpf-runner.service'
>>> diagnose(install.recent_log())
[Finding(cause='clock', line="The local machine's clock may be out of sync with ...")]
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from testinfra.backend.base import CommandResult
from testinfra.host import Host

from runner_health.steps import RemediationRefused
from runner_health.targets import as_root, run
from runner_health.text import printable

SYSTEMD_DIR = "/etc/systemd/system"
LISTENER = "pgrep -x Runner.Listener"

# svc.sh's unit name: actions.runner.<scope>.<name>.service, where <scope> is owner-repo or
# the org with every character outside [0-9a-zA-Z._-] turned into "-", spaces in the whole
# name become "_", and a name over 150 characters is cut and given a -NNNN suffix
# (actions/runner: ServiceControlManager.CalculateServiceName, SystemdControlManager.cs,
# systemd.svc.sh.template; runner_health.unit.unit_name computes it). Runner names are
# letters, digits, ".", "_" and "-" (config.py).
UNIT_NAME = re.compile(r"actions\.runner\.[0-9A-Za-z._-]+\.[0-9A-Za-z._-]+\.service")
UNIT_NAME_MAX = 150


class UnsafeUnit(RemediationRefused):
    """``.service`` names something other than this runner's installed unit.

    The runner user (so every job) can write ``.service``, and root stops, kills and restarts
    the unit it names: every fix that reads it refuses, and the service check fails.
    """


class NotRegularFile(Exception):
    """A runner file root was to read is a link, a FIFO, a folder...: it is not read."""


# What the runner itself writes, by cause. Each pattern matches from the start of one line in
# one of three forms (see _runner_lines):
#   "printed: <text>"  a line the listener printed: a journal line of the unit as a whole, or
#                      the text of a _diag "[<time> <level> Terminal] WRITE ERROR: <text>" or
#                      "WRITE LINE: <text>" echo (Terminal.cs)
#   "traced: <text>"   the message of any other _diag ERR line (an exception: "<Type>: <message>")
#   "info: <text>"     the message of a _diag INFO line of the listener's own classes (Runner,
#                      MessageListener, BrokerMessageListener: Trace.Info, never printed)
# A job's name only ever follows "<time>: Running job: " or "<time>: Job " (JobDispatcher.cs),
# so it can't start a match (a name holding a line feed could: no line-based log tells that
# apart). Sources: actions/runner MessageListener.cs, BrokerMessageListener.cs, Program.cs,
# ConfigurationManager.cs, Terminal.cs, HostTraceListener.cs (read, not copied).
_UTC = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_OAUTH = r"(?:GitHub\.Services\.OAuth\.)?VssOAuthTokenRequestException: "
CAUSES: dict[str, tuple[str, ...]] = {
    "registration_gone": (
        r"printed: Failed to create a session\. The runner registration has been deleted from the server",
        r"printed: The runner no longer exists on the server\.",
        rf"traced: {_OAUTH}Registration {_GUID} was not found\.$",
    ),
    # A clock error the listener gives up on ends in "Failed to create session. <its message>"
    # (MessageListener.cs:175): the clock's, not an auth failure (matched before auth_failed).
    "clock": (
        r"printed: The local machine's clock may be out of sync with the server time",
        r"printed: Failed to create session\. .*(?:Current server time is|The bearer token "
        r"expired on|is not valid until)",
        r"printed: Stopped retrying OAuth token request exception after",
        rf"printed: {_UTC}: Runner connect error: .*Current server time is",
        rf"traced: {_OAUTH}.*(?:Current server time is|The bearer token expired on|is not valid until)",
    ),
    "deprecated": (
        r"printed: An error occurred: (?:Error: )?(?:Forbidden )?Runner version v[0-9][0-9.]* "
        r"is deprecated and cannot receive messages\.",
    ),
    # Printed every 30 s while it lasts, for up to 240 s, then the listener exits 5 and the
    # unit stops (MessageListener.cs:526-546, RunnerService.js:117-121)
    "session_conflict": (
        r"printed: A session for this runner already exists\.$",
        r"printed: Stop retry on SessionConflictException after retried for ",
    ),
    # GitHub refuses the runner's credentials: only a new registration helps. Token revoked:
    # traced only, exit 0 (MessageListener.cs:143,310, BrokerMessageListener.cs:161,323,
    # Runner.cs:890-893); a non-retriable session error, 401 included: exit 1
    # (MessageListener.cs:175, BrokerMessageListener.cs:212; after the conflict, clock and
    # not-found lines it is their conclusion: see _CONCLUDES); a non-retriable poll error of
    # the broker flow: exit 1 (BrokerMessageListener.cs:353, Program.cs:134-139).
    "auth_failed": (
        r"info: Runner OAuth token has been revoked\. (?:Session creation failed|Unable to pull "
        r"message|Shutting down)\.$",
        r"printed: Failed to create session\. ",
        r"printed: An error occurred: Get next message failed with non-retryable error\.$",
    ),
    # Printed once when a session or poll error starts; the listener keeps retrying on its own
    # and prints "Runner reconnected." when it is back (MessageListener.cs:122,185,293,367,
    # BrokerMessageListener.cs:228,379). A clock skew's text is the clock cause's.
    "network": (
        rf"printed: {_UTC}: Runner connect error: (?!.*Current server time is).*"
        r"Retrying until reconnected\.$",
    ),
    # The listener's own failing write (a job's ENOSPC stays in the job's log and Worker_*.log)
    "disk_full": (
        r"printed: An error occurred: No space left on device",
        r"traced: System\.IO\.IOException: No space left on device",
    ),
    # config.sh time only (its own _diag/Runner_*.log)
    "token_expired": (r"printed: Http response code: NotFound from 'POST ",),
}
_PATTERNS = {cause: re.compile("|".join(f"(?:{p})" for p in ps)) for cause, ps in CAUSES.items()}
# The causes a new registration heals (GitHub no longer knows or accepts the runner's own).
REREGISTER = ("registration_gone", "auth_failed")
# Lines the listener prints right after a cause's own line, about the same exception: "Failed
# to create session. <message>" when it gives up on it, "<time>: Runner connect error:
# <message>. Retrying until reconnected." on its first retry (a conflict is retried for 240 s):
# MessageListener.cs:173-186 after :519-560. They are that cause's, not an auth failure or a
# network error.
_FOLLOWERS = ("auth_failed", "network")
_LEADERS = ("registration_gone", "clock", "session_conflict")
# A line that ends a cause: the listener has its session (Runner.cs:491: also a listener
# runsvc.sh started again in the same unit run, after an exit 2), or is connected again
# (MessageListener.cs:122,293).
_LISTENING = rf"printed: {_UTC}: Listening for Jobs$"
_ENDS = {
    "session_conflict": re.compile(_LISTENING),
    "network": re.compile(rf"{_LISTENING}|printed: {_UTC}: Runner reconnected\.$"),
}
LINE_SHOWN = 300  # characters of a runner log line a finding keeps
_INFO_COMPONENTS = ("Runner", "MessageListener", "BrokerMessageListener")

# "[2026-11-28 10:00:02Z ERR  MessageListener] message": HostTraceListener.WriteHeader
_DIAG_LINE = re.compile(
    rf"\[{_UTC} (?P<level>INFO|WARN|ERR |VERB|CRIT) (?P<component>\w+)\] (?P<message>.*)"
)


def newest_log_command(directory: str) -> str:
    """Shell that sets ``f`` to the newest listener log, ``<directory>/_diag/Runner_<utc>-utc.log``
    (or to nothing): the last listener's lines and its "Version:" trace are there.

    Newest by when it was last written, but a log written while the VM's clock ran ahead keeps
    that future time after the clock is stepped back (the clock check's fix): it would stay
    "newest" for as long as the skew was, and hide every later listener's log. Such a log counts
    only when no other is there. Only regular files named as the runner names them (Program.cs,
    HostTraceListener.cs), in a _diag that is no link: _diag is the runner user's.
    """
    diag = shlex.quote(f"{directory}/_diag")
    listing = (
        f"find {diag} -maxdepth 1 -type f -regextype posix-extended "
        r"-regex '.*/Runner_[0-9]{8}-[0-9]{6}-utc\.log' -printf '%T@ %f\n' 2>/dev/null"
    )
    # oldest first: the last log not past the VM's clock (+ 60 s), else the last one of all
    newest = 'awk -v now="$(date +%s)" \'$1 <= now + 60 { n = $2 } END { if (n == "") n = $2; print n }\''
    return f"n=$({listing} | sort -n | {newest}); f=${{n:+{diag}/$n}}"


# One Worker log per job, named after its UTC start (HostTraceListener.cs _logFileNamingPattern
# "{0}_{1:yyyyMMdd-HHmmss}-utc.log"): only names of this shape count (a job can write any).
WORKER_LOG = re.compile(r"Worker_(\d{8}-\d{6})-utc\.log")


@dataclass(frozen=True)
class RunnerLog:
    """The runner's recent log, kept by source: only the source tells its lines apart."""

    diag: str = ""  # tail of the newest _diag/Runner_*.log
    journal: str = ""  # the unit's last invocation (journalctl -o cat: what the listener printed)


@dataclass(frozen=True)
class Finding:
    cause: str
    line: str  # printable, at most LINE_SHOWN characters: it goes into the report


def _runner_lines(log: RunnerLog) -> Iterator[tuple[str, str, str]]:
    """(source, form, line) for each line the runner wrote, oldest first, in the forms CAUSES
    match: the journal's, then _diag's.

    The journal has no times (-o cat) and the listener echoes each line it prints to _diag
    (Terminal.cs): a printed line's latest place is its echo's, among _diag's own traced and
    info lines. A journal line _diag has no echo of is older than _diag's lines: printed by an
    earlier listener of the same unit run (each writes a new Runner_*.log), or past _diag's tail.

    Lines are split on "\\n" only, as both files are: str.splitlines would also cut at
    separators (U+2028, \\r, ...) a job name may carry. A _diag line without the header is
    the continuation of a multi-line message (a stack trace, a job name) and never counts.
    """
    for line in log.journal.split("\n"):
        yield "journal", "printed: " + line, line
    for line in log.diag.split("\n"):
        match = _DIAG_LINE.fullmatch(line)
        if match is None:
            continue
        level, component, message = match["level"], match["component"], match["message"]
        if component == "Terminal":
            for echo in ("WRITE ERROR: ", "WRITE LINE: "):
                if message.startswith(echo):
                    yield "diag", "printed: " + message.removeprefix(echo), line
        elif level == "ERR ":
            yield "diag", "traced: " + message, line
        elif level == "INFO" and component in _INFO_COMPONENTS:
            yield "diag", "info: " + message, line


def diagnose(log: RunnerLog) -> list[Finding]:
    """Known causes in the runner's log, newest last, each cause once (its latest line)."""
    latest: dict[str, tuple[int, str]] = {}
    before: dict[str, str | None] = {}  # per source: the cause of its last printed finding
    for number, (source, form, line) in enumerate(_runner_lines(log)):
        for cause, pattern in _PATTERNS.items():
            if not pattern.match(form):
                continue
            if cause in _FOLLOWERS and before.get(source) in _LEADERS:
                cause = before[source] or cause
            latest[cause] = (number, line.strip())
            if form.startswith("printed: "):
                before[source] = cause
            break
        else:
            if form.startswith("printed: "):
                before[source] = None
        for cause, end in _ENDS.items():
            if end.match(form):
                latest.pop(cause, None)
    ordered = sorted(latest.items(), key=lambda item: item[1])
    return [Finding(cause, printable(line, LINE_SHOWN)) for cause, (_, line) in ordered]


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

    def _read(self, name: str, kib: int) -> str | None:
        """The first ``kib`` KiB of ``name`` in the runner directory; None when it is missing.

        Root reads it, and the runner user (so every job) can replace it: never through a link
        (root reading, say, /etc/shadow into the report) and never blocking on a FIFO.
        NotRegularFile when it is anything but a regular file.
        """
        result = run(self.host, as_root(self.host, self._read_command(name, kib)), timeout=30)
        if result.rc == 10:
            return None
        if result.rc != 0:
            raise NotRegularFile(f"{self.directory}/{name} is not a regular file (a link?)")
        return _text(result)

    def _read_command(self, name: str, kib: int) -> str:
        """_read's command: exit 10 when missing, 11 when not a regular file."""
        quoted = shlex.quote(f"{self.directory}/{name}")
        return (
            f"[ -e {quoted} ] || [ -L {quoted} ] || exit 10; "
            f"[ -f {quoted} ] && [ ! -L {quoted} ] || exit 11; "
            f"exec dd if={quoted} iflag=nofollow,nonblock bs=1024 count={kib} status=none"
        )

    def registration(self) -> dict[str, Any] | None:
        """The parsed ``.runner`` file: None when the runner is not configured, {} when it is
        not a registration (not JSON, or not a regular file: never read through a link)."""
        try:
            text = self._read(".runner", kib=64)
        except NotRegularFile:
            return {}
        if text is None:
            return None
        try:
            registration = json.loads(text.lstrip("\ufeff"))
        except ValueError:
            return {}
        return registration if isinstance(registration, dict) else {}

    def env(self) -> dict[str, str]:
        """The runner's ``.env`` (KEY=VALUE lines the listener and its jobs get, proxies
        included); {} when it is missing or not a regular file (never read through a link)."""
        try:
            text = self._read(".env", kib=64) or ""
        except NotRegularFile:
            return {}
        pairs = (line.partition("=") for line in text.split("\n"))
        return {key.strip(): value.strip() for key, eq, value in pairs if eq and key.strip()}

    def unit(self) -> str | None:
        """The runner's systemd unit, as ``.service`` names it (svc.sh or unit.install_unit).

        None when ``.service`` is missing or empty: the service is not installed. UnsafeUnit
        unless it names one of installed_units(): a job can write any name in there, and root
        stops, kills and restarts the unit it names.
        """
        path = f"{self.directory}/.service"
        try:
            name = (self._read(".service", kib=1) or "").strip()
        except NotRegularFile as exc:
            raise UnsafeUnit(f"{exc}: refusing to act on it") from None
        if not name:
            return None
        if len(name) > UNIT_NAME_MAX or not UNIT_NAME.fullmatch(name):
            raise UnsafeUnit(
                f"{path} names {name[:UNIT_NAME_MAX]!r}, not a runner unit "
                "(actions.runner.<scope>.<name>.service): refusing to act on it"
            )
        if name not in self.installed_units():
            raise UnsafeUnit(
                f"{path} names {name}, but {self.systemd_dir}/{name} is missing, not a regular "
                f"file (a link?) or not the unit of {self.directory} (WorkingDirectory=): "
                "refusing to act on it"
            )
        return name

    def installed_units(self) -> list[str]:
        """The runner units installed for this runner directory: regular files (never links)
        in the systemd directory, named like a runner unit, with WorkingDirectory= this one."""
        found = run(self.host, as_root(self.host, self._find_units()), timeout=30).stdout
        return _unit_names(found.splitlines())

    def active_units(self) -> list[str]:
        """Those of installed_units() systemd says are active."""
        listed = run(self.host, as_root(self.host, self._active_units_command()), timeout=30)
        states = [line.rpartition(" ") for line in listed.stdout.splitlines()]
        return _unit_names(name for name, _, state in states if state == "active")

    def _find_units(self) -> str:
        """Paths of the runner unit files whose WorkingDirectory= is this directory."""
        working = shlex.quote(f"WorkingDirectory={self.directory}")
        return (
            f"find {shlex.quote(self.systemd_dir)} -maxdepth 1 -type f "
            f"-name 'actions.runner.*.service' -exec grep -l -x -F -e {working} -- {{}} +"
        )

    def _active_units_command(self) -> str:
        """``<unit> <state>`` for each installed unit: a fixed command, so a prefetch has it."""
        return (
            f"{self._find_units()} | while IFS= read -r p; do "
            'printf \'%s %s\\n\' "${p##*/}" "$(systemctl is-active -- "${p##*/}")"; done'
        )

    def unit_file_states(self) -> dict[str, str]:
        """``systemctl is-enabled`` of each of installed_units(): "enabled" starts it at boot;
        "disabled", "masked", "enabled-runtime" (gone at the next boot) ... do not."""
        listed = run(self.host, as_root(self.host, self._unit_file_states_command()), timeout=30)
        states = dict(line.rpartition(" ")[::2] for line in listed.stdout.splitlines())
        return {name: states[name] for name in _unit_names(states)}

    def _unit_file_states_command(self) -> str:
        """``<unit> <is-enabled>`` for each installed unit: a fixed command, so a prefetch has it."""
        return (
            f"{self._find_units()} | while IFS= read -r p; do "
            'printf \'%s %s\\n\' "${p##*/}" "$(systemctl is-enabled -- "${p##*/}")"; done'
        )

    # -x matches the process name (the runner's binaries are called so), not command lines:
    # neither the shell running pgrep nor a `tail ... Runner.Worker` counts.
    def listener_running(self, *, fresh: bool = False) -> bool:
        """``fresh``: asked now, never a prefetch's answer (which stands until another command
        runs: a wait that runs none would see the same answer until it gives up)."""
        return run(self.host, f"{LISTENER} >/dev/null" if fresh else LISTENER, timeout=30).rc == 0

    def job_running(self) -> bool:
        """A Runner.Worker process means a job is running right now."""
        return run(self.host, "pgrep -x Runner.Worker", timeout=30).rc == 0

    def recent_log(self, lines: int = 300) -> RunnerLog:
        """The newest _diag/Runner_*.log tail, and the journal of the unit's last run (if safe)."""
        text = _text(run(self.host, as_root(self.host, self._diag_command(lines)), timeout=30))
        try:
            unit = self.unit()
        except UnsafeUnit:
            unit = None  # not the runner's unit: its journal is not the runner's log
        if unit is None:
            return RunnerLog(diag=text)
        found = run(self.host, as_root(self.host, self._journal_command(lines)), timeout=30)
        named, _, journal = _text(found).partition("\n")
        # the unit the command read is the one unit() accepted (else .service changed between)
        return RunnerLog(diag=text, journal=journal if named == unit else "")

    def _diag_command(self, lines: int) -> str:
        """The last ``lines`` of the newest listener log, from its last 256 KiB: a job can make
        that file any size, and this runs in every pass's prefetch."""
        return (
            f"{newest_log_command(self.directory)}; "
            '[ -z "$f" ] || { s=$(stat -c %s -- "$f") && '
            'dd if="$f" iflag=nofollow,nonblock,skip_bytes skip=$((s > 262144 ? s - 262144 : 0)) '
            f"bs=64K status=none | tail -n {lines}; }}"
        )

    def _journal_command(self, lines: int) -> str:
        """The unit ``.service`` names, on a line, then its last invocation's journal; only
        for one of installed_units() (nothing else is asked of systemd). A fixed command, not
        one per unit name: a prefetch has it before the name is known."""
        return (
            f"u=$({self._read_command('.service', kib=1)}) || exit 0; "
            f"{self._find_units()} | while IFS= read -r p; do "
            '[ "${p##*/}" = "$u" ] || continue; printf \'%s\\n\' "$u"; '
            'i=$(systemctl show -p InvocationID --value -- "$u"); '
            f'[ -z "$i" ] || journalctl _SYSTEMD_INVOCATION_ID="$i" -n {lines} --no-pager -o cat; done'
        )

    def worker_logs(self) -> dict[str, float]:
        """The _diag/Worker_*.log files (regular files only, named as WORKER_LOG) and when each
        was last written (epoch seconds). A ``_diag`` that is a link lists nothing (find does
        not follow it)."""
        diag = shlex.quote(f"{self.directory}/_diag")
        command = (
            f"find {diag} -maxdepth 1 -type f -name 'Worker_*-utc.log' -printf '%T@ %f\\n' "
            "2>/dev/null || true"
        )
        found: dict[str, float] = {}
        for line in _text(run(self.host, as_root(self.host, command), timeout=30)).split("\n"):
            written, _, name = line.partition(" ")
            if WORKER_LOG.fullmatch(name):
                try:
                    found[name] = float(written)
                except ValueError:
                    continue
        return found

    def worker_log(self, name: str, kib: int = 64) -> str:
        """The first ``kib`` KiB of ``_diag/<name>``, a name WORKER_LOG matches; "" when it is
        gone or not a regular file (never read through a link)."""
        if not WORKER_LOG.fullmatch(name):
            raise ValueError(f"not a Worker log name: {name[:100]!r}")
        try:
            return self._read(f"_diag/{name}", kib=kib) or ""
        except NotRegularFile:
            return ""

    def prefetch_commands(self) -> list[str]:
        """What the checks read here, for ``targets.prefetch(..., root=...)``."""
        return [
            self._read_command(".runner", kib=64),
            self._read_command(".service", kib=1),
            self._find_units(),
            self._active_units_command(),
            self._unit_file_states_command(),
            self._diag_command(300),
            self._journal_command(300),
        ]


def _unit_names(paths: Iterable[str]) -> list[str]:
    """The base names that are runner unit names, sorted."""
    names = (path.rsplit("/", 1)[-1] for path in paths)
    return sorted(n for n in names if len(n) <= UNIT_NAME_MAX and UNIT_NAME.fullmatch(n))
