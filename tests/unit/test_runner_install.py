"""`.service` is the runner user's (so every job's) to write: root acts only on a runner unit.

RunnerInstall on this machine (testinfra local://) over a temp runner directory and a temp
systemd directory; the fixes run for real with fake systemctl, pgrep and svc.sh on PATH.
"""

from __future__ import annotations

import importlib
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from remediations.registration import reconfigure
from remediations.service import ensure_running
from runner_health.config import Settings, load
from runner_health.release import installed_version
from runner_health.runner import UNIT_NAME, RunnerInstall, UnsafeUnit
from runner_health.steps import RemediationRefused, Steps
from runner_health.targets import target
from runner_health.unit import scope_of, unit_name
from tests.scripts.conftest import write_fake

UNIT = "actions.runner.acme-kernel-ci.assay-bpf-runner.service"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(runner directory, systemd directory), the runner configured."""
    runner, systemd = tmp_path / "actions-runner", tmp_path / "systemd"
    runner.mkdir()
    systemd.mkdir()
    (runner / ".runner").write_text('\ufeff{"agentName": "assay-bpf-runner"}', encoding="utf-8")
    return runner, systemd


def install(
    dirs: tuple[Path, Path], service: str | bytes, *, unit_file: bool = True
) -> RunnerInstall:
    runner, systemd = dirs
    data = service if isinstance(service, bytes) else service.encode()
    (runner / ".service").write_bytes(data)
    name = data.decode("utf-8", "replace").strip()
    if unit_file and name and "/" not in name:
        (systemd / name).write_text(f"[Service]\nWorkingDirectory={runner}\n")
    return RunnerInstall(target("local://"), str(runner), "github-runner", systemd_dir=str(systemd))


@pytest.mark.parametrize(
    "name",
    [
        UNIT,
        "actions.runner.acme.assay-bpf-runner.service",  # an org runner
        "actions.runner._services.my_runner.service",  # GHES scope; a space became "_"
        f"actions.runner.{'o' * 70}.{'r' * 51}-4821.service",  # cut to 150, with its suffix
    ],
)
def test_a_runner_unit_installed_in_the_systemd_dir_is_accepted(dirs, name):
    assert len(name) <= 150
    assert install(dirs, name + "\n").unit() == name


@pytest.mark.parametrize(
    "service",
    [
        "ssh.service",
        "../../x.service",
        "actions.runner.x.service; reboot",
        "actions.runner.a.b.service\nssh.service",
        "actions.runner.a b.c.service",
        "actions.runner.$(reboot).x.service",
        "/etc/systemd/system/actions.runner.a.b.service",
        "actions.runner.a/../../../ssh.b.service",
        "actions.runner.a.b.service.d",
        f"actions.runner.{'o' * 70}.{'r' * 80}.service",  # longer than svc.sh ever makes
        b"actions.runner.a.\xff.service",
    ],
)
def test_anything_else_is_refused_naming_the_value(dirs, service):
    with pytest.raises(UnsafeUnit, match="not a runner unit") as refused:
        install(dirs, service).unit()
    shown = service.decode("utf-8", "replace") if isinstance(service, bytes) else service
    assert repr(shown.strip()[:150]) in str(refused.value)


def test_a_unit_file_that_links_elsewhere_is_refused(dirs, tmp_path):
    elsewhere = tmp_path / "elsewhere" / UNIT
    elsewhere.parent.mkdir()
    elsewhere.write_text("[Service]\n")
    (dirs[1] / UNIT).symlink_to(elsewhere)
    with pytest.raises(UnsafeUnit, match="not a regular file"):
        install(dirs, UNIT, unit_file=False).unit()


def test_a_missing_unit_file_is_refused(dirs):
    with pytest.raises(UnsafeUnit, match=f"{UNIT}, but .*/systemd/{UNIT} is missing"):
        install(dirs, UNIT, unit_file=False).unit()


def test_the_unit_of_another_runner_directory_is_refused(dirs, tmp_path):
    """Two runners on one machine: a job of one names the other's unit in .service."""
    (dirs[1] / UNIT).write_text(f"[Service]\nWorkingDirectory={tmp_path}/other-runner\n")
    with pytest.raises(UnsafeUnit, match=f"not the unit of {dirs[0]} \\(WorkingDirectory=\\)"):
        install(dirs, UNIT, unit_file=False).unit()


