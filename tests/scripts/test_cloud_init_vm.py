"""provision/cloud-init.yaml booted for real: the test-bed VM's first boot with a NoCloud seed
disk (what Multipass attaches) whose user-data is the project's file, unchanged, followed by a
test-only JSON-patch part.

What the test part changes, and why (nothing else):
- ``packages`` removed and ``package_update`` false: the list names Ubuntu packages
  (linux-tools-generic, ...) from the Ubuntu archive, which this Debian guest without internet
  can't install. The guest has the few tools provisioning runs (curl, make, python3-venv).
- a ``bootcmd`` (the yaml has none) that, once, before any other module:
  * returns the test-bed image to a stock cloud image's state, so that every effect asserted
    below is cloud-init's: the image ships github-runner and the runner stand-in at
    /opt/actions-runner for the other suites; it deletes both (the _work disk stays mounted);
  * writes /etc/runner-health/provision.env, the yaml's documented override file, pointing the
    internet steps at local sources: the runner tarball (made from tests/testbed/runner/, its
    SHA-256 as the pinned checksum) from an HTTP server on the host, and a local rustup-init
    stand-in. RUNNER_HEALTH_SOURCE stays empty (the yaml's default: "copied in later by setup"):
    installing runner-health's .venv takes ~5 minutes under TCG (pip unpacking githubkit's
    schemas and ruff, which requirements.lock includes); test_setup_vm.py covers that install
    and the timer.

The guest boots with ``-kernel`` and BPF LSM already on its command line: GRUB is not used
here, so the test checks the GRUB drop-in file cloud-init writes and that no reboot was asked
for, not update-grub. Slow (one TCG boot plus provisioning): marked vm.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest

from tests.scripts.conftest import ROOT, LocalSources, prepare_for_a_vm
from tests.testbed.vm import VM_NAME, TestbedVM, nocloud_seed

pytestmark = pytest.mark.vm

CLOUD_INIT_YAML = ROOT / "provision" / "cloud-init.yaml"
RUNNER_DIR = "/opt/actions-runner"
RUSTUP_STAND_IN = "/var/lib/testbed/rustup-init.sh"
# Stands in for https://sh.rustup.rs (no internet): records its arguments, installs a cargo.
RUSTUP_INIT = """\
#!/bin/sh
# rustup-init stand-in (test only): what sh.rustup.rs would do for this user, minus Rust.
set -eu
mkdir -p "$HOME/.cargo/bin"
printf '%s\\n' "$*" > "$HOME/.cargo/rustup-init-args"
printf '#!/bin/sh\\necho "cargo (rustup-init stand-in)"\\n' > "$HOME/.cargo/bin/cargo"
chmod 755 "$HOME/.cargo/bin/cargo"
"""
CLOUD_INIT_TIMEOUT = 600


def _write(path: str, content: str, mode: str) -> str:
    """A shell command writing ``content`` to ``path`` (for a bootcmd entry)."""
    return (
        f"install -d -m 755 {shlex.quote(str(Path(path).parent))} && "
        f"printf %s {shlex.quote(content)} > {shlex.quote(path)} && chmod {mode} {shlex.quote(path)}"
    )


def provision_env(sources: LocalSources) -> str:
    return (
        "# Test bed: local sources instead of the internet (tests/scripts/test_cloud_init_vm.py)\n"
        f"RUNNER_TARBALL_URL={sources.runner_tarball_url}\n"
        f"RUNNER_SHA256={sources.runner_sha256}\n"
        f"RUSTUP_INIT_URL=file://{RUSTUP_STAND_IN}\n"
        "RUNNER_HEALTH_SOURCE=\n"
    )


def local_sources_patch(sources: LocalSources) -> list[dict]:
    """The test-only second part (a JSON patch over the merged cloud-config)."""
    unprovision = (
        "userdel --remove github-runner 2>/dev/null || true; "
        f"find {RUNNER_DIR} -mindepth 1 -maxdepth 1 ! -name _work -exec rm -rf {{}} +"
    )
    return [
        {"op": "remove", "path": "/packages"},
        {"op": "replace", "path": "/package_update", "value": False},
        {
            "op": "add",
            "path": "/bootcmd",
            "value": [
                ["cloud-init-per", "once", "testbed-unprovision", "sh", "-c", unprovision],
                _write("/etc/runner-health/provision.env", provision_env(sources), "644"),
                _write(RUSTUP_STAND_IN, RUSTUP_INIT, "755"),
            ],
        },
    ]


def user_data(sources: LocalSources) -> str:
    """Multi-part user-data: the project's cloud-init.yaml as is, then the test patch."""
    message = MIMEMultipart()
    for content, subtype, name in (
        (CLOUD_INIT_YAML.read_text(), "cloud-config", "cloud-init.yaml"),
        (
            "#cloud-config-jsonp\n" + json.dumps(local_sources_patch(sources), indent=2),
            "cloud-config-jsonp",
            "testbed-local-sources.json",
        ),
    ):
        part = MIMEText(content, subtype)
        part.add_header("Content-Disposition", "attachment", filename=name)
        message.attach(part)
    return message.as_string()


