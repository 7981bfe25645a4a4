"""OOM kills of the runner, read from the kernel's journal lines (mm/oom_kill.c's formats), and
the job that ran then (its _diag/Worker_*.log); forged and hostile lines never count.

The whole check runs here against fakes: journalctl on PATH prints journal entries as JSON
(as `journalctl -o json` does), the runner's _diag holds Worker logs in the runner's format.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from runner_health import oom, vm_facts
from runner_health.observe import CannotObserve
from runner_health.oom import Kill
from runner_health.runner import RunnerInstall
from runner_health.targets import target
from tests.scripts.conftest import write_fake

UNIT = "actions.runner.acme-kernel-ci.assay-bpf-runner.service"
CHECK = importlib.import_module("checks.test_oom").test_no_oom_kills_since_the_last_run
AT = datetime(2026, 11, 29, 5, 13, 2, tzinfo=timezone.utc)
# Verbatim what Linux 6.1 (Debian 12, the test bed's VM) printed for tests/vm/test_oom.py's
# memory hog named Runner.Worker killed under a cgroup limit; and the lines for a job's compiler
# killed in the runner's unit when the whole VM ran out (mm/oom_kill.c's formats).
SCOPE = "/system.slice/run-r6096a1a0c59344e6be456736a2e4fd2c.scope"
WORKER_CONTEXT = (
    "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
    f"oom_memcg={SCOPE},task_memcg={SCOPE},task=Runner.Worker,pid=823,uid=1001"
)
WORKER_KILLED = (
    "Memory cgroup out of memory: Killed process 823 (Runner.Worker) total-vm:276236kB, "
    "anon-rss:32196kB, file-rss:5680kB, shmem-rss:0kB, UID:1001 pgtables:128kB oom_score_adj:0"
)
JOB_CONTEXT = (
    "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,"
    f"task_memcg=/system.slice/{UNIT},task=cc1plus,pid=5151,uid=1001"
)
JOB_KILLED = (
    "Out of memory: Killed process 5151 (cc1plus) total-vm:1830412kB, anon-rss:1702144kB, "
    "file-rss:1024kB, shmem-rss:0kB, UID:1001 pgtables:3512kB oom_score_adj:0"
)


def entry(message: object, at: datetime = AT, transport: str = "kernel") -> str:
    """One line of `journalctl -o json --output-fields=MESSAGE,_TRANSPORT`."""
    micros = int(at.timestamp() * 1e6)
    return json.dumps(
        {
            "__CURSOR": f"s=0;i={micros}",
            "__REALTIME_TIMESTAMP": str(micros),
            "__MONOTONIC_TIMESTAMP": "91234567",
            "_BOOT_ID": "4f6c0c7e4f2a4b58a0d2c3b5e8f1a9d0",
            "MESSAGE": message,
            "_TRANSPORT": transport,
        },
        separators=(",", ":"),
    )


def output(*lines: str, status: int = 0) -> str:
    return "".join(line + "\n" for line in lines) + f"exit {status}\n"


def test_the_kernels_lines_give_time_process_cause_uid_and_cgroup():
    later = AT + timedelta(minutes=7)
    kills = oom.parse(
        output(
            entry(WORKER_CONTEXT),
            entry(WORKER_KILLED),
            entry(JOB_CONTEXT, later),
            entry(JOB_KILLED, later),
            entry(
                "Out of memory[77]: segfault at 0 ip 0000000000401136 sp 00007ffd5e7c1a60 error 6"
            ),
        )
    )
    assert kills == [
        Kill(AT, 823, "Runner.Worker", "Memory cgroup out of memory", 1001, SCOPE),
        Kill(later, 5151, "cc1plus", "Out of memory", 1001, f"/system.slice/{UNIT}"),
    ]


def test_a_kill_whose_context_line_was_rate_limited_has_no_cgroup():
    (kill,) = oom.parse(output(entry(WORKER_KILLED)))
    assert (kill.process, kill.cgroup) == ("Runner.Worker", None)


def test_a_line_any_user_can_log_never_counts():
    """`logger "Out of memory: Killed process ..."` reaches the journal as syslog, not kernel."""
    forged = [entry(WORKER_CONTEXT, transport="syslog"), entry(WORKER_KILLED, transport="stdout")]
    assert oom.parse(output(*forged)) == []


@pytest.mark.parametrize(
    "message",
    [
        # a process named like the line's start, its segfault message starting with its name
        "oom-kill:constr[77]: segfault at 0 ip 0000000000401136 sp 00007ffd5e7c1a60 error 6",
        # not valid UTF-8: journalctl gives the bytes as a list; never a kill
        list(WORKER_KILLED.encode()),
        WORKER_KILLED + " trailing",
        WORKER_KILLED.replace("(Runner.Worker)", "(Runner.Worker-is-too-long)"),
        "Out of memory: Killed process x (Runner.Worker) total-vm:1kB",
    ],
)
def test_lines_not_in_the_kernels_exact_shape_are_ignored(message):
    assert oom.parse(output(entry(message))) == []


def test_a_process_name_with_brackets_is_taken_whole():
    line = WORKER_KILLED.replace("(Runner.Worker)", "(x) (y)")
    assert oom.parse(output(entry(line)))[0].process == "x) (y"


@pytest.mark.parametrize("text", ["", "garbage\n", output(entry(WORKER_KILLED), status=1)])
def test_no_answer_from_journalctl_is_unknown(text):
    with pytest.raises(CannotObserve, match="journalctl could not read the kernel log"):
        oom.parse(text)


def test_the_runners_kills_are_its_processes_and_its_units_cgroup_since_the_last_run():
    other = Kill(AT, 1, "postgres", "Out of memory", 999, "/system.slice/postgresql.service")
    listener = Kill(AT, 2, "Runner.Listener", "Out of memory", 1001, None)
    job = Kill(AT, 3, "cc1plus", "Out of memory", 1001, f"/system.slice/{UNIT}")
    nested = Kill(AT, 4, "ld", "Out of memory", 1001, f"/system.slice/{UNIT}/sub")
    alike = Kill(AT, 5, "ld", "Out of memory", 1001, f"/system.slice/{UNIT}.d")
    kills = [other, listener, job, nested, alike]
    assert oom.runner_kills(kills, UNIT, None) == [listener, job, nested]
    assert oom.runner_kills(kills, None, None) == [listener]
    assert oom.runner_kills(kills, UNIT, AT) == []  # reported by the run that started at AT
    assert oom.runner_kills(kills, UNIT, AT - timedelta(seconds=1)) == [listener, job, nested]


def test_a_first_run_or_a_long_gap_reads_the_last_day():
    now = AT + timedelta(hours=1)
    assert oom.bound(None, now) is None
    assert oom.bound(AT, now) == AT
    assert oom.bound(now - timedelta(hours=25), now) is None


# -- the job that ran then --------------------------------------------------------------------

JOB_ID = "0f3c5e2a-6b7d-4c1e-9a8f-2d4b6c8e0a1f"


def worker_log(name: str = '"kernel-matrix (6.1)"') -> str:
    """The head of a real Worker log: Worker.cs traces the job message (camelCase, indented)."""
    return (
        "[2026-11-29 05:12:34Z INFO Worker] Version: 2.321.0\n"
        "[2026-11-29 05:12:34Z INFO Worker] Waiting to receive the job message from the channel.\n"
        "[2026-11-29 05:12:35Z INFO Worker] Message received.\n"
        "[2026-11-29 05:12:35Z INFO Worker] Job message:\n"
        " {\n"
        '  "messageType": "PipelineAgentJobRequest",\n'
        '  "plan": {\n'
        '    "jobDisplayName": "not this one",\n'
        '    "planId": "5b0d3c1e-0000-4000-8000-000000000001"\n'
        "  },\n"
        f'  "jobId": "{JOB_ID}",\n'
        f'  "jobDisplayName": {name},\n'
        '  "jobName": "kernel-matrix",\n'
        '  "requestId": 4711\n'
        "}\n"
        f"[2026-11-29 05:12:35Z INFO JobRunner] Job ID {JOB_ID}\n"
    )


def test_the_job_is_named_by_its_worker_log():
    assert oom.job_name(worker_log()) == ("kernel-matrix (6.1)", JOB_ID)


def test_a_hostile_job_name_is_shown_printable_and_short():
    name, _ = oom.job_name(worker_log(json.dumps("evil\x1b[2J\nname" + "x" * 500)))
    assert name == "evil?[2J?name" + "x" * 87


def test_a_log_without_the_job_message_names_no_job():
    stand_in = "[2026-11-29 05:12:34Z INFO Worker] Job message received: job 42 (build)\n"
    assert oom.job_name(stand_in) == (None, None)


def test_the_job_at_a_kill_is_the_last_worker_log_started_before_it():
    logs = {
        "Worker_20261129-050000-utc.log": (AT - timedelta(minutes=12)).timestamp(),
        "Worker_20261129-051234-utc.log": (AT + timedelta(minutes=1)).timestamp(),
        "Worker_20261129-052000-utc.log": (AT + timedelta(minutes=9)).timestamp(),
        "Worker_20261199-999999-utc.log": AT.timestamp(),  # a job made it: no time, no job
    }
    listener = Kill(AT, 2, "Runner.Listener", "Out of memory", 1001, None)
    assert oom.job_at(listener, logs) == (
        "Worker_20261129-051234-utc.log",
        logs["Worker_20261129-051234-utc.log"],
    )
    assert oom.job_at(Kill(AT - timedelta(hours=1), 2, "ld", "", 0, None), logs) is None


def test_a_worker_silent_before_its_kill_is_still_its_job_anything_else_ran_after_it():
    logs = {"Worker_20261129-051234-utc.log": (AT - timedelta(seconds=20)).timestamp()}
    worker = Kill(AT, 823, "Runner.Worker", "Out of memory", 1001, None)
    listener = Kill(AT, 2, "Runner.Listener", "Out of memory", 1001, None)
    assert oom.job_at(worker, logs) == (
        "Worker_20261129-051234-utc.log",
        logs["Worker_20261129-051234-utc.log"],
    )
    assert oom.job_at(listener, logs) is None  # that job was over: no job was running


# -- the check, end to end against fakes ------------------------------------------------------


@pytest.fixture
def vm(tmp_path, monkeypatch) -> tuple[RunnerInstall, Path]:
    """(the runner install on this machine, the journal entries file the fake journalctl
    prints). The unit is installed; its _diag holds one job's Worker log, written at AT + 1 s."""
    runner, systemd, bin_dir = tmp_path / "actions-runner", tmp_path / "systemd", tmp_path / "bin"
    for folder in (runner / "_diag", systemd, bin_dir):
        folder.mkdir(parents=True)
    (runner / ".service").write_text(UNIT + "\n")
    (systemd / UNIT).write_text(f"[Service]\nWorkingDirectory={runner}\n")
    log = runner / "_diag" / "Worker_20261129-051234-utc.log"
    log.write_text(worker_log())
    os.utime(log, (AT.timestamp() + 1, AT.timestamp() + 1))
    journal = tmp_path / "journal.json"
    journal.write_text("")
    write_fake(bin_dir, "journalctl", f'cat {journal}; echo "$*" > {tmp_path}/journalctl.args')
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return RunnerInstall(target("local://"), str(runner), "github-runner", str(systemd)), journal


