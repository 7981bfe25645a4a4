"""Contract: the fake's actions/runner release (releases.py) validates against GitHub's own
OpenAPI models (githubkit), digest included, and its tarball is what the digest says."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.testbed.fake_github import FakeGitHub, releases

models = pytest.importorskip("githubkit_schemas.v2022_11_28.models")


def test_the_latest_release_has_githubs_shape_and_its_tarballs_their_digest():
    with FakeGitHub() as fake:
        releases.of(fake).publish("2.336.0", days_ago=2)
        auth = {"Authorization": f"Bearer {fake.admin_token}"}
        reply = requests.get(f"{fake.url}/repos/actions/runner/releases/latest", headers=auth)
        assert reply.status_code == 200
        body = models.Release.model_validate(reply.json())
        assert body.tag_name == "v2.336.0"
        for asset in body.assets:
            data = requests.get(asset.browser_download_url, timeout=10).content
            assert asset.size == len(data)
            assert asset.digest == "sha256:" + hashlib.sha256(data).hexdigest()
        again = requests.get(
            f"{fake.url}/repos/actions/runner/releases/latest",
            headers=auth | {"If-None-Match": reply.headers["ETag"]},
        )
        assert again.status_code == 304
        releases.of(fake).stop()


def test_the_deprecation_rule_30_days_after_a_newer_release():
    published = releases.Releases()
    now = datetime.now(timezone.utc)
    published.published = [
        ("2.335.0", now - timedelta(days=40)),
        ("2.336.0", now - timedelta(days=3)),
    ]
    assert published.deprecated("2.334.0")  # 2.335.0 came out 40 days ago
    assert not published.deprecated("2.335.0")  # 2.336.0 only 3 days ago
    assert not published.deprecated("2.336.0")
