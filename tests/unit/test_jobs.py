"""The hung-job reader (runner_health/jobs.py), check and fix (remediations/hung_job.py).

Parsing and judging run on text; the process side runs for real on this machine: a process
named Runner.Listener with a Runner.Worker child, as the real JobDispatcher starts one, read
by the product's own ps command and signalled by its own kill command.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from remediations.hung_job import kill_hung
from runner_health import jobs
from runner_health.config import Settings, load
from runner_health.github import GitHubError, GitHubUnavailable, NoToken
from runner_health.observe import CannotObserve
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationRefused, Steps
from runner_health.targets import run, target

CHECK = importlib.import_module("checks.test_hung_job").test_no_hung_job
NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc)
JOB_ID = 51725241954
REPO = "acme/kernel-ci"
RUNNER_NAME = "assay-bpf-runner"  # settings_for's runner.name


def dump(
    name: Any = "kernel-matrix (6.1)",
    check_run_id: Any = JOB_ID,
    repository: Any = REPO,
    extra: str = "",
) -> str:
    """A Worker log's head as the real Worker writes it (Worker.cs "Job message:", then the
    AgentJobRequestMessage as indented camelCase JSON; context data in the compact
    PipelineContextData form, numbers as doubles)."""
    message = {
        "messageType": "PipelineAgentJobRequest",
        "plan": {"planId": "5b0d3c1e-0000-4000-8000-000000000001"},
        "jobId": "0f3c5e2a-6b7d-4c1e-9a8f-2d4b6c8e0a1f",
        "jobDisplayName": name,
        "jobName": "kernel-matrix",
        "requestId": 4711,
        "contextData": {
            "github": {"t": 2, "d": [{"k": "repository", "v": repository}]},
            # a workflow_dispatch input can be called anything: only job.check_run_id counts
            "inputs": {"t": 2, "d": [{"k": "check_run_id", "v": 1.0}]},
            "job": {"t": 2, "d": [{"k": "check_run_id", "v": check_run_id}]},
        },
    }
    body = json.dumps(message, indent=2)
    return (
        "[2026-11-29 05:12:34Z INFO Worker] Version: 2.334.0\n"
        "[2026-11-29 05:12:35Z INFO Worker] Message received.\n"
        f"[2026-11-29 05:12:35Z INFO Worker] Job message:\n {body}\n"
        f"{extra}"
        "[2026-11-29 05:12:35Z INFO JobRunner] Job ID 0f3c5e2a-6b7d-4c1e-9a8f-2d4b6c8e0a1f\n"
    )


# -- the job in a Worker log -------------------------------------------------------------


def test_the_job_is_named_by_its_worker_logs_job_message():
    job = jobs.parse_job("Worker_20261129-051234-utc.log", dump(check_run_id=float(JOB_ID)))
    assert job == jobs.Job("Worker_20261129-051234-utc.log", "kernel-matrix (6.1)", JOB_ID, REPO)


def test_a_hostile_job_name_is_shown_printable_and_short():
    job = jobs.parse_job("w", dump(name="evil\x1b[2J\nname\u2028" + "x" * 500))
    assert job.name == "evil?[2J?name?" + "x" * 86


@pytest.mark.parametrize(
    "value", ["51725241954", -1, 0, True, 1.5, 2.0**60, float("nan"), None, {"t": 4}]
)
def test_a_job_id_that_is_no_rest_id_is_none(value):
    assert jobs.parse_job("w", dump(check_run_id=value)).id is None


@pytest.mark.parametrize("value", ["../../orgs/x", "a/b/c", "a b/c", 7, "x" * 101 + "/y"])
def test_a_repository_that_is_no_owner_slash_repo_is_none(value):
    assert jobs.parse_job("w", dump(repository=value)).repository is None


def test_a_dump_cut_short_names_nothing():
    text = dump()
    job = jobs.parse_job("w", text[: len(text) // 2])
    assert job == jobs.Job("w")


def test_only_the_first_job_message_counts():
    later = dump(name="forged", check_run_id=1.0).split("\n", 2)[2]  # a job echoing one later
    assert jobs.parse_job("w", dump(extra=later)).name == "kernel-matrix (6.1)"


def test_a_stand_in_style_line_names_no_job():
    text = "[2026-11-29 05:12:34Z INFO Worker] Job message received: job 42 (build)\n"
    assert jobs.parse_job("w", text) == jobs.Job("w")


def test_the_workers_log_is_the_first_opened_within_a_minute_of_its_start():
    worker = process(age=600)  # started 11:50:00
    logs = {
        "Worker_20261129-114957-utc.log": 0.0,  # started 11:49:57: an earlier job's
        "Worker_20261129-115001-utc.log": 0.0,  # its own (ps's age rounds down)
        "Worker_20261129-115030-utc.log": 0.0,  # one a job wrote since
        "Worker_20261199-999999-utc.log": 0.0,  # no time at all
    }
    assert jobs.log_of(worker, NOW, logs) == "Worker_20261129-115001-utc.log"
    del logs["Worker_20261129-115001-utc.log"], logs["Worker_20261129-115030-utc.log"]
    assert jobs.log_of(worker, NOW, logs) is None  # never an earlier job's


# -- the processes ----------------------------------------------------------------------------


def process(pid: int = 4242, ppid: int = 1000, age: int = 60, user: str = "github-runner"):
    return jobs.Process(pid, ppid, user, age, "Sun Nov 29 11:50:00 2026", jobs.WORKER, "w")


PS = (
    " 1000     1 github-runner      7260 Sun Nov 29 10:00:00 2026 Runner.Listener /opt/actions-runner/bin/Runner.Listener run --startuptype service\n"
    " 4242  1000 github-runner       300 Sun Nov  1 11:55:00 2026 Runner.Worker   /opt/actions-runner/bin/Runner.Worker spawnclient 105 108\n"
    " 4300  4242 github-runner        10 Sun Nov 29 11:59:50 2026 Runner.Worker   python3 -c fake\n"
    " 4400     1 root                 10 Sun Nov 29 11:59:50 2026 Runner.Worker   /usr/bin/whatever\n"
    "garbage line\n"
    "now 1795953600\n"
)


def test_workers_are_the_listeners_children_as_the_runner_user():
    processes, now = jobs.parse(PS)
    assert now == datetime.fromtimestamp(1795953600, timezone.utc)
    (worker,) = jobs.workers(processes, "github-runner")
    assert worker == jobs.Process(
        4242,
        1000,
        "github-runner",
        300,
        "Sun Nov 1 11:55:00 2026",
        "Runner.Worker",
        "/opt/actions-runner/bin/Runner.Worker spawnclient 105 108",
    )


def test_workers_no_listener_started_are_orphans_unless_a_job_runs():
    processes, _ = jobs.parse(PS)
    assert jobs.orphans(processes, "github-runner") == []  # 4300 may be the job's own process
    without_listener, _ = jobs.parse(PS.split("\n", 1)[1])  # the listener died
    orphans = jobs.orphans(without_listener, "github-runner")
    assert [p.pid for p in orphans] == [4242, 4300]  # never root's 4400
    assert jobs.workers(without_listener, "github-runner") == []


def test_no_clock_line_is_unobserved():
    with pytest.raises(CannotObserve, match="ps/date"):
        jobs.parse(PS.replace("now 1795953600\n", ""))


# -- the check and the fix on this machine ------------------------------------------------------

# A Runner.Listener that starts a Runner.Worker child (PR_SET_NAME, as the real apphosts are
# named) and reaps it; the child ignores SIGTERM when asked to (a hung one).
LISTENER = """
import ctypes, subprocess, sys
ctypes.CDLL(None).prctl(15, b"Runner.Listener", 0, 0, 0)
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
print(worker.pid, flush=True)
worker.wait()
import time; time.sleep(60)
"""
WORKER = """
import ctypes, signal, time
ctypes.CDLL(None).prctl(15, b"Runner.Worker", 0, 0, 0)
if {stubborn}: signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(120)
"""
ORPHAN = """
import subprocess, sys
child = [sys.executable, "-c", sys.argv[1]]
print(subprocess.Popen(child, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)
"""
USER = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()


class Runner:
    """This machine as the VM: a runner directory, a listener and its Worker."""

    def __init__(self, directory: Path, *, stubborn: bool = False) -> None:
        self.listener = subprocess.Popen(
            [sys.executable, "-c", LISTENER, WORKER.format(stubborn=stubborn)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.listener.stdout is not None
        self.worker = int(self.listener.stdout.readline())
        self.orphans: list[int] = []
        self.host = target("local://")
        self.install = RunnerInstall(self.host, str(directory), USER)
        (directory / "_diag").mkdir(parents=True)
        time.sleep(0.3)  # the child names itself
        started = datetime.now(timezone.utc)
        log = directory / "_diag" / f"Worker_{started:%Y%m%d-%H%M%S}-utc.log"
        log.write_text(dump())

    def alive(self, pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
        return state != "Z"

    @property
    def pids(self) -> set[int]:
        """Its processes still alive (here PID 1 may leave a dead orphan a zombie)."""
        return {p for p in (self.listener.pid, self.worker, *self.orphans) if self.alive(p)}

    def end_job(self) -> None:
        """The listener and its Worker die; orphans run on."""
        for pid in (self.worker, self.listener.pid):
            if self.alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.listener.wait()

    def orphan(self) -> int:
        """A Runner.Worker whose parent exited (as when its listener died): PID 1's, or a
        subreaper's, now."""
        parent = subprocess.run(
            [sys.executable, "-c", ORPHAN, WORKER.format(stubborn=False)],
            capture_output=True,
            text=True,
            check=True,
        )
        self.orphans.append(int(parent.stdout))
        time.sleep(0.3)  # it names itself
        return self.orphans[-1]

    def stop(self) -> None:
        self.end_job()
        for pid in self.orphans:
            if self.alive(pid):
                os.kill(pid, signal.SIGKILL)
        for pid in self.orphans:
            while self.alive(pid):  # PID 1 reaps it
                time.sleep(0.05)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runner]:
    started = Runner(tmp_path / "actions-runner")
    only_ours(monkeypatch, started)
    yield started
    started.stop()


