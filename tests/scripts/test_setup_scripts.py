"""provision/: setup.sh, register_local.sh, setup_local_multipass.sh against fakes.

A fake actions/runner (config.sh that dumps its argv and environment, svc.sh that records its
calls), the fake GitHub for registration tokens, and fake multipass/systemctl on PATH. No
real /opt, /etc, crontab or systemd is touched: every path is a temp dir.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.scripts.conftest import (
    ROOT,
    cron_command,
    cron_jobs,
    run_like_cron,
    run_script,
    write_fake,
)
from tests.scripts.test_health_check import FAKE_SUDO, FAKE_SYSTEMCTL, HOSTILE
from tests.testbed.fake_github import FakeGitHub

PROVISION = ROOT / "provision"
SECRET = "AAAREGTOKEN1234567890SECRET"

# config.sh stand-in: records argv, ACTIONS_RUNNER_INPUT_TOKEN and its own /proc cmdline, then
# writes .runner like the real one (remove --local deletes it).
FAKE_CONFIG_SH = r"""
here=$(cd "$(dirname "$0")" && pwd)
{
  echo "ARGV: $*"
  echo "CMDLINE: $(tr '\0' ' ' < /proc/$$/cmdline)"
  echo "PARENT: $(tr '\0' ' ' < /proc/$PPID/cmdline)"
  echo "TOKEN: ${ACTIONS_RUNNER_INPUT_TOKEN:-}"
} >> "$here/config.calls"
if [ "$1" = remove ]; then rm -f "$here/.runner"; exit 0; fi
[ -n "${ACTIONS_RUNNER_INPUT_TOKEN:-}" ] || { echo "no token" >&2; exit 1; }
name= url=
while [ $# -gt 0 ]; do
  case $1 in --name) name=$2; shift ;; --url) url=$2; shift ;; esac
  shift
done
printf '\xef\xbb\xbf{"agentId": 7, "agentName": "%s", "gitHubUrl": "%s", "workFolder": "_work"}' \
  "$name" "$url" > "$here/.runner"
"""

UNIT = "actions.runner.acme-kernel-ci.assay-bpf-runner.service"
# svc.sh stand-in: the real one writes the unit into /etc/systemd/system and enables it
# (systemd.svc.sh.template install: systemctl enable), uninstall removes only the unit file.
FAKE_SVC_SH = rf"""
here=$(pwd)
echo "svc.sh $*" >> "$here/svc.calls"
case $1 in
  install) echo "{UNIT}" > "$here/.service"; echo "[Service]" > "$SYSTEMD_DIR/{UNIT}"
    [ -n "${{SVC_NO_ENABLE:-}}" ] || touch "$SYSTEMCTL_STATE/{UNIT}.enabled" ;;
  start) [ -z "${{SYSTEMCTL_STATE:-}}" ] || touch "$SYSTEMCTL_STATE/{UNIT}.active" ;;
  stop) rm -f "${{SYSTEMCTL_STATE:-/nonexistent}}/{UNIT}.active" ;;
  uninstall) rm -f "$here/.service" "$SYSTEMD_DIR/{UNIT}" ;;
esac
"""
# systemctl stand-in that also restarts (recorded), for the runner's unit.
FAKE_SYSTEMCTL_RESTART = (
    '[ "$1" = restart ] && { echo "restart $2" >> "$SYSTEMCTL_STATE/restarts"; exit 0; }\n'
    + FAKE_SYSTEMCTL
)


def make_runner_dir(root: Path) -> Path:
    """An unpacked runner: config.sh, svc.sh, bin/Runner.Listener."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bin").mkdir(exist_ok=True)
    write_fake(root, "config.sh", FAKE_CONFIG_SH)
    write_fake(root, "svc.sh", FAKE_SVC_SH)
    write_fake(root / "bin", "Runner.Listener", "exit 0")
    return root


def runner_tarball(path: Path) -> str:
    """A runner release tarball built from the fakes; returns its SHA-256."""
    staging = make_runner_dir(path.parent / "staging")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for item in ("config.sh", "svc.sh", "bin"):
            tar.add(staging / item, arcname=item)
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


@pytest.fixture
def system(tmp_path: Path, fakes) -> dict[str, str]:
    """Fake systemctl/crontab/useradd; every system path in a temp dir."""
    bin_dir, _ = fakes
    write_fake(bin_dir, "systemctl", FAKE_SYSTEMCTL_RESTART)
    write_fake(bin_dir, "crontab", "exit 0")
    write_fake(bin_dir, "useradd", "exit 0")
    for sub in ("systemd", "systemctl-state", "etc-runner-health", "cron.d"):
        (tmp_path / sub).mkdir()
    return {
        "NEEDRESTART_CONF_DIR": str(tmp_path / "needrestart.conf.d"),
        "APT_CONF_DIR": str(tmp_path / "apt.conf.d"),
        "SYSTEMD_DIR": str(tmp_path / "systemd"),
        "SYSTEMCTL_STATE": str(tmp_path / "systemctl-state"),
        "CONFIG_DIR": str(tmp_path / "etc-runner-health"),
        "CRON_DIR": str(tmp_path / "cron.d"),
        "RUNNER_USER": "root",
        "RUNNER_ALLOW_RUNASROOT": "1",
        "SKIP_PACKAGES": "1",
    }


# -- setup.sh ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({}, ["GITHUB_TOKEN", "RUNNER_NAME", "REPO_URL"]),
        ({"RUNNER_NAME": "r1"}, ["GITHUB_TOKEN", "REPO_URL"]),
        ({"GITHUB_TOKEN": "x", "REPO_URL": "https://github.com/a/b"}, ["RUNNER_NAME"]),
    ],
)
def test_setup_names_every_missing_variable_at_once(given, missing, fakes, system):
    result = run_script([str(PROVISION / "setup.sh")], fakes=fakes, env={**system, **given})
    assert result.returncode == 2
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith("setup.sh: missing " + " ".join(missing))
    assert result.stdout == ""  # nothing was started


def test_setup_rejects_a_bad_repo_url(fakes, system):
    env = {**system, "GITHUB_TOKEN": "x", "RUNNER_NAME": "r1", "REPO_URL": "github.com/a/b"}
    result = run_script([str(PROVISION / "setup.sh")], fakes=fakes, env=env)
    assert result.returncode == 2
    assert "REPO_URL must look like" in result.stderr


