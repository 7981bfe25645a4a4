"""A GitHub client pointed at any server, and the hostile server's fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner_health.config import GitHubSettings
from runner_health.github import GitHub
from tests.integration.hostile_server import HostileServer

TOKEN = "hostile-test-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def github_at(api_url: str, token: str = TOKEN, timeout: float = 2) -> GitHub:
    """The product's client for acme/kernel-ci at ``api_url``."""
    settings = GitHubSettings(
        repository="acme/kernel-ci",
        organization=None,
        api_url=api_url,
        server_url=api_url,
        token_file=None,
        timeout_seconds=timeout,
    )
    return GitHub(settings, token)


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def run_github_checks(
    tmp_path: Path, github: str, *checks: str, token: str = TOKEN
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """``pytest CHECKS -m github --no-remediate`` as the workflow runs it, with ``github`` as
    the config's [github] table: the finished process and summary.json's check records."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'lock_file = "{tmp_path}/lock"\nstate_file = "{tmp_path}/state.json"\n[github]\n{github}'
        f'[runner]\nname = "vm1"\n[reports]\ndirectory = "{tmp_path}/reports"\n'
    )
    finished = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", *checks, "-m", "github", "--no-remediate", "-q"),
            *("-p", "no:cacheprovider", "--config", str(config)),
        ],
        cwd=ROOT,
        env={"GITHUB_TOKEN": token, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    (summary,) = (tmp_path / "reports").glob("**/summary.json")
    return finished, json.loads(summary.read_text())["checks"]
