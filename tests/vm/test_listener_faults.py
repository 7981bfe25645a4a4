"""The listener's own failures on the VM, against the faithful stand-in (issue 7, part 2, 1-2):
a session left at GitHub by a killed listener is waited out, never refused as a clone; a
revoked token gets a new registration, not a restart loop; a listener retrying its
connection is left alone, with a network diagnosis in the report.

Each fault is one `pytest checks` run. The knob RUNNER_STANDIN_TIME_SCALE (the runner's .env)
is raised for a test that needs the real windows' order at a length a run can see, and put
back (with a clean restart) after it.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.fake_github.server import ORPHAN_SESSION_SECONDS
from tests.testbed.harness import RUNNER_DIR, RUNNER_NAME, TIME_SCALE, Suite, unit_name, wait_online
from tests.testbed.vm import TestbedVM
from tests.vm.test_faults import UNHEALTHY, assert_healed, listener_pid

CONFLICT = "A session for this runner already exists."


def journal(vm: TestbedVM) -> str:
    """What the runner's unit printed in its current (or last) invocation."""
    unit = shlex.quote(unit_name(vm))
    command = (
        f"i=$(systemctl show -p InvocationID --value {unit}); "
        '[ -z "$i" ] || journalctl _SYSTEMD_INVOCATION_ID="$i" --no-pager -o cat'
    )
    return vm.ssh(command, check=False).stdout


def invocation(vm: TestbedVM) -> str:
    return vm.ssh(f"systemctl show -p InvocationID --value {unit_name(vm)}").stdout.strip()


@contextlib.contextmanager
def time_scale(vm: TestbedVM, fake: FakeGitHub, scale: float) -> Iterator[None]:
    """The runner's windows (and the fake's orphan sessions) at ``scale`` while inside; the
    listener restarted cleanly on the way in and out (it reads .env when it starts)."""
    env = shlex.quote(f"{RUNNER_DIR}/.env")
    unit = shlex.quote(unit_name(vm))

    def use(value: float) -> None:
        vm.ssh(
            f"sed -i 's|^RUNNER_STANDIN_TIME_SCALE=.*|RUNNER_STANDIN_TIME_SCALE={value}|' {env} "
            f"&& systemctl restart {unit}"
        )
        fake.orphan_session_seconds = ORPHAN_SESSION_SECONDS * value
        wait_online(fake)

    use(scale)
    try:
        yield
    finally:
        use(TIME_SCALE)


def test_killed_listener_session_conflict_is_waited_out_not_refused_as_a_clone(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    """SIGKILL (the OOM killer, a careless kill): the listener never deletes its session;
    RunnerService relaunches it after 5 s and the new one gets the conflict for its whole
    window (30 s at this scale), exits 5 and the unit stops. The run meets the conflict: it
    waits for that, starts the listener again, and it gets online once the old session ends
    (60 s after the kill: 300 s real, longer than 5 s + 240 s)."""
    with time_scale(healthy, fake_github, 1 / 8):
        fake_github.orphan_session_seconds = 60
        healthy.ssh(f"kill -KILL {listener_pid(healthy)}")
        fake_github.wait_for(lambda: CONFLICT in journal(healthy), timeout=60)
        fake_github.wait_for(
            lambda: fake_github.runner(RUNNER_NAME)["status"] == "offline", timeout=30
        )
        outcome = suite.run()
        assert_healed(outcome, fake_github, "test_runner_online_at_github", "diagnose_offline")
    steps = outcome.steps()
    assert "waiting it out as the runner does" in steps
    assert "clone" not in steps and "clone" not in outcome.output
    assert "SIGKILL" not in steps  # nothing of ours was killed


def test_revoked_token_is_re_registered_not_restarted(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    """GitHub revokes the runner's OAuth token: the listener traces it to _diag only, exits 0
    and RunnerService stops the unit (Runner.cs:890-893, RunnerService.js:83-87). A restart
    would stop the same way; the service fix re-registers it."""
    unit = unit_name(healthy)
    fake_github.revoke_runner_token(RUNNER_NAME)
    fake_github.wait_for(
        lambda: healthy.ssh(f"systemctl is-active {unit}", check=False).stdout.strip() != "active",
        timeout=60,
    )
    outcome = suite.run()
    assert_healed(outcome, fake_github, "test_runner_service_active", "start_runner_service")
    steps = outcome.steps()
    assert "GitHub refused the runner's credentials" in steps
    assert "Runner OAuth token has been revoked." in steps
    assert "config.sh --unattended --replace" in steps


def test_listener_retrying_its_connection_is_diagnosed_and_left_alone(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    """Every poll fails with a 5xx: the listener prints "Runner connect error ... Retrying
    until reconnected." once and keeps retrying (15-60 s apart, 10 in a row in the broker
    flow before it exits 2: two minutes or more at this scale). No restart: the report has the
    network diagnosis, and the listener reconnects by itself once GitHub answers."""
    with time_scale(healthy, fake_github, 1 / 2):
        pid, started = listener_pid(healthy), invocation(healthy)
        fake_github.fail_polls(RUNNER_NAME, "retryable")
        try:
            fake_github.wait_for(lambda: "Runner connect error" in journal(healthy), timeout=60)
            fake_github.wait_for(
                lambda: fake_github.runner(RUNNER_NAME)["status"] == "offline", timeout=30
            )
            outcome = suite.run()
            assert listener_pid(healthy) == pid and invocation(healthy) == started
        finally:
            fake_github.fail_polls(RUNNER_NAME, None)
        assert outcome.returncode == UNHEALTHY, f"exit {outcome.returncode}"
        record = outcome.record("test_runner_online_at_github")
        assert record["outcome"] == "failed" and record["remediation"] == "diagnose_offline"
        assert record["fix_result"] == "refused"
        steps = outcome.steps()
        assert "retrying its connection to GitHub by itself" in steps
        for line in ("network: DNS ", "network: HTTPS ", "network: the runner's proxy: ",
                     "network: the VM's clock is "):  # fmt: skip
            assert line in steps
        assert "systemctl stop" not in steps and "systemctl start" not in steps
        wait_online(fake_github)  # reconnected by itself
        assert listener_pid(healthy) == pid