@pytest.fixture
def fake_github():
    with FakeGitHub() as fake:
        yield fake


# A docker group exists ($FAKE_DOCKER_MEMBERS lists its members); usermod only logs.
FAKE_GETENT = r"""
if [ "$*" = "group docker" ]; then echo "docker:x:998:${FAKE_DOCKER_MEMBERS:-}"; exit 0; fi
exec /usr/bin/getent "$@"
"""
FAKE_ID = r"""
case " ${FAKE_DOCKER_MEMBERS:-} " in
  *" ${2:-} "*) if [ "$1" = -nG ]; then echo "$(/usr/bin/id -nG "$2") docker"; exit 0; fi ;;
esac
exec /usr/bin/id "$@"
"""
RUNNER_USER = "nobody"  # exists here, uid 65534, no groups that matter, no sudo rules


@pytest.fixture
def setup_env(tmp_path, system, fakes, fake_github) -> dict[str, str]:
    for name, body in (("sudo", FAKE_SUDO), ("getent", FAKE_GETENT), ("id", FAKE_ID)):
        write_fake(fakes[0], name, body)
    write_fake(fakes[0], "usermod", "exit 0")
    tarball = tmp_path / "actions-runner.tar.gz"
    sha = runner_tarball(tarball)
    health = tmp_path / "opt-runner-health"
    # A stand-in for the venv `make .venv/.installed` builds (no PyPI in a fast test).
    (health / ".venv" / "bin").mkdir(parents=True)
    write_fake(health / ".venv" / "bin", "pytest", "exit 0")
    return {
        **system,
        "GITHUB_TOKEN": fake_github.admin_token,
        "RUNNER_NAME": "assay-bpf-runner",
        "REPO_URL": f"{fake_github.url}/{fake_github.owner}/{fake_github.repo}",
        "API_URL": fake_github.url,
        "RUNNER_DIR": str(tmp_path / "actions-runner"),
        "RUNNER_HEALTH_DIR": str(health),
        "RUNNER_TARBALL_URL": f"file://{tarball}",
        "RUNNER_SHA256": sha,
        "RUNNER_LABELS": "bpf-lsm,kernel-6.6",
        "RUNNER_USER": RUNNER_USER,
    }


def snapshot(*roots: Path) -> dict[str, tuple[int, bytes]]:
    files = {}
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and ".venv" not in path.parts:
                files[str(path)] = (path.stat().st_mtime_ns, path.read_bytes())
    return files


