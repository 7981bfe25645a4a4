"""Host-side tests of the actions/runner stand-in (tests/testbed/runner) against FakeGitHub.

No VM: config.sh and bin/Runner.Listener run from a temp copy of the runner directory on the
host. svc.sh needs systemd, which the host doesn't run: the VM tests cover it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_health.runner import RunnerLog, diagnose
from tests.testbed.fake_github import FakeGitHub

RUNNER_SRC = Path(__file__).parent / "runner"
DELETED = "The runner registration has been deleted from the server, please re-configure."
CLOCK = "The local machine's clock may be out of sync with the server time by more than five"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(online_grace=3).start()
    yield fake
    fake.stop()


@pytest.fixture
def runner_dir(tmp_path: Path) -> Path:
    target = tmp_path / "actions-runner"
    shutil.copytree(RUNNER_SRC, target)
    return target


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTIONS_RUNNER_INPUT_")}
    env["RUNNER_ALLOW_RUNASROOT"] = "1"
    env.update(extra)
    return env


def configure(
    runner_dir: Path, github: FakeGitHub, *args: str, token: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    token = token or github.create_registration_token()
    return subprocess.run(
        [
            str(runner_dir / "config.sh"),
            *("--url", github.runner_url(guest=False), "--unattended"),
            *("--name", "vm1", "--labels", "bpf", *args),
        ],
        env=_env(ACTIONS_RUNNER_INPUT_TOKEN=token, **env),
        capture_output=True,
        text=True,
        timeout=30,
    )


def start_listener(runner_dir: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(runner_dir / "bin" / "Runner.Listener"), "run"],
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def diag(runner_dir: Path) -> str:
    return "".join(p.read_text() for p in sorted((runner_dir / "_diag").glob("Runner_*.log")))


def causes(runner_dir: Path, printed: str) -> list[str]:
    """What runner-health's diagnosis reads in the _diag logs and the printed (journal) lines."""
    return [f.cause for f in diagnose(RunnerLog(diag=diag(runner_dir), journal=printed))]


@pytest.fixture
def listeners() -> Iterator[list[subprocess.Popen[str]]]:
    """Every listener a test starts is stopped (by its pid) afterwards."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the listener stops its Worker first
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def run_to_exit(proc: subprocess.Popen[str], listeners: list[subprocess.Popen[str]]) -> str:
    """Wait for a listener to exit (it is reaped by the fixture if it doesn't); its output."""
    listeners.append(proc)
    out, _ = proc.communicate(timeout=15)
    return out


def test_configure_writes_the_real_files_and_registers(
    runner_dir: Path, github: FakeGitHub
) -> None:
    result = configure(runner_dir, github)
    assert result.returncode == 0, result.stderr
    assert "Settings Saved." in result.stdout
    raw = (runner_dir / ".runner").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), ".NET writes .runner as UTF-8 with a BOM"
    settings = json.loads(raw.decode("utf-8-sig"))
    assert {"agentId", "agentName", "poolId", "serverUrl", "gitHubUrl", "workFolder"} <= set(
        settings
    )
    assert settings["agentName"] == "vm1"
    assert settings["workFolder"] == "_work"
    for name in (".credentials", ".credentials_rsaparams", ".env", ".path"):
        assert (runner_dir / name).is_file(), name
    registered = github.runner("vm1")
    assert registered is not None
    assert registered["id"] == settings["agentId"]
    assert registered["status"] == "offline"  # configured, not running
    assert [lbl["name"] for lbl in registered["labels"]] == ["self-hosted", "Linux", "X64", "bpf"]