# -- .runner: read as root, but never through a link ----------------------------------------


@pytest.mark.parametrize(
    "text, parsed",
    [
        ('\ufeff{"agentName": "assay-bpf-runner"}', {"agentName": "assay-bpf-runner"}),
        ("not json", {}),
        ('["agentName"]', {}),  # JSON, but not a registration
    ],
)
def test_runner_file_is_parsed(dirs, text, parsed):
    (dirs[0] / ".runner").write_text(text, encoding="utf-8")
    runner = RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))
    assert runner.registration() == parsed


def test_a_runner_file_that_is_a_link_is_not_read(dirs, tmp_path):
    """A job points .runner at a root-only file (here JSON, so it would parse): not read."""
    secret = tmp_path / "root-only.json"
    secret.write_text('{"agentName": "assay-bpf-runner", "token": "s3cret-root-only"}')
    secret.chmod(0o600)
    (dirs[0] / ".runner").unlink()
    (dirs[0] / ".runner").symlink_to(secret)
    runner = RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))
    assert runner.registration() == {}  # present, but not a registration: reconfigured


def test_a_runner_file_that_is_a_fifo_does_not_block(dirs):
    (dirs[0] / ".runner").unlink()
    os.mkfifo(dirs[0] / ".runner")
    runner = RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))
    assert runner.registration() == {}


def test_no_runner_file_means_not_configured(dirs):
    (dirs[0] / ".runner").unlink()
    runner = RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))
    assert runner.registration() is None


def test_a_service_file_that_is_a_link_is_not_read(dirs, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$y$j9T$secret-hash:19000:0:99999:7:::\n")
    (dirs[0] / ".service").symlink_to(secret)
    runner = RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))
    with pytest.raises(UnsafeUnit, match="not a regular file") as refused:
        runner.unit()
    assert "secret-hash" not in str(refused.value)


@pytest.mark.parametrize("service", [None, "", "\n"])
def test_no_service_file_means_not_installed(dirs, service):
    if service is None:
        runner = RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))
    else:
        runner = install(dirs, service)
    assert runner.unit() is None


def test_the_service_check_fails_naming_the_value(dirs):
    check = importlib.import_module("checks.test_service").test_runner_service_active
    runner = install(dirs, "ssh.service\n")
    with pytest.raises(pytest.fail.Exception, match=r"names 'ssh\.service', not a runner unit"):
        check(runner.host, runner)


# -- the fixes refuse it, and never stop, kill or restart what it names ----------------------


@pytest.fixture
def fake_path(tmp_path, monkeypatch) -> Path:
    """Fakes first on PATH, their calls in the log: systemctl (every unit inactive), pgrep (a
    listener, no job) and sudo (runs the command as is: this test is root already)."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    log = tmp_path / "fake.log"
    log.touch()
    write_fake(bin_dir, "systemctl", '[ "$1" != is-active ] || exit 3')
    write_fake(bin_dir, "pgrep", '[ "$2" = Runner.Listener ]')
    write_fake(
        bin_dir, "sudo", 'while [[ $1 == -* ]]; do [[ $1 == -u ]] && shift; shift; done\nexec "$@"'
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


@pytest.fixture
def settings(dirs, tmp_path) -> Settings:
    """runner-health's config for the runner in ``dirs``: a repository runner on github.com."""
    config = tmp_path / "runner-health.toml"
    config.write_text(
        '[github]\nrepository = "acme/kernel-ci"\n'
        f'[runner]\nname = "assay-bpf-runner"\ndirectory = "{dirs[0]}"\nuser = "github-runner"\n'
    )
    return load(config)


def steps_on(runner: RunnerInstall) -> Steps:
    return Steps(runner.host, dry_run=False, echo=lambda line: None)