def test_setup_installs_registers_and_is_idempotent(tmp_path, fakes, setup_env, fake_github):
    (health := Path(setup_env["RUNNER_HEALTH_DIR"]) / ".venv" / ".installed").touch()
    first = run_script([str(PROVISION / "setup.sh")], fakes=fakes, env=setup_env, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    runner = Path(setup_env["RUNNER_DIR"])
    # Unpacked after the SHA-256 check, registered with a token fetched from the API.
    assert "SHA-256 verified" in first.stdout
    registration = json.loads((runner / ".runner").read_text(encoding="utf-8-sig"))
    assert registration["agentName"] == "assay-bpf-runner"
    assert registration["gitHubUrl"] == setup_env["REPO_URL"]
    calls = (runner / "config.calls").read_text()
    assert "--labels bpf-lsm,kernel-6.6" in calls
    token_line = next(line for line in calls.splitlines() if line.startswith("TOKEN: "))
    assert len(token_line) > len("TOKEN: ") + 10  # a registration token reached config.sh
    assert token_line.removeprefix("TOKEN: ") not in calls.replace(token_line, "")  # not argv
    assert (runner / "svc.calls").read_text().splitlines() == [
        f"svc.sh install {RUNNER_USER}",
        "svc.sh start",
    ]
    # runner-health copied, config + token written, schedules in place.
    installed = Path(setup_env["RUNNER_HEALTH_DIR"])
    assert (installed / "health_check.sh").exists()
    assert (installed / "remediations" / "free_disk.sh").exists()
    config = (Path(setup_env["CONFIG_DIR"]) / "config.toml").read_text()
    assert f'repository = "{fake_github.owner}/{fake_github.repo}"' in config
    assert f'api_url = "{fake_github.url}"' in config
    token_file = Path(setup_env["CONFIG_DIR"]) / "token"
    assert token_file.read_text().strip() == fake_github.admin_token
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    cron = (Path(setup_env["CRON_DIR"]) / "runner-health-free-disk").read_text()
    assert f"0 * * * * root [ -f {installed}/remediations/free_disk.sh ]" in cron
    assert (Path(setup_env["SYSTEMD_DIR"]) / "runner-health.timer").exists()
    assert fake_github.admin_token not in first.stdout + first.stderr
    # The config it wrote is one the suite accepts.
    from runner_health import config as config_module

    settings = config_module.load(Path(setup_env["CONFIG_DIR"]) / "config.toml")
    assert settings.runner.labels == (
        "self-hosted",
        "linux",
        settings.runner.labels[2],
        "bpf-lsm",
        "kernel-6.6",
    )

    # Second run: nothing changes, and it says so.
    health.touch()
    before = snapshot(runner, installed, Path(setup_env["CONFIG_DIR"]), Path(setup_env["CRON_DIR"]))
    before_systemd = snapshot(Path(setup_env["SYSTEMD_DIR"]))
    second = run_script([str(PROVISION / "setup.sh")], fakes=fakes, env=setup_env, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already installed" in second.stdout
    assert "already registered as assay-bpf-runner" in second.stdout
    assert "up to date with" in second.stdout
    assert "timer already installed and enabled, nothing changed" in second.stdout
    assert "unchanged" in second.stdout
    after = snapshot(runner, installed, Path(setup_env["CONFIG_DIR"]), Path(setup_env["CRON_DIR"]))
    assert after == before
    assert snapshot(Path(setup_env["SYSTEMD_DIR"])) == before_systemd


@pytest.mark.parametrize("before", ["world-readable", "another owner's", "a symlink"])
def test_setup_writes_the_token_0600_root(before, tmp_path, fakes, setup_env):
    """Whatever token file an earlier run or a hand left (same token, wrong mode, owner, or a
    link elsewhere), setup leaves a regular file 0600 root:root in a root-owned directory, and
    the config's token_file names it."""
    config_dir = Path(setup_env["CONFIG_DIR"])
    token_file, token = config_dir / "token", setup_env["GITHUB_TOKEN"]
    if before == "a symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.write_text(token + "\n")
        elsewhere.chmod(0o600)
        token_file.symlink_to(elsewhere)
    else:
        token_file.write_text(token + "\n")
        token_file.chmod(0o644 if before == "world-readable" else 0o600)
    if before == "another owner's":
        os.chown(token_file, 65534, 65534)
        os.chown(config_dir, 65534, 65534)
    (Path(setup_env["RUNNER_HEALTH_DIR"]) / ".venv" / ".installed").touch()
    result = run_script([str(PROVISION / "setup.sh")], fakes=fakes, env=setup_env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    written = token_file.lstat()
    assert stat.S_ISREG(written.st_mode)
    assert (stat.S_IMODE(written.st_mode), written.st_uid, written.st_gid) == (0o600, 0, 0)
    assert token_file.read_text().strip() == token
    assert config_dir.stat().st_uid == 0
    assert sorted(p.name for p in config_dir.iterdir()) == ["config.toml", "token"]
    from runner_health import config as config_module

    assert config_module.load(config_dir / "config.toml").github.token_file == token_file


def run_setup(fakes, env, *args: str):
    """setup.sh with a .venv that is up to date (no PyPI in a fast test)."""
    (Path(env["RUNNER_HEALTH_DIR"]) / ".venv" / ".installed").touch()
    result = run_script([str(PROVISION / "setup.sh"), *args], fakes=fakes, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def load_config(env):
    from runner_health import config as config_module

    return config_module.load(Path(env["CONFIG_DIR"]) / "config.toml")


# uname stand-in: an arm64 VM on kernel 6.8 (any other question goes to the real uname).
FAKE_UNAME = r"""
case $1 in -m) echo aarch64 ;; -r) echo 6.8.0-45-generic ;; *) exec /bin/uname "$@" ;; esac
"""


@pytest.mark.parametrize("given", [None, "gpu,kernel-next"])
def test_setup_labels_come_from_the_vm(given, fakes, setup_env):
    """Arch and kernel labels are this VM's (uname), in the registration and the config it
    writes; an explicit RUNNER_LABELS wins."""
    write_fake(fakes[0], "uname", FAKE_UNAME)
    env = {k: v for k, v in setup_env.items() if k != "RUNNER_LABELS"}
    if given:
        env["RUNNER_LABELS"] = given
    run_setup(fakes, env)
    custom = given or "bpf-lsm,kernel-6.8"
    assert f"--labels {custom} " in (Path(env["RUNNER_DIR"]) / "config.calls").read_text()
    assert load_config(env).runner.labels == ("self-hosted", "linux", "arm64", *custom.split(","))


def test_no_arch_or_kernel_label_is_a_default_anywhere():
    from runner_health import config as config_module

    example = ROOT / "runner-health.example.toml"
    assert config_module.load(example).runner.labels == ("self-hosted", "bpf-lsm")
    for path in (example, *PROVISION.iterdir()):
        for line in path.read_text().splitlines():
            if not line.lstrip().startswith("#"):
                assert not re.search(r"kernel-\d", line), f"{path.name}: {line}"
                assert not re.search(r"""labels.*["',](x64|arm64)\b""", line, re.I), line


@pytest.mark.parametrize("asked", [False, True])
def test_setup_adds_the_runner_user_to_docker_only_when_asked(asked, fakes, setup_env):
    env = {**setup_env, "RUNNER_DOCKER": "1"} if asked else setup_env
    result = run_setup(fakes, env)
    usermods = [c for c in fakes[1].read_text().splitlines() if c.startswith("usermod")]
    assert usermods == ([f"usermod -aG docker {RUNNER_USER}"] if asked else [])
    assert "the docker group is root-equivalent" in result.stdout  # says what it grants


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"RUNNER_DOCKER": "1"}, "RUNNER_DOCKER=1 puts it in the docker group"),
        ({"FAKE_DOCKER_MEMBERS": RUNNER_USER}, "it is in the docker group"),
        ({"SUDO_RULES": "(ALL) NOPASSWD: ALL"}, "it has sudo rules"),
        ({"RUNNER_USER": "root"}, "it is uid 0"),
    ],
)
def test_setup_keeps_no_admin_token_a_job_could_read(change, why, tmp_path, fakes, setup_env):
    """A root-equivalent runner user: the token is not stored (one an earlier run left is
    removed), the config says use_token = false, and the output says why and what to do."""
    token_file = Path(setup_env["CONFIG_DIR"]) / "token"
    token_file.write_text(setup_env["GITHUB_TOKEN"] + "\n")
    token_file.chmod(0o600)
    result = run_setup(fakes, {**setup_env, **change})
    assert not token_file.exists() and not token_file.is_symlink()
    settings = load_config(setup_env)
    assert settings.github.use_token is False and settings.github.token_file is None
    assert f"not storing the admin token: {change.get('RUNNER_USER', RUNNER_USER)}" in result.stdout
    assert why in result.stdout
    assert "from a separate host" in result.stdout and "STORE_ADMIN_TOKEN=1" in result.stdout
    assert setup_env["GITHUB_TOKEN"] not in result.stdout + result.stderr
    manifest = (Path(setup_env["RUNNER_HEALTH_DIR"]) / ".installed-files").read_text()
    assert f"purge {token_file}" not in manifest.splitlines()


def test_setup_stores_the_token_when_told_to_accept_the_risk(fakes, setup_env):
    env = {**setup_env, "RUNNER_DOCKER": "1", "STORE_ADMIN_TOKEN": "1"}
    result = run_setup(fakes, env)
    assert "WARNING: storing the admin token although" in result.stdout
    token_file = Path(env["CONFIG_DIR"]) / "token"
    assert token_file.read_text().strip() == env["GITHUB_TOKEN"]
    assert load_config(env).github.token_file == token_file


