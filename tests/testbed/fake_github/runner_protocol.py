"""The fake's private ``/_runner`` protocol from Python, for tests that play the runner
without starting the stand-in (the stand-in's Runner.Listener speaks the same protocol)."""

from __future__ import annotations

from typing import Any

import requests

from tests.testbed.fake_github.server import FakeGitHub


def api(github: FakeGitHub, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A REST call with the admin token, as the product makes it."""
    headers = {"Authorization": f"Bearer {github.admin_token}", **kwargs.pop("headers", {})}
    kwargs.setdefault("timeout", 10)
    return requests.request(method, github.url + path, headers=headers, **kwargs)


def register_agent(
    github: FakeGitHub,
    name: str,
    labels: list[str],
    *,
    token: str | None = None,
    url: str | None = None,
    **fields: Any,
) -> dict:
    """What config.sh does: trade a registration token for a tenant token, add the runner
    (to the repository, or to what ``url`` names: ``f"{github.url}/{github.owner}"``, the org)."""
    tenant = requests.post(
        github.url + "/_runner/actions/runner-registration",
        json={"url": url or github.runner_url(guest=False), "runner_event": "register"},
        headers={"Authorization": f"RemoteAuth {token or github.create_registration_token()}"},
        timeout=10,
    )
    assert tenant.status_code == 200, tenant.text
    return requests.post(
        github.url + "/_runner/agents",
        json={"name": name, "labels": labels, "public_key": "k", **fields},
        headers={"Authorization": f"Bearer {tenant.json()['token']}"},
        timeout=10,
    ).json()


def open_session(github: FakeGitHub, agent: dict, key: str = "k") -> requests.Response:
    """What Runner.Listener does first: create a message session with its credential."""
    return requests.post(
        github.url + "/_runner/sessions",
        json={"client_id": agent["authorization"]["client_id"], "key": key},
        timeout=10,
    )


def poll(github: FakeGitHub, session: dict, status: str = "Online") -> requests.Response:
    """One long poll for a job message, as a listener heartbeats."""
    return requests.get(
        f"{github.url}/_runner/sessions/{session['session_id']}/message?status={status}",
        headers={"Authorization": f"Bearer {session['access_token']}"},
        timeout=10,
    )