def test_token_stays_out_of_argv_logs_and_children(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    token = github.create_registration_token()
    result = configure(runner_dir, github, token=token)  # token only in ACTIONS_RUNNER_INPUT_TOKEN
    assert result.returncode == 0, result.stderr
    assert token not in result.stdout + result.stderr
    assert token not in diag(runner_dir)
    assert "Removing env var: 'ACTIONS_RUNNER_INPUT_TOKEN'" in diag(runner_dir)

    # the listener drops ACTIONS_RUNNER_INPUT_* once read: its Worker child never sees it
    secret = "FAKESECRETVALUEFORTHETEST0001"
    proc = start_listener(runner_dir, ACTIONS_RUNNER_INPUT_TOKEN=secret)
    listeners.append(proc)
    github.wait_for(lambda: github.runner("vm1")["status"] == "online", 10)
    github.queue_job(["bpf"], duration=3)
    worker = str(runner_dir / "bin" / "Runner.Worker")
    pids = github.wait_for(
        lambda: subprocess.run(["pgrep", "-f", worker], capture_output=True, text=True).stdout,
        timeout=10,
    )
    pid = pids.split()[0]
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert secret.encode() not in environ
    assert b"ACTIONS_RUNNER_INPUT_" not in environ
    assert secret.encode() not in cmdline
    assert secret.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()


def test_refuses_root_without_allow_runasroot(runner_dir: Path, github: FakeGitHub) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    env = _env(ACTIONS_RUNNER_INPUT_TOKEN=github.create_registration_token())
    del env["RUNNER_ALLOW_RUNASROOT"]
    result = subprocess.run(
        [str(runner_dir / "config.sh"), "--url", github.runner_url(guest=False), "--unattended"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stdout.strip() == "Must not run with sudo"
    assert not (runner_dir / ".runner").exists()


def test_expired_registration_token_fails_with_not_found(
    runner_dir: Path, github: FakeGitHub
) -> None:
    token = github.create_registration_token()
    github.expire_registration_tokens()
    result = configure(runner_dir, github, token=token)
    assert result.returncode == 1
    assert "Http response code: NotFound from 'POST " in result.stderr
    assert "actions/runner-registration' (Request Id: " in result.stderr
    assert not (runner_dir / ".runner").exists()
    assert github.runner("vm1") is None


def test_already_configured(runner_dir: Path, github: FakeGitHub) -> None:
    assert configure(runner_dir, github).returncode == 0
    again = configure(runner_dir, github, "--replace")
    assert again.returncode == 1
    assert "Cannot configure the runner because it is already configured" in again.stderr


def test_same_name_needs_replace(tmp_path: Path, github: FakeGitHub) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    shutil.copytree(RUNNER_SRC, first)
    shutil.copytree(RUNNER_SRC, second)
    assert configure(first, github).returncode == 0
    old_id = github.runner("vm1")["id"]
    clash = configure(second, github)
    assert clash.returncode == 1
    assert "A runner exists with the same name" in clash.stdout + clash.stderr
    replaced = configure(second, github, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert "Successfully replaced the runner" in replaced.stdout
    assert github.runner("vm1")["id"] == old_id
    assert len(github.runners()) == 1


def test_remove_local_and_remove_with_token(runner_dir: Path, github: FakeGitHub) -> None:
    assert configure(runner_dir, github).returncode == 0
    remove = [str(runner_dir / "config.sh"), "remove"]
    (runner_dir / ".service").write_text("actions.runner.acme-kernel-ci.vm1.service\n")
    blocked = subprocess.run(
        [*remove, "--token", "x"], env=_env(), capture_output=True, text=True, timeout=30
    )
    assert blocked.returncode == 1
    assert "Uninstall service first" in blocked.stderr
    (runner_dir / ".service").unlink()

    token = github.create_registration_token("remove")
    removed = subprocess.run(
        [*remove, "--unattended"],
        env=_env(ACTIONS_RUNNER_INPUT_TOKEN=token),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert removed.returncode == 0, removed.stderr
    assert "Runner removed successfully" in removed.stdout
    assert github.runner("vm1") is None
    assert not (runner_dir / ".runner").exists()

    assert configure(runner_dir, github).returncode == 0
    github.delete_runner("vm1")  # gone at GitHub: only --local gets the runner out of it
    local = subprocess.run(
        [*remove, "--local"], env=_env(), capture_output=True, text=True, timeout=30
    )
    assert local.returncode == 0
    assert "Removed .credentials" in local.stdout and "Removed .runner" in local.stdout
    assert not (runner_dir / ".credentials").exists()


def test_online_then_busy_then_idle_then_offline_on_sigterm(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    proc = start_listener(runner_dir)
    listeners.append(proc)
    github.wait_for(lambda: github.runner("vm1")["status"] == "online", 10)
    job = github.queue_job(["self-hosted", "bpf"], duration=1.5)
    github.wait_for(lambda: github.runner("vm1")["busy"], 5)
    running = github.job(job["id"])
    assert running["runner_name"] == "vm1" and running["status"] in ("queued", "in_progress")
    assert subprocess.run(["pgrep", "-f", str(runner_dir / "bin/Runner.Worker")]).returncode == 0
    done = github.wait_for(
        lambda: (j := github.job(job["id"]))["status"] == "completed" and j, timeout=10
    )
    assert done["conclusion"] == "success"
    assert not github.runner("vm1")["busy"]
    assert (runner_dir / "_work/kernel-ci/kernel-ci" / f"job-{job['id']}.bin").is_file()

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Listening for Jobs" in out
    assert "Job build completed with result: Succeeded" in out
    assert github.runner("vm1")["status"] == "offline"  # session deleted: offline at once


def test_job_for_other_labels_is_not_taken(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    listeners.append(start_listener(runner_dir))
    github.wait_for(lambda: github.runner("vm1")["status"] == "online", 10)
    job = github.queue_job(["self-hosted", "gpu"])
    time.sleep(1)
    assert github.job(job["id"])["status"] == "queued"
    assert github.job(job["id"])["runner_id"] is None


def test_deleted_registration_exits_1_with_the_real_line(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    proc = start_listener(runner_dir)
    listeners.append(proc)
    github.wait_for(lambda: github.runner("vm1")["status"] == "online", 10)
    assert github.delete_runner("vm1")
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 2, out  # while running: session gone -> retryable error
    assert DELETED in out

    again = start_listener(runner_dir)  # what run.sh / runsvc.sh do next
    listeners.append(again)
    out, _ = again.communicate(timeout=15)
    assert again.returncode == 1, out
    assert DELETED in out
    # Trace.Error(ex) names the exception first, as the real one does (actions-runner-controller#4307)
    exception = r"ERR  MessageListener\] GitHub\.Services\.OAuth\.VssOAuthTokenRequestException: "
    assert re.search(
        rf"{exception}Registration [0-9a-f-]{{36}} was not found\.$", diag(runner_dir), re.M
    )
    assert causes(runner_dir, out) == ["registration_gone"]


def test_run_sh_stops_for_good_after_deletion(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    github.delete_runner("vm1")
    proc = subprocess.Popen(
        [str(runner_dir / "run.sh")],
        env=_env(RUNNER_STANDIN_RELAUNCH_DELAY="0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    listeners.append(proc)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "Runner listener exit with terminated error, stop the service, no retry needed." in out


def test_clock_skew_logs_the_real_lines_then_gives_up(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    proc = start_listener(
        runner_dir,
        RUNNER_STANDIN_CLOCK_OFFSET="7200",
        RUNNER_STANDIN_SESSION_RETRY_INTERVAL="0.5",
        RUNNER_STANDIN_CLOCK_SKEW_RETRY_LIMIT="1",
    )
    out = run_to_exit(proc, listeners)
    assert proc.returncode == 1, out
    assert CLOCK in out
    assert "Current server time is" in out
    assert "Stopped retrying OAuth token request exception after 1 seconds." in out
    assert github.runner("vm1")["status"] == "offline"
    assert causes(runner_dir, out) == ["clock"]
    # _diag names and stamps use the machine's (skewed) clock, as the real runner's do
    newest = sorted((runner_dir / "_diag").glob("Runner_*.log"))[-1].name
    assert newest > f"Runner_{time.strftime('%Y%m%d-%H%M%S', time.gmtime(time.time() + 3600))}"


def test_second_listener_gets_session_conflict(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    listeners.append(start_listener(runner_dir))
    github.wait_for(lambda: github.runner("vm1")["status"] == "online", 10)
    second = start_listener(
        runner_dir,
        RUNNER_STANDIN_SESSION_RETRY_INTERVAL="0.3",
        RUNNER_STANDIN_SESSION_CONFLICT_RETRY_LIMIT="0.6",
    )
    out = run_to_exit(second, listeners)
    assert second.returncode == 5, out
    assert "A session for this runner already exists." in out
    assert causes(runner_dir, out) == ["session_conflict"]


def test_deprecated_version_exits_terminated(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    github.deprecate_runner_version("*")
    proc = start_listener(runner_dir)
    out = run_to_exit(proc, listeners)
    assert proc.returncode == 1
    assert "is deprecated and cannot receive messages." in out
    assert causes(runner_dir, out) == ["deprecated"]


def test_outage_then_reconnect(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    github.online_grace = 1
    github.poll_timeout = 0.5
    assert configure(runner_dir, github).returncode == 0
    proc = start_listener(runner_dir, RUNNER_STANDIN_MESSAGE_RETRY_BACKOFF="0.4")
    listeners.append(proc)
    github.wait_for(lambda: github.runner("vm1")["status"] == "online", 10)
    github.fail_with("5xx")
    # failing polls don't count as contact: offline once online_grace has passed
    github.wait_for(lambda: github.runner("vm1")["status"] == "offline", 10)
    github.fail_with(None)
    github.wait_for(lambda: github.runner("vm1")["status"] == "online", 10)
    github.wait_for(lambda: "Runner reconnected." in diag(runner_dir), 10)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Runner connect error:" in out and "Retrying until reconnected." in out
    assert "Runner reconnected." in out


def test_enospc_fails_the_job(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    assert configure(runner_dir, github).returncode == 0
    workspace = runner_dir / "_work" / "kernel-ci" / "kernel-ci"
    workspace.mkdir(parents=True)
    job = github.queue_job(["bpf"], duration=0)  # queued before any runner is online
    # /dev/full answers every write with ENOSPC, as a full _work disk does
    (workspace / f"job-{job['id']}.bin").symlink_to("/dev/full")
    proc = start_listener(runner_dir)
    listeners.append(proc)
    done = github.wait_for(
        lambda: (j := github.job(job["id"]))["status"] == "completed" and j, timeout=10
    )
    assert done["conclusion"] == "failure"
    assert done["runner_name"] == "vm1"
    worker_log = "".join(p.read_text() for p in (runner_dir / "_diag").glob("Worker_*.log"))
    assert "No space left on device" in worker_log
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    # The listener keeps its Worker's output to itself (JobDispatcher.cs): not in the journal
    assert "No space left on device" not in out
    assert causes(runner_dir, out) == []
