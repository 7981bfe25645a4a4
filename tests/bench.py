"""`make bench`: what a healthy pass costs on each backend, against the raw probe (the same
facts in one remote command, and one API call), and how long each fault the test bed can
inject takes to heal. A benchmark, not a test: it prints figures and asserts nothing.

Boots the test-bed VM (run it under ``flock /tmp/vm.lock``: one VM per machine at a time).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.harness import (
    INSTALL_DIR,
    REPO_ROOT,
    RUNNER_DIR,
    Outcome,
    Suite,
    configure_on_vm,
    install_on_vm,
    register,
    unit_name,
    wait_online,
)
from tests.testbed.vm import TestbedVM, multipass_env

RUNS = 5  # measured passes per backend, after one that primes the ETags and connections


@dataclass(frozen=True)
class Pass:
    """One `pytest checks` run and what it cost."""

    outcome: Outcome
    seconds: float
    requests: int  # REST requests to the fake GitHub
    counted: int  # of those, counted against the rate limit (a 304 is not)
    commands: int  # commands runner-health ran: round trips to the VM (and to Multipass)


def api_requests(fake: FakeGitHub) -> int:
    return sum(1 for _, path, _ in list(fake.requests) if not path.startswith("/_runner/"))


def counted_pass(suite: Suite, count_file: Path, *args: str) -> Pass:
    """Run `pytest checks` as cron does, counting its commands (tests/bench_probe.py) and
    its requests to the fake GitHub."""
    argv, env, report_dir = suite.command("-p", "tests.bench_probe", *args)
    env["BENCH_COUNT"] = str(count_file)
    fake = suite.fake
    requests, remaining = api_requests(fake), fake.rate_limit_remaining
    started = time.monotonic()
    done = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    seconds = time.monotonic() - started
    time.sleep(0.2)  # the fake records a request after answering it
    outcome = Outcome(done.returncode, done.stdout + done.stderr, report_dir)
    return Pass(
        outcome,
        seconds,
        api_requests(fake) - requests,
        remaining - fake.rate_limit_remaining,
        int(count_file.read_text()),
    )


@dataclass(frozen=True)
class Backend:
    name: str
    passes: list[Pass]
    probes: list[float]
    first: Pass

    def line(self) -> str:
        healthy = statistics.median(p.seconds for p in self.passes)
        probe = statistics.median(self.probes)
        median = lambda f: statistics.median(f(p) for p in self.passes)  # noqa: E731
        statuses = sorted({p.outcome.returncode for p in self.passes})
        return (
            f"{self.name:9} {healthy:7.2f} s {probe:7.3f} s {healthy / probe:7.1f}x "
            f"{median(lambda p: p.commands):>9g} {median(lambda p: p.requests):>8g} "
            f"{median(lambda p: p.counted):>7g} {self.first.counted:>11} {statuses}"
        )


HEADER = (
    f"{'backend':9} {'pass':>9} {'probe':>9} {'ratio':>8} {'commands':>9} {'requests':>8} "
    f"{'counted':>7} {'1st counted':>11} exit"
)


def measure(name: str, suite: Suite, probe: Callable[[], float], args: list[str]) -> Backend:
    count = suite.workdir / "commands.count"
    first = counted_pass(suite, count, *args)
    passes, probes = [], []
    for _ in range(RUNS):
        passes.append(counted_pass(suite, count, *args))
        probes.append(probe())
    return Backend(name, passes, probes, first)


def host_probe(suite: Suite, *target: str) -> float:
    """The raw probe from this machine (multipass or ssh), timed inside its process."""
    argv = [sys.executable, "-m", "tests.bench_probe", str(suite.config), *target]
    env = multipass_env(suite.vm)
    env["GITHUB_TOKEN"] = suite.fake.admin_token
    done = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout)["seconds"]


# -- the local backend: runner-health on the VM itself ------------------------------------


def local_backend(vm: TestbedVM, fake: FakeGitHub) -> Backend:
    """As test_on_the_vm_itself_with_the_local_backend installs it; timed inside the VM."""
    install_on_vm(vm)
    vm.ssh(
        f"cat > {INSTALL_DIR}/bench_probe.py",
        input=(REPO_ROOT / "tests/bench_probe.py").read_bytes(),
    )
    configure_on_vm(
        vm, fake, config_dir="/etc/runner-health-bench", reports="/var/tmp/runner-health-bench"
    )
    env = f"cd {INSTALL_DIR} && export PYTHONPATH={INSTALL_DIR}/site-packages"

    def run_pass() -> Pass:
        requests, remaining = api_requests(fake), fake.rate_limit_remaining
        command = (
            f"{env} BENCH_COUNT=/tmp/bench.count && s=$(date +%s.%N) && "
            "python3 -m pytest checks -q -p no:cacheprovider -p bench_probe "
            "--config /etc/runner-health-bench/config.toml >/tmp/bench.out 2>&1; "
            'r=$?; e=$(date +%s.%N); echo "$r $s $e $(cat /tmp/bench.count)"'
        )
        rc, start, end, commands = vm.ssh(command, timeout=600).stdout.split()
        time.sleep(0.2)
        outcome = Outcome(int(rc), "", Path("/nonexistent"))
        return Pass(
            outcome,
            float(end) - float(start),
            api_requests(fake) - requests,
            remaining - fake.rate_limit_remaining,
            int(commands),
        )

    def probe() -> float:
        out = vm.ssh(f"{env} && python3 bench_probe.py /etc/runner-health-bench/config.toml").stdout
        return json.loads(out)["seconds"]

    first = run_pass()
    passes, probes = [], []
    for _ in range(RUNS):
        passes.append(run_pass())
        probes.append(probe())
    return Backend("local", passes, probes, first)


# -- faults: inject, run once, time the healing run ----------------------------------------


def clock_skew(vm: TestbedVM, fake: FakeGitHub) -> None:
    synced = lambda: "Leap status     : Normal" in vm.ssh("chronyc -n tracking").stdout  # noqa: E731
    fake.wait_for(synced, timeout=120)
    time.sleep(5)  # past chrony's first steps (makestep 1 3), or the fault undoes itself
    vm.ssh("date -s '+3 hours' >/dev/null")


def disk_full(vm: TestbedVM, fake: FakeGitHub) -> None:
    vm.ssh(
        f"sudo -u github-runner sh -c 'mkdir -p {RUNNER_DIR}/_work/old/old && "
        f"dd if=/dev/zero of={RUNNER_DIR}/_work/old/old/fill bs=1M 2>&1'",
        check=False,
    )
    vm.ssh(f"find {RUNNER_DIR}/_work/old -exec touch -h -d '1 hour ago' {{}} +")


def registration_deleted(vm: TestbedVM, fake: FakeGitHub) -> None:
    fake.delete_runner("assay-bpf-runner")
    diag = lambda: vm.ssh(f"cat {RUNNER_DIR}/_diag/Runner_*.log", check=False).stdout  # noqa: E731
    fake.wait_for(lambda: "registration has been deleted" in diag(), timeout=60)


FAULTS: dict[str, Callable[[TestbedVM, FakeGitHub], None]] = {
    "service stopped": lambda vm, fake: vm.ssh(f"systemctl stop {unit_name(vm)}"),
    "clock skewed +3 h": clock_skew,
    "work disk full": disk_full,
    "registration deleted": registration_deleted,
    "VM stopped": lambda vm, fake: vm.stop(),
}


def heal_times(suite: Suite) -> list[str]:
    lines = []
    for name, inject in FAULTS.items():
        inject(suite.vm, suite.fake)
        run = counted_pass(suite, suite.workdir / "fault.count")
        healed = [c["name"] for c in run.outcome.summary["checks"] if c["outcome"] == "healed"]
        lines.append(
            f"{name:22} {run.seconds:6.1f} s  exit {run.outcome.returncode}  "
            f"healed: {', '.join(healed) or '-'}  ({run.commands} commands, "
            f"{run.requests} requests, {run.counted} counted)"
        )
        wait_online(suite.fake)
    return lines


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="runner-health-bench-"))
    vm = TestbedVM(state)
    with FakeGitHub() as fake:
        try:
            started = time.monotonic()
            vm.boot()
            done = register(vm, fake, fake.create_registration_token())
            if done.returncode != 0:
                print(done.stdout + done.stderr)
                return 1
            vm.ssh(f"cd {RUNNER_DIR} && ./svc.sh install github-runner && ./svc.sh start")
            wait_online(fake)
            print(f"test bed up in {time.monotonic() - started:.0f} s; {RUNS} passes per backend\n")
            (state / "multipass").mkdir()
            (state / "ssh").mkdir()
            over_multipass = Suite(vm, fake, state / "multipass")
            over_ssh = Suite(vm, fake, state / "ssh")
            ssh = [vm.ssh_target("root"), str(vm.ssh_config)]
            backends = [
                measure("multipass", over_multipass, lambda: host_probe(over_multipass), []),
                measure(
                    "ssh",
                    over_ssh,
                    lambda: host_probe(over_ssh, *ssh),
                    [f"--hosts={ssh[0]}", f"--ssh-config={ssh[1]}"],
                ),
                local_backend(vm, fake),
            ]
            print("healthy pass vs the raw probe (medians; commands = round trips, requests")
            print("= REST requests per pass, counted = against the rate limit, 1st = a first pass)")
            print(HEADER)
            for backend in backends:
                print(backend.line(), flush=True)
            print("\ntime to heal: the one `pytest checks` run (over multipass) that heals it")
            for line in heal_times(over_multipass):
                print(line, flush=True)
            return 0
        finally:
            vm.shutdown()


if __name__ == "__main__":
    sys.exit(main())
