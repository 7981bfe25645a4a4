"""Reinstall the latest actions/runner release in place, after a self-update that failed.

A failed self-update (runner_health.release) leaves ``bin`` or ``externals`` a link to
nothing, and the service relaunches a listener that can't start; the runner's own updater
won't run again, and the field's fix is reinstalling by hand (actions/runner#788, #1981).
This does that, safely:

- only with ``remediation.reinstall_runner`` (on by default), only while the runner is idle:
  no Runner.Worker on the VM, and GitHub does not show it busy (asked again after the
  download, right before the service is stopped);
- never while a Runner.Listener runs: a failed self-update leaves none that works, so one
  running means the signs are stale or were made by a job;
- the VM downloads the tarball for its CPU from the release's ``browser_download_url`` into
  a folder only root can read (removed however the reinstall ends), and checks its SHA-256
  against the release asset's ``digest`` (GitHub computes it): no digest, or another one,
  and nothing is changed;
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
# A runner tarball is ~200 MB: slow links need longer than an ordinary command's
# remediation.command_timeout_seconds (300 s by default), so the download has its own bound,
# and its step's timeout covers it plus mktemp and sha256sum of up to MAX_ASSET_BYTES.
DOWNLOAD_SECONDS = 900
CHECK_SECONDS = 60
KEPT = (".runner", ".credentials*", ".path", ".env", ".service", "_diag", "_work")


def reinstall(github: GitHub, install: RunnerInstall, settings: Settings, steps: Steps) -> None:
    if not settings.remediation.reinstall_runner:
        raise RemediationRefused(
            "remediation.reinstall_runner = false: reinstall the runner release by hand"
        )
    name = settings.runner.name
    try:
        latest = release.latest(github, datetime.now(timezone.utc))
    except GitHubError as exc:
        raise RemediationRefused(f"{exc}: the runner is left as it is") from None
    if _job_running(github, install, name):
        raise RemediationRefused(f"runner {name!r} is running a job: not reinstalling it now")
    if install.listener_running(fresh=True):
        raise RemediationRefused(
            "Runner.Listener is running, and a self-update that failed leaves none that works: "
            "the signs are stale, or were made by a job (_diag is the runner user's); "
            "not reinstalling"
        )
    unit = install.unit()  # a .service naming another unit: refused (UnsafeUnit)
    asset = _asset(install, latest)
    steps.note(
        f"reinstalling actions/runner {latest.version} ({asset.name}) in {install.directory}"
    )
    download = steps.run(
        _download(asset),
        why=f"download {asset.name} and check its SHA-256",
        check=False,
        timeout=DOWNLOAD_SECONDS + CHECK_SECONDS,
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
    try:
        if _job_running(github, install, name):  # the download took minutes
            raise RemediationRefused(
                f"runner {name!r} started a job during the download: not reinstalling it now"
            )
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
    finally:
        steps.run(f"rm -rf -- {shlex.quote(folder)}", why="remove the download", check=False)
    ensure_running(install, settings, steps, why=f"start the reinstalled runner {latest.version}")

    def online() -> bool:
        runner = github.runner(name)
        return runner is not None and runner.get("status") == "online"

    steps.wait_until(
        online, f"GitHub shows {name} online", timeout=settings.remediation.online_wait_seconds
    )


def _job_running(github: GitHub, install: RunnerInstall, name: str) -> bool:
    """GitHub shows the runner busy, or a Runner.Worker runs on the VM. RemediationRefused
    when GitHub can't be asked."""
    try:
        at_github = github.runner(name)
    except GitHubError as exc:
        raise RemediationRefused(f"{exc}: the runner is left as it is") from None
    return bool(at_github and at_github.get("busy")) or install.job_running()


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
    on a mismatch exit 3. The folder goes on any other way out (the trap: a failure, a signal
    such as a dropped session). GitHub redirects release downloads to another host."""
    tarball = '"$t/runner.tar.gz"'
    return (
        """t=; trap '[ -z "$t" ] || rm -rf -- "$t"' EXIT; trap 'exit 1' HUP INT TERM; """
        f"t=$(mktemp -d {DOWNLOADS}) || exit 1; "
        f"curl -fsSL --proto =https,http --proto-redir =https,http --max-time {DOWNLOAD_SECONDS} "
        f"--max-filesize {asset.size} -o {tarball} {shlex.quote(asset.url)} || exit 1; "
        f"got=$(sha256sum < {tarball} | cut -c1-64); "
        f'if [ "$got" != {asset.sha256} ]; then '
        f'echo "SHA-256 mismatch: {asset.name} is $got, the release says {asset.sha256}"; '
        "exit 3; fi; "
        f'echo "SHA-256 verified: {asset.name} {asset.sha256}"; trap - EXIT; echo "$t"'
    )


def _unpack(install: RunnerInstall, folder: str) -> str:
    """Root's command: the runner user replaces bin and externals (links removed, not
    followed) and unpacks the verified tarball root opens for it."""
    excluded = " ".join(f"--exclude={shlex.quote(k)}" for k in KEPT)
    unpack = as_user(
        install.user,
        f"cd {shlex.quote(install.directory)} && rm -rf -- bin externals && "
        f"tar -xzf - --no-same-owner {excluded}",
    )
    return f"{unpack} < {shlex.quote(folder)}/runner.tar.gz"


@pytest.fixture
def reinstall_runner(github, runner_install, settings, steps):
    return lambda: reinstall(github, runner_install, settings, steps)
