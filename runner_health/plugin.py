"""All of runner-health's pytest wiring: options, markers, fixtures and the healing hook.

A check is a test in ``checks/`` whose module name is its condition (``test_service.py`` →
``service``). It names its fix with ``@pytest.mark.remediation("fixture_name")`` and its
prerequisites with ``pytestmark = pytest.mark.needs("vm", ...)``. When a check fails, the
hook below runs the fix, records what it did on the report, and pytest-rerunfailures runs
the check once more. A check whose prerequisite stayed unhealthy is skipped, not fixed twice.

A check fails (an ``assert``) only on a fact it observed. When it cannot observe (a command
failed or printed garbage, GitHub refused or was unreachable) it raises
``runner_health.observe.CannotObserve``; ``GitHubError``, ``CommandTimeout`` and
``TargetUnreachable`` count the same (``observe.UNOBSERVABLE``). The hook then records "error" with that reason, runs no fix and
no rerun, and marks the condition unhealthy. The readers in ``runner_health`` (``disk.usage``,
``clock``, ``multipass.state``, ``bpf_lsm.active``, ``observe.read``) raise it for you.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import pytest_html
from testinfra.host import Host

from runner_health import config as config_module
from runner_health import lock as run_lock
from runner_health import redact, reports, targets
from runner_health.config import ConfigError, Settings
from runner_health.exitcodes import ExitCode
from runner_health.github import GitHub
from runner_health.observe import UNOBSERVABLE
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationFailed, RemediationRefused, Steps
from runner_health.targets import target as make_target

# Conditions in the order they are checked: later ones rely on earlier ones being healthy.
# A check module not listed here runs after these, in name order.
CHECK_ORDER = (
    "vm",
    "clock",
    "disk",
    "registration",
    "service",
    "online",
    "queue",
    "bpf_lsm",
    "version",
)
MARKERS = (
    "needs(*conditions): this check module's prerequisites; skipped while one is unhealthy",
    "remediation(fixture): the fixture that returns the fix for this check",
    "github: needs only the GitHub API (no access to the runner VM)",
)


@dataclass
class CheckRecord:
    """One check's story in this run: what failed, what fixed it, how it ended."""

    nodeid: str
    condition: str
    outcome: str = "passed"  # passed | healed | failed | skipped | error
    remediation: str | None = None
    failure: str | None = None
    steps: list[str] = field(default_factory=list)
    fix_result: str | None = None  # done | refused | failed


@dataclass
class Run:
    settings: Settings | None
    remediate: bool
    dry_run: bool
    report_dir: Path | None = None
    records: dict[str, CheckRecord] = field(default_factory=dict)
    unhealthy: set[str] = field(default_factory=set)
    lock: run_lock.RunLock | None = None
    status: ExitCode | None = None
    deferred: list[tuple[Host, str]] = field(default_factory=list)  # Steps.after_run
    prune_warnings: list[str] = field(default_factory=list)


