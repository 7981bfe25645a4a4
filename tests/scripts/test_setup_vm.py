"""provision/setup.sh end to end on a test-bed VM, as root, the way the README runs it on a cloud
VM: GitHub is the fake GitHub (seen from the guest), the runner tarball and the wheels for
runner-health's .venv come from an HTTP server on the host (no internet in the guest).

The VM is one of its own, not the session's ``testbed_vm``: setup.sh registers the runner at
/opt/actions-runner with this test's fake GitHub and installs a 5-minute health timer and an
hourly cleanup, which would fight the fault-injection suite's registration and its injected
faults; undoing all that (and getting the session VM's image-installed runner back) is more
work and more risk than one more boot (~25-60 s), which also lets setup.sh start from a VM
without a runner. Slow: marked vm.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_health import config
from tests.scripts.conftest import LocalSources, prepare_for_a_vm
from tests.testbed.fake_github import FakeGitHub
from tests.testbed.vm import TestbedVM

pytestmark = pytest.mark.vm

RUNNER_NAME = "assay-bpf-runner"
RUNNER_DIR = "/opt/actions-runner"
SOURCE = "/root/runner-health-src"  # where the user unpacked runner-health: setup.sh's own tree
ENV_FILE = "/root/setup.env"
# What setup.sh may write; a second run must leave all of it untouched.
WRITTEN = (
    "/etc/runner-health",
    "/etc/cron.d/runner-health-free-disk",
    "/etc/systemd/system/runner-health.timer",
    "/etc/systemd/system/runner-health.service",
    f"{RUNNER_DIR}/.runner",
    f"{RUNNER_DIR}/.credentials",
    f"{RUNNER_DIR}/.service",
    f"{RUNNER_DIR}/.env",
    "/opt/runner-health",
    "/etc/needrestart/conf.d/runner-health.conf",
    "/etc/apt/apt.conf.d/52runner-health",
    "/etc/systemd/system/apt-daily.service.d",
    "/etc/systemd/system/apt-daily-upgrade.service.d",
    "/etc/systemd/system/apt-daily-upgrade.timer.d",
    "/etc/systemd/system/actions.runner.*.service.d",  # the runner unit's drop-in (a glob)
)
HOOK = "ACTIONS_RUNNER_HOOK_JOB_COMPLETED=/opt/runner-health/remediations/job_completed.sh"


@pytest.fixture(scope="module")
def setup_vm(
    tmp_path_factory: pytest.TempPathFactory, local_sources: LocalSources
) -> Iterator[tuple[TestbedVM, FakeGitHub]]:
    """A fresh VM without the image's runner and runner user (a stock VM), runner-health's
    source unpacked in /root, and setup.sh's environment in a root-only file (the token never
    on a command line)."""
    prepare_for_a_vm()
    vm = TestbedVM(tmp_path_factory.mktemp("testbed-setup"))
    with FakeGitHub() as fake:
        try:
            vm.boot()
            vm.ssh(
                "userdel --remove github-runner 2>/dev/null; "
                f"find {RUNNER_DIR} -mindepth 1 -maxdepth 1 ! -name _work -exec rm -rf {{}} + && "
                f"mkdir -p {SOURCE} && curl -fsS {local_sources.runner_health_url} "
                f"| tar -xzf - -C {SOURCE}"
            )
            env = {
                "GITHUB_TOKEN": fake.admin_token,
                "RUNNER_NAME": RUNNER_NAME,
                "REPO_URL": fake.runner_url(),
                "API_URL": fake.guest_url,
                "RUNNER_TARBALL_URL": local_sources.runner_tarball_url,
                "RUNNER_SHA256": local_sources.runner_sha256,
                **local_sources.pip_env(),
            }
            text = "".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items())
            vm.ssh(f"umask 077 && cat > {ENV_FILE}", input=text.encode())
            yield vm, fake
        finally:
            vm.shutdown()


def setup_sh(vm: TestbedVM) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    done = vm.ssh(
        f"set -a && . {ENV_FILE} && set +a && bash {SOURCE}/provision/setup.sh </dev/null 2>&1",
        check=False,
        timeout=900,
    )
    print(f"setup.sh: {time.monotonic() - started:.0f} s")
    return done


@pytest.fixture(scope="module")
def first_run(setup_vm) -> subprocess.CompletedProcess[str]:
    return setup_sh(setup_vm[0])


def test_setup_installs_and_registers_the_runner(setup_vm, first_run, local_sources):
    vm, fake = setup_vm
    assert first_run.returncode == 0, first_run.stdout
    assert fake.admin_token not in first_run.stdout
    assert "created user github-runner" in first_run.stdout
    assert f"SHA-256 verified ({local_sources.runner_sha256})" in first_run.stdout
    assert "/actions-runner.tar.gz" in local_sources.requests
    assert vm.ssh(f"cat {RUNNER_DIR}/.testbed-tarball").stdout.strip() == local_sources.marker
    online = fake.wait_for(
        lambda: (r := fake.runner(RUNNER_NAME)) and r["status"] == "online" and r, 120
    )
    labels = {label["name"] for label in online["labels"]}
    kernel = vm.ssh("uname -r | cut -d. -f1,2").stdout.strip()
    assert {"self-hosted", "bpf-lsm", f"kernel-{kernel}"} <= labels
    unit = vm.ssh(f"cat {RUNNER_DIR}/.service").stdout.strip()
    assert vm.ssh(f"systemctl is-active {unit}", check=False).stdout.strip() == "active"


def test_setup_writes_a_valid_config(setup_vm, first_run, tmp_path: Path):
    vm, fake = setup_vm
    assert first_run.returncode == 0, first_run.stdout
    path = tmp_path / "config.toml"
    path.write_text(vm.ssh("cat /etc/runner-health/config.toml").stdout)
    settings = config.load(path)  # raises ConfigError on a bad or unknown key
    assert settings.target == "local://"
    assert settings.github.repository == f"{fake.owner}/{fake.repo}"
    assert settings.github.api_url == fake.guest_url
    assert settings.github.runner_url == fake.runner_url()
    assert settings.runner.name == RUNNER_NAME
    assert settings.runner.directory == RUNNER_DIR
    assert str(settings.github.token_file) == "/etc/runner-health/token"
    token = vm.ssh("stat -c %a /etc/runner-health/token && cat /etc/runner-health/token")
    assert token.stdout.split() == ["600", fake.admin_token]
    # No job can read it: the runner user is not root-equivalent (not in docker, no sudo).
    assert "docker" not in vm.ssh("id -nG github-runner").stdout.split()
    as_runner = vm.ssh("runuser -u github-runner -- cat /etc/runner-health/token", check=False)
    assert as_runner.returncode != 0, as_runner.stdout
    assert fake.admin_token not in as_runner.stdout + as_runner.stderr
    assert settings.github.use_token is True
    # runner-health's own .venv collects its checks with that config, on the VM.
    collect = vm.ssh(
        "cd /opt/runner-health && RUNNER_HEALTH_CONFIG=/etc/runner-health/config.toml "
        ".venv/bin/python -m pytest checks --collect-only -q -p no:cacheprovider",
        check=False,
        timeout=300,
    )
    assert collect.returncode == 0, collect.stdout + collect.stderr
    assert "checks/test_registration.py" in collect.stdout


def test_setup_installs_the_schedules(setup_vm, first_run):
    vm = setup_vm[0]
    assert first_run.returncode == 0, first_run.stdout
    cron = vm.ssh("cat /etc/cron.d/runner-health-free-disk").stdout
    assert "0 * * * * root" in cron
    assert "/opt/runner-health/remediations/free_disk.sh --runner-dir /opt/actions-runner" in cron
    timer = vm.ssh(
        "systemctl is-enabled runner-health.timer; systemctl is-active runner-health.timer",
        check=False,
    )
    assert timer.stdout.split() == ["enabled", "active"], timer.stdout + timer.stderr


def test_setup_protects_the_runner_from_the_os(setup_vm, first_run):
    """The runner's unit: enabled at boot, OOMScoreAdjust=-500 on the listener, the job-completed
    hook in its .env; apt's timers skip their work while a Runner.Worker runs."""
    vm = setup_vm[0]
    assert first_run.returncode == 0, first_run.stdout
    unit = vm.ssh(f"cat {RUNNER_DIR}/.service").stdout.strip()
    assert vm.ssh(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"
    assert f"{unit} is enabled at boot" in first_run.stdout
    assert vm.ssh(f"systemctl show -p OOMScoreAdjust --value {unit}").stdout.strip() == "-500"
    assert vm.ssh(f"systemctl show -p OOMPolicy --value {unit}").stdout.strip() == "continue"
    listener = vm.ssh("cat /proc/$(pgrep -x Runner.Listener | head -n 1)/oom_score_adj")
    assert listener.stdout.strip() == "-500"
    assert HOOK in vm.ssh(f"cat {RUNNER_DIR}/.env").stdout.splitlines()
    apt = vm.ssh("apt-config dump Unattended-Upgrade::Automatic-Reboot").stdout
    assert apt.strip() == 'Unattended-Upgrade::Automatic-Reboot "false";'
    # A process called Runner.Worker (a copy of sleep) stands for a job: apt-daily-upgrade is
    # skipped by its ExecCondition, not run and not failed (systemd 252 logs the skip).
    skipped = vm.ssh(
        "cp /bin/sleep /tmp/Runner.Worker && { /tmp/Runner.Worker 120 >/dev/null 2>&1 & p=$!; }; "
        "systemctl start apt-daily-upgrade.service; echo rc=$?; kill $p; "
        "journalctl -u apt-daily-upgrade.service -n 5 --no-pager -o cat",
        timeout=120,
    )
    assert "rc=0" in skipped.stdout, skipped.stdout + skipped.stderr
    assert "Skipped due to 'exec-condition'" in skipped.stdout, skipped.stdout


def test_second_run_changes_nothing_and_says_so(setup_vm, first_run):
    vm, fake = setup_vm
    assert first_run.returncode == 0, first_run.stdout
    before = fake.runner(RUNNER_NAME)
    vm.ssh("touch /root/before-second-run && sleep 1")
    second = setup_sh(vm)
    assert second.returncode == 0, second.stdout
    for said in (
        "user github-runner exists",
        "already installed, not downloaded again",
        f"already registered as {RUNNER_NAME}",
        "up to date with",
        "its .venv is up to date",
        "/etc/runner-health/config.toml unchanged",
        "/etc/cron.d/runner-health-free-disk unchanged",
        "timer already installed and enabled, nothing changed",
    ):
        assert said in second.stdout, f"{said!r} not in:\n{second.stdout}"
    changes = ("wrote ", "downloading", "registering", "copied from", "timer installed:", "added ")
    for changed in (*changes, "restarted "):
        assert changed not in second.stdout, f"{changed!r} in:\n{second.stdout}"
    touched = vm.ssh(
        f"find {' '.join(WRITTEN)} \\( -name __pycache__ -o -name .pytest_cache -o -name reports "
        "-o -path /opt/runner-health/.venv \\) -prune -o -newer /root/before-second-run -print",
        check=False,
    ).stdout.split()
    assert touched == [], f"the second run changed {touched}"
    after = fake.runner(RUNNER_NAME)
    assert after is not None and before is not None
    assert after["id"] == before["id"] and len(fake.runners()) == 1