def only_ours(monkeypatch: pytest.MonkeyPatch, runner: Runner) -> None:
    """Other tests on this machine may run Runner.Listeners and Workers too: only this one's
    count."""
    parse = jobs.parse

    def ours(output: str) -> tuple[list[jobs.Process], datetime]:
        found, now = parse(output)
        return [p for p in found if p.pid in runner.pids], now

    monkeypatch.setattr(jobs, "parse", ours)


class GitHubSays:
    """GitHub's job, or the error it raises."""

    def __init__(self, answer: dict[str, Any] | Exception, repositories: tuple = ()):
        self.answer = answer
        self.repositories = repositories  # an organisation runner's; none: acme/kernel-ci's
        self.settings = SimpleNamespace(repository=None if repositories else REPO)
        self.asked: list[tuple[str, int]] = []

    def queue_repositories(self) -> tuple[str, ...]:
        return self.repositories or (REPO,)

    def job(self, repository: str, job_id: int) -> dict[str, Any]:
        self.asked.append((repository, job_id))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def iso(seconds_ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def completed(
    seconds_ago: float = 120, conclusion: str = "cancelled", **job: Any
) -> dict[str, Any]:
    """GitHub's job, completed ``seconds_ago``; by default this runner's, started with the
    fixture's Worker (GitHub's runner_name and started_at: REST "Get a job for a workflow
    run")."""
    return {
        "id": JOB_ID,
        "status": "completed",
        "conclusion": conclusion,
        "completed_at": iso(seconds_ago),
        "runner_name": RUNNER_NAME,
        "started_at": iso(0),
        **job,
    }


def in_progress() -> dict[str, Any]:
    return {**completed(), "status": "in_progress", "conclusion": None, "completed_at": None}


def settings_for(tmp_path: Path, remediation: str = "", thresholds: str = "") -> Settings:
    config = tmp_path / "runner-health.toml"
    config.write_text(
        'target = "local://"\n[github]\nrepository = "acme/kernel-ci"\n'
        f'[runner]\nname = "{RUNNER_NAME}"\n'
        f"[remediation]\n{remediation}\n[thresholds]\n{thresholds}\n"
    )
    return load(config)


def check(runner: Runner, github: Any, settings: Settings) -> None:
    CHECK(runner.host, runner.install, github, settings, lambda *_: None)


def test_a_worker_alive_after_github_ended_its_job_fails_naming_it(runner, tmp_path):
    github = GitHubSays(completed())
    with pytest.raises(AssertionError) as failed:
        check(runner, github, settings_for(tmp_path))
    assert github.asked == [(REPO, JOB_ID)]
    assert (
        f"hung job: Runner.Worker pid {runner.worker} has run 0 h 0 min; job "
        f"'kernel-matrix (6.1)' (id {JOB_ID}, {REPO}), _diag/Worker_"
    ) in str(failed.value)
    assert "GitHub: completed (cancelled) at " in str(failed.value)


def test_a_job_still_running_at_github_passes(runner, tmp_path):
    check(runner, GitHubSays(in_progress()), settings_for(tmp_path))


def test_a_job_that_ended_moments_ago_passes_while_its_worker_finishes(runner, tmp_path):
    check(runner, GitHubSays(completed(seconds_ago=5)), settings_for(tmp_path))


def test_a_worker_over_the_age_limit_fails_whatever_github_says(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "assess", old(jobs.assess))
    with pytest.raises(
        AssertionError, match=r"has run 6 h 1 min \(over thresholds.max_job_minutes = 360\)"
    ):
        check(runner, GitHubSays(GitHubUnavailable("down")), settings_for(tmp_path))


def old(assess: Any) -> Any:
    """assess, with each Worker 361 minutes old."""

    def aged(*args: Any) -> list[jobs.Finding]:
        return [
            replace(f, worker=replace(f.worker, age_seconds=361 * 60), too_old=True)
            for f in assess(*args)
        ]

    return aged


def test_github_unavailable_is_unknown_while_the_worker_is_young(runner, tmp_path):
    with pytest.raises(CannotObserve, match="GitHub could not be asked: down"):
        check(runner, GitHubSays(GitHubUnavailable("down")), settings_for(tmp_path))


def test_without_a_token_only_the_age_counts(runner, tmp_path):
    check(runner, GitHubSays(NoToken()), settings_for(tmp_path))


def test_an_org_runner_asks_only_about_its_own_repositories(runner, tmp_path):
    github = GitHubSays(completed(), repositories=("acme/other",))
    check(runner, github, settings_for(tmp_path))  # the log's acme/kernel-ci is not listed
    assert github.asked == []
    listed = GitHubSays(completed(), repositories=("acme/other", REPO))
    with pytest.raises(AssertionError, match="hung job"):
        check(runner, listed, settings_for(tmp_path))
    assert listed.asked == [(REPO, JOB_ID)]


def steps_here(dry_run: bool = False) -> Steps:
    return Steps(target("local://"), dry_run=dry_run, echo=lambda line: None, timeout=120)


def test_the_fix_kills_the_worker_of_a_job_github_ended_never_the_listener(
    runner, tmp_path, monkeypatch
):
    steps = steps_here()
    settings = settings_for(tmp_path, "kill_hung_worker = true")
    with pytest.raises(AssertionError):
        check(runner, GitHubSays(completed()), settings)
    monkeypatch.setattr(RunnerInstall, "worker_logs", None)  # the check read the log: not again
    kill_hung(runner.host, runner.install, GitHubSays(completed()), settings, steps)
    assert not runner.alive(runner.worker)
    assert runner.alive(runner.listener.pid)
    assert "ended after SIGTERM" in steps.text
    assert f"GitHub shows its job over: Runner.Worker pid {runner.worker}" in steps.text


# GitHub's answers are made when the test runs: "completed 5 s ago" must not age in collection.
@pytest.mark.parametrize(
    ("github", "why"),
    [
        (lambda: GitHubSays(in_progress()), "GitHub shows its job in_progress .*: reported only"),
        (lambda: GitHubSays(completed(seconds_ago=5)), "its job completed under 45 s ago"),
        (
            lambda: GitHubSays(GitHubUnavailable("GitHub API unreachable")),
            "GitHub could not be asked",
        ),
        (lambda: GitHubSays(GitHubError("404 Not Found")), "GitHub could not be asked"),
        (
            lambda: GitHubSays(completed(), ("acme/other", "acme/more")),
            "its Worker log gives no job id this runner's",
        ),
        (
            lambda: GitHubSays(completed(runner_name="other-runner")),
            "the Worker log names a job that isn't this Worker's \\(GitHub gives it to runner "
            "'other-runner', not 'assay-bpf-runner'\\)",
        ),
    ],
)
def test_the_fix_refuses_unless_github_shows_the_job_over(
    runner, tmp_path, monkeypatch, github, why
):
    monkeypatch.setattr(jobs, "assess", old(jobs.assess))  # hung by its age alone
    steps = steps_here()
    settings = settings_for(tmp_path, "kill_hung_worker = true")
    with pytest.raises(RemediationRefused, match=f"pid {runner.worker} not killed: {why}"):
        kill_hung(runner.host, runner.install, github(), settings, steps)
    assert runner.alive(runner.worker)
    assert steps.lines == []


# A job can write _diag: earlier, it left a log named for a later Worker's start, naming a job
# GitHub has completed (its own, or another runner's).
@pytest.mark.parametrize(
    ("job", "why"),
    [
        ({"runner_name": "other-runner"}, "GitHub gives it to runner 'other-runner'"),
        ({"runner_name": None}, "GitHub gives it to no runner"),
        ({"started_at": iso(3 * 3600)}, "GitHub started it at .*, this Worker at "),
        ({"started_at": iso(-120)}, "GitHub started it at "),
        ({"started_at": None}, "GitHub gives no start time of it"),
    ],
)
def test_a_log_naming_a_job_that_is_not_this_workers_is_reported_never_killed(
    runner, tmp_path, job, why
):
    settings = settings_for(tmp_path, "kill_hung_worker = true")
    with pytest.raises(CannotObserve) as unknown:
        check(runner, GitHubSays(completed(**job)), settings)
    assert f"Runner.Worker pid {runner.worker} has run 0 h 0 min; job 'kernel-matrix (6.1)'" in (
        str(unknown.value)
    )
    assert "; the Worker log names a job that isn't this Worker's (" in str(unknown.value)
    assert re.search(why, str(unknown.value)), unknown.value
    steps = steps_here()
    kill_hung(runner.host, runner.install, GitHubSays(completed(**job)), settings, steps)
    assert runner.alive(runner.worker)
    assert steps.text == "no hung Runner.Worker any more"


def test_a_job_started_with_the_worker_on_this_runner_is_its_own():
    started = NOW - timedelta(minutes=10)
    job = {"runner_name": RUNNER_NAME, "started_at": "2026-11-29T11:50:59Z"}
    assert jobs.not_its(job, RUNNER_NAME, started) is None
    assert jobs.not_its({**job, "started_at": "2026-11-29T11:48:50Z"}, RUNNER_NAME, started)


def test_an_orphaned_worker_is_reported_never_killed(runner, tmp_path):
    orphan = runner.orphan()
    opted_in = settings_for(tmp_path, "kill_hung_worker = true")
    check(runner, GitHubSays(in_progress()), opted_in)  # a job runs: may be its own process
    runner.end_job()  # the listener and its Worker are gone; the orphan runs on
    with pytest.raises(AssertionError) as failed:
        check(runner, GitHubSays(completed()), opted_in)
    assert (
        f"hung job: Runner.Worker pid {orphan} has run 0 h 0 min; orphaned: its parent pid "
    ) in str(failed.value)
    assert f"then: sudo kill -TERM {orphan}" in str(failed.value)
    for settings in (opted_in, settings_for(tmp_path)):
        steps = steps_here()
        with pytest.raises(RemediationRefused, match=f"pid {orphan} not killed: orphaned"):
            kill_hung(runner.host, runner.install, GitHubSays(completed()), settings, steps)
        assert runner.alive(orphan) and steps.lines == []


def test_the_fix_is_opt_in_and_prints_the_command(runner, tmp_path):
    steps = steps_here()
    with pytest.raises(RemediationRefused) as refused:
        kill_hung(
            runner.host, runner.install, GitHubSays(completed()), settings_for(tmp_path), steps
        )
    assert "set remediation.kill_hung_worker = true" in str(refused.value)
    assert f"sudo kill -TERM {runner.worker} (then -KILL after 45 s)" in str(refused.value)
    assert runner.alive(runner.worker) and steps.lines == []


def test_a_dry_run_says_what_it_would_kill(runner, tmp_path):
    steps = steps_here(dry_run=True)
    settings = settings_for(tmp_path, "kill_hung_worker = true")
    kill_hung(runner.host, runner.install, GitHubSays(completed()), settings, steps)
    assert runner.alive(runner.worker)
    assert steps.text.startswith(f"would run: seen() {{ LC_ALL=C ps -p {runner.worker} ")


# -- the kill command itself -----------------------------------------------------------------------


def worker_of(runner: Runner) -> jobs.Process:
    (worker,) = jobs.read_workers(runner.host, USER)[0]
    return worker


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace(tmp_path, monkeypatch):
    stubborn = Runner(tmp_path / "actions-runner", stubborn=True)
    only_ours(monkeypatch, stubborn)
    try:
        result = run(stubborn.host, jobs.kill_command(worker_of(stubborn), grace=1), timeout=30)
        assert (result.rc, result.stdout.strip()) == (0, "killed (SIGKILL after 1 s)")
        assert not stubborn.alive(stubborn.worker) and stubborn.alive(stubborn.listener.pid)
    finally:
        stubborn.stop()


@pytest.mark.parametrize("field", ["start", "args", "comm", "ppid", "user"])
def test_a_pid_that_is_another_process_now_is_not_signalled(runner, field):
    worker = worker_of(runner)
    changed = {
        "start": "Sun Nov 29 00:00:00 2026",
        "args": "other",
        "comm": "bash",
        "ppid": 1,
        "user": "nobody",
    }
    other = jobs.Process(**{**worker.__dict__, field: changed[field]})
    result = run(runner.host, jobs.kill_command(other, grace=1), timeout=30)
    assert result.rc == jobs.NOT_THE_SAME, result.stdout
    assert runner.alive(runner.worker)
