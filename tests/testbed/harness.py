"""Driving the test bed as a user would: configure the runner stand-in, write a
runner-health config for the fake GitHub, and run `pytest checks` as a subprocess.
Shared by the fault-injection suite (tests/vm) and `make demo`."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.vm import TestbedVM, multipass_env

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER_NAME = "assay-bpf-runner"
RUNNER_DIR = "/opt/actions-runner"
LABELS = ["self-hosted", "linux", "x64", "bpf-lsm", "kernel-6.1"]
# The runner stand-in's RUNNER_STANDIN_TIME_SCALE in the VM: every real window times 1/40
# (session retry 0.75 s, conflict 6 s, clock skew 45 s). The fake's orphan sessions scale
# the same way (ORPHAN_SESSION_SECONDS * TIME_SCALE = 7.5 s).
TIME_SCALE = 1 / 40

CONFIG = """\
target = "{target}"
lock_file = "{lock}"
{state_file_line}

[github]
repository = "{owner}/{repo}"
api_url = "{api_url}"
server_url = "{server_url}"
timeout_seconds = 2
{token_file_line}

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
{remediation}

[reports]
directory = "{reports}"

[multipass]
# The guest runs under TCG on a CI host whose other core runs other tests: a healthy guest's
# one exec has taken more than the default 30 s there (a Mac's VM answers in well under one).
exec_timeout_seconds = 60
{multipass}

{extra}
"""


def config_text(
    fake: FakeGitHub,
    *,
    target: str,
    api_url: str,
    lock: str,
    reports: str,
    token_file: str | None = None,
    state_file: str | None = None,
    remediation: str = "",
    multipass: str = "",
    extra: str = "",
) -> str:
    """A runner-health config for the test bed's runner and the fake GitHub; ``remediation``
    and ``multipass`` add keys to their tables (``max_attempts = 2``), ``extra`` adds tables
    (``[alerts]``)."""
    return CONFIG.format(
        target=target,
        name=RUNNER_NAME,
        lock=lock,
        owner=fake.owner,
        repo=fake.repo,
        api_url=api_url,
        server_url=fake.guest_url,
        labels=json.dumps(LABELS),
        reports=reports,
        token_file_line=f'token_file = "{token_file}"' if token_file else "",
        state_file_line=f'state_file = "{state_file}"' if state_file else "",
        remediation=remediation,
        multipass=multipass,
        extra=extra,
    )


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
    """Runs `python -m pytest checks` against the test bed, as cron or a user would. Its state
    file is its own (root's default, /var/lib/runner-health, would be this host's)."""

    def __init__(
        self,
        vm: TestbedVM,
        fake: FakeGitHub,
        workdir: Path,
        *,
        remediation: str = "",
        multipass: str = "",
        extra: str = "",
    ) -> None:
        self.vm = vm
        self.fake = fake
        self.workdir = workdir
        self.config = workdir / "runner-health.toml"
        self.lock = workdir / "runner-health.lock"
        self.state_file = workdir / "state" / "state.json"
        self.config.write_text(
            config_text(
                fake,
                target=f"multipass://{RUNNER_NAME}",
                api_url=fake.url,
                lock=str(self.lock),
                reports=str(workdir / "reports"),
                state_file=str(self.state_file),
                remediation=remediation,
                multipass=multipass,
                extra=extra,
            )
        )
        self.runs = 0

    def command(
        self, *args: str, report_dir: Path | None = None
    ) -> tuple[list[str], dict[str, str], Path]:
        self.runs += 1
        report_dir = report_dir or self.workdir / "reports" / f"run-{self.runs:02d}"
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

    def run(
        self, *args: str, live: bool = False, report_dir: Path | None = None, timeout: float = 900
    ) -> Outcome:
        """Run to the end; ``live`` streams the output to this terminal instead of keeping it."""
        argv, env, report_dir = self.command(*args, report_dir=report_dir)
        done = subprocess.run(
            argv,
            cwd=REPO_ROOT,
            env=env,
            capture_output=not live,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = (done.stdout or "") + (done.stderr or "")
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


def unit_name(vm: TestbedVM) -> str:
    return vm.ssh(f"cat {RUNNER_DIR}/.service").stdout.strip()


def register(vm: TestbedVM, fake: FakeGitHub, token: str) -> subprocess.CompletedProcess[str]:
    """Configure the runner stand-in the way a user does, token on stdin (never in argv).

    First the time knob goes into the runner's .env (the listener reads it at start; config.sh
    and re-registration only append to .env, so it stays).
    """
    knob = f"RUNNER_STANDIN_TIME_SCALE={TIME_SCALE}"
    configure = (
        f"cd {RUNNER_DIR} && {{ grep -qx {knob} .env 2>/dev/null || echo {knob} >> .env; }} && "
        "IFS= read -r ACTIONS_RUNNER_INPUT_TOKEN && export ACTIONS_RUNNER_INPUT_TOKEN && "
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


PRODUCT_PATHS = ("checks", "remediations", "runner_health", "conftest.py", "pyproject.toml")
INSTALL_DIR = "/opt/runner-health"


def runtime_files() -> list[tuple[Path, str]]:
    """(file, path in site-packages) for runner-health's runtime dependencies, as installed here.

    The VM has no network, so `pytest checks` is installed there from this venv: the
    closure of the project's requirements (not the dev extras), file by file.
    """
    todo, seen, files = ["runner-health"], set(), []
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        for req in map(Requirement, dist.requires or []):
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
        if key != "runner-health":
            files += [
                (Path(dist.locate_file(f)), str(f))
                for f in dist.files or []
                if not str(f).startswith("..")
            ]
    return files


def configure_on_vm(vm: TestbedVM, fake: FakeGitHub, *, config_dir: str, reports: str) -> None:
    """A local:// config and a root-only token file in ``config_dir`` inside the VM (the
    cron/timer setup); the token travels on stdin, never on a command line."""
    config = config_text(
        fake,
        target="local://",
        api_url=fake.guest_url,
        lock="/run/runner-health.lock",
        reports=reports,
        token_file=f"{config_dir}/token",
    )
    vm.ssh(f"mkdir -p {config_dir} && cat > {config_dir}/config.toml", input=config.encode())
    vm.ssh(f"umask 077 && cat > {config_dir}/token", input=fake.admin_token.encode())


def install_on_vm(vm: TestbedVM) -> None:
    """Copy runner-health and its dependencies to /opt/runner-health in the VM (tar on stdin)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in PRODUCT_PATHS:
            tar.add(
                REPO_ROOT / path,
                arcname=path,
                filter=lambda t: None if "__pycache__" in t.name else t,
            )
        for file, name in runtime_files():
            if file.is_file() and "__pycache__" not in name:
                tar.add(file, arcname=f"site-packages/{name}")
    vm.ssh(
        f"rm -rf {INSTALL_DIR} && mkdir -p {INSTALL_DIR} && tar -xz -C {INSTALL_DIR}",
        input=buffer.getvalue(),
    )