@pytest.fixture
def check_run_at(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check's clock an hour after AT: it reads the kill "since the last run" only while
    that run is under 24 h before its now, and on the real clock the fixed AT - 5 min fell out
    of that window on 2026-11-30 05:08:02Z."""

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return (AT + timedelta(hours=1)).astimezone(tz)

    monkeypatch.setattr(importlib.import_module("checks.test_oom"), "datetime", Clock)


def test_the_check_names_when_what_and_the_job_once(vm, check_run_at):
    install, journal = vm
    journal.write_text(
        "\n".join(
            [
                entry("Linux version 6.1.0-28-amd64"),
                entry(WORKER_CONTEXT),
                entry(WORKER_KILLED),
                entry(WORKER_KILLED.replace("823", "824"), transport="syslog"),
            ]
        )
        + "\n"
    )
    with pytest.raises(AssertionError) as failed:
        CHECK(install.host, install, AT - timedelta(minutes=5))
    report = str(failed.value)
    assert report.startswith(
        "OOM kills of the runner since the last run (2026-11-29 05:08:02Z): "
        "2026-11-29 05:13:02Z: Runner.Worker (pid 823, uid 1001) killed: Memory cgroup out of "
        f"memory, cgroup {SCOPE}; job 'kernel-matrix (6.1)' "
        f"(jobId {JOB_ID}), its log _diag/Worker_20261129-051234-utc.log last written "
        "2026-11-29 05:13:03Z\n"
    )
    assert "OOMScoreAdjust=" in report and "824" not in report
    CHECK(install.host, install, AT)  # the next run: it started after the kill


def test_the_check_reads_only_the_kernels_transport_of_the_last_day(vm, tmp_path):
    install, _ = vm
    CHECK(install.host, install, None)
    args = (tmp_path / "journalctl.args").read_text().split()
    assert args[:2] == ["_TRANSPORT=kernel", "--since=-24h"]


def test_the_read_is_in_the_batched_read():
    install = RunnerInstall(target("local://"), "/opt/actions-runner", "github-runner")
    settings = SimpleNamespace(runner=SimpleNamespace(directory=install.directory))
    _, root = vm_facts.commands(settings, install)
    assert oom.COMMAND in root


def test_the_command_keeps_the_newest_lines_and_journalctls_status(tmp_path):
    lines = [entry(WORKER_KILLED.replace("823", str(pid))) for pid in range(1000, 1500)]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # a job's process named "Out of memory" segfaulting: its messages start with its name
    lookalikes = [
        entry(f"Out of memory[{pid}]: segfault at 0 ip 0 sp 0 error 6") for pid in range(9)
    ]
    (tmp_path / "journal.json").write_text("\n".join([*lines, *lookalikes, entry("noise")]) + "\n")
    write_fake(bin_dir, "journalctl", f"cat {tmp_path}/journal.json; exit 1")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["sh", "-c", oom.COMMAND], env=env, capture_output=True, text=True, check=True
    )
    shown = done.stdout.splitlines()
    assert len(shown) == oom.MAX_LINES + 1 and shown[-1] == "exit 1"
    assert shown[0] == lines[-oom.MAX_LINES]