RUN = pytest.StashKey[Run]()
FIX = pytest.StashKey[tuple[str, Callable[[], None], Steps]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("runner-health", "runner-health (pytest checks)")
    group.addoption(
        "--config",
        help=f"config file (default: ${config_module.ENV_VAR}, then "
        + ", ".join(str(p) for p in config_module.DEFAULT_PATHS)
        + ")",
    )
    group.addoption(
        "--no-remediate", action="store_true", help="report only: never run a remediation"
    )
    group.addoption(
        "--dry-run",
        action="store_true",
        help="print each remediation a failing check would run, change nothing",
    )
    group.addoption(
        "--recover",
        action="store_true",
        help="force the full recovery: re-register and restart the runner "
        "(safety rules still apply)",
    )
    group.addoption(
        "--reports-dir",
        help="where this run's reports go (default: config reports.directory/<UTC timestamp>)",
    )


def is_checks_run(config: pytest.Config) -> bool:
    """True when pytest was pointed at the checks/ folder (not at the project's own tests)."""
    checks = (config.rootpath / "checks").resolve()
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = (path if path.is_absolute() else Path(config.invocation_params.dir) / path).resolve()
        if path == checks or checks in path.parents:
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if not is_checks_run(config) or config.option.help:
        return
    if config.option.collectonly:
        config.stash[RUN] = Run(None, remediate=False, dry_run=False)
        return
    try:
        path = config_module.find_config(config.option.config)
        settings = config_module.load(path, target_override=config.option.hosts)
        token = config_module.resolve_token(settings)
    except ConfigError as exc:
        raise pytest.UsageError(f"runner-health config: {exc}") from None
    redact.register(token)
    settings = replace(settings, token=token)
    run = Run(
        settings,
        remediate=not config.option.no_remediate,
        dry_run=config.option.dry_run,
    )
    run.lock = _take_lock(settings)
    config.stash[RUN] = run
    run.report_dir = _report_dir(config, settings)  # under the lock: run folders are numbered
    config.option.htmlpath = str(run.report_dir / "report.html")
    config.option.self_contained_html = True
    config.option.xmlpath = str(run.report_dir / "junit.xml")


@pytest.hookimpl(optionalhook=True)
def pytest_metadata(metadata: dict[str, Any], config: pytest.Config) -> None:
    """The report's Environment table says what was checked, and how."""
    run = config.stash.get(RUN, None)
    if run is None or run.settings is None:
        return
    metadata["Target"] = run.settings.target
    metadata["Runner"] = f"{run.settings.runner.name} ({run.settings.github.runner_url})"
    metadata["Mode"] = (
        "dry run" if run.dry_run else ("remediate" if run.remediate else "report only")
    )


def _report_dir(config: pytest.Config, settings: Settings) -> Path:
    """--reports-dir as given (never pruned around), else a new marked folder to prune later."""
    if config.option.reports_dir:
        path = Path(config.option.reports_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    base = settings.reports_directory
    if not base.is_absolute():
        base = config.rootpath / base
    return reports.create_run_dir(base, datetime.now(timezone.utc))


def _take_lock(settings: Settings) -> run_lock.RunLock:
    """Hold the lock for the whole run: a second run exits at once (6), unless the holder has
    held it longer than a run can last (8: a failure, so the timer does not hide it)."""
    remediation = settings.remediation
    # A fix is a few commands (each up to command_timeout_seconds) and at most one online wait;
    # no run needs four such in a row: 26 min by default, past the timer's TimeoutStartSec.
    stale_after = 4 * (remediation.command_timeout_seconds + remediation.online_wait_seconds)
    try:
        lock = run_lock.take(settings.lock_file, stale_after=stale_after)
    except run_lock.LockUnusable as exc:
        raise pytest.UsageError(f"runner-health lock_file: {exc}") from None
    except run_lock.LockBusy as exc:
        pytest.exit(str(exc), returncode=ExitCode.LOCKED)
    except run_lock.LockStale as exc:
        pytest.exit(str(exc), returncode=ExitCode.STALE_LOCK)
    for note in lock.notes:
        sys.stderr.write(f"runner-health: {note}\n")
    targets.record_children_in(lock)
    return lock


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if run:
        _run_deferred(run, config)
    if run and run.lock:
        run.lock.close()


def condition_of(item: pytest.Item) -> str:
    return item.path.stem.removeprefix("test_")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = config.stash.get(RUN, None)
    if run is None:
        return

    def rank(item: pytest.Item) -> tuple[int, str]:
        name = condition_of(item)
        return (CHECK_ORDER.index(name) if name in CHECK_ORDER else len(CHECK_ORDER), name)

    items.sort(key=rank)
    if run.remediate:
        for item in items:
            if item.get_closest_marker("remediation") and not item.get_closest_marker("flaky"):
                reruns = 0 if run.dry_run else 1
                item.add_marker(pytest.mark.flaky(reruns=reruns, rerun_except=list(UNOBSERVABLE)))


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest) -> Settings:
    """The validated config of this run."""
    run = request.config.stash.get(RUN, None)
    if run is None or run.settings is None:
        pytest.skip("runner-health settings exist only in a `pytest checks` run")
    return run.settings


@pytest.fixture(scope="session")
def github(settings: Settings) -> GitHub:
    """The GitHub API client (the one place that talks to GitHub)."""
    assert settings.token is not None
    return GitHub(settings.github, settings.token)


@pytest.fixture(scope="session")
def target(settings: Settings, request: pytest.FixtureRequest) -> Host:
    """The runner VM as a testinfra host: ``target.service("ssh").is_running``."""
    return make_target(settings.target, ssh_config=request.config.option.ssh_config)


@pytest.fixture(scope="session")
def workstation() -> Host:
    """The machine runner-health runs on (for the multipass CLI)."""
    return make_target("local://")


@pytest.fixture(scope="session")
def runner_install(target: Host, settings: Settings) -> RunnerInstall:
    return RunnerInstall(target, settings.runner.directory, settings.runner.user)


@pytest.fixture
def steps(request: pytest.FixtureRequest, settings: Settings, target: Host) -> Steps:
    """The record a remediation writes to; honours --dry-run."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def echo(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"    [fix] {line}")

    run = request.config.stash[RUN]
    return Steps(
        target,
        dry_run=run.dry_run,
        echo=echo,
        timeout=settings.remediation.command_timeout_seconds,
    )


@pytest.fixture(autouse=True)
def _healing(request: pytest.FixtureRequest) -> None:
    """Skip a check whose prerequisite is unhealthy; otherwise have its fix ready."""
    run = request.config.stash.get(RUN, None)
    if run is None or run.settings is None or not isinstance(request.node, pytest.Function):
        return
    item = request.node
    for marker in item.iter_markers("needs"):
        for needed in marker.args:
            if needed in run.unhealthy:
                pytest.skip(f"prerequisite '{needed}' is unhealthy")
    marker = item.get_closest_marker("remediation")
    if marker and run.remediate and FIX not in item.stash:
        name = marker.args[0]
        item.stash[FIX] = (name, request.getfixturevalue(name), request.getfixturevalue("steps"))


# -- the healing hook --------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    run = item.config.stash.get(RUN, None)
    if run is None or run.settings is None:
        return report
    _scrub(report)
    record = run.records.setdefault(item.nodeid, CheckRecord(item.nodeid, condition_of(item)))
    error = call.excinfo.value if report.when == "call" and call.excinfo else None
    unobserved = isinstance(error, UNOBSERVABLE)
    final = unobserved or _is_final_attempt(item)
    if report.when == "call" and report.failed:
        if unobserved:
            record.failure = redact.scrub(f"could not observe ({type(error).__name__}): {error}")
        else:
            record.failure = _summary_line(report)
            if FIX in item.stash and (not final or run.dry_run):
                _run_fix(item, report, record)
    if report.failed or (report.when == "call" and final) or report.skipped:
        _finish(run, record, report, final, unobserved)
    return report


def _is_final_attempt(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("flaky")
    reruns = marker.kwargs.get("reruns", 0) if marker else 0
    return getattr(item, "execution_count", 1) > reruns


def _run_fix(item: pytest.Item, report: pytest.TestReport, record: CheckRecord) -> None:
    name, fix, steps = item.stash[FIX]
    record.remediation = name
    steps.note(f"{record.condition}: running {name}" + (" (dry run)" if steps.dry_run else ""))
    try:
        fix()
        record.fix_result = "dry run" if steps.dry_run else "done"
    except RemediationRefused as exc:
        steps.note(f"refused, nothing changed: {exc}")
        record.fix_result = "refused"
    except (RemediationFailed, Exception) as exc:  # a broken fix must not end the run
        steps.note(f"failed: {type(exc).__name__}: {exc}")
        record.fix_result = "failed"
    item.config.stash[RUN].deferred += steps.deferred
    record.steps = list(steps.lines)
    text = redact.scrub(steps.text)
    # Inline in the row (a text extra would only be a link): what ran, its output, the verdict.
    block = (
        f'<div class="remediation"><p><b>remediation {html.escape(name)}: {record.fix_result}</b></p>'
        f"<pre>{html.escape(text)}</pre></div>"
    )
    report.extras = [*getattr(report, "extras", []), pytest_html.extras.html(block)]
    item.user_properties.append(("remediation", name))
    item.user_properties.append(("remediation_result", record.fix_result))
    item.user_properties.append(("remediation_steps", text))


def _finish(
    run: Run, record: CheckRecord, report: pytest.TestReport, final: bool, unobserved: bool
) -> None:
    if report.skipped:
        record.outcome = "skipped"
        record.failure = _summary_line(report)
    elif report.failed and (final or report.when != "call"):
        record.outcome = "failed" if report.when == "call" and not unobserved else "error"
        run.unhealthy.add(record.condition)
    elif report.passed and report.when == "call":
        record.outcome = "healed" if record.fix_result == "done" else "passed"


def _summary_line(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = getattr(report.longrepr, "reprcrash", None)
    message = text.message if text is not None else str(report.longrepr)
    return redact.scrub(message.splitlines()[0] if message else "")


def _scrub(report: pytest.TestReport) -> None:
    """Keep secrets out of failure text and captured output, whichever writer reads them."""
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = str(report.longrepr)
        if redact.scrub(text) != text:
            report.longrepr = redact.scrub(text)
    report.sections = [(title, redact.scrub(body)) for title, body in report.sections]


# -- the end of the run ------------------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(RUN, None)
    if run is None or run.settings is None:
        return
    outcomes = {r.outcome for r in run.records.values()}
    if exitstatus == ExitCode.HEALTHY and "healed" in outcomes:
        session.exitstatus = ExitCode.HEALED
    run.status = ExitCode(session.exitstatus)
    assert run.report_dir is not None
    summary = {
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": run.status.label,
        "exit_code": int(session.exitstatus),
        "target": run.settings.target,
        "runner": run.settings.runner.name,
        "mode": "dry-run" if run.dry_run else ("remediate" if run.remediate else "report-only"),
        "checks": [vars(r) for r in run.records.values()],
    }
    (run.report_dir / "summary.json").write_text(redact.scrub(json.dumps(summary, indent=2)) + "\n")
    if not session.config.option.reports_dir:  # cron runs every 5 minutes: keep the newest
        run.prune_warnings = reports.prune(run.report_dir.parent, run.settings.reports_keep)


def _run_deferred(run: Run, config: pytest.Config) -> None:
    """What fixes left for after the reports (Steps.after_run): a reboot of this machine, say."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for host, command in run.deferred:
        try:
            outcome = f"exit {targets.run(host, targets.as_root(host, command), timeout=60).rc}"
        except targets.CommandTimeout as exc:
            outcome = str(exc)
        if reporter is not None:
            reporter.write_line(f"runner-health: after the reports: $ {command} -> {outcome}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if run is None or run.settings is None:
        return
    terminalreporter.section("runner-health")
    for record in run.records.values():
        line = f"{record.outcome.upper():8} {record.nodeid.split('::')[-1]}"
        if record.remediation:
            line += f"  [{record.remediation}: {record.fix_result}]"
        if record.outcome != "passed" and record.failure:
            line += f"  {record.failure}"
        terminalreporter.write_line(redact.scrub(line))
    for warning in run.prune_warnings:
        terminalreporter.write_line(f"warning: {warning}")
    status = run.status or ExitCode(exitstatus)
    terminalreporter.write_line(
        f"status: {status.label} (exit {int(status)}); reports: {run.report_dir}"
    )


def pytest_html_report_title(report: Any) -> None:
    report.title = "runner-health report"