def test_the_service_fix_refuses_and_leaves_ssh_alone(dirs, fake_path, settings):
    runner = install(dirs, "ssh.service\n")
    steps = steps_on(runner)
    with pytest.raises(RemediationRefused, match=r"'ssh\.service'"):
        ensure_running(runner, settings, steps, why="the runner service is not running")
    assert "systemctl" not in fake_path.read_text()
    assert steps.lines == []


def test_the_registration_fix_refuses_before_touching_the_service(dirs, fake_path):
    runner = install(dirs, "ssh.service\n")
    write_fake(dirs[0], "config.sh", "exit 0")
    write_fake(dirs[0], "svc.sh", "exit 0")
    github = SimpleNamespace(registration_token=lambda: "AAAA", runner=lambda name: {"busy": False})
    settings = SimpleNamespace(runner=SimpleNamespace(name="assay-bpf-runner"))
    steps = steps_on(runner)
    with pytest.raises(RemediationRefused, match=r"'ssh\.service'"):
        reconfigure(github, runner, settings, steps)
    assert fake_path.read_text() == "pgrep -x Runner.Worker\n"
    assert steps.lines == []


def test_the_runner_log_skips_the_journal_of_a_unit_that_is_not_the_runners(dirs, fake_path):
    (dirs[0] / "_diag").mkdir()
    (dirs[0] / "_diag" / "Runner_20261128-100000-utc.log").write_text("[diag]\n")
    log = install(dirs, "ssh.service\n").recent_log()
    assert (log.diag, log.journal) == ("[diag]\n", "")
    assert "systemctl" not in fake_path.read_text()


def listener_log(runner: Path, name: str, text: str, age: float) -> Path:
    """A _diag/<name> written ``age`` seconds ago (negative: dated in the future)."""
    log = runner / "_diag" / name
    log.parent.mkdir(exist_ok=True)
    log.write_text(text)
    when = time.time() - age
    os.utime(log, (when, when))
    return log


def without_unit(dirs: tuple[Path, Path]) -> RunnerInstall:
    """The runner in ``dirs`` with no .service: its log is the _diag file only."""
    return RunnerInstall(target("local://"), str(dirs[0]), "github-runner", str(dirs[1]))


def test_a_log_written_while_the_clock_ran_ahead_does_not_hide_the_last_listeners(dirs):
    """The clock test's skew leaves a log dated 3 h ahead: read first, it hid the revoked
    token of every later listener for those 3 h (the service fix then restarted instead of
    registering again)."""
    runner = dirs[0]
    header = "[2026-11-29 13:53:48Z INFO Listener] Version: "
    listener_log(runner, "Runner_20261129-135348-utc.log", header + "2.330.0\nskewed\n", -3 * 3600)
    listener_log(runner, "Runner_20261129-142850-utc.log", header + "2.334.0\nlast\n", 5)
    listener_log(runner, "Runner_20261129-142503-utc.log", header + "2.333.0\nearlier\n", 200)
    install = without_unit(dirs)
    assert install.recent_log().diag.endswith("last\n")
    assert installed_version(install) == "2.334.0"


def test_only_the_end_of_a_huge_listener_log_is_read(dirs):
    """A job can grow the log to any size: only its last 256 KiB are read, in every pass."""
    lines = "".join(
        f"[2026-11-29 10:00:00Z INFO Runner] {n:04} {'x' * 2000}\n" for n in range(1000)
    )
    listener_log(dirs[0], "Runner_20261129-100000-utc.log", lines + "last\n", 0)
    install = without_unit(dirs)
    diag = install.recent_log().diag
    assert diag.endswith(f"0999 {'x' * 2000}\nlast\n")
    assert 100 < diag.count("\n") < 300  # 256 KiB of 2-KiB lines: fewer than the 300 asked


def test_a_log_dated_in_the_future_is_read_when_it_is_the_only_one(dirs):
    listener_log(dirs[0], "Runner_20261129-165419-utc.log", "only\n", -3 * 3600)
    install = without_unit(dirs)
    assert install.recent_log().diag == "only\n"


