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
from tests.testbed.fake_github.server import ORPHAN_SESSION_SECONDS

RUNNER_SRC = Path(__file__).parent / "runner"
DELETED = "The runner registration has been deleted from the server, please re-configure."
CLOCK = "The local machine's clock may be out of sync with the server time by more than five"
REVOKED = "Runner OAuth token has been revoked."
# RUNNER_STANDIN_TIME_SCALE for these tests: session retry 0.3 s, conflict limit 2.4 s,
# clock skew 18 s, poll back-off 0.15-0.6 s; the fake's orphan sessions last 3 s
SCALE = 0.01


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(online_grace=3, orphan_session_seconds=ORPHAN_SESSION_SECONDS * SCALE)
    fake.start()
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
    env["RUNNER_STANDIN_TIME_SCALE"] = str(SCALE)
    env.update(extra)
    return env


def use_flow(runner_dir: Path, github: FakeGitHub, *, broker: bool) -> None:
    """Pin the message flow in .runner (useV2Flow, serverUrlV2), whatever configure chose."""
    path = runner_dir / ".runner"
    settings = json.loads(path.read_text(encoding="utf-8-sig"))
    settings.pop("useV2Flow", None)
    settings.pop("serverUrlV2", None)
    if broker:
        settings.update(useV2Flow=True, serverUrlV2=f"{github.url}/_runner")
    path.write_text("\ufeff" + json.dumps(settings), encoding="utf-8")


def set_version(runner_dir: Path, version: str) -> None:
    """Make this copy of the stand-in another runner version (its VERSION line)."""
    listener = runner_dir / "bin" / "Runner.Listener"
    text = re.sub(
        r'^VERSION = "[0-9.]+"$', f'VERSION = "{version}"', listener.read_text(), flags=re.M
    )
    listener.write_text(text)


def fake_listener(runner_dir: Path, script: str) -> None:
    """Replace bin/Runner.Listener by a bash script (for runsvc.sh / run.sh tests)."""
    listener = runner_dir / "bin" / "Runner.Listener"
    listener.write_text("#!/bin/bash\n" + script)
    listener.chmod(0o755)


def online(github: FakeGitHub) -> bool:
    return (github.runner("vm1") or {}).get("status") == "online"


def listening(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]], *, broker: bool
) -> subprocess.Popen[str]:
    """A configured runner of that flow, its listener started and online."""
    assert configure(runner_dir, github).returncode == 0
    use_flow(runner_dir, github, broker=broker)
    proc = start_listener(runner_dir)
    listeners.append(proc)
    github.wait_for(lambda: online(github), 10)
    return proc


