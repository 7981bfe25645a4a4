"""actions/runner's releases on the fake GitHub: ``GET /repos/actions/runner/releases/latest``
and the release tarballs its assets name (test infrastructure only).

>>> published = releases.of(fake).publish("2.336.0", days_ago=3)
>>> requests.get(fake.url + "/repos/actions/runner/releases/latest", headers=auth).json()["tag_name"]
'v2.336.0'

The body has GitHub's release shape (tests/contract checks it against githubkit's models):
``tag_name`` "v<version>", ``published_at``, and ``assets`` of ``name``
"actions-runner-linux-<arch>-<version>.tar.gz", ``browser_download_url``, ``size`` and
``digest`` "sha256:<hex>" (GitHub computes it for every asset uploaded since June 2025). Each
tarball is the runner stand-in (tests/testbed/runner) as the real package lays it out (./bin,
./externals, the scripts at the top), its Runner.Listener reporting the release's version.
The fake's ETag/304 handling answers conditional requests like any GET.

Tarballs come from a small download server of their own (GitHub sends them from another
host too: github.com redirects to objects.githubusercontent.com), on 127.0.0.1; set
``download_host = "10.0.2.2"`` for a QEMU guest to fetch them.

The deprecation rule (GitHub's docs, "Runner software updates": a runner must be updated
within 30 days of a new release; the listener then gets "Runner version v... is deprecated
and cannot receive messages."): ``deprecated(version)``; ``enforce(version)`` applies it
through the fake's ``deprecate_runner_version``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RUNNER_STANDIN = Path(__file__).resolve().parent.parent / "runner"
ARCHES = ("x64", "arm64", "arm")
CUTOFF = timedelta(days=30)
_VERSION_LINE = re.compile(r'^VERSION = "[0-9.]+"$', re.MULTILINE)
_BUILT = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()  # every member's mtime


def tarball(version: str) -> bytes:
    """The stand-in packaged like actions-runner-linux-<arch>-<version>.tar.gz: same bytes for
    the same version (fixed mtimes and order), so its digest is stable."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        tar.addfile(_entry("./externals", tarfile.DIRTYPE, 0o755))
        for path in sorted(RUNNER_STANDIN.rglob("*")):
            name = "./" + path.relative_to(RUNNER_STANDIN).as_posix()
            if path.is_dir():
                tar.addfile(_entry(name, tarfile.DIRTYPE, 0o755))
                continue
            data = path.read_bytes()
            if name == "./bin/Runner.Listener":
                data = _VERSION_LINE.sub(f'VERSION = "{version}"', data.decode()).encode()
            tar.addfile(
                _entry(name, tarfile.REGTYPE, path.stat().st_mode & 0o777, len(data)),
                io.BytesIO(data),
            )
    return buffer.getvalue()


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, _BUILT
    return info


