"""The service and online fixes against the real runner's failures (issue 7, part 2, 1-2).

The service fix stops the unit the way the runner expects (``systemctl stop``: its listener
deletes its session) and kills only what is left; a listener GitHub refused is re-registered,
not restarted. The online fix waits a session conflict out as the runner does, never refusing
it as a clone; re-registers on an auth failure; and leaves a listener that retries its
connection alone, with a network diagnosis. Log lines are the real runner's (see
test_diagnosis.py for their sources).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from remediations import online as online_fix
from remediations import service as service_fix
from remediations.service import ensure_running, start_or_reregister
from runner_health import clock
from runner_health.runner import RunnerLog
from runner_health.steps import RemediationFailed, RemediationRefused, Steps
from tests.scripts.conftest import write_fake
from tests.unit import test_runner_install as runner_tests
from tests.unit.test_runner_install import UNIT, calls, install

dirs, settings = runner_tests.dirs, runner_tests.settings

T = "2026-11-29 10:05:02Z"
REVOKED = f"[{T} INFO Runner] Runner OAuth token has been revoked. Shutting down."
CONFLICT = "A session for this runner already exists."
CONNECT_ERROR = (
    f"{T}: Runner connect error: Name or service not known (pipelines.actions."
    "githubusercontent.com:443). Retrying until reconnected."
)


# -- the service fix: systemctl stop first, SIGKILL only for what is left ---------------------


@pytest.fixture
def unit_state(tmp_path, monkeypatch) -> Path:
    """systemctl and pgrep over one state: the unit active with its listener; ``stop`` ends
    both (the listener deletes its session) unless ``hang`` exists (a hung listener: stop
    waits), ``kill`` ends both, ``start`` starts both. Returns the calls log."""
    bin_dir, state = tmp_path / "fakebin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    (state / "active").touch()
    (state / "listener").touch()
    log = tmp_path / "fake.log"
    log.touch()
    write_fake(
        bin_dir,
        "systemctl",
        f"""s={state}