def test_the_listener_log_is_never_read_through_a_link_nor_by_another_name(dirs, tmp_path):
    runner = dirs[0]
    listener_log(runner, "Runner_20261129-100000-utc.log", "real\n", 600)
    secret = tmp_path / "secret"
    secret.write_text("root's secret\n")
    (runner / "_diag" / "Runner_20261129-110000-utc.log").symlink_to(secret)
    listener_log(runner, "Runner_newer.log", "planted\n", 0)
    install = without_unit(dirs)
    assert install.recent_log().diag == "real\n"
    (runner / "_diag").rename(tmp_path / "elsewhere")
    (runner / "_diag").symlink_to(tmp_path / "elsewhere")
    assert install.recent_log().diag == ""


# -- the unit: runner-health writes it; root never runs svc.sh nor reads its template --------

HOSTED = "https://pipelinesghubeus6.actions.githubusercontent.com/Q2bTPuTe1Yj0pVQt/"
REGISTRATION = (
    f'{{"agentId": 7, "agentName": "assay-bpf-runner", "serverUrl": "{HOSTED}", '
    '"gitHubUrl": "https://github.com/acme/kernel-ci", "workFolder": "_work"}'
)
# actions/runner's bin/actions.runner.service.template as svc.sh install fills it in
EXPECTED_UNIT = """\
[Unit]
Description=GitHub Actions Runner (acme-kernel-ci.assay-bpf-runner)
After=network-online.target

[Service]
ExecStart={root}/runsvc.sh
User=github-runner
WorkingDirectory={root}
KillMode=process
KillSignal=SIGTERM
TimeoutStopSec=5min

[Install]
WantedBy=multi-user.target
"""


@pytest.fixture
def hostile(dirs, tmp_path) -> Path:
    """What any job can leave in the runner directory: svc.sh, its template and runsvc.sh that
    touch the returned marker (root running, or taking a User= from, any of them is the hole).
    config.sh registers (a fresh .runner) or removes it, as the runner does."""
    runner = dirs[0]
    marker = tmp_path / "pwned"
    (runner / ".runner").write_text(REGISTRATION)
    (runner / "bin").mkdir()
    write_fake(runner, "svc.sh", f"touch {marker}")
    (runner / "bin" / "actions.runner.service.template").write_text(
        f"[Service]\nExecStartPre=/bin/touch {marker}\nExecStart={{{{RunnerRoot}}}}/runsvc.sh\n"
        "User=root\n"
    )
    write_fake(runner / "bin", "runsvc.sh", f"touch {marker}")
    write_fake(
        runner,
        "config.sh",
        'if [ "$1" = remove ]; then rm -f .runner; exit 0; fi\n'
        f"printf '%s' '{REGISTRATION}' > .runner",
    )
    return marker


def calls(log: Path, command: str) -> list[str]:
    """The arguments of each call of the fake ``command``, in order."""
    lines = log.read_text().splitlines()
    return [line.removeprefix(command + " ") for line in lines if line.startswith(command + " ")]


def test_the_service_fix_installs_the_unit_itself_never_running_svc_sh(
    dirs, fake_path, settings, hostile
):
    runner_dir, systemd = dirs
    runner = RunnerInstall(target("local://"), str(runner_dir), "github-runner", str(systemd))
    ensure_running(runner, settings, steps_on(runner), why="the runner service is not running")
    assert not hostile.exists(), "root ran a file from the runner directory"
    assert calls(fake_path, "svc.sh") == []
    unit = systemd / UNIT
    assert unit.read_text() == EXPECTED_UNIT.format(root=runner_dir)
    assert unit.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in systemd.iterdir()) == [UNIT]  # no temp file left
    assert (runner_dir / ".service").read_text() == UNIT + "\n"
    assert (runner_dir / "runsvc.sh").read_bytes() == (runner_dir / "bin/runsvc.sh").read_bytes()
    assert calls(fake_path, "systemctl") == [
        "daemon-reload",
        f"enable {UNIT}",
        f"is-active --quiet {UNIT}",
        f"start {UNIT}",
    ]
    # The files in the runner directory are written by the runner user, never by root
    assert all(call.startswith("-n -H -u github-runner ") for call in calls(fake_path, "sudo"))
    assert runner.unit() == UNIT