def key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass
class Releases:
    """The releases of one fake, newest last; a download server once one is published."""

    download_host: str = "127.0.0.1"
    published: list[tuple[str, datetime]] = field(default_factory=list)
    digest: str | None = None  # a wrong or missing ("") digest in the next answers
    _tarballs: dict[str, bytes] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    def publish(self, version: str, days_ago: float = 1) -> dict[str, Any]:
        """Make ``version`` the latest release, published ``days_ago`` days ago."""
        self.published.append((version, datetime.now(timezone.utc) - timedelta(days=days_ago)))
        self._tarballs[version] = tarball(version)
        self._serve()
        return self.latest_body()

    def deprecated(self, version: str, now: datetime | None = None) -> bool:
        """A newer release came out more than 30 days ago."""
        now = now or datetime.now(timezone.utc)
        return any(key(v) > key(version) and now - at > CUTOFF for v, at in self.published)

    def enforce(self, fake: Any, version: str) -> bool:
        """Refuse messages to a runner of ``version`` at ``fake`` when the rule deprecates it."""
        deprecated = self.deprecated(version)
        fake.deprecate_runner_version(version if deprecated else None)
        return deprecated

    def latest_body(self) -> dict[str, Any]:
        version, at = self.published[-1]
        data = self._tarballs[version]
        digest = (
            "sha256:" + hashlib.sha256(data).hexdigest() if self.digest is None else self.digest
        )
        assert self._server is not None
        base = f"http://{self.download_host}:{self._server.server_address[1]}"
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        api = "https://api.github.com/repos/actions/runner"
        assets = []
        for number, arch in enumerate(ARCHES, start=1):
            name = f"actions-runner-linux-{arch}-{version}.tar.gz"
            assets.append(
                {
                    "url": f"{api}/releases/assets/{number}",
                    "browser_download_url": f"{base}/actions/runner/releases/download/v{version}/{name}",
                    "id": number,
                    "node_id": f"RA_{number}",
                    "name": name,
                    "label": "",
                    "state": "uploaded",
                    "content_type": "application/octet-stream",
                    "size": len(data),
                    "digest": digest or None,
                    "download_count": 0,
                    "created_at": stamp,
                    "updated_at": stamp,
                    "uploader": None,
                }
            )
        return {
            "url": f"{api}/releases/1",
            "html_url": f"https://github.com/actions/runner/releases/tag/v{version}",
            "assets_url": f"{api}/releases/1/assets",
            "upload_url": "https://uploads.github.com/repos/actions/runner/releases/1/assets{?name,label}",
            "tarball_url": f"{api}/tarball/v{version}",
            "zipball_url": f"{api}/zipball/v{version}",
            "id": 1,
            "node_id": "RE_1",
            "tag_name": f"v{version}",
            "target_commitish": "main",
            "name": f"v{version}",
            "body": "",
            "draft": False,
            "prerelease": False,
            "immutable": False,
            "created_at": stamp,
            "published_at": stamp,
            "updated_at": stamp,
            "author": _AUTHOR,
            "assets": assets,
        }

    def routes(self) -> list[tuple[str, str, Callable[..., tuple[int, Any]], str | None]]:
        """The REST route for the fake's ``_rest_routes`` (public data: no permission)."""
        return [("GET", r"/repos/actions/runner/releases/latest", self._latest, None)]

    def _latest(self, m: re.Match[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not self.published:  # the stand-in's own version, out for a day: nobody is behind
            found = _VERSION_LINE.search((RUNNER_STANDIN / "bin/Runner.Listener").read_text())
            assert found is not None
            self.publish(found[0].split('"')[1])
        return 200, self.latest_body()

    def _serve(self) -> None:
        if self._server is not None:
            return
        tarballs = self._tarballs

        class Download(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = re.fullmatch(
                    r"/actions/runner/releases/download/v([0-9.]+)/actions-runner-linux-"
                    r"(?:x64|arm64|arm)-\1\.tar\.gz",
                    self.path,
                )
                data = tarballs.get(found[1]) if found else None
                self.send_response(200 if data else 404)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Download)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


_AUTHOR = {
    "login": "github-actions[bot]",
    "id": 41898282,
    "node_id": "MDM6Qm90NDE4OTgyODI=",
    "avatar_url": "https://avatars.githubusercontent.com/in/15368?v=4",
    "gravatar_id": "",
    "url": "https://api.github.com/users/github-actions%5Bbot%5D",
    "html_url": "https://github.com/apps/github-actions",
    "followers_url": "https://api.github.com/users/github-actions%5Bbot%5D/followers",
    "following_url": "https://api.github.com/users/github-actions%5Bbot%5D/following{/other_user}",
    "gists_url": "https://api.github.com/users/github-actions%5Bbot%5D/gists{/gist_id}",
    "starred_url": "https://api.github.com/users/github-actions%5Bbot%5D/starred{/owner}{/repo}",
    "subscriptions_url": "https://api.github.com/users/github-actions%5Bbot%5D/subscriptions",
    "organizations_url": "https://api.github.com/users/github-actions%5Bbot%5D/orgs",
    "repos_url": "https://api.github.com/users/github-actions%5Bbot%5D/repos",
    "events_url": "https://api.github.com/users/github-actions%5Bbot%5D/events{/privacy}",
    "received_events_url": "https://api.github.com/users/github-actions%5Bbot%5D/received_events",
    "type": "Bot",
    "site_admin": False,
}

_OF: weakref.WeakKeyDictionary[Any, Releases] = weakref.WeakKeyDictionary()


def of(fake: Any) -> Releases:
    """The releases of ``fake`` (a FakeGitHub), made on first use."""
    return _OF.setdefault(fake, Releases())
