"""OOM kills of the runner since the last run, from the kernel's own log lines.

>>> found = runner_kills(parse(read(target, COMMAND)), unit, since=previous_run_at)
>>> print(describe(found, runner_install))
2026-11-29 05:13:02Z: Runner.Worker (pid 4242, uid 1001) ... during job 'build (6.1)' ...

Only the kernel's journal transport counts (``_TRANSPORT=kernel``): any user can put a line
saying "Out of memory: Killed process 1 (Runner.Listener)" in the journal with ``logger``,
but only the kernel writes /dev/kmsg's lines (root alone may write to it). The lines are
those of mm/oom_kill.c (Linux 5.15 to 6.x; read, not copied):

- ``__oom_kill_process``: ``"%s: Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB,
  file-rss:%lukB, shmem-rss:%lukB, UID:%u pgtables:%lukB oom_score_adj:%hd"``, where %s is
  "Out of memory", "Out of memory (oom_kill_allocating_task)" or "Memory cgroup out of memory"
  (``out_of_memory``). One per killed process, always printed.
- ``dump_oom_victim`` (from ``dump_header``, rate limited: 10 per 5 s): ``"oom-kill:constraint=
  %s,nodemask=%*pbl"``, then cpuset_print_current_mems_allowed's ``,cpuset=...,mems_allowed=...``,
  mem_cgroup_print_oom_context's ``,oom_memcg=<path>`` (or ``,global_oom``) and
  ``,task_memcg=<path>`` (mm/memcontrol.c), and ``",task=%s,pid=%d,uid=%d"``. It names the
  victim's cgroup: that of the runner's unit means a job's process.

A process name (%s above, the task's comm) is at most 15 bytes and the job's to choose: a
job's process may call itself Runner.Worker. That only ever adds a line to a report: nothing
here acts on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from runner_health.observe import CannotObserve
from runner_health.runner import WORKER_LOG, RunnerInstall

RUNNER_PROCESSES = ("Runner.Worker", "Runner.Listener")
WINDOW = timedelta(hours=24)  # how far back the kernel log is read: a first run looks back this far
MAX_LINES = 400  # the newest matching lines kept: two per kill
# The kernel log of the last day, as JSON (one object a line, its fields escaped: nothing in a
# message can start a line of its own); of it only the messages that start like the two lines
# above, up to "Killed process " and "constraint=" (a message that starts with a process
# name, "foo[1]: segfault at ...", can't: a name has at most 15 bytes, so no job floods this
# with lookalikes); the newest MAX_LINES of those, then journalctl's exit status. A fixed
# command, so that the batched read of a healthy pass has it; parse keeps what came after the
# last run. (journalctl's own --grep and --lines do not work together before systemd 253.)
_STARTS = (
    r"(Out of memory( \(oom_kill_allocating_task\))?|Memory cgroup out of memory): Killed process "
    "|oom-kill:constraint="
)
COMMAND = (
    "{ journalctl _TRANSPORT=kernel --since=-24h -o json --output-fields=MESSAGE,_TRANSPORT "
    '--no-pager -q; echo "exit $?"; } '
    f"| grep -a -E -e '^exit [0-9]+$' -e '\"MESSAGE\" ?: ?\"({_STARTS})' "
    f"| tail -n {MAX_LINES + 1}"
)
_KILLED = re.compile(
    r"(?P<why>Out of memory(?: \(oom_kill_allocating_task\))?|Memory cgroup out of memory): "
    r"Killed process (?P<pid>\d+) \((?P<process>.{0,15})\) total-vm:\d+kB, anon-rss:\d+kB, "
    r"file-rss:\d+kB, shmem-rss:\d+kB, UID:(?P<uid>\d+) pgtables:\d+kB oom_score_adj:-?\d+"
)
# The cgroup is the part after the last ",task_memcg=" before the closing task fields (cgroup
# names are made by root: systemd's units, Docker's scopes; the runner user can't make one).
_CONTEXT = re.compile(
    r"oom-kill:constraint=CONSTRAINT_\w+,.*,task_memcg=(?P<cgroup>/.*)"
    r",task=.{0,15},pid=(?P<pid>\d+),uid=\d+"
)
_JOB_NAME = re.compile(r'  "jobDisplayName": (".*"),?')  # Worker.cs "Job message:" dump
_JOB_ID = re.compile(r'  "jobId": "([0-9a-fA-F-]{36})",?')
_SHOWN = 100  # characters of a job name shown


@dataclass(frozen=True)
class Kill:
    at: datetime  # when the journal received the kernel's line (UTC)
    pid: int
    process: str  # the task's comm
    why: str  # "Out of memory" (the whole VM), "Memory cgroup out of memory" (a limit)
    uid: int
    cgroup: str | None  # the victim's memory cgroup, when the rate-limited context line was printed


def parse(output: str) -> list[Kill]:
    """The kills COMMAND's ``output`` lists, oldest first. CannotObserve unless journalctl
    answered (its exit status is the last line)."""
    lines = output.rstrip("\n").split("\n")
    status = re.fullmatch(r"exit (\d+)", lines[-1])
    if status is None or status[1] != "0":
        raise CannotObserve(f"journalctl could not read the kernel log ({lines[-1][:100]!r})")
    kills, cgroups = [], {}  # pid -> the cgroup its context line named
    for line in lines[:-1]:
        entry = _entry(line)
        if entry is None:
            continue
        at, message = entry
        if context := _CONTEXT.fullmatch(message):
            cgroups[int(context["pid"])] = context["cgroup"]
        elif killed := _KILLED.fullmatch(message):
            pid = int(killed["pid"])
            kills.append(
                Kill(
                    at,
                    pid,
                    killed["process"],
                    killed["why"],
                    int(killed["uid"]),
                    cgroups.pop(pid, None),
                )
            )
    return kills


def _entry(line: str) -> tuple[datetime, str] | None:
    """(when, message) of a journal entry of the kernel's transport, else None."""
    try:
        entry = json.loads(line)
        at = datetime.fromtimestamp(int(entry["__REALTIME_TIMESTAMP"]) / 1e6, timezone.utc)
    except (ValueError, TypeError, KeyError, OverflowError):
        return None
    message = entry.get("MESSAGE")
    if entry.get("_TRANSPORT") != "kernel" or not isinstance(message, str):
        return None
    return at, message


