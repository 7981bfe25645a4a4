"""The runner's Runner.Worker processes, how long each has run, and the job it runs.

>>> workers = read_workers(target, "github-runner")
>>> job = job_of(workers[0], install)
>>> describe(workers[0], job, None)
"Runner.Worker pid 4242 has run 6 h 5 min: job 'build (6.1)' (id 51725241954, acme/kernel)"

A Worker is hung when it is older than ``thresholds.max_job_minutes`` (360 by default: a
job's default ``timeout-minutes`` and the execution limit of GitHub's own runners; a
self-hosted job may set more, up to 5 days: docs.github.com, "Workflow syntax",
jobs.<job_id>.timeout-minutes, and "Usage limits" for self-hosted runners), or alive after
GitHub shows its job completed (field reports: actions/runner#4418, #4312). Only the second
may be killed: GitHub itself says the job is over, and the job it names is this Worker's
(GitHub ran it on this runner, starting with this Worker: not_its).

The listener starts one Worker per job (JobDispatcher.cs: ``Runner.Worker spawnclient``, its
child); the Worker opens ``_diag/Worker_<UTC start>-utc.log`` as it starts
(HostTraceListener.cs) and traces the job message there, indented camelCase JSON after a
"Job message:" line (Worker.cs, ``Trace.Info($"Job message:...")``). In it the job's name is
``jobDisplayName`` and its REST id is the job context's ``check_run_id`` (server-sent
``contextData.job``, a PipelineContextData dictionary ``{"t": 2, "d": [{"k", "v"}]}``:
PipelineContextDataJsonConverter.cs, JobContext.cs CheckRunId; ExecutionContext.cs copies it
into ``job.check_run_id``). The runner user (every job) can write that log and name its
processes as it likes: what the log says is bounded, sanitised and only reported or used to
ask GitHub; a kill re-checks the process itself (kill_command).

A Runner.Worker of the runner user that no Runner.Listener started (its listener died: its
parent is PID 1 or a subreaper) is orphaned: the service and online fixes refuse while it runs
(``pgrep -x Runner.Worker``), and no job of this runner's can be shown over in it. It is
reported, with what to do by hand, and never killed.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from runner_health.github import GitHub, GitHubError, NoToken, parse_time
from runner_health.observe import CannotObserve, read
from runner_health.runner import WORKER_LOG, RunnerInstall

WORKER, LISTENER = "Runner.Worker", "Runner.Listener"
LINE_MAX = 1000  # characters of a process line kept (a job's process may have a huge argv)
# Both runner processes, one a line: pid ppid user age(s) start(5 words) comm args; then the
# VM's clock. A fixed command, so the batched read of a healthy pass has it.
_PS = f"LC_ALL=C ps -C {WORKER},{LISTENER} -ww -o pid=,ppid=,user:32=,etimes=,lstart=,comm=,args="
COMMAND = f'{{ {_PS}; echo "now $(date +%s)"; }} | cut -c1-{LINE_MAX}'
_LINE = re.compile(
    r"\s*(?P<pid>\d+)\s+(?P<ppid>\d+)\s+(?P<user>\S+)\s+(?P<age>\d+)\s+"
    r"(?P<start>\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(?P<comm>\S+)\s*(?P<args>.*)"
)
LOG_KIB = 1024  # of a Worker log read: the job message (with the event payload) comes first
LOG_WINDOW = timedelta(seconds=60)  # a Worker opens its log within this of its start
_CLOCK_SLACK = timedelta(seconds=2)  # ps's age and the log's name are whole seconds
_MESSAGE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ INFO Worker\] Job message:")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")
_SHOWN = 100  # characters of a job name shown
KILL_GRACE_SECONDS = 45  # JobDispatcher.cs gives a cancelled zombie Worker 45 s to finish
ENDED_GRACE = timedelta(seconds=45)  # a Worker may still be finishing up after its job ended
NOT_THE_SAME = 3  # kill_command's exit status: the pid is no longer that Worker


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    user: str
    age_seconds: int
    start: str  # ps's lstart, single-spaced: with comm and args, what tells a reused pid apart
    comm: str
    args: str

    @property
    def identity(self) -> str:
        """What kill_command compares before each signal (the same words, single-spaced)."""
        return f"{self.ppid} {self.user} {self.start} {self.comm} {self.args}"


@dataclass(frozen=True)
class Job:
    """What a Worker's log says it runs: every field from a file any job can write."""

    log: str  # the Worker_*.log name
    name: str | None = None
    id: int | None = None  # the REST job id (= its check run id)
    repository: str | None = None  # "owner/repo" (github.repository in the job message)


