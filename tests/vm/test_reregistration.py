"""Re-registration on the VM keeps the runner's environment, and a lost unit file is healed.

config.sh sources env.sh, which rewrites .path with the PATH of whoever runs it (under the
fix: sudo's secure_path) and appends to .env; runsvc.sh makes .path the service's PATH
(actions/runner src/Misc/layoutroot/env.sh, src/Misc/layoutbin/runsvc.sh). One `pytest
checks` run per fault, on the session VM.
"""

from __future__ import annotations

import shlex

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import RUNNER_DIR, RUNNER_NAME, Suite, unit_name
from tests.testbed.vm import TestbedVM

HEALED = 7
CARGO = "/home/github-runner/.cargo/bin"


def as_runner(vm: TestbedVM, command: str) -> str:
    return vm.ssh(f"sudo -u github-runner sh -c {shlex.quote(command)}").stdout


def environment(vm: TestbedVM) -> str:
    """.path and .env, byte for byte (as text), with their modes."""
    return vm.ssh(f"cd {RUNNER_DIR} && stat -c '%n %a %U' .path .env && cat .path .env").stdout


def test_reregistration_keeps_path_and_env(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    """Fails with the old fix: .path became sudo's secure_path (no ~/.cargo/bin)."""
    as_runner(
        healthy,
        f'cd {RUNNER_DIR} && printf "%s:%s\\n" {CARGO} "$(cat .path)" > .path.new && '
        "mv .path.new .path && echo 'CUSTOM_TOOLCHAIN=/opt/toolchains/llvm-19' >> .env && "
        "rm -f svc.sh",  # the product never needs it: config.sh writes it again
    )
    before = environment(healthy)
    assert CARGO in before and "CUSTOM_TOOLCHAIN=" in before
    old_id = fake_github.runner(RUNNER_NAME)["id"]
    fake_github.delete_runner(RUNNER_NAME)

    outcome = suite.run()

    assert outcome.returncode == HEALED, outcome.output[-3000:]
    assert "remediation reconfigure_runner: done" in outcome.html
    assert "keep the runner's .path as it was" in outcome.steps()
    assert environment(healthy) == before
    runner = fake_github.runner(RUNNER_NAME)
    assert runner["status"] == "online" and runner["id"] != old_id
    unit = unit_name(healthy)
    assert healthy.ssh(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"
    listener = healthy.ssh("pgrep -x Runner.Listener").stdout.split()[0]
    service_path = healthy.ssh(f"tr '\\0' '\\n' < /proc/{listener}/environ | grep ^PATH=").stdout
    assert service_path.startswith(f"PATH={CARGO}:")  # runsvc.sh gave the service .path
    assert healthy.ssh(f"test -x {RUNNER_DIR}/svc.sh", check=False).returncode == 0


def test_deleted_unit_file_is_installed_again(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    """rm of the unit file + daemon-reload, .service still naming it: systemd still runs the
    loaded unit, the service check fails ("... is missing"), and the service fix installs the
    unit again, enabled, with the listener running under it."""
    unit = unit_name(healthy)
    path = f"/etc/systemd/system/{unit}"
    healthy.ssh(f"cp {path} /root/saved-unit && rm {path} && systemctl daemon-reload")
    try:
        outcome = suite.run()
        assert outcome.returncode == HEALED, outcome.output[-3000:]
        assert outcome.record("test_runner_service_active")["outcome"] == "healed"
        assert healthy.ssh(f"test -f {path}", check=False).returncode == 0
        assert healthy.ssh(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"
        assert healthy.ssh(f"systemctl is-active {unit}").stdout.strip() == "active"
        assert healthy.ssh("pgrep -x Runner.Listener", check=False).returncode == 0
        assert fake_github.runner(RUNNER_NAME)["status"] == "online"
    finally:  # the next test starts from an installed unit whatever happened here
        healthy.ssh(
            f"[ -f {path} ] || {{ cp /root/saved-unit {path} && systemctl daemon-reload; }}; "
            f"systemctl start {unit}"
        )


def test_runner_2_336_that_removed_its_own_registration_is_registered_again(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    """actions/runner 2.336 (what auto-update brings to the pinned 2.334) cleans up on a poll
    that finds it gone: "The runner no longer exists on the server. Cleaning up local
    configuration.", .runner and .credentials deleted, exit 0, the unit stops (Runner.cs:
    823-880, RunnerService.js). The unit and .service stay: one run registers it again."""
    unit = unit_name(healthy)
    listener = f"{RUNNER_DIR}/bin/Runner.Listener"
    healthy.ssh(
        f"cp -p {listener} /root/Runner.Listener.2.334 && "
        f'sed -i \'s/^VERSION = "2.334.0"$/VERSION = "2.336.0"/\' {listener} && '
        f"grep -q '^VERSION = \"2.336.0\"$' {listener} && systemctl restart {unit}"
    )
    try:
        fake_github.wait_for(lambda: fake_github.runner(RUNNER_NAME)["status"] == "online", 60)
        old_id = fake_github.runner(RUNNER_NAME)["id"]
        fake_github.delete_runner(RUNNER_NAME)
        gone = f"test ! -e {RUNNER_DIR}/.runner && test ! -e {RUNNER_DIR}/.credentials"
        fake_github.wait_for(lambda: healthy.ssh(gone, check=False).returncode == 0, 90)
        said = healthy.ssh(f"journalctl -u {unit} -o cat -n 50", check=False).stdout
        assert "The runner no longer exists on the server." in said
        fake_github.wait_for(
            lambda: (
                healthy.ssh(f"systemctl is-active {unit}", check=False).stdout.strip() != "active"
            ),
            30,
        )

        outcome = suite.run()

        assert outcome.returncode == HEALED, outcome.output[-3000:]
        assert outcome.record("test_runner_is_configured")["outcome"] == "healed"
        runner = fake_github.runner(RUNNER_NAME)
        assert runner["status"] == "online" and runner["id"] != old_id
        assert healthy.ssh(f"test -s {RUNNER_DIR}/.runner", check=False).returncode == 0
    finally:  # the next test starts from the pinned 2.334 stand-in
        healthy.ssh(f"cp -p /root/Runner.Listener.2.334 {listener} && systemctl restart {unit}")
