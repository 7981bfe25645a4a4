"""The runner's version lifecycle: the latest actions/runner release, the installed version,
and the signs of a self-update that failed.

>>> release = latest(github, now)                # at most once per RECHECK, conditional GET
>>> release.version, release.cutoff
('2.336.0', datetime(2026, 12, 28, ...))
>>> installed_version(install)                   # what the listener's _diag log names
'2.334.0'
>>> self_update_failed(install)                  # [] when healthy
['bin is a link to nothing']

GitHub's rule (docs "About self-hosted runners", Runner software updates; field reports
actions/runner#3466, #4392): a runner must be updated within 30 days of a new release, then
its listener gets "Runner version v... is deprecated and cannot receive messages." Measured
here from the latest release's date, so the cutoff it gives is the latest possible one.

A failed self-update (actions/runner SelfUpdater.cs, update.sh.template) leaves
``_diag/SelfUpdate-<utc>.log.failed`` and can leave ``bin`` or ``externals`` a link to a folder
that isn't there: the listener then can't start, and the service relaunches it forever,
each time "Runner listener exited with error code 127" (field: actions/runner#1981, #788).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from runner_health.github import GitHub, GitHubUnavailable, parse_time
from runner_health.runner import RunnerInstall, newest_log_command
from runner_health.targets import as_root, run

LATEST = "/repos/actions/runner/releases/latest"
CUTOFF = timedelta(days=30)
WARN = timedelta(days=7)  # the version check fails this long before the cutoff
RECHECK = timedelta(hours=6)  # a cached answer younger than this is not asked again
VERSION = re.compile(r"[0-9]{1,5}\.[0-9]{1,5}\.[0-9]{1,5}")
DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
MAX_ASSET_BYTES = 1024 * 1024 * 1024
# uname -m -> the release's asset names (actions-runner-linux-<arch>-<version>.tar.gz)
ARCHES = {"x86_64": "x64", "aarch64": "arm64", "armv7l": "arm"}


@dataclass(frozen=True)
class Asset:
    name: str
    url: str
    size: int
    sha256: str | None  # from GitHub's "digest"; None when the asset has none


@dataclass(frozen=True)
class Release:
    version: str
    published_at: datetime
    assets: tuple[Asset, ...]

    @property
    def cutoff(self) -> datetime:
        """When a runner still older than this release stops getting jobs."""
        return self.published_at + CUTOFF

    def asset(self, arch: str) -> Asset | None:
        """The Linux tarball for ``arch`` (x64, arm64, arm)."""
        name = f"actions-runner-linux-{arch}-{self.version}.tar.gz"
        return next((a for a in self.assets if a.name == name), None)


def key(version: str) -> tuple[int, ...]:
    """Orders versions: "2.10.0" after "2.9.9"."""
    return tuple(int(part) for part in version.split("."))


def parse(body: Any) -> Release:
    """The fields of GitHub's release JSON (or of our cached copy) this module uses;
    ValueError for anything of another shape."""
    if not isinstance(body, dict) or not isinstance(body.get("assets"), list):
        raise ValueError("not a release")
    tag = body.get("tag_name")
    if not isinstance(tag, str) or not VERSION.fullmatch(tag.removeprefix("v")):
        raise ValueError(f"tag_name {str(tag)[:40]!r} is not v<major>.<minor>.<patch>")
    published = body.get("published_at")
    if not isinstance(published, str):
        raise ValueError("published_at is missing")
    assets = []
    for item in body["assets"][:100]:
        if not isinstance(item, dict):
            raise ValueError("an asset is not an object")
        name, url, size = item.get("name"), item.get("browser_download_url"), item.get("size")
        if not (isinstance(name, str) and isinstance(url, str) and type(size) is int):
            raise ValueError("an asset lacks name, browser_download_url or size")
        digest = DIGEST.fullmatch(item.get("digest") or "")
        assets.append(Asset(name, url, size, digest[1] if digest else None))
    return Release(tag.removeprefix("v"), parse_time(published), tuple(assets))


def _kept(body: Any, now: datetime) -> dict[str, Any]:
    """What the cache keeps of a release: the Linux tarballs' fields, and when it was asked."""
    assets = [
        {k: a.get(k) for k in ("name", "browser_download_url", "size", "digest")}
        for a in body["assets"]
        if isinstance(a, dict) and str(a.get("name", "")).startswith("actions-runner-linux-")
    ]
    return {
        "tag_name": body["tag_name"],
        "published_at": body["published_at"],
        "assets": assets,
        "checked_at": now.isoformat(),
    }


def latest(github: GitHub, now: datetime, *, recheck: timedelta = RECHECK) -> Release:
    """The latest actions/runner release. Kept in the client's ETag cache (the state file):
    asked at most once per ``recheck``, then with If-None-Match (a 304 costs no rate limit).
    GitHubUnavailable when the answer isn't a release."""
    url = github.settings.api_url + LATEST
    cached = github.etags.get(url)
    if cached is not None:
        try:
            release = parse(cached[1])
            if now - parse_time(cached[1]["checked_at"]) < recheck:
                return release
        except (ValueError, KeyError, TypeError):
            github.etags.drop(url)  # the state file is only data: ask again
            cached = None
    conditional = {"If-None-Match": cached[0]} if cached else {}
    reply = github.request("GET", url, anonymous=True, headers=conditional)
    body = cached[1] if reply.status == 304 and cached else reply.json(parse)
    try:
        kept = _kept(body, now)
        release = parse(kept)
    except (ValueError, KeyError, TypeError) as exc:
        raise GitHubUnavailable(f"GET {LATEST}: not a release: {exc}") from None
    etag = cached[0] if reply.status == 304 and cached else reply.headers.get("ETag")
    if etag:
        github.etags.put(url, etag, kept, None)
    return release