def test_setup_without_an_admin_token(fakes, setup_env):
    """--no-admin-token (what setup_local_multipass.sh runs in the VM): runner-health, a config
    with use_token = false and the schedules; the runner is neither downloaded nor registered."""
    env = {k: v for k, v in setup_env.items() if k != "GITHUB_TOKEN"}
    result = run_setup(fakes, env, "--no-admin-token")
    assert not Path(env["RUNNER_DIR"]).exists()
    assert sorted(p.name for p in Path(env["CONFIG_DIR"]).iterdir()) == ["config.toml"]
    settings = load_config(env)
    assert settings.github.use_token is False
    assert settings.github.repository == env["REPO_URL"].split("/", 3)[3]
    assert settings.runner.name == "assay-bpf-runner"
    assert (Path(env["SYSTEMD_DIR"]) / "runner-health.timer").exists()
    assert (Path(env["CRON_DIR"]) / "runner-health-free-disk").exists()
    assert "register_local.sh" in result.stdout


def checkout_copy(dest: Path, version: str) -> Path:
    """A newer checkout of runner-health (this one, with another __version__)."""
    from tests.scripts.conftest import RUNNER_HEALTH_ITEMS

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for item in RUNNER_HEALTH_ITEMS:
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, dest / item, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, dest / item)
    init = dest / "runner_health" / "__init__.py"
    init.write_text(
        re.sub(r'__version__ = "[^"]*"', f'__version__ = "{version}"', init.read_text())
    )
    return dest


def test_upgrade_needs_no_token_and_leaves_the_registration_alone(tmp_path, fakes, setup_env):
    env = {**setup_env, "FREE_DISK_BELOW_PERCENT": "20"}
    run_setup(fakes, env)
    runner, config_dir = Path(env["RUNNER_DIR"]), Path(env["CONFIG_DIR"])
    before = snapshot(runner, config_dir)
    installed = Path(env["RUNNER_HEALTH_DIR"])
    old = re.search(r'__version__ = "([^"]*)"', (ROOT / "runner_health/__init__.py").read_text())
    checkout = checkout_copy(tmp_path / "new-checkout", "99.1.0")
    # No token, no name, no URL; the paths and thresholds come from what setup recorded.
    upgrade_env = {
        k: env[k]
        for k in ("RUNNER_HEALTH_DIR", "SYSTEMD_DIR", "SYSTEMCTL_STATE", "RUNNER_ALLOW_RUNASROOT")
    }
    write_fake(fakes[0], "make", 'mkdir -p "$2/.venv" && touch "$2/.venv/.installed"')
    result = run_script(
        [str(checkout / "provision" / "setup.sh"), "--upgrade"],
        fakes=fakes,
        env=upgrade_env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"upgraded runner-health {old[1]} -> 99.1.0" in result.stdout
    assert '__version__ = "99.1.0"' in (installed / "runner_health" / "__init__.py").read_text()
    assert f"make -C {installed} --no-print-directory .venv/.installed" in fakes[1].read_text()
    assert snapshot(runner, config_dir) == before  # config, token, registration untouched
    assert "registering" not in result.stdout and "config.sh" not in result.stdout
    cron = (Path(env["CRON_DIR"]) / "runner-health-free-disk").read_text()
    assert f"--runner-dir {runner} --if-free-below-percent 20 --if-free-below-gib 10" in cron


def test_upgrade_refuses_where_nothing_is_installed(tmp_path, fakes, system):
    env = {**system, "RUNNER_HEALTH_DIR": str(tmp_path / "nothing-here")}
    result = run_script([str(PROVISION / "setup.sh"), "--upgrade"], fakes=fakes, env=env)
    assert result.returncode == 2
    assert "no runner-health in" in result.stderr


def test_setup_lists_what_it_installed(fakes, setup_env):
    """The manifest health_check.sh --uninstall reads: "remove PATH" or "purge PATH"."""
    run_setup(fakes, setup_env)
    installed = Path(setup_env["RUNNER_HEALTH_DIR"])
    config_dir, systemd = Path(setup_env["CONFIG_DIR"]), Path(setup_env["SYSTEMD_DIR"])
    lines = (installed / ".installed-files").read_text().splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == [
        f"remove {installed}",
        f"remove {setup_env['CRON_DIR']}/runner-health-free-disk",
        f"remove {setup_env['NEEDRESTART_CONF_DIR']}/runner-health.conf",
        f"remove {setup_env['APT_CONF_DIR']}/52runner-health",
        f"remove {systemd}/apt-daily.service.d/runner-health.conf",
        f"remove {systemd}/apt-daily-upgrade.service.d/runner-health.conf",
        f"remove {systemd}/apt-daily-upgrade.timer.d/runner-health.conf",
        f"remove {systemd}/{UNIT}.d/runner-health.conf",
        f"hook {setup_env['RUNNER_DIR']}/.env",
        f"remove {systemd}/runner-health.timer",
        f"remove {systemd}/runner-health.service",
        f"purge {config_dir}/config.toml",
        f"purge {config_dir}/token",
        f"purge {config_dir}",
        "purge /var/log/runner-health-free-disk.log",
        "purge /var/log/runner-health.log",
    ]


@pytest.mark.parametrize("case", ["link", "other-hook"])
def test_setup_records_only_a_hook_line_it_wrote_or_found(case, tmp_path, fakes, setup_env):
    """A .env setup.sh did not edit (a link, another job-completed hook) is not in the record:
    --uninstall edits only what setup.sh put there. Once the .env is fixed, the next run hooks
    and records it."""
    runner = Path(setup_env["RUNNER_DIR"])
    runner.mkdir()
    ours = f"{setup_env['RUNNER_HEALTH_DIR']}/remediations/job_completed.sh"
    if case == "link":
        target = tmp_path / "elsewhere.env"
        target.write_text(f"ACTIONS_RUNNER_HOOK_JOB_COMPLETED={ours}\n")
        (runner / ".env").symlink_to(target)
    else:
        (runner / ".env").write_text("ACTIONS_RUNNER_HOOK_JOB_COMPLETED=/home/me/hook.sh\n")
    run_setup(fakes, setup_env)
    lines = (Path(setup_env["RUNNER_HEALTH_DIR"]) / ".installed-files").read_text().splitlines()
    assert f"remove {setup_env['SYSTEMD_DIR']}/{UNIT}.d/runner-health.conf" in lines
    assert not [line for line in lines if line.startswith("hook ")]
    (runner / ".env").unlink()
    run_setup(fakes, setup_env)
    lines = (Path(setup_env["RUNNER_HEALTH_DIR"]) / ".installed-files").read_text().splitlines()
    assert f"hook {runner}/.env" in lines


def test_setup_refuses_a_tarball_with_the_wrong_sha256(fakes, setup_env):
    env = {**setup_env, "RUNNER_SHA256": "0" * 64}
    result = run_script([str(PROVISION / "setup.sh")], fakes=fakes, env=env, timeout=120)
    assert result.returncode == 1
    assert "SHA-256 mismatch" in result.stderr
    assert not (Path(env["RUNNER_DIR"]) / "config.sh").exists()


def cloud_init_file(path: str) -> str:
    """A write_files entry's literal block (``content: |``) from cloud-init.yaml (no PyYAML in
    the venv; the file's own layout: six-space indented block lines)."""
    lines = (PROVISION / "cloud-init.yaml").read_text().splitlines()
    start = lines.index(f"  - path: {path}")
    content = lines.index("    content: |", start) + 1
    block = []
    for line in lines[content:]:
        if line and not line.startswith("      "):
            break
        block.append(line[6:])
    return "\n".join(block).rstrip("\n") + "\n"


def test_free_disk_cron_matches_cloud_init(tmp_path, fakes, system):
    result = run_script([str(PROVISION / "setup.sh"), "--free-disk-cron"], fakes=fakes, env=system)
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "cron.d" / "runner-health-free-disk").read_text()
    assert written == cloud_init_file("/etc/cron.d/runner-health-free-disk")
    again = run_script([str(PROVISION / "setup.sh"), "--free-disk-cron"], fakes=fakes, env=system)
    assert "unchanged" in again.stdout