def test_the_registration_fix_reinstalls_the_unit_itself_never_running_svc_sh(
    dirs, fake_path, settings, hostile
):
    runner_dir, systemd = dirs
    runner = install(dirs, UNIT + "\n")  # installed: its unit file is read, never run
    github = SimpleNamespace(
        registration_token=lambda: "AAAA",
        runner=lambda name: {"busy": False, "status": "online"},
    )
    steps = steps_on(runner)
    reconfigure(github, runner, settings, steps)
    assert not hostile.exists(), "root ran a file from the runner directory"
    assert calls(fake_path, "svc.sh") == []
    assert calls(fake_path, "systemctl") == [
        f"stop {UNIT}",
        f"disable {UNIT}",
        "daemon-reload",
        "daemon-reload",
        f"enable {UNIT}",
        f"start {UNIT}",
    ]
    assert any(f"rm -f -- {systemd}/{UNIT}" in line for line in steps.lines)
    assert (systemd / UNIT).read_text() == EXPECTED_UNIT.format(root=runner_dir)
    assert (runner_dir / ".service").read_text() == UNIT + "\n"
    assert calls(fake_path, "config.sh")[0] == "remove --local"


def test_a_unit_already_installed_for_the_directory_is_taken_over(
    dirs, fake_path, settings, hostile
):
    """.service lost (a job can delete it): the unit svc.sh installed, random suffix and all,
    is rewritten and kept, not doubled by a second unit running the same runner."""
    runner_dir, systemd = dirs
    theirs = "actions.runner.acme-kernel-ci.assay-bpf-runner-4821.service"
    (systemd / theirs).write_text(f"[Service]\nUser=root\nWorkingDirectory={runner_dir}\n")
    runner = RunnerInstall(target("local://"), str(runner_dir), "github-runner", str(systemd))
    ensure_running(runner, settings, steps_on(runner), why="the runner service is not running")
    assert sorted(p.name for p in systemd.iterdir()) == [theirs]
    assert (systemd / theirs).read_text() == EXPECTED_UNIT.format(root=runner_dir)
    assert (runner_dir / ".service").read_text() == theirs + "\n"


def test_the_unit_of_another_directory_is_never_overwritten(dirs, fake_path, settings, hostile):
    runner_dir, systemd = dirs
    other = f"[Service]\nWorkingDirectory={runner_dir}-other\n"
    (systemd / UNIT).write_text(other)
    runner = RunnerInstall(target("local://"), str(runner_dir), "github-runner", str(systemd))
    with pytest.raises(RemediationRefused, match=r"exists and is not .* unit"):
        ensure_running(runner, settings, steps_on(runner), why="the runner service is not running")
    assert (systemd / UNIT).read_text() == other
    assert "systemctl" not in fake_path.read_text()


def test_a_dry_run_installs_nothing(dirs, fake_path, settings, hostile):
    runner_dir, systemd = dirs
    runner = RunnerInstall(target("local://"), str(runner_dir), "github-runner", str(systemd))
    steps = Steps(runner.host, dry_run=True, echo=lambda line: None)
    ensure_running(runner, settings, steps, why="the runner service is not running")
    assert list(systemd.iterdir()) == [] and not (runner_dir / ".service").exists()
    assert calls(fake_path, "systemctl") == [f"is-active --quiet {UNIT}"]
    assert any(f"would run: systemctl enable {UNIT}" in line for line in steps.lines)


