"""Fault injection on a real VM: break it the way runners break, run `pytest checks` as a user
would, and demand "healed" (exit 7), the runner online at GitHub, and a report that shows
the failure and the remediation. Then the safety cases: nothing made worse."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import (
    INSTALL_DIR,
    LABELS,
    RUNNER_DIR,
    RUNNER_NAME,
    Outcome,
    Suite,
    configure_on_vm,
    install_on_vm,
    register,
    unit_name,
    wait_online,
)
from tests.testbed.vm import TestbedVM

HEALED, UNHEALTHY, LOCKED, UNKNOWN = 7, 1, 6, 9


def assert_healed(outcome: Outcome, fake: FakeGitHub, failed_check: str, remediation: str) -> None:
    assert outcome.returncode == HEALED, f"exit {outcome.returncode}, expected 7 (healed)"
    record = outcome.record(failed_check)
    assert record["outcome"] == "healed", record
    assert record["remediation"] == remediation
    assert f"remediation {remediation}: done" in outcome.html
    # The HTML report escapes quotes and non-ASCII: compare the failure's plain leading part.
    assert re.split(r"[^\w :.,+/()-]", record["failure"])[0] in outcome.html
    assert fake.runner(RUNNER_NAME)["status"] == "online"


def diag_log(vm: TestbedVM) -> str:
    return vm.ssh(f"cat {RUNNER_DIR}/_diag/Runner_*.log", check=False).stdout


def fingerprint(vm: TestbedVM) -> str:
    """Hash of the runner's registration files: proof they were not touched."""
    files = f"{RUNNER_DIR}/.runner {RUNNER_DIR}/.credentials {RUNNER_DIR}/.service"
    return hashlib.sha256(vm.ssh(f"cat {files}").stdout.encode()).hexdigest()


def listener_pid(vm: TestbedVM) -> str:
    return vm.ssh("pgrep -x Runner.Listener").stdout.split()[0]


# -- the failure modes of the seed ---------------------------------------------------------


def test_vm_stopped(healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub):
    healthy.stop()
    assert not healthy.is_running()
    outcome = suite.run()
    assert_healed(outcome, fake_github, "test_vm_is_running", "start_vm")
    assert healthy.is_running()


def test_clock_skewed_by_hours(healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub):
    # chrony steps the clock by itself in its first updates after boot (makestep 1 3): skew
    # only once it is synchronised and past them, or the fault undoes itself.
    synced = lambda: "Leap status     : Normal" in healthy.ssh("chronyc -n tracking").stdout  # noqa: E731
    fake_github.wait_for(synced, timeout=120)
    time.sleep(5)
    healthy.ssh("date -s '+3 hours' >/dev/null")
    assert healthy.clock_offset() > 3 * 3600 - 60
    healthy.ssh(f"systemctl restart {unit_name(healthy)}")  # a new session: GitHub judges the token
    fake_github.wait_for(lambda: "Current server time is" in diag_log(healthy), timeout=120)
    outcome = suite.run()
    assert_healed(outcome, fake_github, "test_clock_matches_github", "sync_clock")
    assert abs(healthy.clock_offset()) < 30


def test_runner_service_stopped(healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub):
    healthy.ssh(f"systemctl stop {unit_name(healthy)}")
    outcome = suite.run()
    assert_healed(outcome, fake_github, "test_runner_service_active", "start_runner_service")