def configure(
    runner_dir: Path,
    github: FakeGitHub,
    *args: str,
    token: str | None = None,
    name: str = "vm1",
    **env: str,
) -> subprocess.CompletedProcess[str]:
    token = token or github.create_registration_token()
    return subprocess.run(
        [
            str(runner_dir / "config.sh"),
            *("--url", github.runner_url(guest=False), "--unattended"),
            *("--name", name, "--labels", "bpf", *args),
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


def run_to_exit(
    proc: subprocess.Popen[str], listeners: list[subprocess.Popen[str]], timeout: float = 15
) -> str:
    """Wait for a listener to exit (it is reaped by the fixture if it doesn't); its output."""
    listeners.append(proc)
    out, _ = proc.communicate(timeout=timeout)
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


def test_deleted_registration_legacy_flow_exits_2_then_1_with_the_real_line(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    proc = listening(runner_dir, github, listeners, broker=False)
    assert github.delete_runner("vm1")
    out, _ = proc.communicate(timeout=15)
    # 2.334: TaskAgentNotFoundException is not retried and reaches Program.cs: exit 2
    assert proc.returncode == 2, out
    assert "An error occurred: " in out

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
    assert (runner_dir / ".runner").is_file()  # 2.334 never cleans up itself


def test_deleted_registration_broker_flow_exits_1(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    proc = listening(runner_dir, github, listeners, broker=True)
    assert github.delete_runner("vm1")
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 1, out  # RunnerNotFoundException: Program.cs:148-153
    assert "An error occurred: " in out
    assert "RunnerNotFoundException" in diag(runner_dir)
    assert (runner_dir / ".runner").is_file()


@pytest.mark.parametrize("broker", [False, True], ids=["legacy", "broker"])
def test_2_336_cleans_up_its_config_when_the_runner_is_gone(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]], broker: bool
) -> None:
    set_version(runner_dir, "2.336.0")
    proc = listening(runner_dir, github, listeners, broker=broker)
    assert github.delete_runner("vm1")
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out  # Runner.cs:823-830,877-880
    assert "The runner no longer exists on the server. Cleaning up local configuration." in out
    assert "Removed .credentials" in out and "Removed .runner" in out
    for name in (".runner", ".credentials", ".credentials_rsaparams"):
        assert not (runner_dir / name).exists(), name
    assert (runner_dir / ".env").is_file() and (runner_dir / ".path").is_file()
    assert causes(runner_dir, out) == ["registration_gone"]


def test_run_sh_stops_for_good_after_deletion(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    github.delete_runner("vm1")
    proc = subprocess.Popen(
        [str(runner_dir / "run.sh")],
        env=_env(),
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
    # scale 1/1000: retried every 0.03 s, given up after 1.8 s (60 tries, as 30 s / 1800 s)
    proc = start_listener(
        runner_dir, RUNNER_STANDIN_CLOCK_OFFSET="7200", RUNNER_STANDIN_TIME_SCALE="0.001"
    )
    out = run_to_exit(proc, listeners)
    assert proc.returncode == 1, out
    assert CLOCK in out
    assert "Current server time is" in out
    assert "Stopped retrying OAuth token request exception after 1.8 seconds." in out
    assert out.count(CLOCK) == 60
    assert github.runner("vm1")["status"] == "offline"
    assert causes(runner_dir, out) == ["clock"]
    # _diag names and stamps use the machine's (skewed) clock, as the real runner's do
    newest = sorted((runner_dir / "_diag").glob("Runner_*.log"))[-1].name
    assert newest > f"Runner_{time.strftime('%Y%m%d-%H%M%S', time.gmtime(time.time() + 3600))}"


def test_second_listener_gets_session_conflict_for_240_scaled_seconds_then_exits_5(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    listening(runner_dir, github, listeners, broker=False)
    started = time.monotonic()
    second = start_listener(runner_dir)
    out = run_to_exit(second, listeners)
    took = time.monotonic() - started
    assert second.returncode == 5, out
    # MessageListener.cs:526-546: a conflict every 30 s, the 8th (8 x 30 >= 240) stops it
    assert out.splitlines().count("A session for this runner already exists.") == 8
    assert "Stop retry on SessionConflictException after retried for 2.4 seconds." in out
    assert 2.0 < took < 6, took
    # the first conflict is retried, so it is also a "Runner connect error" line (:185), with
    # the server's text, which "Failed to create session." repeats (actions/runner#1506)
    conflict = "The actions runner vm1 already has an active session."
    assert f"Runner connect error: {conflict}. Retrying until reconnected." in out
    assert f"Failed to create session. {conflict}" in out
    assert "session_conflict" in causes(runner_dir, out)


def test_default_windows_are_the_real_ones(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    listeners.append(start_listener(runner_dir))
    github.wait_for(lambda: online(github), 10)
    env = _env()
    del env["RUNNER_STANDIN_TIME_SCALE"]
    second = subprocess.Popen(
        [str(runner_dir / "bin" / "Runner.Listener"), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    listeners.append(second)
    github.wait_for(lambda: "Sleeping for 30 seconds before retrying." in diag(runner_dir), 10)
    second.send_signal(signal.SIGINT)  # a stop while retrying: exit 0 (Program.cs:129-132)
    out, _ = second.communicate(timeout=10)
    assert second.returncode == 0, out
    assert "Exiting..." in out
    # the pinned version, traced first as Program.MainAsync does (release.py reads it)
    assert re.search(r"INFO Listener\] Version: 2\.334\.0$", diag(runner_dir), re.M)


def test_sigkill_orphans_the_session_a_clean_stop_deletes_it(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    first = start_listener(runner_dir)
    listeners.append(first)
    github.wait_for(lambda: online(github), 10)
    session = github.session_of("vm1")
    first.kill()  # SIGKILL: no chance to delete the session
    first.wait(timeout=10)
    assert github.session_of("vm1")["session_id"] == session["session_id"]
    # the orphan (3 s) outlives the successor's conflict retries (2.4 s): exit 5
    second = start_listener(runner_dir)
    out = run_to_exit(second, listeners)
    assert second.returncode == 5, out
    github.wait_for(lambda: github.session_of("vm1") is None, 5)  # expired without polls
    third = start_listener(runner_dir)
    listeners.append(third)
    github.wait_for(lambda: online(github), 10)

    third.send_signal(signal.SIGINT)  # runsvc.sh's stop: the session is deleted at once
    out, _ = third.communicate(timeout=10)
    assert third.returncode == 0, out
    assert github.session_of("vm1") is None
    fourth = start_listener(runner_dir)
    listeners.append(fourth)
    github.wait_for(lambda: online(github), 5)
    assert (
        "A session for this runner already exists."
        not in diag(runner_dir).split("Runner.Listener stand-in")[-1]
    )


@pytest.mark.parametrize("broker", [False, True], ids=["legacy", "broker"])
def test_revoked_token_exits_0_with_the_lines_in_diag_only(
    runner_dir: Path,
    github: FakeGitHub,
    listeners: list[subprocess.Popen[str]],
    broker: bool,
) -> None:
    proc = listening(runner_dir, github, listeners, broker=broker)
    github.revoke_runner_token("vm1")
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert REVOKED not in out  # Trace.Info only: _diag, never the journal
    assert "Runner OAuth token has been revoked. Unable to pull message." in diag(runner_dir)
    assert "Runner OAuth token has been revoked. Shutting down." in diag(runner_dir)

    again = start_listener(runner_dir)
    out = run_to_exit(again, listeners)
    assert again.returncode == 0, out
    assert REVOKED not in out
    assert "Runner OAuth token has been revoked. Session creation failed." in diag(runner_dir)


def test_401_on_session_create_exits_1(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    github.reject_sessions("vm1", 401)
    proc = start_listener(runner_dir)
    out = run_to_exit(proc, listeners)
    assert proc.returncode == 1, out  # VssUnauthorizedException is not retried
    assert f"Failed to create session. You are not authorized to access {github.url}." in out
    assert "Retrying until reconnected" not in out


@pytest.mark.parametrize(
    ("broker", "code", "line"),
    [
        (False, 2, "An error occurred: You are not authorized to access "),
        (True, 1, "An error occurred: Get next message failed with non-retryable error."),
    ],
    ids=["legacy", "broker"],
)
def test_non_retryable_poll_error(
    runner_dir: Path,
    github: FakeGitHub,
    listeners: list[subprocess.Popen[str]],
    broker: bool,
    code: int,
    line: str,
) -> None:
    proc = listening(runner_dir, github, listeners, broker=broker)
    github.fail_polls("vm1", "non_retryable")
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == code, out
    assert line in out


def test_broker_gives_up_after_10_poll_errors_legacy_keeps_retrying(
    tmp_path: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    dirs = {}
    for name, broker in (("vm1", True), ("vm2", False)):
        dirs[name] = tmp_path / name
        shutil.copytree(RUNNER_SRC, dirs[name])
        done = configure(dirs[name], github, name=name)
        assert done.returncode == 0, done.stderr
        use_flow(dirs[name], github, broker=broker)
        listeners.append(start_listener(dirs[name]))
    github.wait_for(lambda: all(github.runner(n)["status"] == "online" for n in dirs), 10)
    for name in dirs:
        github.fail_polls(name, "retryable")
    broker_proc, legacy_proc = listeners
    out, _ = broker_proc.communicate(timeout=30)  # 9 back-offs of 0.15-0.6 s
    assert broker_proc.returncode == 2, out
    assert out.count("Runner connect error: ") == 1
    assert "An error occurred: Failed to get job message." in out
    assert diag(dirs["vm1"]).count("Catch exception during get next message.") == 10
    assert legacy_proc.poll() is None  # MessageListener retries for ever
    github.fail_polls("vm2", None)
    github.wait_for(lambda: "Runner reconnected." in diag(dirs["vm2"]), 10)


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
    use_flow(runner_dir, github, broker=False)  # the broker flow never says "reconnected"
    proc = start_listener(runner_dir)
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
    assert "##[error]System.IO.IOException: No space left on device" in github.job_log(job["id"])
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    # The listener keeps its Worker's output to itself (JobDispatcher.cs): not in the journal
    assert "No space left on device" not in out
    assert causes(runner_dir, out) == []


def test_a_crashed_workers_output_goes_to_diag_and_the_job_never_the_journal(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    # Runner.Worker's Program.cs:54-70: an exception is printed to stdout, then exit 1
    worker = runner_dir / "bin" / "Runner.Worker"
    worker.write_text(
        "#!/bin/bash\ncat >/dev/null\necho '[WORKER 2026-11-29] trace line'\n"
        "echo \"System.IO.IOException: No space left on device : '$PWD/_diag/pages/1.log'\"\n"
        "echo '   at GitHub.Runner.Common.PagingLogger.Write(String message)'\nexit 1\n"
    )
    assert configure(runner_dir, github).returncode == 0
    job = github.queue_job(["bpf"])
    proc = start_listener(runner_dir)
    listeners.append(proc)
    done = github.wait_for(
        lambda: (j := github.job(job["id"]))["status"] == "completed" and j, timeout=10
    )
    assert done["conclusion"] == "failure"
    assert "System.IO.IOException: No space left on device" in github.job_log(job["id"])
    github.wait_for(lambda: "Unhandled exception happened in worker:" in diag(runner_dir), 5)
    assert "System.IO.IOException: No space left on device" in diag(runner_dir)
    assert "[WORKER" not in github.job_log(job["id"])  # JobDispatcher.cs:448
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert "No space left on device" not in out
    assert "Job build completed with result: Failed" in out
    assert causes(runner_dir, out) == ["disk_full"]  # the listener's trace of the crash


def _runsvc(runner_dir: Path, **env: str) -> subprocess.Popen[str]:
    shutil.copy(runner_dir / "bin" / "runsvc.sh", runner_dir / "runsvc.sh")  # svc.sh install
    return subprocess.Popen(
        [str(runner_dir / "runsvc.sh")],
        cwd=runner_dir,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize("listening", [True, False], ids=["listening-resets", "no-reset"])
def test_runsvc_counts_consecutive_retryable_exits(
    runner_dir: Path, listeners: list[subprocess.Popen[str]], listening: bool
) -> None:
    announce = "echo 'Listening for Jobs'" if listening else ":"
    fake_listener(
        runner_dir,
        "n=$(( $(cat runs 2>/dev/null || echo 0) + 1 )); echo $n > runs\n"
        f"{announce}\n[ $n -ge 12 ] && exit 1\nexit 2\n",
    )
    proc = _runsvc(runner_dir)
    out = run_to_exit(proc, listeners)
    assert proc.returncode == 0, out
    runs = int((runner_dir / "runs").read_text())
    if listening:  # RunnerService.js:64-68: a listener that got to listen resets the count
        assert runs == 12, out
        assert "Runner listener exit with terminated error, stop the service" in out
        assert "consecutive" not in out
    else:
        assert runs == 10, out
        assert "Stopping the runner after 10 consecutive re-tryable failures" in out


def test_runsvc_forwards_sigterm_as_sigint_then_sigkills_after_30_scaled_seconds(
    runner_dir: Path, listeners: list[subprocess.Popen[str]]
) -> None:
    # python, not bash: a background bash can't trap the SIGINT its parent ignores for it
    fake_listener(
        runner_dir,
        "exec python3 -uc 'import signal, time\n"
        'signal.signal(signal.SIGINT, lambda *_: print("got SIGINT"))\n'
        'print("Listening for Jobs")\n'
        "while True: time.sleep(0.05)'\n",
    )
    proc = _runsvc(runner_dir)
    listeners.append(proc)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Listening for Jobs" in line:
            break
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)  # systemctl stop (KillMode=process: runsvc.sh only)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "got SIGINT" in out
    assert "Sending SIGKILL to runner listener" in out
    assert "Runner listener exited with error code 137" in out
    assert 0.2 < time.monotonic() - started < 5


def test_runsvc_relaunches_a_listener_that_cannot_start(
    runner_dir: Path, listeners: list[subprocess.Popen[str]]
) -> None:
    (runner_dir / "bin" / "Runner.Listener").unlink()  # e.g. a dangling bin link
    proc = _runsvc(runner_dir, GITHUB_ACTIONS_SERVICE_EXIT_AFTER_N_FAILURES="3")
    out = run_to_exit(proc, listeners)
    assert out.count("Runner listener fail to start with error spawn ") == 3, out
    assert "Runner listener exit with undefined return code, re-launch runner in 5 seconds." in out
    assert "exiting service after 3 consecutive failures" in out


def test_runsvc_stops_the_service_when_the_token_is_revoked(
    runner_dir: Path, github: FakeGitHub, listeners: list[subprocess.Popen[str]]
) -> None:
    assert configure(runner_dir, github).returncode == 0
    proc = _runsvc(runner_dir)
    listeners.append(proc)
    github.wait_for(lambda: online(github), 10)
    github.revoke_runner_token("vm1")
    out, _ = proc.communicate(timeout=15)
    assert "Runner listener exit with 0 return code, stop the service, no retry needed." in out
    assert REVOKED not in out  # the journal never says why
    assert "Listening for Jobs" in out  # the listener's output is relayed


def test_run_sh_relaunches_after_an_update(
    runner_dir: Path, listeners: list[subprocess.Popen[str]]
) -> None:
    fake_listener(
        runner_dir,
        "if [ -e updated ]; then exit 1; fi\ntouch updated update.finished\nexit 3\n",
    )
    proc = subprocess.Popen(
        [str(runner_dir / "run.sh")],
        cwd=runner_dir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = run_to_exit(proc, listeners)
    assert proc.returncode == 0, out
    assert (
        "Runner listener exit because of updating, re-launch runner after successful update" in out
    )
    assert "Update finished successfully." in out
    assert "Restarting runner..." in out
    assert "Runner listener exit with terminated error, stop the service, no retry needed." in out
    assert not (runner_dir / "update.finished").exists()
