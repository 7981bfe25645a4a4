"""The configure side of the actions/runner stand-in, on the host (no VM): config.sh sources
env.sh (.path, .env) and writes svc.sh, named by the real rule; --generateServiceConfig
rewrites it. Running svc.sh needs systemd: the VM tests do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.fake_github import FakeGitHub
from tests.testbed.test_runner_standin import RUNNER_SRC, _env, configure

UNIT = "actions.runner._runner.vm1.service"  # the fake's serverUrl is {base}/_runner


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def runner_dir(tmp_path: Path) -> Path:
    target = tmp_path / "actions-runner"
    shutil.copytree(RUNNER_SRC, target)
    return target


def svc_name(runner: Path) -> tuple[str, str]:
    """(SVC_NAME, SVC_DESCRIPTION) as the generated svc.sh has them."""
    text = (runner / "svc.sh").read_text()
    name = text.split('SVC_NAME="', 1)[1].split('"', 1)[0]
    description = text.split('SVC_DESCRIPTION="', 1)[1].split('"', 1)[0]
    return name, description


def generate(runner: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(runner / "config.sh"), "--generateServiceConfig"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_runner_has_no_svc_sh_before_configure():
    """The image and the release tarball are made from RUNNER_SRC: svc.sh is config.sh's."""
    assert not (RUNNER_SRC / "svc.sh").exists()
    assert (RUNNER_SRC / "bin" / "systemd.svc.sh.template").is_file()


def test_configure_writes_svc_sh_with_the_name_baked_in(runner_dir: Path, github: FakeGitHub):
    assert not (runner_dir / "svc.sh").exists()
    done = configure(runner_dir, github)
    assert done.returncode == 0, done.stdout + done.stderr
    svc = runner_dir / "svc.sh"
    assert svc.stat().st_mode & 0o777 == 0o755
    assert svc_name(runner_dir) == (UNIT, "GitHub Actions Runner (_runner.vm1)")
    assert "{{Svc" not in svc.read_text()