def parse(output: str) -> tuple[list[Process], datetime]:
    """The runner processes COMMAND lists, and the VM's clock; CannotObserve without it."""
    lines = output.rstrip("\n").split("\n")
    now = re.fullmatch(r"now (\d+)", lines[-1])
    if now is None:
        raise CannotObserve(f"ps/date did not answer as expected ({lines[-1][:100]!r})")
    found = []
    for line in lines[:-1]:
        match = _LINE.fullmatch(line)
        if match and match["comm"] in (WORKER, LISTENER):
            found.append(
                Process(
                    int(match["pid"]),
                    int(match["ppid"]),
                    match["user"],
                    int(match["age"]),
                    " ".join(match["start"].split()),
                    match["comm"],
                    match["args"].strip(),
                )
            )
    return found, datetime.fromtimestamp(int(now[1]), timezone.utc)


def workers(processes: list[Process], user: str) -> list[Process]:
    """The Runner.Workers a Runner.Listener started, both as the runner user: the runner's
    job processes (a job's own process may call itself Runner.Worker, never the listener's
    child)."""
    listeners = {p.pid for p in processes if p.comm == LISTENER and p.user == user}
    return [p for p in processes if p.comm == WORKER and p.user == user and p.ppid in listeners]


def orphans(processes: list[Process], user: str) -> list[Process]:
    """The runner user's Runner.Workers no Runner.Listener started, while none it started runs
    (while a job runs, they may be that job's own processes)."""
    if workers(processes, user):
        return []
    return [p for p in processes if p.comm == WORKER and p.user == user]


def read_workers(target: Any, user: str) -> tuple[list[Process], list[Process], datetime]:
    """The runner's Workers now, the orphaned ones, and the VM's clock (a reading that fails:
    CannotObserve)."""
    processes, now = parse(read(target, COMMAND))
    return workers(processes, user), orphans(processes, user), now


def log_of(worker: Process, now: datetime, logs: dict[str, float]) -> str | None:
    """The Worker's own log: the first one started within LOG_WINDOW of it (it opens it as it
    starts; a job can add later ones, and older ones are earlier jobs'); None when none is."""
    started = now - timedelta(seconds=worker.age_seconds)
    times = {name: _started(name) for name in logs}
    near = [
        (at, name)
        for name, at in times.items()
        if at is not None and started - _CLOCK_SLACK <= at <= started + LOG_WINDOW
    ]
    return min(near)[1] if near else None


