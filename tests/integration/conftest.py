"""A GitHub client pointed at any server, and the hostile server's fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runner_health.config import GitHubSettings
from runner_health.github import GitHub
from tests.integration.hostile_server import HostileServer

TOKEN = "hostile-test-token-0123456789"


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