@pytest.fixture(scope="module")
def provisioned(
    tmp_path_factory: pytest.TempPathFactory, local_sources: LocalSources
) -> Iterator[tuple[TestbedVM, str, float]]:
    """A VM of its own (not the session's), booted once with the seed; cloud-init waited for.

    Yields the VM, ``cloud-init status --long`` after the wait, and seconds from qemu launch
    to cloud-init done."""
    prepare_for_a_vm()
    state_dir = tmp_path_factory.mktemp("testbed-cloud-init")
    seed = nocloud_seed(
        state_dir / "seed.iso",
        user_data(local_sources),
        f"instance-id: testbed-{state_dir.name}-{time.time_ns()}\nlocal-hostname: {VM_NAME}\n",
    )
    vm = TestbedVM(state_dir)
    vm.ensure_image()  # built outside the timing
    started = time.monotonic()
    try:
        vm.boot(seed=seed)
        status = vm.ssh(
            "cloud-init status --wait --long", check=False, timeout=CLOUD_INIT_TIMEOUT
        ).stdout
        yield vm, status, time.monotonic() - started
    finally:
        vm.shutdown()


def output_log(vm: TestbedVM) -> str:
    return vm.ssh("tail -n 60 /var/log/cloud-init-output.log", check=False).stdout


def test_cloud_init_finishes_without_errors(provisioned, local_sources: LocalSources):
    vm, status, elapsed = provisioned
    print(f"cloud-init boot: {elapsed:.0f} s from qemu launch to 'status: done'")
    assert "status: done" in status, f"{status}\n--- cloud-init-output.log\n{output_log(vm)}"
    # The user-data cloud-init ran validates (the yaml merged with the test patch).
    schema = vm.ssh("cloud-init schema --system", check=False)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    # The seed was the datasource; the internet steps used the local sources.
    assert "DataSourceNoCloud" in vm.ssh("cat /run/cloud-init/result.json").stdout
    assert "/actions-runner.tar.gz" in local_sources.requests
    log = vm.ssh("cat /var/log/cloud-init-output.log").stdout
    assert "provision-runner: done" in log


def test_runner_user_created(provisioned):
    vm = provisioned[0]
    entry = vm.ssh("getent passwd github-runner", check=False).stdout.strip().split(":")
    assert len(entry) == 7, "github-runner was not created"
    assert entry[4] == "GitHub Actions runner" and entry[6] == "/bin/bash"
    assert vm.ssh("passwd --status github-runner").stdout.split()[1] == "L"  # lock_passwd
    assert "docker" not in vm.ssh("id -nG github-runner").stdout.split()  # only when asked


def test_runner_unpacked_from_the_pinned_tarball(provisioned, local_sources: LocalSources):
    vm = provisioned[0]
    assert vm.ssh(f"cat {RUNNER_DIR}/.testbed-tarball").stdout.strip() == local_sources.marker
    assert (
        vm.ssh(
            f"test -x {RUNNER_DIR}/config.sh -a -x {RUNNER_DIR}/bin/Runner.Listener", check=False
        ).returncode
        == 0
    )
    owner = vm.ssh(f"stat -c %U {RUNNER_DIR} {RUNNER_DIR}/config.sh").stdout.split()
    assert owner == ["github-runner", "github-runner"]
    leftovers = vm.ssh(f"ls -A {RUNNER_DIR}").stdout.split()
    assert ".runner-download.tar.gz" not in leftovers
    assert "SHA-256 verified" in vm.ssh("cat /var/log/cloud-init-output.log").stdout