def _started(name: str) -> datetime | None:
    match = WORKER_LOG.fullmatch(name)
    try:
        return datetime.strptime(match[1], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


# The job of each Worker process read in this run: the fix and the check's rerun ask about
# the same process again, and its log need not be found and read again (two round trips to
# the VM). Keyed by the process itself (its identity), never by a pid alone.
_read: dict[tuple[str, int, str], Job | None] = {}


def job_of(worker: Process, now: datetime, install: RunnerInstall) -> Job | None:
    """The job a Worker runs, from its log (None: no log of it)."""
    key = (install.directory, worker.pid, worker.identity)
    if key not in _read:
        name = log_of(worker, now, install.worker_logs())
        text = "" if name is None else install.worker_log(name, kib=LOG_KIB)
        _read[key] = None if name is None else parse_job(name, text)
    return _read[key]


def parse_job(log: str, text: str) -> Job:
    """The job in the first "Job message:" dump of a Worker log; what is missing or malformed
    stays None (the dump cut short by the read's bound is no JSON: nothing is guessed)."""
    lines = text.split("\n")
    start = next((n for n, line in enumerate(lines) if _MESSAGE.fullmatch(line)), None)
    if start is None:
        return Job(log)
    end = next((n for n in range(start + 1, len(lines)) if lines[n] == "}"), None)
    try:
        message = json.loads("\n".join(lines[start + 1 : (end or start) + 1]))
    except (ValueError, RecursionError):
        return Job(log)
    if not isinstance(message, dict):
        return Job(log)
    context = message.get("contextData")
    context = context if isinstance(context, dict) else {}
    name = message.get("jobDisplayName")
    job_id = _context_value(context.get("job"), "check_run_id")
    repository = _context_value(context.get("github"), "repository")
    return Job(
        log,
        _printable(name) if isinstance(name, str) else None,
        _job_id(job_id),
        repository if isinstance(repository, str) and _REPOSITORY.fullmatch(repository) else None,
    )


def _context_value(data: Any, key: str) -> Any:
    """``key``'s value in a serialised PipelineContextData dictionary (``{"t": 2, "d": [...]}``)."""
    if not isinstance(data, dict) or data.get("t") != 2 or not isinstance(data.get("d"), list):
        return None
    return next(
        (p.get("v") for p in data["d"] if isinstance(p, dict) and p.get("k") == key),
        None,
    )


def _job_id(value: Any) -> int | None:
    """A REST id: a positive whole number (NumberContextData is a double: "123.0")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or not 0 < value < 2**53 or value != int(value):
        return None
    return int(value)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:_SHOWN])


def status_of(job: Job | None, github: GitHub) -> dict[str, Any] | None:
    """GitHub's view of the job (``GET .../actions/jobs/{id}``); None when it can't be asked:
    no id in the log, or an organisation runner's job of a repository not in
    github.repositories (a repository runner's jobs are its repository's, whatever the log
    says)."""
    if job is None or job.id is None:
        return None
    repository = github.settings.repository or (
        job.repository if job.repository in github.queue_repositories() else None
    )
    return None if repository is None else github.job(repository, job.id)


def not_its(status: dict[str, Any], runner: str, started: datetime) -> str | None:
    """Why GitHub's job is not the one this Worker runs (None: it is): GitHub gave it to
    another runner, or started it away from the Worker's start (``started``, this machine's
    clock). A job can write a later Worker's log naming a job GitHub has completed: the later
    Worker is not killed for it."""
    name = status.get("runner_name")
    if name != runner:
        given = f"runner {_printable(name)!r}" if isinstance(name, str) else "no runner"
        return f"GitHub gives it to {given}, not {runner!r}"
    try:
        at = parse_time(status.get("started_at")).astimezone(timezone.utc)
    except ValueError:
        return "GitHub gives no start time of it"
    if abs(at - started) > LOG_WINDOW + _CLOCK_SLACK:
        return f"GitHub started it at {at:%Y-%m-%d %H:%M:%SZ}, this Worker at {started:%H:%M:%SZ}"
    return None


def ended(status: dict[str, Any] | None, now: datetime) -> bool:
    """GitHub shows the job completed (any conclusion) more than ENDED_GRACE ago."""
    if status is None or status.get("status") != "completed":
        return False
    try:
        return now - parse_time(status.get("completed_at")) > ENDED_GRACE
    except ValueError:
        return True  # completed, with no usable time: the end is known, the grace is not


@dataclass(frozen=True)
class Finding:
    """One Worker, judged."""

    worker: Process
    job: Job | None
    status: dict[str, Any] | None  # GitHub's job; None: not asked (see job and error)
    error: str | None  # why GitHub could not answer
    too_old: bool  # over max_job_minutes
    ended: bool  # GitHub shows its job over, and it is this Worker's
    foreign: str | None = None  # why the job GitHub answered for is not this Worker's
    orphaned: bool = False  # no Runner.Listener started it

    @property
    def hung(self) -> bool:
        return self.too_old or self.ended or self.orphaned


def assess(
    target: Any, install: RunnerInstall, github: GitHub, runner: str, max_minutes: float
) -> list[Finding]:
    """Every Worker of the runner (named ``runner`` at GitHub), with its job and what GitHub
    says of it (no token, or GitHub unavailable: judged by its age alone, and ``error`` says
    why), and every orphaned one."""
    # GitHub's times against this machine's clock, read before ps: a Worker's start is then
    # at most 1 s (ps's whole seconds) before the one reckoned from it.
    read_at = datetime.now(timezone.utc)
    found, orphaned, now = read_workers(target, install.user)
    findings = []
    for worker in found:
        job = job_of(worker, now, install)
        status = error = foreign = None
        try:
            status = status_of(job, github)
        except NoToken:
            pass  # github.use_token = false: the age is all there is
        except GitHubError as exc:
            error = str(exc)[:300]
        if status is not None:
            foreign = not_its(status, runner, read_at - timedelta(seconds=worker.age_seconds))
        too_old = worker.age_seconds > max_minutes * 60
        over = foreign is None and ended(status, datetime.now(timezone.utc))
        findings.append(Finding(worker, job, status, error, too_old, over, foreign))
    for worker in orphaned:
        too_old = worker.age_seconds > max_minutes * 60
        findings.append(Finding(worker, None, None, None, too_old, False, orphaned=True))
    return findings


def describe(finding: Finding, max_minutes: float) -> str:
    """One line: the Worker, how long it has run, its job and what GitHub says of it."""
    worker, job = finding.worker, finding.job
    minutes = worker.age_seconds // 60
    line = f"{WORKER} pid {worker.pid} has run {minutes // 60} h {minutes % 60} min"
    if finding.too_old:
        line += f" (over thresholds.max_job_minutes = {max_minutes:g})"
    if finding.orphaned:
        return line + (
            f"; orphaned: its parent pid {worker.ppid} is no {LISTENER} (the listener died, or "
            "a job left it): the fixes that wait for no job (service, online) refuse while it "
            f"runs; check it (ps -o pid,ppid,lstart,args -p {worker.pid}), then: "
            f"sudo kill -TERM {worker.pid}"
        )
    if job is None:
        line += "; no Worker log of it in _diag: its job is unknown"
    else:
        what = f"job {job.name!r}" if job.name else "a job its log does not name"
        where = ", ".join(str(x) for x in (job.id, job.repository) if x is not None)
        line += f"; {what}" + (f" (id {where})" if where else "") + f", _diag/{job.log}"
    if finding.foreign:
        line += f"; the Worker log names a job that isn't this Worker's ({finding.foreign})"
    elif finding.status is not None:
        line += f"; GitHub: {_status(finding.status)}"
    elif finding.error:
        line += f"; GitHub could not be asked: {finding.error}"
    return line


def _status(status: dict[str, Any]) -> str:
    said = str(status.get("status"))[:20]
    if status.get("conclusion"):
        said += f" ({str(status['conclusion'])[:20]})"
    if status.get("completed_at"):
        said += f" at {str(status['completed_at'])[:25]}"
    return said


def kill_command(worker: Process, grace: int = KILL_GRACE_SECONDS) -> str:
    """SIGTERM the Worker, then SIGKILL after ``grace`` s, each only while its pid is still
    that process (same parent, user, start time, name and command line): a pid the kernel
    gave to another process is never signalled. Exit NOT_THE_SAME when it is not."""
    same = (
        f"seen() {{ LC_ALL=C ps -p {worker.pid} -ww -o pid=,ppid=,user:32=,etimes=,lstart=,"
        f"comm=,args= | cut -c1-{LINE_MAX} | "
        '{ read -r _ pp u _ a b c d e cm rest; printf "%s" "$pp $u $a $b $c $d $e $cm $rest"; }; }; '
        f"want={shlex.quote(worker.identity)}; "
    )
    return (
        same + f'[ "$(seen)" = "$want" ] || {{ echo "pid {worker.pid} is no longer that {WORKER}"; '
        f"exit {NOT_THE_SAME}; }}; "
        f"kill -TERM {worker.pid}; i=0; "
        f'while [ "$(seen)" = "$want" ] && [ $i -lt {grace} ]; do sleep 1; i=$((i+1)); done; '
        f'[ "$(seen)" = "$want" ] || {{ echo "ended after SIGTERM"; exit 0; }}; '
        f"kill -KILL {worker.pid}; sleep 1; "
        f'[ "$(seen)" != "$want" ] || {{ echo "still there after SIGKILL"; exit 1; }}; '
        f'echo "killed (SIGKILL after {grace} s)"'
    )