def test_free_disk_cron_runs_whatever_the_paths(tmp_path, fakes, system):
    """The /etc/cron.d line, read as cron reads it and run as cron runs it (bash: the file sets
    SHELL), starts free_disk.sh (a stand-in here) on the runner directory, both under a path with
    a quote, a %, spaces and a $."""
    health = tmp_path / HOSTILE / "opt runner-health"
    (health / "remediations").mkdir(parents=True)
    argv = tmp_path / "free-disk-argv"
    write_fake(health / "remediations", "free_disk.sh", f'printf "%s\\n" "$@" > "{argv}"')
    runner_dir = tmp_path / HOSTILE / "actions-runner"
    env = {**system, "RUNNER_HEALTH_DIR": str(health), "RUNNER_DIR": str(runner_dir)}
    result = run_script([str(PROVISION / "setup.sh"), "--free-disk-cron"], fakes=fakes, env=env)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "cron.d" / "runner-health-free-disk").read_text()
    assert "SHELL=/bin/bash" in table.splitlines()
    (line,) = cron_jobs(table)
    assert line.split()[5] == "root"
    command, stdin = cron_command(line, fields=6)
    assert stdin is None, f"cron would cut the command at a %: {line}"
    # The one thing not run as written: the log it appends to is this machine's /var/log.
    log = "/var/log/runner-health-free-disk.log"
    assert command.count(log) == 1
    run = run_like_cron(
        command.replace(log, str(tmp_path / "free-disk.log")), tmp_path, "/bin/bash"
    )
    assert run.returncode == 0, run.stderr
    assert argv.read_text().splitlines() == [
        "--runner-dir",
        str(runner_dir),
        "--if-free-below-percent",
        "15",
        "--if-free-below-gib",
        "10",
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "--if-free-below-percent 15 --if-free-below-gib 10"),
        (
            {"FREE_DISK_BELOW_PERCENT": "25", "FREE_DISK_BELOW_GIB": "40"},
            "--if-free-below-percent 25 --if-free-below-gib 40",
        ),
    ],
)
def test_hourly_cleanup_runs_only_below_the_thresholds(env, expected, tmp_path, fakes, system):
    result = run_script(
        [str(PROVISION / "setup.sh"), "--free-disk-cron"], fakes=fakes, env={**system, **env}
    )
    assert result.returncode == 0, result.stderr
    (line,) = cron_jobs((tmp_path / "cron.d" / "runner-health-free-disk").read_text())
    assert f"--runner-dir /opt/actions-runner {expected} >>" in line


@pytest.mark.parametrize(
    "env", [{"FREE_DISK_BELOW_PERCENT": "101"}, {"FREE_DISK_BELOW_GIB": "ten"}]
)
def test_hourly_cleanup_thresholds_are_checked(env, tmp_path, fakes, system):
    result = run_script(
        [str(PROVISION / "setup.sh"), "--free-disk-cron"], fakes=fakes, env={**system, **env}
    )
    assert result.returncode == 2
    assert next(iter(env)) in result.stderr
    assert not list((tmp_path / "cron.d").iterdir())