case "$1" in
is-active) [ -e "$s/active" ] ;;
is-enabled) echo enabled ;;
stop) if [ -e "$s/hang" ]; then sleep 30; fi; rm -f "$s/active" "$s/listener" ;;
kill) rm -f "$s/active" "$s/listener" ;;
start) touch "$s/active" "$s/listener" ;;
esac""",
    )
    write_fake(
        bin_dir,
        "pgrep",
        f'[ "$2" = Runner.Listener ] && [ -e {state}/listener ]',
    )
    write_fake(
        bin_dir, "sudo", 'while [[ $1 == -* ]]; do [[ $1 == -u ]] && shift; shift; done\nexec "$@"'
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def steps_for(runner) -> Steps:
    return Steps(runner.host, dry_run=False, echo=lambda line: None)


def control(log: Path) -> list[str]:
    """The systemctl calls that change the unit (the stop through timeout), in order."""
    return [
        c for c in calls(log, "systemctl") if c.split()[0] in ("stop", "kill", "start", "restart")
    ]


def test_a_restart_stops_the_unit_cleanly_and_kills_nothing(dirs, unit_state, settings):
    runner = install(dirs, UNIT + "\n")
    steps = steps_for(runner)
    ensure_running(runner, settings, steps, why="bring the listener back to GitHub")
    assert control(unit_state) == [f"stop {UNIT}", f"start {UNIT}"]
    assert any(line.startswith(f"$ timeout 60 systemctl stop {UNIT}") for line in steps.lines)


def test_a_listener_that_does_not_stop_in_time_is_killed_then_started(dirs, unit_state, settings):
    (unit_state.parent / "state" / "hang").touch()
    # the stop's bound: min(60 s, this)
    settings = dataclasses.replace(
        settings, remediation=dataclasses.replace(settings.remediation, command_timeout_seconds=1)
    )
    runner = install(dirs, UNIT + "\n")
    ensure_running(runner, settings, steps_for(runner), why="bring the listener back to GitHub")
    assert control(unit_state) == [f"stop {UNIT}", f"kill --signal=SIGKILL {UNIT}", f"start {UNIT}"]


def test_an_inactive_unit_is_only_started(dirs, unit_state, settings):
    (unit_state.parent / "state" / "active").unlink()
    (unit_state.parent / "state" / "listener").unlink()
    runner = install(dirs, UNIT + "\n")
    ensure_running(runner, settings, steps_for(runner), why="the runner service is not running")
    assert control(unit_state) == [f"start {UNIT}"]


@pytest.fixture
def stopped_by(dirs, unit_state, monkeypatch):
    """The unit stopped by the listener's exit, with ``diag`` in its newest _diag log; the
    re-registration the service fix may call, recorded."""
    (unit_state.parent / "state" / "active").unlink()
    (unit_state.parent / "state" / "listener").unlink()
    reconfigured: list[str] = []
    monkeypatch.setattr(
        service_fix, "reconfigure", lambda github, inst, s, steps: reconfigured.append("done")
    )

    def stop(diag: str) -> list[str]:
        (dirs[0] / "_diag").mkdir(exist_ok=True)
        (dirs[0] / "_diag" / "Runner_20261129-100000-utc.log").write_text(diag + "\n")
        return reconfigured

    return stop


def test_a_listener_whose_token_was_revoked_is_re_registered_not_restarted(
    dirs, unit_state, settings, stopped_by, monkeypatch
):
    monkeypatch.setattr(clock, "offset_seconds", lambda host, github: 0.4)
    reconfigured = stopped_by(REVOKED)
    runner = install(dirs, UNIT + "\n")
    steps = steps_for(runner)
    start_or_reregister(object(), runner, settings, steps, why="the runner service is not running")
    assert reconfigured == ["done"]
    assert control(unit_state) == []
    assert "GitHub refused the runner's credentials" in steps.lines[0]


@pytest.mark.parametrize(
    "diag",
    [
        f"[{T} WARN MessageListener] Runner OAuth token has been revoked. Skip deleting session.",
        f"[{T} INFO JobDispatcher] Runner OAuth token has been revoked. Shutting down.",
        f"[{T} INFO Terminal] WRITE LINE: {T}: Running job: Runner OAuth token has been revoked. "
        "Shutting down.",
        f"[{T} ERR  Terminal] WRITE ERROR: {CONFLICT}",  # exit 5: the unit is started again
    ],
)
def test_anything_else_that_stopped_the_unit_gets_a_start_not_a_registration(
    dirs, unit_state, settings, stopped_by, diag
):
    reconfigured = stopped_by(diag)
    runner = install(dirs, UNIT + "\n")
    start_or_reregister(object(), runner, settings, steps_for(runner), why="not running")
    assert reconfigured == []
    assert control(unit_state) == [f"start {UNIT}"]


# -- the online fix ----------------------------------------------------------------------------


class Runner:
    """The runner as the online fix sees it: its log, its listener, GitHub's view of it; and
    what the fix did to it."""

    def __init__(self, journal: str = "", diag: str = "", listener: bool = True) -> None:
        self.log = RunnerLog(diag=diag, journal=journal)
        self.listener = listener
        self.status = "offline"
        self.exits_after = -1  # listener_running() calls until the listener exits (-1: never)
        self.online_after_start = True
        self.did: list[str] = []
        self.user = "github-runner"
        self.commands: list[str] = []
        self.steps = Steps(None, dry_run=False, echo=lambda line: None)
        self.prefetched: bool | None = listener  # what the check's batched read saw
        self.proxy = "http://alice:s3cret@proxy.internal:3128"  # in its .env
        self.stdin: list[str | None] = []  # what each command got on stdin
        self.curl_says = "curl: (6) Could not resolve host: pipelines.actions.githubusercontent.com"

    def ran_a_step(self) -> None:
        """A command ran: the batched read no longer answers (targets.prefetched)."""
        self.prefetched = None

    def start(self) -> None:
        """What a start does: by default, a listener that gets its session."""
        self.ran_a_step()
        self.listener, self.exits_after = True, -1
        self.log = RunnerLog(journal=f"{T}: Listening for Jobs\n")
        if self.online_after_start:
            self.status = "online"

    def report(self) -> str:
        return "\n".join(self.steps.lines)

    # RunnerInstall's reads
    def recent_log(self) -> RunnerLog:
        return self.log

    def listener_running(self, *, fresh: bool = False) -> bool:
        if not fresh and self.prefetched is not None:  # the check's batched read, until a step
            return self.prefetched
        if self.exits_after == 0:
            self.listener = False
        self.exits_after -= 1
        return self.listener

    def registration(self) -> dict:
        return {"serverUrl": "https://pipelines.actions.githubusercontent.com/abc/"}

    def env(self) -> dict:
        return {"https_proxy": self.proxy}

    # GitHub's
    def runner(self, name: str) -> dict:
        return {"name": name, "status": self.status, "busy": False}


@pytest.fixture
def fix(monkeypatch):
    """Run the online fix on a Runner; returns its Steps. The fixes it may call, recorded."""

    def run(runner: Runner, online_wait: float = 2, offset: float = 0.4) -> Steps:
        monkeypatch.setattr(clock, "offset_seconds", lambda host, github: offset)

        def reconfigure(github, install, settings, steps):
            runner.did.append("reconfigure")

        def ensure_running(install, settings, steps, why):
            runner.did.append("start")
            runner.start()

        def command(host, text, *, stdin=None, timeout=120):
            runner.commands.append(text)
            runner.stdin.append(stdin)
            out = "140.82.112.21 pipelines.actions.githubusercontent.com\n"
            if "curl" in text:
                out = runner.curl_says
            return SimpleNamespace(rc=0, stdout=out)

        def sync(target, github, install, settings, steps):
            runner.did.append("sync clock")

        monkeypatch.setattr(online_fix, "reconfigure", reconfigure)
        monkeypatch.setattr(online_fix, "ensure_running", ensure_running)
        monkeypatch.setattr(online_fix, "run", command)
        monkeypatch.setattr(online_fix, "sync", sync)
        settings = SimpleNamespace(
            runner=SimpleNamespace(name="assay-bpf-runner"),
            remediation=SimpleNamespace(online_wait_seconds=online_wait),
            thresholds=SimpleNamespace(max_clock_offset_seconds=30),
            github=SimpleNamespace(runner_url="https://github.com/acme/kernel-ci"),
        )
        online_fix.bring_online(None, runner, runner, settings, runner.steps, lambda: None)
        return runner.steps

    return run


def test_a_session_conflict_is_waited_out_and_the_listener_started_again(fix):
    """After a listener that did not stop cleanly: the new one retries, exits 5, the unit
    stops; the fix waits for that, starts it once more, and never calls it a clone."""
    runner = Runner(journal=f"{CONFLICT}\n{CONFLICT}\n")
    runner.exits_after = 1
    fix(runner)
    assert runner.did == ["start"]
    assert runner.status == "online"
    assert "waiting it out as the runner does" in runner.report()
    assert "clone" not in runner.report()


def test_a_conflict_the_listener_gets_over_needs_no_start(fix):
    runner = Runner(journal=f"{CONFLICT}\n")

    def online_later(*, fresh: bool = False) -> bool:  # the old session expired: one more try
        runner.status = "online"
        return True

    runner.listener_running = online_later  # type: ignore[method-assign]
    fix(runner)
    assert runner.did == []


def test_a_conflict_that_outlasts_a_new_start_fails_naming_a_clone_as_one_possibility(fix):
    runner = Runner(journal=f"{CONFLICT}\n", listener=False)
    runner.online_after_start = False
    with pytest.raises(RemediationFailed, match=r"persists across runs.*another machine"):
        fix(runner)
    assert runner.did == ["start"]


def test_a_conflict_after_our_own_restart_is_waited_out_too(fix):
    """A hung listener (no cause in its log), restarted: the new one finds the hung one's
    session at GitHub, retries, exits 5; the fix starts it once more."""
    runner = Runner(journal=f"{T}: Listening for Jobs\n", listener=False)
    first_start = Runner.start

    def start() -> None:
        runner.ran_a_step()
        if runner.did.count("start") == 1:
            runner.listener, runner.exits_after = True, 0
            runner.log = RunnerLog(journal=f"{CONFLICT}\n{CONFLICT}\n")
        else:
            first_start(runner)

    runner.start = start  # type: ignore[method-assign]
    fix(runner)
    assert runner.did == ["start", "start"]
    assert runner.status == "online"
    assert "waiting it out as the runner does" in runner.report()


@pytest.mark.parametrize(
    ("journal", "diag"),
    [
        ("", REVOKED),
        (
            "Failed to create session. You are not authorized to access "
            "https://pipelines.actions.githubusercontent.com.\n",
            "",
        ),
        ("An error occurred: Get next message failed with non-retryable error.\n", ""),
    ],
)
def test_an_auth_failure_is_re_registered(fix, journal, diag):
    runner = Runner(journal=journal, diag=diag, listener=False)
    fix(runner)
    assert runner.did == ["reconfigure"]
    assert "GitHub refused the runner's credentials" in runner.report()


def test_a_lookalike_of_an_auth_failure_gets_a_restart_not_a_registration(fix):
    job = f"{T}: Running job: Runner OAuth token has been revoked. Shutting down.\n"
    runner = Runner(
        journal=job,
        diag=f"[{T} INFO JobDispatcher] Runner OAuth token has been revoked. Shutting down.",
        listener=False,
    )
    fix(runner)
    assert runner.did == ["start"]


def test_a_listener_retrying_its_connection_is_left_alone_with_a_network_diagnosis(fix):
    runner = Runner(journal=f"{T}: Listening for Jobs\n{CONNECT_ERROR}\n")
    with pytest.raises(RemediationRefused, match="retrying its connection"):
        fix(runner)
    assert runner.did == []
    dns, probe = runner.commands
    assert dns.startswith("timeout 10 getent hosts pipelines.actions.githubusercontent.com")
    # the runner's own proxy, on curl's stdin (never argv: /proc, ssh's argv, a timeout's
    # report); -q first: the runner user's ~/.curlrc (any job writes it) is not read
    assert runner.stdin[1] == 'proxy = "http://alice:s3cret@proxy.internal:3128"\n'
    assert "s3cret" not in probe and "alice" not in probe
    assert probe.startswith("sudo -n -H -u github-runner /bin/sh -c 'curl -q -K - ")
    assert "--max-time 10" in probe
    report = runner.report()
    assert CONNECT_ERROR in report
    assert "network: DNS pipelines.actions.githubusercontent.com: 140.82.112.21" in report
    assert "network: the runner's proxy: http://proxy.internal:3128" in report
    assert "Could not resolve host" in report
    assert "network: the VM's clock is +0 s off GitHub's" in report
    assert "s3cret" not in report and "alice" not in report


def test_a_connect_error_with_no_listener_is_diagnosed_then_restarted(fix):
    runner = Runner(journal=CONNECT_ERROR + "\n", listener=False)
    fix(runner)
    assert runner.did == ["start"]
    assert "network: HTTPS " in runner.report()


def test_a_reconnected_listener_is_no_network_case(fix):
    runner = Runner(journal=f"{CONNECT_ERROR}\n{T}: Runner reconnected.\n", listener=False)
    fix(runner)
    assert runner.did == ["start"]
    assert runner.commands == []


@pytest.mark.parametrize(
    "proxy", ["http://alice:s3cret@proxy internal:3128", "http://alice:s3cret@[x", "http://[x"]
)
def test_a_proxy_that_is_no_url_is_named_so_never_echoed(fix, proxy):
    """Anything in .env (a job writes it): an unusable value is said to be one, not shown
    (a password may be in it); "http://[x" makes urlsplit raise ValueError: no crash either."""
    runner = Runner(journal=f"{T}: Listening for Jobs\n{CONNECT_ERROR}\n")
    runner.proxy = proxy
    with pytest.raises(RemediationRefused, match="retrying its connection"):
        fix(runner)
    report = runner.report()
    assert "https_proxy is not a usable proxy URL" in report
    assert "s3cret" not in report and "[x" not in report
    assert "curl -q --noproxy " in runner.commands[1] and runner.stdin[1] is None


def test_what_curl_answers_is_cut_and_printable(fix):
    runner = Runner(journal=f"{T}: Listening for Jobs\n{CONNECT_ERROR}\n")
    runner.curl_says = "HTTP 000 \x1b]0;pwned\x07" + "y" * 5000
    with pytest.raises(RemediationRefused):
        fix(runner)
    (line,) = [line for line in runner.steps.lines if "network: HTTPS" in line]
    assert line.isprintable() and "\x1b" not in line
    assert len(line) < 400


def test_a_clock_offset_comes_before_an_auth_failure(fix):
    """A clock error GitHub answers with 401 looks like an auth failure: the measured offset
    is the cause, and a re-registration would not help (review 7, item 6)."""
    unauthorized = (
        "Failed to create session. You are not authorized to access "
        "https://pipelines.actions.githubusercontent.com.\n"
    )
    runner = Runner(journal=unauthorized, listener=False)
    fix(runner, offset=-600)
    assert runner.did[0] == "sync clock"
    assert "reconfigure" not in runner.did
    assert "clock skew (VM is -600s off GitHub)" in runner.report()


def test_the_service_fix_does_not_re_register_for_a_clock_that_is_off(
    dirs, unit_state, settings, stopped_by, monkeypatch
):
    monkeypatch.setattr(clock, "offset_seconds", lambda host, github: 900.0)
    reconfigured = stopped_by(REVOKED)
    runner = install(dirs, UNIT + "\n")
    with pytest.raises(RemediationRefused, match=r"clock is \+900 s off GitHub's"):
        start_or_reregister(object(), runner, settings, steps_for(runner), why="not running")
    assert reconfigured == []
    assert control(unit_state) == []