def test_rust_installed_for_the_runner_user(provisioned):
    vm = provisioned[0]
    args = vm.ssh("cat /home/github-runner/.cargo/rustup-init-args").stdout
    assert args.split() == ["-y", "--profile", "minimal", "--component", "rustfmt,clippy"]
    assert (
        vm.ssh("stat -c %U /home/github-runner/.cargo/bin/cargo").stdout.strip() == "github-runner"
    )


def test_schedules_installed(provisioned):
    vm = provisioned[0]
    cron = vm.ssh("cat /etc/cron.d/runner-health-free-disk").stdout
    assert "0 * * * * root" in cron
    assert "/opt/runner-health/remediations/free_disk.sh --runner-dir /opt/actions-runner" in cron
    # The same file setup.sh writes (the yaml promises the two stay alike); it sources cron.sh.
    env = "RUNNER_HEALTH_DIR=/opt/runner-health RUNNER_DIR=/opt/actions-runner CRON_DIR=/tmp/cron"
    for name in ("setup.sh", "cron.sh", "guards.sh"):
        script = (ROOT / "provision" / name).read_bytes()
        vm.ssh(f"mkdir -p /tmp/provision && cat > /tmp/provision/{name}", input=script)
    vm.ssh(f"mkdir -p /tmp/cron && {env} bash /tmp/provision/setup.sh --free-disk-cron")
    assert vm.ssh("cat /tmp/cron/runner-health-free-disk").stdout == cron
    # No runner-health provided: no timer yet, and provisioning says who installs it.
    log = vm.ssh("cat /var/log/cloud-init-output.log").stdout
    assert "provision-runner: runner-health not installed yet" in log
    assert vm.ssh("test -e /etc/systemd/system/runner-health.timer", check=False).returncode != 0


def test_os_updates_kept_away_from_jobs(provisioned):
    """write_files' apt and systemd drop-ins are in force: apt reads the setting, systemd has
    loaded the apt services' ExecCondition and the timer's retries (provision-runner.sh's
    daemon-reload)."""
    vm = provisioned[0]
    apt = vm.ssh("apt-config dump Unattended-Upgrade::Automatic-Reboot").stdout
    assert apt.strip() == 'Unattended-Upgrade::Automatic-Reboot "false";'
    shown = vm.ssh("systemctl show -p ExecCondition apt-daily.service apt-daily-upgrade.service")
    assert shown.stdout.count("pgrep -x Runner.Worker") == 2, shown.stdout
    timer = vm.ssh("systemctl show -p TimersCalendar apt-daily-upgrade.timer").stdout
    assert "0/3:30" in timer.replace("00/3:30", "0/3:30"), timer
    assert "actions" in vm.ssh("cat /etc/needrestart/conf.d/runner-health.conf").stdout


def test_bpf_lsm_drop_in_written_without_a_reboot(provisioned):
    vm = provisioned[0]
    # What GRUB would make of the drop-in (GRUB itself isn't used: the test bed boots -kernel).
    cmdline = vm.ssh(
        "GRUB_CMDLINE_LINUX='console=ttyS0'; . /etc/default/grub.d/99-runner-health-bpf-lsm.cfg; "
        'echo "$GRUB_CMDLINE_LINUX"'
    ).stdout.strip()
    assert cmdline == "console=ttyS0 lsm=lockdown,capability,landlock,yama,apparmor,bpf"
    # BPF LSM was on already: provision-runner.sh asked for no reboot, and none happened.
    assert "bpf" in vm.ssh("cat /sys/kernel/security/lsm").stdout
    assert vm.ssh("test -e /run/provision-runner.reboot", check=False).returncode != 0
    assert vm.ssh("cat /etc/chrony/conf.d/runner-health.conf").stdout.strip() == "makestep 1 -1"