@pytest.mark.parametrize("name", ["back\\slash", "new\nline"])
def test_free_disk_cron_refuses_a_path_no_cron_line_can_carry(name, tmp_path, fakes, system):
    env = {**system, "RUNNER_DIR": str(tmp_path / name)}
    result = run_script([str(PROVISION / "setup.sh"), "--free-disk-cron"], fakes=fakes, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cron" in result.stderr
    assert not list((tmp_path / "cron.d").iterdir())


# -- OS updates and the runner's unit (provision/guards.sh) -------------------------------

OS_UPDATE_FILES = {
    "NEEDRESTART_CONF_DIR": ("runner-health.conf", "/etc/needrestart/conf.d/runner-health.conf"),
    "APT_CONF_DIR": ("52runner-health", "/etc/apt/apt.conf.d/52runner-health"),
    **{
        f"SYSTEMD_DIR {unit}": (
            f"{unit}.d/runner-health.conf",
            f"/etc/systemd/system/{unit}.d/runner-health.conf",
        )
        for unit in ("apt-daily.service", "apt-daily-upgrade.service", "apt-daily-upgrade.timer")
    },
}
# Perl as needrestart evaluates its conf.d files (`do FILE` into %nrconf), then which of the
# services it would leave alone (override_rc 0).
NEEDRESTART_EVAL = r"""
our %nrconf; do $ARGV[0]; die $@ if $@;
for my $svc (@ARGV[1..$#ARGV]) {
  print "$svc\n" if grep { $svc =~ /$_/ && !$nrconf{override_rc}{$_} } keys %{$nrconf{override_rc}};
}
"""
FAKE_PGREP_WORKER = '[ "$*" = "-x Runner.Worker" ] && exit 0; exec /usr/bin/pgrep "$@"'


def os_update_file(env: dict[str, str], key: str) -> Path:
    return Path(env[key.split()[0]]) / OS_UPDATE_FILES[key][0]


def test_setup_keeps_needrestart_and_apt_away_from_jobs(fakes, setup_env):
    run_setup(fakes, setup_env)
    for key, (_, in_cloud_init) in OS_UPDATE_FILES.items():
        assert os_update_file(setup_env, key).read_text() == cloud_init_file(in_cloud_init), key
    # needrestart leaves the runner's unit and Docker's alone, restarts anything else.
    kept = subprocess.run(
        [
            "perl",
            "-e",
            NEEDRESTART_EVAL,
            str(os_update_file(setup_env, "NEEDRESTART_CONF_DIR")),
            UNIT,
            "docker.service",
            "containerd.service",
            "ssh.service",
            "actions.service",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert kept == [UNIT, "docker.service", "containerd.service"]
    apt = os_update_file(setup_env, "APT_CONF_DIR").read_text()
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in apt
    # The apt services' ExecCondition: skipped (exit 1) while a Runner.Worker runs, else run.
    dropin = os_update_file(setup_env, "SYSTEMD_DIR apt-daily-upgrade.service").read_text()
    condition = shlex.split(dropin.split("ExecCondition=")[1].splitlines()[0])
    idle = subprocess.run(condition, env={"PATH": os.environ["PATH"]}, check=False)
    write_fake(fakes[0], "pgrep", FAKE_PGREP_WORKER)
    busy = subprocess.run(condition, env={"PATH": f"{fakes[0]}:{os.environ['PATH']}"}, check=False)
    assert (idle.returncode, busy.returncode) == (0, 1)
    again = run_setup(fakes, setup_env)
    for key in OS_UPDATE_FILES:
        assert f"{os_update_file(setup_env, key)} unchanged" in again.stdout


@pytest.fixture
def hook(tmp_path) -> dict[str, str]:
    """An installed runner-health with its job-completed hook script."""
    health = tmp_path / "opt-runner-health"
    (health / "remediations").mkdir(parents=True)
    write_fake(health / "remediations", "job_completed.sh", "exit 0")
    return {"RUNNER_HEALTH_DIR": str(health)}


def test_register_protects_enables_and_hooks_the_runner_unit(runner, hook, fakes, tmp_path):
    directory, env = runner
    env = {**env, **hook}
    (directory / ".env").write_text("LANG=C.UTF-8\nJAVA_HOME=/opt/jdk\n")
    script = str(PROVISION / "register_local.sh")
    first = run_script([script], fakes=fakes, env=env, stdin=SECRET)
    assert first.returncode == 0, first.stdout + first.stderr
    dropin = Path(env["SYSTEMD_DIR"]) / f"{UNIT}.d" / "runner-health.conf"
    assert "\nOOMScoreAdjust=-500\n" in dropin.read_text() + "\n"
    assert "\nOOMPolicy=continue\n" in dropin.read_text() + "\n"
    assert "Restart=" not in dropin.read_text().replace("No Restart=", "")
    hook_line = (
        "ACTIONS_RUNNER_HOOK_JOB_COMPLETED="
        f"{hook['RUNNER_HEALTH_DIR']}/remediations/job_completed.sh"
    )
    env_text = f"LANG=C.UTF-8\nJAVA_HOME=/opt/jdk\n{hook_line}\n"
    assert (directory / ".env").read_text() == env_text
    state = Path(env["SYSTEMCTL_STATE"])
    assert not (state / "restarts").exists()  # protected before its first start
    # Again, with the unit disabled meanwhile: enabled again, nothing else changed.
    (state / f"{UNIT}.enabled").unlink()
    again = run_script([script], fakes=fakes, env=env, stdin="")
    assert again.returncode == 0, again.stderr
    assert f"enabled {UNIT}: it starts at boot" in again.stdout
    assert (state / f"{UNIT}.enabled").exists()
    assert (
        f"{dropin} unchanged" in again.stdout and "already has ACTIONS_RUNNER_HOOK" in again.stdout
    )
    assert (directory / ".env").read_text() == env_text
    assert not (state / "restarts").exists()
    # A changed drop-in on a running, idle unit: restarted; with a job running: left alone.
    dropin.write_text("[Service]\n")
    write_fake(fakes[0], "pgrep", FAKE_PGREP_WORKER)
    busy = run_script([script], fakes=fakes, env=env, stdin="")
    assert "a job is running" in busy.stdout and not (state / "restarts").exists()
    (fakes[0] / "pgrep").unlink()
    dropin.write_text("[Service]\n")
    idle = run_script([script], fakes=fakes, env=env, stdin="")
    assert (state / "restarts").read_text() == f"restart {UNIT}\n", idle.stdout


@pytest.mark.parametrize("case", ["link", "other-hook", "fifo"])
def test_the_runner_env_is_never_followed_or_clobbered(case, runner, hook, fakes, tmp_path):
    directory, env = runner
    env = {**env, **hook}
    target = tmp_path / "root-owned"
    target.write_text("SECRET=1\n")
    dot_env = directory / ".env"
    if case == "link":
        dot_env.symlink_to(target)
    elif case == "fifo":
        os.mkfifo(dot_env)
    else:
        dot_env.write_text("A=1\nACTIONS_RUNNER_HOOK_JOB_COMPLETED=/home/me/hook.sh\nB=2\n")
    before = dot_env.read_text() if case == "other-hook" else None
    result = run_script([str(PROVISION / "register_local.sh")], fakes=fakes, env=env, stdin=SECRET)
    assert result.returncode == 0, result.stdout + result.stderr
    assert target.read_text() == "SECRET=1\n"
    if case == "other-hook":
        assert dot_env.read_text() == before
        assert "sets another ACTIONS_RUNNER_HOOK_JOB_COMPLETED: kept" in result.stdout
    else:
        assert "not edited (not-a-file)" in result.stdout
        assert dot_env.is_symlink() if case == "link" else stat.S_ISFIFO(dot_env.lstat().st_mode)


def test_a_service_file_naming_another_unit_is_not_protected(runner, hook, fakes):
    directory, env = runner
    env = {**env, **hook}
    assert (
        run_script(
            [str(PROVISION / "register_local.sh")], fakes=fakes, env=env, stdin=SECRET
        ).returncode
        == 0
    )
    (directory / ".service").write_text("ssh.service\n")  # a job wrote it
    (Path(env["SYSTEMD_DIR"]) / "ssh.service").write_text("[Service]\n")
    result = run_script([str(PROVISION / "register_local.sh")], fakes=fakes, env=env, stdin="")
    assert "does not name a runner unit" in result.stderr
    assert not (Path(env["SYSTEMD_DIR"]) / "ssh.service.d").exists()


# -- register_local.sh -------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path, system) -> tuple[Path, dict[str, str]]:
    directory = make_runner_dir(tmp_path / "actions-runner")
    env = {
        **system,
        "RUNNER_DIR": str(directory),
        "REPO_URL": "https://github.com/acme/kernel-ci",
        "RUNNER_NAME": "assay-bpf-runner",
    }
    return directory, env


@pytest.mark.parametrize("via", ["stdin", "env"])
def test_register_token_never_in_argv(via, runner, fakes):
    directory, env = runner
    kwargs = {"stdin": SECRET + "\n"} if via == "stdin" else {"stdin": ""}
    if via == "env":
        env = {**env, "RUNNER_TOKEN": SECRET}
    result = run_script([str(PROVISION / "register_local.sh")], fakes=fakes, env=env, **kwargs)
    assert result.returncode == 0, result.stderr
    calls = (directory / "config.calls").read_text().splitlines()
    assert f"TOKEN: {SECRET}" in calls
    argv_lines = [line for line in calls if not line.startswith("TOKEN: ")]
    assert argv_lines and all(SECRET not in line for line in argv_lines)
    assert "--unattended --replace --url https://github.com/acme/kernel-ci" in calls[0]
    assert SECRET not in result.stdout + result.stderr
    assert (directory / ".service").exists()


def test_register_is_idempotent_unless_forced(runner, fakes):
    directory, env = runner
    script = str(PROVISION / "register_local.sh")
    assert run_script([script], fakes=fakes, env=env, stdin=SECRET).returncode == 0
    (directory / "config.calls").unlink()
    again = run_script([script], fakes=fakes, env=env, stdin="")  # no token needed
    assert again.returncode == 0, again.stderr
    assert "already registered as assay-bpf-runner" in again.stdout
    assert not (directory / "config.calls").exists()
    # --check reports, for setup.sh.
    assert run_script([script, "--check"], fakes=fakes, env=env).returncode == 0
    other = {**env, "RUNNER_NAME": "another-name"}
    assert run_script([script, "--check"], fakes=fakes, env=other).returncode == 1
    # --force re-registers: service removed, local config dropped, configured again.
    forced = run_script([script, "--force"], fakes=fakes, env=env, stdin=SECRET)
    assert forced.returncode == 0, forced.stderr
    calls = (directory / "config.calls").read_text()
    assert "ARGV: remove --local" in calls
    assert "svc.sh uninstall" in (directory / "svc.calls").read_text()


@pytest.mark.parametrize(
    ("args", "env_change", "message"),
    [
        (["--token", SECRET], {}, "the token is never an argument"),
        ([], {"REPO_URL": ""}, "REPO_URL is not set"),
        ([], {"REPO_URL": "acme/kernel-ci"}, "REPO_URL must look like"),
        ([], {}, "no registration token"),
    ],
)
def test_register_usage_errors(args, env_change, message, runner, fakes):
    directory, env = runner
    result = run_script(
        [str(PROVISION / "register_local.sh"), *args],
        fakes=fakes,
        env={**env, **env_change},
        stdin="",
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert SECRET not in result.stderr
    assert not (directory / "config.calls").exists()


# -- setup_local_multipass.sh ------------------------------------------------------------

# A multipass that knows one VM whose state lives in $MP_STATE ("absent" when the file is
# missing); exec answers cloud-init status and the VM config's labels ($MP_LABELS), and unpacks
# the checkout setup_local_multipass.sh sends into $MP_GUEST (setup.sh is not run: the fake log
# holds the command that would run it).
FAKE_MULTIPASS = r"""
state_file=$MP_STATE
state=$(cat "$state_file" 2>/dev/null || echo absent)
case $1 in
  info)
    if [ "$state" = absent ]; then
      echo "info failed: The following errors occurred:" >&2
      echo "instance \"$2\" does not exist" >&2; exit 2
    fi
    printf '{\n    "errors": [],\n    "info": {\n        "%s": {\n            "state": "%s"\n        }\n    }\n}\n' "$2" "$state" ;;
  launch) echo Running > "$state_file"; echo "Launched: assay-bpf-runner" ;;
  start) echo Running > "$state_file" ;;
  exec)
    shift 3
    case "$*" in
      "cloud-init status") echo "status: done" ;;
      "sed -n s/^labels = //p /etc/runner-health/config.toml") echo "$MP_LABELS" ;;
      sudo\ bash\ -c\ *) rm -rf "$MP_GUEST"; mkdir -p "$MP_GUEST"; tar -xzf - -C "$MP_GUEST" ;;
      *) cat > /dev/null ;;
    esac ;;
  *) echo "fake multipass: unexpected $*" >&2; exit 1 ;;
esac
"""
VM_LABELS = '["self-hosted", "linux", "arm64", "bpf-lsm", "kernel-6.8"]'


@pytest.fixture
def multipass(tmp_path, fakes) -> dict[str, str]:
    write_fake(fakes[0], "multipass", FAKE_MULTIPASS)
    return {
        "MP_STATE": str(tmp_path / "vm-state"),
        "MP_GUEST": str(tmp_path / "guest"),
        "MP_LABELS": VM_LABELS,
        "REPO_URL": "https://github.com/acme/kernel-ci",
        "GITHUB_TOKEN": SECRET,  # on the Mac: it must never reach the VM
    }


def mp_calls(fakes) -> list[str]:
    return [c for c in fakes[1].read_text().splitlines() if c.startswith("multipass ")]


def vm_setup_runs(fakes) -> list[str]:
    """The `multipass exec ... sudo bash -c SCRIPT` calls that run setup.sh in the VM (a script
    spans lines of the log)."""
    calls = re.split(r"\n(?=multipass )", fakes[1].read_text())
    return [c for c in calls if c.startswith("multipass exec") and "provision/setup.sh" in c]


def test_multipass_launches_once_then_says_it_exists(tmp_path, fakes, multipass):
    script = str(PROVISION / "setup_local_multipass.sh")
    env = {**multipass, "VM_CPUS": "2", "VM_MEMORY": "4G"}
    first = run_script([script], fakes=fakes, env=env)
    assert first.returncode == 0, first.stderr
    launches = [c for c in mp_calls(fakes) if c.startswith("multipass launch")]
    assert launches == [
        "multipass launch 24.04 --name assay-bpf-runner --cpus 2 --memory 4G --disk 30G "
        f"--cloud-init {PROVISION}/cloud-init.yaml --timeout 1800"
    ]
    assert (tmp_path / "guest" / "remediations" / "free_disk.sh").exists()
    assert "register_local.sh" in first.stdout  # the next step

    second = run_script([script], fakes=fakes, env=env)
    assert second.returncode == 0, second.stderr
    assert "already exists and is running: not launched again" in second.stdout
    assert len([c for c in mp_calls(fakes) if c.startswith("multipass launch")]) == 1


def test_multipass_keeps_the_admin_token_on_the_mac(fakes, multipass):
    """The VM gets runner-health with its own timer and a config without a token (setup.sh
    --no-admin-token); the printed next steps are registration with a one-hour token, and the
    Mac's runner-health (multipass://, the VM's own arch/kernel labels) for the GitHub side."""
    result = run_script([str(PROVISION / "setup_local_multipass.sh")], fakes=fakes, env=multipass)
    assert result.returncode == 0, result.stderr
    (run,) = vm_setup_runs(fakes)
    assert "provision/setup.sh --no-admin-token" in run
    assert "RUNNER_NAME=assay-bpf-runner REPO_URL=https://github.com/acme/kernel-ci" in run
    assert SECRET not in fakes[1].read_text() and "GITHUB_TOKEN" not in run
    out = result.stdout
    assert "repos/acme/kernel-ci/actions/runners/registration-token" in out
    assert "/opt/runner-health/provision/register_local.sh" in out
    assert 'target = "multipass://assay-bpf-runner"' in out
    assert 'repository = "acme/kernel-ci"' in out
    assert f"labels = {VM_LABELS}" in out
    assert "--upgrade" in out


def test_multipass_upgrade_runs_setup_upgrade_in_the_vm(tmp_path, fakes, multipass):
    script = str(PROVISION / "setup_local_multipass.sh")
    env = {k: v for k, v in multipass.items() if k not in ("REPO_URL", "GITHUB_TOKEN")}
    absent = run_script([script, "--upgrade"], fakes=fakes, env=env)
    assert absent.returncode == 1
    assert "no VM assay-bpf-runner to upgrade" in absent.stderr
    (tmp_path / "vm-state").write_text("Running\n")
    result = run_script([script, "--upgrade"], fakes=fakes, env=env)
    assert result.returncode == 0, result.stderr
    (run,) = vm_setup_runs(fakes)
    assert "provision/setup.sh --upgrade" in run
    assert not [c for c in mp_calls(fakes) if c.startswith("multipass launch")]
    assert (tmp_path / "guest" / "runner_health" / "__init__.py").exists()


def test_multipass_starts_a_stopped_vm(tmp_path, fakes, multipass):
    (tmp_path / "vm-state").write_text("Stopped\n")
    result = run_script([str(PROVISION / "setup_local_multipass.sh")], fakes=fakes, env=multipass)
    assert result.returncode == 0, result.stderr
    assert "already exists (Stopped): starting it" in result.stdout
    assert "multipass start assay-bpf-runner" in mp_calls(fakes)
    assert not [c for c in mp_calls(fakes) if c.startswith("multipass launch")]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VM_DISK": "lots"}, "VM_DISK must be a size"),
        ({"VM_CPUS": "0"}, "VM_CPUS must be a number"),
        ({"REPO_URL": ""}, "REPO_URL must be https://github.com/OWNER/REPO"),
    ],
)
def test_multipass_bad_settings(env, message, fakes, multipass):
    result = run_script(
        [str(PROVISION / "setup_local_multipass.sh")], fakes=fakes, env={**multipass, **env}
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert mp_calls(fakes) == []


def test_multipass_missing_cli_is_explained(fakes, tmp_path):
    env = {"PATH": f"{fakes[0]}:/usr/bin:/bin", "REPO_URL": "https://github.com/acme/kernel-ci"}
    if any(Path(d, "multipass").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("a real multipass is installed")
    result = run_script([str(PROVISION / "setup_local_multipass.sh")], fakes=fakes, env=env)
    assert result.returncode == 1
    assert "multipass is not installed" in result.stderr


def test_scripts_have_help():
    for name in ("setup.sh", "register_local.sh", "setup_local_multipass.sh"):
        result = run_script([str(PROVISION / name), "--help"])
        assert result.returncode == 0, name
        assert "Usage:" in result.stdout, name
    assert os.access(PROVISION / "setup.sh", os.X_OK)


def test_register_local_alone_names_the_missing_guards_and_changes_nothing(tmp_path):
    """register_local.sh sources guards.sh from its folder: copied alone it says so at once."""
    lone = tmp_path / "register_local.sh"
    shutil.copy(PROVISION / "register_local.sh", lone)
    result = subprocess.run(
        ["bash", str(lone)], input="", capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 1
    assert f"{tmp_path}/guards.sh is missing: run it from a runner-health checkout" in (
        result.stderr
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["register_local.sh"]
