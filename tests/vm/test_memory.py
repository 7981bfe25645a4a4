"""Memory across runs on the real VM (issue 9): a fix that keeps failing is held after its
budget and alerts once per change, a service that keeps breaking is flapping, and a run killed
with SIGKILL plus a corrupt state file leave a working store.

Each test has its own Suite (own state file, a small budget, the recording webhook): the
session suite's memory, which later fault tests rely on, stays untouched. To stay cheap each
run selects only the checks it is about (-k) and the budget is as small as the test allows."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_health.state import SCHEMA, Store
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import RUNNER_DIR, Suite, unit_name
from tests.testbed.vm import TestbedVM
from tests.testbed.webhook import RecordingWebhook

UNHEALTHY, HEALED = 1, 7
DISK_CHECK = "test_disk_headroom[work]"
# A fresh file in _work: free_disk.sh keeps anything changed in the last 5 minutes (a job may
# just have begun), so its fix runs, succeeds, and the disk stays full.
FRESH_FILE = f"{RUNNER_DIR}/_work/new-project/new-project/build.img"


@pytest.fixture
def webhook() -> Iterator[RecordingWebhook]:
    with RecordingWebhook() as hook:
        yield hook


def memory_suite(
    vm: TestbedVM,
    fake: FakeGitHub,
    workdir: Path,
    hook: RecordingWebhook,
    max_attempts: int,
    alerts: str = "",
) -> Suite:
    return Suite(
        vm,
        fake,
        workdir,
        remediation=f"max_attempts = {max_attempts}\nwindow_minutes = 60",
        extra=f'[alerts]\nwebhook_url = "{hook.url}"\nwebhook_timeout_seconds = 2\n{alerts}',
    )


def kinds(hook: RecordingWebhook) -> list[list[str]]:
    """The event kinds of each webhook call."""
    return [[e["kind"] for e in call.get("events", [])] for call in hook.calls]


def test_a_fix_that_keeps_failing_is_held_and_alerts_once(
    healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path, webhook: RecordingWebhook
):
    suite = memory_suite(
        healthy, fake_github, tmp_path, webhook, max_attempts=1, alerts="github_issue = true\n"
    )
    issues_before = len(fake_github.issues())
    filled = healthy.ssh(
        f"sudo -u github-runner sh -c 'mkdir -p {Path(FRESH_FILE).parent} && "
        f"dd if=/dev/zero of={FRESH_FILE} bs=1M 2>&1'",
        check=False,
    )
    assert "No space left on device" in filled.stdout
    try:
        results = []
        for _ in range(3):
            outcome = suite.run("-k", "test_disk_headroom and work")
            assert outcome.returncode == UNHEALTHY, outcome.output
            record = outcome.record(DISK_CHECK)
            results.append((record["outcome"], record["fix_result"]))
        held = ("held", "not run: held: tried 1× in 60 min, last result done")  # noqa: RUF001
        assert results == [("failed", "done"), held, held]
        assert outcome.steps() == ""  # the held fix ran nothing
        assert kinds(webhook) == [["unhealthy"], ["held"]]
        # The runner's issue from the VM: opened on unhealthy, one comment on held, then quiet.
        (issue,) = fake_github.issues()[issues_before:]
        assert issue["state"] == "open" and issue["comments"] == 1, issue
        assert webhook.secret not in outcome.output
    finally:
        healthy.ssh(f"rm -rf {RUNNER_DIR}/_work/new-project")


def test_a_service_that_keeps_breaking_is_flapping(
    healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path, webhook: RecordingWebhook
):
    suite = memory_suite(healthy, fake_github, tmp_path, webhook, max_attempts=2)
    for _ in range(2):
        healthy.ssh(f"systemctl stop {unit_name(healthy)}")
        outcome = suite.run("-k", "test_runner_service_active")
        assert outcome.returncode == HEALED, outcome.output
    assert [e["kind"] for e in outcome.summary["events"]] == ["flapping"]
    assert kinds(webhook) == [["flapping"]]
    assert "flapping: broke and healed 2×" in outcome.output  # noqa: RUF001


def test_a_killed_run_and_a_corrupt_state_file_leave_a_working_store(
    healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path, webhook: RecordingWebhook
):
    suite = memory_suite(healthy, fake_github, tmp_path, webhook, max_attempts=2)
    process, _ = suite.start()
    deadline = time.monotonic() + 60
    while not (suite.lock.exists() and f'"pid": {process.pid},' in suite.lock.read_text()):
        assert time.monotonic() < deadline and process.poll() is None, "the run never started"
        time.sleep(0.1)
    time.sleep(2)  # mid-run: checks are reading the VM
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    suite.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    suite.state_file.write_text('{"schema": "runner-health-state", "version": 1, "checks": {')
    outcome = suite.run()
    assert outcome.returncode == 0, outcome.output
    assert "started afresh" in outcome.output
    assert any("kept as state.json.corrupt" in w for w in outcome.summary["warnings"])
    assert json.loads(suite.state_file.read_text())["schema"] == SCHEMA
    store, warnings = Store.open(suite.state_file)
    assert warnings == [] and store.history()[DISK_CHECK]["outcome"] == "passed"
