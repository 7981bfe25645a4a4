"""The runner is offline at GitHub: find out why, then run the one fix that matches.

Diagnosis reads the facts (is the listener running? is the clock off? does GitHub still
know the runner?) and the runner's own log lines (_diag and the journal), newest cause first.
"""

import contextlib
import re
import shlex
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from testinfra.host import Host

from remediations.clock import sync
from remediations.registration import reconfigure
from remediations.service import ensure_running
from runner_health import clock
from runner_health.config import Settings
from runner_health.github import GitHub
from runner_health.runner import Finding, RunnerInstall, diagnose
from runner_health.steps import RemediationFailed, RemediationRefused, Steps
from runner_health.targets import as_user, run
from runner_health.text import printable

# A new listener that finds its registration's session still held retries every 30 s and
# gives up after 240 s with exit 5; RunnerService.js then stops the unit (MessageListener.cs:
# 52-53,526-546, RunnerService.js:117-121). One more retry interval covers its last try.
CONFLICT_SECONDS = 240 + 30

# What a URL from the runner's files may look like before it reaches a command (quoted too).
_URL = re.compile(r"https?://[A-Za-z0-9.-]{1,253}(?::\d{1,5})?(?:/[A-Za-z0-9._~%/-]{0,500})?")
_PROXY = re.compile(r"(?:https?|socks5h?|socks4a?)://[^\s'\"\\\x00-\x1f\x7f]{1,500}")
ANSWER_SHOWN = 300  # characters of what getent or curl answered that the report keeps


@pytest.fixture
def diagnose_offline(target, github, runner_install, settings, steps, free_disk):
    return lambda: bring_online(target, github, runner_install, settings, steps, free_disk)


def bring_online(
    target: Host,
    github: GitHub,
    install: RunnerInstall,
    settings: Settings,
    steps: Steps,
    free_disk: Callable[[], None],
) -> None:
    """The online check's fix: the diagnosis decides, newest cause first."""
    name = settings.runner.name

    def online() -> bool:
        runner = github.runner(name)
        return runner is not None and runner.get("status") == "online"

    findings = diagnose(install.recent_log())
    causes = [finding.cause for finding in findings]
    steps.note("runner log shows: " + (", ".join(causes) if causes else "no known cause"))
    offset = clock.offset_seconds(target, github)
    if github.runner(name) is None or causes[-1:] == ["registration_gone"]:
        steps.note("diagnosis: the registration is gone at GitHub")
        reconfigure(github, install, settings, steps)
        return
    # a clock far off makes GitHub refuse the runner's tokens too: no reason to re-register
    if abs(offset) > settings.thresholds.max_clock_offset_seconds or causes[-1:] == ["clock"]:
        steps.note(f"diagnosis: clock skew (VM is {offset:+.0f}s off GitHub)")
        sync(target, github, install, settings, steps)
    elif causes[-1:] == ["auth_failed"]:
        steps.note(f"diagnosis: GitHub refused the runner's credentials: {findings[-1].line}")
        reconfigure(github, install, settings, steps)
        return
    elif causes[-1:] == ["deprecated"]:
        raise RemediationRefused(
            "the runner version is deprecated: update actions/runner (see the version check)"
        )
    elif causes[-1:] == ["session_conflict"]:
        wait_out_conflict(install, settings, steps, online)
        return
    elif causes[-1:] == ["network"]:
        network_diagnosis(target, install, settings, steps, findings[-1], offset)
        if install.listener_running():
            raise RemediationRefused(
                "the listener is retrying its connection to GitHub by itself (it reconnects "
                "without a restart): not restarted; see the network diagnosis above"
            )
    elif causes[-1:] == ["disk_full"]:
        steps.note("diagnosis: the disk is full")
        free_disk()
    if install.listener_running():
        try:
            steps.wait_until(online, f"GitHub shows {name!r} online", timeout=30)
            return
        except RemediationFailed:
            steps.note("the listener runs but GitHub still shows the runner offline")
    ensure_running(install, settings, steps, why="bring the listener back to GitHub")
    wait = settings.remediation.online_wait_seconds
    with contextlib.suppress(RemediationFailed):  # still trying: the log says at what
        steps.wait_until(
            lambda: online() or not install.listener_running(fresh=True),
            f"GitHub shows {name!r} online, or the listener stops",
            timeout=wait,
        )
    if online():
        return
    # The listener we stopped (hung, or killed by RunnerService.js) may have left its session
    if [f.cause for f in diagnose(install.recent_log())][-1:] == ["session_conflict"]:
        wait_out_conflict(install, settings, steps, online)
        return
    raise RemediationFailed(f"GitHub does not show {name!r} online {wait:.0f} s after a restart")


