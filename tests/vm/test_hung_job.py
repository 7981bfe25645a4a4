"""A hung job on the real VM (issue 7, part 2 item 8): GitHub shows the job cancelled while its
Runner.Worker runs on. A `pytest checks` run reports it naming the job, and with the default
config refuses to kill it, printing the command; with remediation.kill_hung_worker = true one
run kills that Worker (never the listener) and the runner takes the next job."""

from __future__ import annotations

from pathlib import Path

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import LABELS, RUNNER_DIR, RUNNER_NAME, Suite
from tests.testbed.vm import TestbedVM
from tests.unit.test_jobs import dump

CHECK = "test_no_hung_job"
HEALED, UNHEALTHY = 7, 1
NAME = "kernel-matrix (6.1)"


def pid_of(vm: TestbedVM, name: str) -> str:
    return vm.ssh(f"pgrep -x {name}", check=False).stdout.strip()


def test_a_worker_alive_after_github_cancelled_its_job_is_reported_and_killed_only_opted_in(
    healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path
):
    job = fake_github.queue_job(LABELS[:1], duration=600, name=NAME)
    fake_github.wait_for(lambda: pid_of(healthy, "Runner.Worker"), timeout=60)
    worker, listener = pid_of(healthy, "Runner.Worker"), pid_of(healthy, "Runner.Listener")
    try:
        # The job message as the real Worker traces it at its start (Worker.cs), into the
        # stand-in Worker's own log (the newest): the stand-in does not write it.
        log = fake_github.wait_for(
            lambda: healthy.ssh(f"ls -1t {RUNNER_DIR}/_diag/Worker_*-utc.log | head -n 1").stdout
        ).strip()
        head = dump(NAME, float(job["id"]), f"{fake_github.owner}/{fake_github.repo}")
        healthy.ssh(f"sudo -u github-runner sh -c 'cat >> {log}'", input=head.encode())
        # GitHub gave up on the job a minute ago; nobody told the runner.
        fake_github.finish_job(job["id"], "cancelled", ago=60)

        (tmp_path / "default").mkdir()
        reported = Suite(healthy, fake_github, tmp_path / "default").run("-k", CHECK)
        assert reported.returncode == UNHEALTHY, reported.output
        record = reported.record(CHECK)
        assert record["outcome"] == "failed" and record["fix_result"] == "refused", record
        failure = record["failure_text"]
        assert f"hung job: Runner.Worker pid {worker} has run 0 h " in failure
        assert f"job '{NAME}' (id {job['id']}, " in failure
        assert "GitHub: completed (cancelled)" in failure
        assert f"sudo kill -TERM {worker}" in reported.steps()
        assert pid_of(healthy, "Runner.Worker") == worker

        (tmp_path / "opt-in").mkdir()
        opted = Suite(
            healthy, fake_github, tmp_path / "opt-in", remediation="kill_hung_worker = true"
        )
        healed = opted.run("-k", CHECK)
        assert healed.returncode == HEALED, healed.output
        assert healed.record(CHECK)["outcome"] == "healed"
        assert "ended after SIGTERM" in healed.steps()
        assert pid_of(healthy, "Runner.Worker") == ""
        assert pid_of(healthy, "Runner.Listener") == listener
    finally:
        healthy.ssh(f"kill {worker} 2>/dev/null", check=False)
    # back in service: the runner takes and runs the next job
    following = fake_github.queue_job(LABELS[:1], duration=1)
    done = fake_github.wait_for(
        lambda: (j := fake_github.job(following["id"])) and j["status"] == "completed" and j, 120
    )
    assert done["conclusion"] == "success" and done["runner_name"] == RUNNER_NAME
    assert fake_github.runner(RUNNER_NAME)["status"] == "online"