def test_a_directory_a_unit_file_would_not_read_literally_is_refused(tmp_path, fake_path):
    runner_dir = tmp_path / "actions runner"
    runner_dir.mkdir()
    (runner_dir / ".runner").write_text(REGISTRATION)
    config = tmp_path / "runner-health.toml"
    config.write_text(
        f'[github]\nrepository = "acme/kernel-ci"\n[runner]\nname = "r"\ndirectory = "{runner_dir}"\n'
    )
    runner = RunnerInstall(target("local://"), str(runner_dir), "github-runner", str(tmp_path))
    with pytest.raises(RemediationRefused, match="would not read literally"):
        ensure_running(runner, load(config), steps_on(runner), why="not installed")
    assert "systemctl" not in fake_path.read_text()


# The name svc.sh would have (ServiceControlManager.CalculateServiceName; vectors from its
# ServiceControlManagerL0.cs, with SystemdControlManager's ".service" counted in the 150).
@pytest.mark.parametrize(
    "github, server_url, agent, expected",
    [
        ('repository = "acme/kernel-ci"', HOSTED, "assay-bpf-runner", UNIT),
        ('organization = "acme"', HOSTED, "r1", "actions.runner.acme.r1.service"),
        (  # GitHub Enterprise Server: the first segment of the Actions URL's path
            'repository = "acme/kernel-ci"\napi_url = "https://ghes.corp/api/v3"',
            "https://ghes.corp/_services/pipelines/Q2bTPuTe1Yj0",
            "r1",
            "actions.runner._services.r1.service",
        ),
        ('repository = "acme/kernel-ci"', None, "r1", "actions.runner.acme-kernel-ci.r1.service"),
        (
            'repository = "myorganizationexample/myrepoexample"',
            HOSTED,
            "thisiskindofalongrunnerabcde",
            "actions.runner.myorganizationexample-myrepoexample.thisiskindofalongrunnerabcde.service",
        ),
        (
            'repository = "myreallylongorganizationexampleonlinux/myreallylongrepoexampleonlinux1234"',
            HOSTED,
            "thisisareallyreallylongbutstillvalidagentnameiamusingforthisexampletotestverylongnamelimits",
            "actions.runner.myreallylongorganizationexampleonlinux-myreallylongrepoexampleonlinux1"
            ".thisisareallyreallylongbutstillvalidagentnameiamusi-NNNN.service",
        ),
        # .runner is the runner user's: whatever it holds, only a runner-unit name comes out
        (
            'repository = "acme/kernel-ci"',
            "https://x/$(reboot);../",
            "r1",
            "actions.runner.--reboot--...r1.service",
        ),
        (
            'repository = "acme/kernel-ci"',
            "http://[::1",
            "r1",
            "actions.runner.acme-kernel-ci.r1.service",
        ),
    ],
)
def test_the_unit_name_is_the_one_svc_sh_computes(tmp_path, github, server_url, agent, expected):
    config = tmp_path / "runner-health.toml"
    config.write_text(f'[github]\n{github}\n[runner]\nname = "{agent}"\n')
    registration = {} if server_url is None else {"serverUrl": server_url}
    name = unit_name(scope_of(load(config), registration), agent)
    assert re.fullmatch(re.escape(expected).replace("NNNN", r"[1-9]\d{3}"), name), name
    assert len(name) <= 150 and UNIT_NAME.fullmatch(name)
    assert unit_name(scope_of(load(config), registration), agent) == name  # the same every run


def test_the_service_fix_stops_a_lost_unit_before_installing_the_unit_again(
    dirs, fake_path, settings, hostile
):
    """.service names a unit whose file is gone (unit.lost_unit): systemd may still run it.
    It is stopped first, as registration.reconfigure does, else a unit installed under
    another name would make two listeners (review 7, item 9)."""
    runner_dir, systemd = dirs
    lost = "actions.runner.acme-kernel-ci.old-name.service"
    (runner_dir / ".service").write_text(lost + "\n")
    runner = RunnerInstall(target("local://"), str(runner_dir), "github-runner", str(systemd))
    ensure_running(runner, settings, steps_on(runner), why="the runner service is not running")
    assert calls(fake_path, "systemctl") == [
        f"stop {lost}",
        "daemon-reload",
        f"enable {UNIT}",
        f"is-active --quiet {UNIT}",
        f"start {UNIT}",
    ]