def wait_out_conflict(
    install: RunnerInstall, settings: Settings, steps: Steps, online: Callable[[], bool]
) -> None:
    """ "A session for this runner already exists.": wait the conflict out as the runner does.

    It follows any listener that did not stop cleanly (killed, hung, crashed: its session stays
    at GitHub for minutes, actions/runner#1506), so it is no sign of a clone by itself. The
    listener retries for 240 s, then exits 5 and its unit stops; it is then started once more.
    A conflict that outlasts that and comes back run after run while this VM's listener is
    healthy means another machine uses this registration: the failure says so.
    """
    wait = settings.remediation.online_wait_seconds
    steps.note(
        "diagnosis: a session for this runner is still held at GitHub, as after a listener "
        "that did not stop cleanly; waiting it out as the runner does (its own 240 s, then one "
        f"start: up to {CONFLICT_SECONDS + wait:.0f} s)"
    )
    steps.wait_until(
        lambda: online() or not install.listener_running(fresh=True),
        "GitHub shows the runner online, or the listener gives up on the conflict",
        timeout=CONFLICT_SECONDS,
    )
    if online():
        return
    ensure_running(install, settings, steps, why="start the listener again after the conflict")
    try:
        steps.wait_until(online, "GitHub shows the runner online", timeout=wait)
    except RemediationFailed:
        raise RemediationFailed(
            "the session conflict outlasted the runner's 240 s and a new start: if it persists "
            "across runs while this VM's listener runs, another machine (a cloned VM?) uses "
            "this runner's registration"
        ) from None


def network_diagnosis(
    target: Host,
    install: RunnerInstall,
    settings: Settings,
    steps: Steps,
    finding: Finding,
    offset: float,
) -> None:
    """What stands between the listener and GitHub, in the report: its own error line, DNS of
    the server it talks to, HTTPS to it (through the runner's proxy, as the runner user), the
    proxy itself and the clock. Read-only, each bounded in time."""
    url = server_url(install, settings)
    host = urlsplit(url).hostname or ""
    steps.note(f"diagnosis: the listener cannot reach GitHub and keeps retrying: {finding.line}")
    dns = run(target, f"timeout 10 getent hosts {shlex.quote(host)} | head -n 3", timeout=30)
    resolved = " ".join(dns.stdout.split()[:6]) if dns.rc == 0 and dns.stdout.strip() else ""
    steps.note(f"network: DNS {host}: {printable(resolved, ANSWER_SHOWN) or 'does not resolve'}")
    proxy = install.env().get("https_proxy") or install.env().get("HTTPS_PROXY") or ""
    shown = _without_credentials(proxy) if proxy else None
    if proxy and shown is None:  # never echoed: it may hold a password
        steps.note("network: the runner's .env https_proxy is not a usable proxy URL: not used")
        proxy = ""
    steps.note(f"network: the runner's proxy: {shown or 'none (no usable https_proxy in .env)'}")
    # -q first: no ~/.curlrc (the runner user's: any job writes it); the proxy, which may hold
    # a password, on stdin (-K -), never on argv (/proc, ssh's argv, a timeout's report)
    via = "-K -" if proxy else "--noproxy '*'"
    probe = (
        f"curl -q {via} -sS -o /dev/null --max-time 10 -w 'HTTP %{{http_code}} from "
        f"%{{remote_ip}}' {shlex.quote(url)} 2>&1 | head -c {ANSWER_SHOWN}"
    )
    answer = run(target, as_user(install.user, probe), stdin=_curl_config(proxy), timeout=30)
    said = printable(answer.stdout.strip(), ANSWER_SHOWN)
    steps.note(f"network: HTTPS {url}: {said or f'no answer (exit {answer.rc})'}")
    steps.note(f"network: the VM's clock is {offset:+.0f} s off GitHub's")


def server_url(install: RunnerInstall, settings: Settings) -> str:
    """The URL the listener talks to (.runner's serverUrlV2 in the broker flow, else serverUrl),
    when it looks like a URL; else the configured GitHub URL."""
    registration = install.registration() or {}
    key = "serverUrlV2" if registration.get("useV2Flow") is True else "serverUrl"
    url = registration.get(key)
    return url if isinstance(url, str) and _URL.fullmatch(url) else settings.github.runner_url


def _without_credentials(proxy: str) -> str | None:
    """``proxy`` without its user and password (secrets); None when it is no usable proxy URL
    (a job can write any .env: "http://[x" or a port that is no number make urlsplit raise)."""
    if not _PROXY.fullmatch(proxy):
        return None
    try:
        parts = urlsplit(proxy)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    shown = f"{parts.scheme}://{host}:{port}" if port else f"{parts.scheme}://{host}"
    return printable(shown, ANSWER_SHOWN)


def _curl_config(proxy: str) -> str | None:
    """curl's config (-K -) naming ``proxy``, quoted and escaped as curl's config syntax wants
    (backslash and double quote; _PROXY lets no line break through); None without a proxy."""
    if not proxy:
        return None
    quoted = proxy.replace("\\", "\\\\").replace('"', '\\"')
    return f'proxy = "{quoted}"\n'
