"""Fixtures for the fault-injection suite: the booted test-bed VM, the fake GitHub, a
registered runner, and `pytest checks` run as a user runs it (a subprocess, through the
multipass stand-in)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.fixtures import testbed_vm, testbed_vm_running  # noqa: F401
from tests.testbed.vm import TestbedVM, multipass_env

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER_NAME = "assay-bpf-runner"
RUNNER_DIR = "/opt/actions-runner"
LABELS = ["self-hosted", "linux", "x64", "bpf-lsm", "kernel-6.1"]

CONFIG = """\
target = "multipass://{name}"
lock_file = "{lock}"

[github]
repository = "{owner}/{repo}"
api_url = "{api_url}"
server_url = "{server_url}"
timeout_seconds = 2

[runner]
name = "{name}"
labels = {labels}

[thresholds]
disk_free_gib = 0.03          # the test bed's _work disk is 256 MiB
disk_free_percent = 10
max_clock_offset_seconds = 30

[remediation]
online_wait_seconds = 60
command_timeout_seconds = 120

[reports]
directory = "{reports}"
"""


@dataclass
class Outcome:
    """One `pytest checks` run: exit code, terminal output, and the run's summary.json."""

    returncode: int
    output: str
    report_dir: Path

    @property
    def summary(self) -> dict:
        return json.loads((self.report_dir / "summary.json").read_text())

    @property
    def html(self) -> str:
        return (self.report_dir / "report.html").read_text()

    def record(self, test_name: str) -> dict:
        (found,) = [c for c in self.summary["checks"] if c["nodeid"].split("::")[-1] == test_name]
        return found

    def steps(self) -> str:
        return "\n".join(line for c in self.summary["checks"] for line in c["steps"])


class Suite:
    """Runs `python -m pytest checks` against the test bed, as cron or a user would."""

    def __init__(self, vm: TestbedVM, fake: FakeGitHub, workdir: Path) -> None:
        self.vm = vm
        self.fake = fake
        self.workdir = workdir
        self.config = workdir / "runner-health.toml"
        self.lock = workdir / "runner-health.lock"
        self.config.write_text(
            CONFIG.format(
                name=RUNNER_NAME,
                lock=self.lock,
                owner=fake.owner,
                repo=fake.repo,
                api_url=fake.url,
                server_url=fake.guest_url,
                labels=json.dumps(LABELS),
                reports=workdir / "reports",
            )
        )
        self.runs = 0

    def command(self, *args: str) -> tuple[list[str], dict[str, str], Path]:
        self.runs += 1
        report_dir = self.workdir / "reports" / f"run-{self.runs:02d}"
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "checks",
            "-p",
            "no:cacheprovider",
            "--config",
            str(self.config),
            "--reports-dir",
            str(report_dir),
            *args,
        ]
        env = multipass_env(self.vm)
        env["GITHUB_TOKEN"] = self.fake.admin_token
        env.pop("RUNNER_HEALTH_CONFIG", None)
        return argv, env, report_dir

    def run(self, *args: str, timeout: float = 900) -> Outcome:
        argv, env, report_dir = self.command(*args)
        done = subprocess.run(
            argv,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = done.stdout + done.stderr
        print(output)  # shown by pytest when the test fails
        return Outcome(done.returncode, output, report_dir)

    def start(self, *args: str) -> tuple[subprocess.Popen[str], Path]:
        argv, env, report_dir = self.command(*args)
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return process, report_dir


@pytest.fixture(scope="session")
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub(timeout_hold=15) as fake:
        yield fake


def unit_name(vm: TestbedVM) -> str:
    return vm.ssh(f"cat {RUNNER_DIR}/.service").stdout.strip()


def register(vm: TestbedVM, fake: FakeGitHub, token: str) -> subprocess.CompletedProcess[str]:
    """Configure the runner stand-in the way a user does, token on stdin (never in argv)."""
    configure = (
        f"cd {RUNNER_DIR} && IFS= read -r ACTIONS_RUNNER_INPUT_TOKEN && export ACTIONS_RUNNER_INPUT_TOKEN && "
        f"./config.sh --unattended --url {fake.runner_url()} --name {RUNNER_NAME} "
        f"--labels {','.join(LABELS)} --work _work"
    )
    return vm.ssh(
        f"sudo -u github-runner -H sh -c {shlex.quote(configure)}",
        input=(token + "\n").encode(),
        check=False,
    )


def wait_online(fake: FakeGitHub, timeout: float = 90) -> dict:
    return fake.wait_for(
        lambda: (r := fake.runner(RUNNER_NAME)) and r["status"] == "online" and r, timeout
    )


@pytest.fixture(scope="session")
def registered_runner(testbed_vm: TestbedVM, fake_github: FakeGitHub) -> None:
    """The runner configured against the fake GitHub and running as its systemd service."""
    done = register(testbed_vm, fake_github, fake_github.create_registration_token())
    assert done.returncode == 0, done.stdout + done.stderr
    testbed_vm.ssh(f"cd {RUNNER_DIR} && ./svc.sh install github-runner && ./svc.sh start")
    wait_online(fake_github)


@pytest.fixture(scope="session")
def suite(
    testbed_vm: TestbedVM, fake_github: FakeGitHub, tmp_path_factory: pytest.TempPathFactory
) -> Suite:
    return Suite(testbed_vm, fake_github, tmp_path_factory.mktemp("suite"))


@pytest.fixture
def healthy(
    testbed_vm_running: TestbedVM, registered_runner: None, fake_github: FakeGitHub, suite: Suite
) -> TestbedVM:
    """Each fault starts from a healthy runner (healing leftovers of a failed earlier test)."""
    fake_github.fail_with(None)
    runner = fake_github.runner(RUNNER_NAME)
    if not runner or runner["status"] != "online" or runner["busy"]:
        outcome = suite.run()
        assert outcome.returncode in (0, 7), "could not get a healthy runner to start from"
    wait_online(fake_github)
    return testbed_vm_running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.vm)