def installed_version(install: RunnerInstall) -> str | None:
    """The version the newest ``_diag/Runner_*.log`` names: every Runner.Listener run traces
    "Version: <version>" at its start (actions/runner Program.cs MainAsync). Read, never run:
    each run of the listener, ``--version`` included, writes a new _diag log (HostContext.cs),
    which would become the newest and hide the listener's own. None when no log names one."""
    head = run(install.host, as_root(install.host, version_command(install)), timeout=30)
    found = _VERSION_TRACE.search(head.stdout_bytes.decode("utf-8", "replace"))
    return found[1] if found else None


# "[2026-11-28 10:00:02Z INFO Listener] Version: 2.334.0" (HostTraceListener's header)
_VERSION_TRACE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ INFO \w+\] Version: ([0-9]{1,5}\.[0-9]{1,5}\.[0-9]{1,5})$",
    re.MULTILINE,
)


def version_command(install: RunnerInstall) -> str:
    """As root: the first 16 KiB of the newest listener log (runner.newest_log_command)."""
    return (
        f"{newest_log_command(install.directory)}; "
        '[ -n "$f" ] || exit 0; exec dd if="$f" iflag=nofollow,nonblock bs=1024 count=16 status=none'
    )


def arch(install: RunnerInstall) -> str | None:
    """The release's name for the VM's CPU (``uname -m``); None for one it doesn't ship."""
    return ARCHES.get(run(install.host, "uname -m", timeout=30).stdout.strip())


# "SelfUpdate-yyyyMMdd-HHmmss.log" (SelfUpdater.cs GenerateUpdateScript), ".failed" added by
# update.sh.template on a failure; "Runner_yyyyMMdd-HHmmss-utc.log" each listener start.
# Both UTC; _diag is the runner user's, so a job can name a .failed log after any date.
STAMP = "%Y%m%d-%H%M%S"
CLOCK_TOLERANCE = timedelta(minutes=10)  # a .failed name later than the VM's clock + this: planted
_FAILED = re.compile(r"SelfUpdate-(\d{8}-\d{6})\.log\.failed")
_STARTED = re.compile(r"Runner_(\d{8}-\d{6})-utc\.log")
_EXITED = re.compile(r"Runner listener exited with error code (-?\d+)$", re.MULTILINE)


def signs_command(install: RunnerInstall) -> str:
    """As root: the VM's UTC time (STAMP), then ``<name> <type> <type followed>`` of bin and
    externals (find's %y/%Y: "l N" is a link to nothing; links are read, never followed), then
    the _diag names that matter."""
    directory = shlex.quote(install.directory)
    return (
        f"date -u +{STAMP}; "
        f"find {directory} -mindepth 1 -maxdepth 1 \\( -name bin -o -name externals \\) "
        "-printf '%f %y %Y\\n' 2>/dev/null; "
        f"find {directory}/_diag -maxdepth 1 -type f \\( -name 'SelfUpdate-*.log.failed' "
        "-o -name 'Runner_*-utc.log' \\) -printf '%f\\n' 2>/dev/null; true"
    )


def self_update_failed(install: RunnerInstall, journal: str) -> list[str]:
    """The signs of a failed self-update, one phrase each; [] when there are none.

    ``journal``: the unit's last invocation (RunnerInstall.recent_log().journal)."""
    listed = run(install.host, as_root(install.host, signs_command(install)), timeout=30)
    clock, _, names = listed.stdout.partition("\n")
    latest = _latest_real(clock).strftime(STAMP)
    kinds: dict[str, str] = {}
    failed, started = [], []
    for line in names.splitlines():
        name, _, types = line.partition(" ")
        if name in ("bin", "externals") and types:
            kinds[name] = types
        elif (match := _FAILED.fullmatch(line)) and match[1] <= latest:
            failed.append(match[1])
        elif match := _STARTED.fullmatch(line):
            started.append(match[1])
    signs = []
    for name in ("bin", "externals"):
        types = kinds.get(name)
        if types is not None and types[0] == "l" and types[-1] in "NL?":
            signs.append(f"{name} is a link to nothing")
    if failed and (not started or max(failed) > max(started)):
        signs.append(f"_diag/SelfUpdate-{max(failed)}.log.failed, and no listener started since")
    exits = _EXITED.findall(journal)
    if exits and exits[-1] == "127":
        signs.append("the service relaunches a listener that can't run (exit 127)")
    return signs


def _latest_real(clock: str) -> datetime:
    """The latest time a real .failed log can be named: the VM's clock (signs_command's first
    line; this machine's if that is unreadable) plus CLOCK_TOLERANCE."""
    try:
        return datetime.strptime(clock.strip(), STAMP) + CLOCK_TOLERANCE
    except (ValueError, OverflowError):
        return datetime.now(timezone.utc).replace(tzinfo=None) + CLOCK_TOLERANCE


def prefetch_commands(install: RunnerInstall) -> list[str]:
    """What the version checks read on the VM as root, for the healthy pass's one batched read."""
    return [version_command(install), signs_command(install)]