def test_generate_service_config_rewrites_a_missing_svc_sh(runner_dir: Path, github: FakeGitHub):
    assert configure(runner_dir, github).returncode == 0
    written = (runner_dir / "svc.sh").read_bytes()
    (runner_dir / "svc.sh").unlink()
    runner_file = (runner_dir / ".runner").read_bytes()
    done = generate(runner_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (runner_dir / "svc.sh").read_bytes() == written
    assert (runner_dir / ".runner").read_bytes() == runner_file  # nothing else is configured


def test_generate_service_config_needs_a_configured_runner(runner_dir: Path):
    done = generate(runner_dir)
    assert done.returncode == 1
    assert "--generateServiceConfig requires that the runner is already configured." in (
        done.stdout + done.stderr
    )
    assert not (runner_dir / "svc.sh").exists()


@pytest.mark.parametrize(
    "server_url, github_url, agent, unit",
    [
        # github.com: the scope is the --url's path, "/" made "-"
        (
            "https://pipelinesghubeus6.actions.githubusercontent.com/Q2bTPuTe1Yj0pVQt/",
            "https://github.com/acme/kernel-ci",
            "vm1",
            "actions.runner.acme-kernel-ci.vm1.service",
        ),
        (  # an organization runner
            "https://pipelinesghubeus6.actions.githubusercontent.com/Q2bTPuTe1Yj0pVQt/",
            "https://github.com/acme",
            "vm1",
            "actions.runner.acme.vm1.service",
        ),
        # GitHub Enterprise Server: the first path segment of serverUrl
        (
            "https://ghes.example/_services/pipelines/Q2bTPuTe1Yj0pVQt",
            "https://ghes.example/acme/kernel-ci",
            "my runner",
            "actions.runner._services.my_runner.service",  # svc.sh turns spaces into "_"
        ),
    ],
)
def test_the_unit_name_follows_the_real_rule(
    runner_dir: Path, server_url: str, github_url: str, agent: str, unit: str
):
    settings = {"agentId": 1, "agentName": agent, "serverUrl": server_url, "gitHubUrl": github_url}
    (runner_dir / ".runner").write_text("\ufeff" + json.dumps(settings), encoding="utf-8")
    assert generate(runner_dir).returncode == 0
    name = svc_name(runner_dir)[0]
    shown = subprocess.run(
        ["bash", "-c", f'SVC_NAME="{name}"; echo "${{SVC_NAME// /_}}"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert shown == unit


def test_a_name_over_150_characters_is_cut_with_a_suffix(runner_dir: Path):
    settings = {
        "agentId": 1,
        "agentName": "r" * 100,
        "serverUrl": "https://x.actions.githubusercontent.com/abc/",
        "gitHubUrl": "https://github.com/" + "o" * 90,
    }
    (runner_dir / ".runner").write_text(json.dumps(settings), encoding="utf-8")
    assert generate(runner_dir).returncode == 0
    name, description = svc_name(runner_dir)
    prefix = f"actions.runner.{'o' * 70}.{'r' * 51}-"
    assert len(name) == 150 and name.startswith(prefix) and name.endswith(".service")
    assert 1000 <= int(name[len(prefix) : -len(".service")]) <= 9998
    assert description == f"GitHub Actions Runner ({'o' * 90}.{'r' * 100})"  # not cut


@pytest.mark.parametrize("broker", [True, False])
def test_use_v2_flow_comes_from_the_registration_answer(runner_dir: Path, broker: bool):
    """ConfigurationManager.cs: GitHubAuthResult.use_v2_flow (github.com's registrations have
    it) is the runner-admin flow, which also sets UseV2Flow (the broker) and ServerUrlV2;
    without it none is written (false values are omitted)."""
    with FakeGitHub(broker_flow=broker) as fake:
        assert configure(runner_dir, fake).returncode == 0
    settings = json.loads((runner_dir / ".runner").read_text(encoding="utf-8-sig"))
    flags = {"useV2Flow", "useRunnerAdminFlow", "serverUrlV2"} & set(settings)
    if not broker:
        assert not flags
        return
    assert settings["useV2Flow"] is True and settings["useRunnerAdminFlow"] is True
    assert settings["serverUrlV2"] == settings["serverUrl"]


# -- env.sh, sourced by config.sh -----------------------------------------------------------


def source_env_sh(runner: Path, path: str, **env: str) -> None:
    subprocess.run(
        ["bash", "-c", "source ./env.sh"],
        cwd=runner,
        env={"PATH": path, **env},
        check=True,
        timeout=30,
    )


def test_configure_writes_the_callers_path_and_environment(runner_dir: Path, github: FakeGitHub):
    path = f"/home/runner/.cargo/bin:{os.environ['PATH']}"
    done = configure(runner_dir, github, PATH=path, LANG="C.UTF-8", JAVA_HOME="/opt/jdk")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (runner_dir / ".path").read_text() == path + "\n"
    lines = (runner_dir / ".env").read_text().splitlines()
    assert lines[:2] == ["LANG=C.UTF-8", "JAVA_HOME=/opt/jdk"]  # in env.sh's order


def test_env_sh_rewrites_path_and_appends_only_missing_variables(runner_dir: Path):
    (runner_dir / ".path").write_text("/home/runner/.cargo/bin:/usr/bin\n")
    (runner_dir / ".env").write_text("LANG=de_DE.UTF-8\nCUSTOM=kept\n# JAVA_HOME=/old\n")
    source_env_sh(runner_dir, "/usr/bin:/bin", LANG="C.UTF-8", JAVA_HOME="/opt/jdk", PERL5LIB="/p")
    assert (runner_dir / ".path").read_text() == "/usr/bin:/bin\n"  # the caller's, always
    # kept as it was; JAVA_HOME counts as present ("NAME=" anywhere, as env.sh tests it)
    assert (runner_dir / ".env").read_text() == (
        "LANG=de_DE.UTF-8\nCUSTOM=kept\n# JAVA_HOME=/old\nPERL5LIB=/p\n"
    )


def test_env_sh_creates_env_and_skips_unset_variables(runner_dir: Path):
    source_env_sh(runner_dir, "/usr/bin")
    assert (runner_dir / ".env").read_text() == ""
    assert (runner_dir / ".path").read_text() == "/usr/bin\n"