def runner_kills(kills: Iterable[Kill], unit: str | None, since: datetime | None) -> list[Kill]:
    """The kills after ``since`` of the runner's processes, by name, or of any process in its
    unit's cgroup (``unit``: the name RunnerInstall.unit() validated; None: by name only)."""
    cgroup = f"/system.slice/{unit}" if unit else None
    return [
        kill
        for kill in kills
        if (since is None or kill.at > since)
        and (
            kill.process in RUNNER_PROCESSES
            or (
                cgroup
                and kill.cgroup
                and (kill.cgroup == cgroup or kill.cgroup.startswith(cgroup + "/"))
            )
        )
    ]


def bound(since: datetime | None, now: datetime) -> datetime | None:
    """``since`` if the kernel log read reaches back that far, else None (a first run, or a
    last run more than WINDOW ago: the report says "in the last 24 h")."""
    return since if since is not None and since > now - WINDOW else None


def job_name(log: str) -> tuple[str | None, str | None]:
    """(display name, job id) from the "Job message:" dump a Worker log starts with (Worker.cs
    traces the job message, camelCase JSON indented by two: top-level keys have two spaces)."""
    name = job_id = None
    for line in log.split("\n"):
        if name is None and (found := _JOB_NAME.fullmatch(line)):
            try:
                value = json.loads(found[1])
            except ValueError:
                continue
            if isinstance(value, str):
                name = "".join(c if c.isprintable() else "?" for c in value)[:_SHOWN]
        elif job_id is None and (found := _JOB_ID.fullmatch(line)):
            job_id = found[1]
    return name, job_id


def job_at(kill: Kill, logs: dict[str, float]) -> tuple[str, float] | None:
    """The Worker log of the job that ran at the kill: the last one started by then (one job
    at a time), with when it was last written; None when none started before it, or when the
    victim is not the Worker and that log ended before the kill (no job was running)."""
    started = [(start, name) for name in logs if (start := _started(name)) is not None]
    before = [(start, name) for start, name in started if start <= kill.at]
    if not before:
        return None
    _, name = max(before)
    written = logs[name]
    if kill.process != "Runner.Worker" and written < kill.at.timestamp():
        return None
    return name, written


def _started(name: str) -> datetime | None:
    """When the Worker log ``name`` was started (its name says, in UTC); None for a name that
    only looks like one (Worker_99999999-000000-utc.log: anyone can make it)."""
    match = WORKER_LOG.fullmatch(name)
    try:
        return datetime.strptime(match[1], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def describe(kills: list[Kill], install: RunnerInstall) -> str:
    """One line a kill (when, what, why, the job then), then what to do about it."""
    logs = install.worker_logs() if kills else {}
    read: dict[str, tuple[str | None, str | None]] = {}
    lines = []
    for kill in kills:
        where = f", cgroup {kill.cgroup}" if kill.cgroup else ""
        line = f"{_utc(kill.at)}: {kill.process} (pid {kill.pid}, uid {kill.uid}) killed: {kill.why}{where}"
        found = job_at(kill, logs)
        if found is None:
            line += "; no job was running"
        else:
            name, written = found
            if name not in read:
                read[name] = job_name(install.worker_log(name))
            title, job_id = read[name]
            line += f"; job {title!r}" if title else "; a job"
            line += f" (jobId {job_id})" if job_id else ""
            line += f", its log _diag/{name} last written {_utc(datetime.fromtimestamp(written, timezone.utc))}"
        lines.append(line)
    return "\n".join(
        [
            *lines,
            "A killed Runner.Worker fails its job, a killed Runner.Listener takes the runner "
            "offline (the service check restarts it), and a job's killed process stops the "
            "runner's whole unit unless it sets OOMPolicy=continue (systemd's default is stop). "
            "Nothing to undo: give the VM more memory "
            "(Multipass: multipass set local.NAME.memory=8G), or let jobs use less (fewer "
            "parallel builds); the runner unit's drop-in from provision/setup.sh "
            "(OOMScoreAdjust=-500, OOMPolicy=continue) makes the kernel kill a job's process "
            "before the runner, and keeps the unit running when it does.",
        ]
    )


def _utc(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
