"""Reinstall the latest actions/runner release in place, after a self-update that failed.

A failed self-update (runner_health.release) leaves ``bin`` or ``externals`` a link to
nothing, and the service relaunches a listener that can't start; the runner's own updater
won't run again, and the field's fix is reinstalling by hand (actions/runner#788, #1981).
This does that, safely:

- only with ``remediation.reinstall_runner`` (on by default), only while the runner is idle:
  no Runner.Worker on the VM, and GitHub (asked first) does not show it busy;
- the VM downloads the tarball for its CPU from the release's ``browser_download_url`` into
  a folder only root can read, and checks its SHA-256 against the release asset's ``digest``
  (GitHub computes it): no digest, or another one, and nothing is changed;
- the runner user unpacks it (root only opens the verified file for it) over the runner
  folder, after removing the ``bin``/``externals`` links themselves (never followed), so they
  are real folders again; ``.runner``, ``.credentials*``, ``.path``, ``.env``, ``.service``,
  ``_diag`` and ``_work`` are never written (the tarball has none; excluded all the same);
- then the unit is started (runner_health.unit names it, never svc.sh) and GitHub must show
  the runner online.
"""

import re
import shlex
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest

from remediations.service import ensure_running
from runner_health import release
from runner_health.config import Settings
from runner_health.github import GitHub, GitHubError
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationFailed, RemediationRefused, Steps
from runner_health.targets import as_user

DOWNLOADS = "/var/tmp/runner-health-release.XXXXXX"  # mktemp -d: mode 0700, root's
_DOWNLOAD_DIR = re.compile(r"/var/tmp/runner-health-release\.[A-Za-z0-9]{6}")
KEPT = (".runner", ".credentials*", ".path", ".env", ".service", "_diag", "_work")


def reinstall(github: GitHub, install: RunnerInstall, settings: Settings, steps: Steps) -> None:
    if not settings.remediation.reinstall_runner:
        raise RemediationRefused(
            "remediation.reinstall_runner = false: reinstall the runner release by hand"
        )
    name = settings.runner.name
    try:
        at_github = github.runner(name)
        latest = release.latest(github, datetime.now(timezone.utc))
    except GitHubError as exc:
        raise RemediationRefused(f"{exc}: the runner is left as it is") from None
    if (at_github and at_github.get("busy")) or install.job_running():
        raise RemediationRefused(f"runner {name!r} is running a job: not reinstalling it now")
    unit = install.unit()  # a .service naming another unit: refused (UnsafeUnit)
    asset = _asset(install, latest)
    steps.note(
        f"reinstalling actions/runner {latest.version} ({asset.name}) in {install.directory}"
    )
    download = steps.run(
        _download(asset), why=f"download {asset.name} and check its SHA-256", check=False
    )
    if download and download.rc == 3:
        raise RemediationRefused(
            f"{asset.name}'s SHA-256 is not the release's digest: not installed, nothing changed"
        )
    if download and download.rc != 0:
        raise RemediationFailed(f"downloading {asset.url} failed (exit {download.rc})")
    folder = download.stdout.strip().rsplit("\n", 1)[-1] if download else "<download folder>"
    if download and not _DOWNLOAD_DIR.fullmatch(folder):
        raise RemediationRefused(f"the download printed no folder of ours: {folder[:100]!r}")
    if unit is not None:
        steps.run(
            f"systemctl stop {shlex.quote(unit)}",
            why="stop the service's relaunches while the runner is unpacked",
        )
    steps.run(
        _unpack(install, folder),
        why=f"unpack {latest.version} as {install.user}, keeping "
        "its registration, credentials, environment, logs and work folder",
    )
    ensure_running(install, settings, steps, why=f"start the reinstalled runner {latest.version}")

    def online() -> bool:
        runner = github.runner(name)
        return runner is not None and runner.get("status") == "online"

    steps.wait_until(
        online, f"GitHub shows {name} online", timeout=settings.remediation.online_wait_seconds
    )


def _asset(install: RunnerInstall, latest: release.Release) -> release.Asset:
    """The release's tarball for the VM's CPU, with a digest and a plain http(s) URL."""
    arch = release.arch(install)
    asset = latest.asset(arch) if arch else None
    if asset is None:
        raise RemediationRefused(
            f"actions/runner {latest.version} has no Linux tarball for this VM's CPU ({arch})"
        )
    if asset.sha256 is None:
        raise RemediationRefused(
            f"{asset.name} has no SHA-256 digest at GitHub: it can't be checked, so it is not "
            "installed"
        )
    url = urlsplit(asset.url)
    if url.scheme not in ("https", "http") or not url.netloc or re.search(r"[\s'\"\\]", asset.url):
        raise RemediationRefused(f"{asset.name}'s download URL is not a plain http(s) URL")
    if not 0 < asset.size <= release.MAX_ASSET_BYTES:
        raise RemediationRefused(f"{asset.name} is {asset.size} bytes: not a runner release")
    return asset


def _download(asset: release.Asset) -> str:
    """Root's command: fetch into a new 0700 folder, print "SHA-256 verified" and the folder;
    on a mismatch remove it and exit 3. GitHub redirects release downloads to another host."""
    tarball = '"$t/runner.tar.gz"'
    return (
        f"t=$(mktemp -d {DOWNLOADS}) || exit 1; "
        f"curl -fsSL --proto =https,http --proto-redir =https,http --max-time 900 "
        f"--max-filesize {asset.size} -o {tarball} {shlex.quote(asset.url)} "
        '|| { rm -rf -- "$t"; exit 1; }; '
        f"got=$(sha256sum < {tarball} | cut -c1-64); "
        f'if [ "$got" != {asset.sha256} ]; then '
        f'echo "SHA-256 mismatch: {asset.name} is $got, the release says {asset.sha256}"; '
        'rm -rf -- "$t"; exit 3; fi; '
        f'echo "SHA-256 verified: {asset.name} {asset.sha256}"; echo "$t"'
    )


def _unpack(install: RunnerInstall, folder: str) -> str:
    """Root's command: the runner user replaces bin and externals (links removed, not
    followed) and unpacks the verified tarball root opens for it; the download goes."""
    excluded = " ".join(f"--exclude={shlex.quote(k)}" for k in KEPT)
    unpack = as_user(
        install.user,
        f"cd {shlex.quote(install.directory)} && rm -rf -- bin externals && "
        f"tar -xzf - --no-same-owner {excluded}",
    )
    quoted = shlex.quote(folder)
    return f"{unpack} < {quoted}/runner.tar.gz; rc=$?; rm -rf -- {quoted}; exit $rc"


@pytest.fixture
def reinstall_runner(github, runner_install, settings, steps):
    return lambda: reinstall(github, runner_install, settings, steps)