def test_stale_config_for_a_runner_github_forgot(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    healthy.ssh(f"systemctl stop {unit_name(healthy)}")
    fake_github.delete_runner(RUNNER_NAME)  # e.g. 14 days offline: .runner now names a ghost
    outcome = suite.run()
    assert_healed(outcome, fake_github, "test_runner_known_to_github", "reconfigure_runner")
    assert "config.sh remove --local" in outcome.steps()


def test_expired_registration_token_in_use(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    healthy.ssh(f"cd {RUNNER_DIR} && ./svc.sh stop && ./svc.sh uninstall")
    healthy.ssh(f"cd {RUNNER_DIR} && sudo -u github-runner ./config.sh remove --local")
    stale = fake_github.create_registration_token()
    fake_github.expire_registration_tokens()
    attempt = register(healthy, fake_github, stale)
    assert attempt.returncode != 0
    assert "Http response code: NotFound from 'POST" in attempt.stdout + attempt.stderr
    outcome = suite.run()
    assert_healed(outcome, fake_github, "test_runner_is_configured", "reconfigure_runner")
    assert stale not in outcome.output


def test_work_disk_full(healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub):
    filled = healthy.ssh(
        f"sudo -u github-runner sh -c 'mkdir -p {RUNNER_DIR}/_work/old-project/old-project && "
        f"dd if=/dev/zero of={RUNNER_DIR}/_work/old-project/old-project/build.img bs=1M 2>&1'",
        check=False,
    )
    assert "No space left on device" in filled.stdout
    # A finished job's workspace: free_disk.sh keeps anything changed in the last minutes.
    healthy.ssh(f"find {RUNNER_DIR}/_work/old-project -exec touch -h -d '1 hour ago' {{}} +")
    outcome = suite.run()
    assert_healed(outcome, fake_github, "test_disk_headroom[work]", "free_disk")
    job = fake_github.queue_job(LABELS[:1], duration=1)
    done = fake_github.wait_for(
        lambda: (j := fake_github.job(job["id"])) and j["status"] == "completed" and j, 60
    )
    assert done["conclusion"] == "success"


# -- safety: nothing made worse -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["5xx", "timeout"])
def test_github_down_nothing_is_reregistered(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub, kind: str
):
    before = fingerprint(healthy)
    fake_github.fail_with(kind)
    try:
        outcome = suite.run()
    finally:
        fake_github.fail_with(None)
    assert outcome.returncode == UNKNOWN  # nothing failed: GitHub could not be asked
    record = outcome.record("test_runner_known_to_github")
    assert record["outcome"] == "unknown" and record["remediation"] is None
    assert "config.sh" not in outcome.steps() and "svc.sh" not in outcome.steps()
    assert fingerprint(healthy) == before
    assert healthy.ssh(f"systemctl is-active {unit_name(healthy)}").stdout.strip() == "active"
    wait_online(fake_github)


def test_typo_in_the_name_is_refused_and_a_foreign_label_is_added_through_the_api(
    healthy: TestbedVM, fake_github: FakeGitHub, tmp_path: Path
):
    before, runner = fingerprint(healthy), fake_github.runner(RUNNER_NAME)
    asked = len(fake_github.requests)
    suite = Suite(healthy, fake_github, tmp_path)  # its own config: the shared one stays
    config = suite.config.read_text()
    suite.config.write_text(config.replace(f'name = "{RUNNER_NAME}"', 'name = "assay-bpf-runer"'))
    typo = suite.run("-k", "registration")  # the registration checks only: cheap
    assert typo.returncode == UNHEALTHY
    named = typo.record("test_runner_is_configured")
    wanted = f"config says 'assay-bpf-runer', this VM is registered as '{RUNNER_NAME}'"
    assert named["fix_result"] == "refused" and wanted in named["failure"]
    suite.config.write_text(config.replace("labels = [", 'labels = ["gpu", '))
    label = suite.run("-k", "registration")
    assert_healed(label, fake_github, "test_runner_has_config_labels", "sync_labels")
    after = fake_github.runner(RUNNER_NAME)
    assert after["id"] == runner["id"] and "gpu" in {x["name"] for x in after["labels"]}
    # No re-registration in either run: no token asked for, no config.sh, .runner untouched.
    paths = [path for _, path, _ in fake_github.requests[asked:]]
    assert any(path.endswith("/labels") for path in paths)
    assert not any(path.endswith("/registration-token") for path in paths)
    assert "config.sh" not in typo.steps() + label.steps()
    assert fingerprint(healthy) == before


def test_service_file_naming_ssh_is_refused_and_ssh_left_alone(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    unit = unit_name(healthy)
    sshd = "systemctl show -p MainPID --value ssh"
    before = healthy.ssh(sshd).stdout.strip()
    healthy.ssh(f"systemctl stop {unit}")
    # What any job can do: .service is the runner user's
    healthy.ssh(f"sudo -u github-runner sh -c 'echo ssh.service > {RUNNER_DIR}/.service'")
    try:
        outcome = suite.run()
    finally:
        healthy.ssh(f"echo {unit} > {RUNNER_DIR}/.service && systemctl start {unit}")
    assert outcome.returncode == UNHEALTHY
    record = outcome.record("test_runner_service_active")
    assert record["outcome"] == "failed" and record["fix_result"] == "refused"
    assert "'ssh.service'" in record["failure"]
    assert "systemctl" not in outcome.steps()
    assert healthy.ssh(sshd).stdout.strip() == before
    wait_online(fake_github)


def test_svc_sh_and_unit_template_rewritten_by_a_job_never_run_as_root(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    # What any job can do: the runner directory is the runner user's. Root running svc.sh, or
    # filling in its template (User=, ExecStart=), would touch /root/pwned.
    hostile = {
        "svc.sh": "#!/bin/sh\ntouch /root/pwned\n",
        "bin/actions.runner.service.template": "[Unit]\nDescription={{Description}}\n"
        "[Service]\nExecStartPre=/bin/touch /root/pwned\nExecStart={{RunnerRoot}}/runsvc.sh\n"
        "User=root\nWorkingDirectory={{RunnerRoot}}\n[Install]\nWantedBy=multi-user.target\n",
    }
    healthy.ssh(
        "rm -f /root/pwned && mkdir -p /root/saved && cp -a "
        f"{RUNNER_DIR}/svc.sh {RUNNER_DIR}/bin/actions.runner.service.template /root/saved/"
    )
    for path, text in hostile.items():
        file = f"{RUNNER_DIR}/{path}"
        replace = f"cat > {file}.new && chmod 755 {file}.new && mv -f {file}.new {file}"
        healthy.ssh(f"sudo -u github-runner sh -c '{replace}'", input=text.encode())
    healthy.ssh(f"systemctl stop {unit_name(healthy)}")
    try:
        outcome = suite.run("--recover")  # a full re-registration: uninstall, install, start
    finally:
        healthy.ssh(
            f"cp -a /root/saved/svc.sh {RUNNER_DIR}/svc.sh && "
            f"cp -a /root/saved/actions.runner.service.template {RUNNER_DIR}/bin/"
        )
    assert healthy.ssh("test -e /root/pwned", check=False).returncode != 0, "root ran a job's file"
    assert_healed(outcome, fake_github, "test_runner_is_configured", "reconfigure_runner")
    assert "./svc.sh" not in outcome.steps()
    unit = healthy.ssh(f"cat /etc/systemd/system/{unit_name(healthy)}").stdout.splitlines()
    assert "User=github-runner" in unit and f"ExecStart={RUNNER_DIR}/runsvc.sh" in unit
    assert not any(line.startswith("ExecStartPre") or line == "User=root" for line in unit)
    show = healthy.ssh(f"systemctl show -p User -p ActiveState {unit_name(healthy)}").stdout
    assert dict(line.split("=", 1) for line in show.split()) == {
        "User": "github-runner",
        "ActiveState": "active",
    }
    assert healthy.ssh("ps -o user:32= -C Runner.Listener").stdout.split() == ["github-runner"]


def test_busy_runner_is_not_restarted_and_its_workspace_survives(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    # The job outlasts the whole run below (about 70 s under TCG, with the disk check's du
    # before and after free_disk): a job that ends mid-run rightly lets --recover re-register.
    # The test ends it afterwards itself (SIGINT: the stand-in Worker's cancel), so the test
    # takes what the run takes, not a fixed job length.
    job = fake_github.queue_job(LABELS[:1], duration=900, name="kernel-matrix")
    fake_github.wait_for(lambda: fake_github.runner(RUNNER_NAME)["busy"], timeout=60)
    pid = listener_pid(healthy)
    workspace = f"{RUNNER_DIR}/_work/{fake_github.repo}/{fake_github.repo}"
    # Fill the disk from inside the running job's workspace: only a wipe could free it. (The
    # runner is busy from assignment; its Worker writes into the workspace a moment later.)
    started = f"test -s {workspace}/job-{job['id']}.bin"
    fake_github.wait_for(lambda: healthy.ssh(started, check=False).returncode == 0, 60)
    worker = healthy.ssh("pgrep -x Runner.Worker").stdout.split()
    assert len(worker) == 1, worker
    try:
        filled = healthy.ssh(
            f"sudo -u github-runner dd if=/dev/zero of={workspace}/artifact.bin bs=1M 2>&1",
            check=False,
        )
        assert "No space left on device" in filled.stdout
        outcome = suite.run("--recover")
        assert outcome.returncode == UNHEALTHY
        assert outcome.record("test_runner_is_configured")["fix_result"] == "refused"
        assert outcome.record("test_disk_headroom[work]")["outcome"] == "failed"
        assert listener_pid(healthy) == pid
        assert healthy.ssh(f"test -f {workspace}/artifact.bin", check=False).returncode == 0
        assert "svc.sh" not in outcome.steps() and "systemctl restart" not in outcome.steps()
        # The job ran on through the run, in the same Worker (a restarted listener cancels
        # its Worker's job: completed at once, as "cancelled").
        assert fake_github.job(job["id"])["status"] == "in_progress"
        assert healthy.ssh("pgrep -x Runner.Worker").stdout.split() == worker
    finally:
        healthy.ssh(f"rm -f {workspace}/artifact.bin; kill -INT {worker[0]}", check=False)
    done = fake_github.wait_for(
        lambda: (j := fake_github.job(job["id"])) and j["status"] == "completed" and j, 60
    )
    # Ended by the test's cancel, reported by that Worker: it was alive and well until then.
    assert done["conclusion"] == "cancelled"


def test_second_run_exits_at_once_while_one_is_in_progress(healthy: TestbedVM, suite: Suite):
    suite.lock.unlink(missing_ok=True)
    first, _ = suite.start()
    try:
        deadline = time.monotonic() + 60
        while not (suite.lock.exists() and f'"pid": {first.pid},' in suite.lock.read_text()):
            assert time.monotonic() < deadline and first.poll() is None, (
                "the first run never took the lock"
            )
            time.sleep(0.1)
        started = time.monotonic()
        second = suite.run()
        assert second.returncode == LOCKED
        assert "another runner-health run is in progress" in second.output
        assert time.monotonic() - started < 15
    finally:
        first.wait(timeout=600)
    assert first.returncode == 0


def test_healthy_over_ssh_with_one_multiplexed_connection(healthy: TestbedVM, suite: Suite):
    def logins() -> int:
        count = healthy.ssh(
            "journalctl -u ssh --no-pager -o cat | grep -c 'Accepted publickey' || true"
        )
        return int(count.stdout.strip() or 0)

    before = logins()
    outcome = suite.run(
        f"--hosts={healthy.ssh_target('root')}", f"--ssh-config={healthy.ssh_config}"
    )
    assert outcome.returncode == 0, outcome.output
    assert outcome.record("test_vm_is_running")["outcome"] == "skipped"  # not a Multipass target
    # Dozens of commands, at most one new SSH login: the ControlPath in the ssh_config works.
    assert logins() - before <= 1


# -- reported, not healed: the fix needs a human (or an opt-in reboot) -----------------------


def test_deprecated_runner_version_is_reported_with_the_fix(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    fake_github.deprecate_runner_version("*")
    try:
        healthy.ssh(f"systemctl restart {unit_name(healthy)}")
        fake_github.wait_for(
            lambda: "is deprecated and cannot receive messages" in diag_log(healthy), timeout=60
        )
        outcome = suite.run()
    finally:
        fake_github.deprecate_runner_version(None)
        # A deprecated listener exits 1 and its unit stops (Program.cs, RunnerService.js): the
        # next test starts from a listener whose newest _diag log is free of that line.
        healthy.ssh(f"systemctl restart {unit_name(healthy)}")
    assert outcome.returncode == UNHEALTHY
    record = outcome.record("test_runner_version_supported")
    assert record["outcome"] == "failed"
    assert "install the current actions/runner release" in outcome.output


# -- where it runs: on the VM itself (the cron/timer default) and over SSH ------------------


def test_on_the_vm_itself_with_the_local_backend(healthy: TestbedVM, fake_github: FakeGitHub):
    install_on_vm(healthy)
    configure_on_vm(
        healthy,
        fake_github,
        config_dir="/etc/runner-health",
        reports="/var/tmp/runner-health-reports",
    )
    command = f"cd {INSTALL_DIR} && PYTHONPATH={INSTALL_DIR}/site-packages python3 -m pytest checks -p no:cacheprovider"

    first = healthy.ssh(command, check=False, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    healthy.ssh(f"systemctl stop {unit_name(healthy)}")
    second = healthy.ssh(command, check=False, timeout=600)
    assert second.returncode == HEALED, second.stdout + second.stderr
    assert "HEALED   test_runner_service_active" in second.stdout
    assert fake_github.admin_token not in second.stdout
    wait_online(fake_github)


def test_hung_listener_is_diagnosed_and_restarted(
    healthy: TestbedVM, suite: Suite, fake_github: FakeGitHub
):
    healthy.ssh(f"kill -STOP {listener_pid(healthy)}")  # alive, active unit, but silent
    fake_github.wait_for(lambda: fake_github.runner(RUNNER_NAME)["status"] == "offline", timeout=60)
    outcome = suite.run()
    assert_healed(outcome, fake_github, "test_runner_online_at_github", "diagnose_offline")
    assert healthy.ssh("ps -eo stat=,args= | grep '[R]unner.Listener'").stdout.split()[0][0] != "T"


# Last: it reboots the VM without bpf, and only the next test would need it back.
def test_bpf_lsm_missing_is_reported_with_the_exact_fix(healthy: TestbedVM, suite: Suite):
    healthy.stop()
    healthy.start(lsm="lockdown,capability,landlock,yama,apparmor")  # booted without bpf
    outcome = suite.run()
    assert outcome.returncode == UNHEALTHY
    record = outcome.record("test_bpf_lsm_active")
    assert record["outcome"] == "failed" and record["fix_result"] == "refused"
    assert "lsm=lockdown,capability,landlock,yama,apparmor,bpf" in outcome.steps()
    assert "update-grub" in outcome.steps() and "systemctl reboot" not in outcome.steps()
    assert healthy.is_running()
