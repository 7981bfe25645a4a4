"""All of runner-health's pytest wiring: options, markers, fixtures and the healing hook.

A check is a test in ``checks/`` whose module name is its condition (``test_service.py`` →
``service``). It names its fix with ``@pytest.mark.remediation("fixture_name")`` and its
prerequisites with ``pytestmark = pytest.mark.needs("vm", ...)``. When a check fails, the
hook below runs the fix, records what it did on the report, and pytest-rerunfailures runs
the check once more. Every check runs whatever else is broken (the alert needs every fact):
a prerequisite that is unhealthy stops only the fix ("not run: prerequisite ..."). Only a
VM that is down stops a check that needs "vm": nothing can be read from it ("unknown").

A check fails (an ``assert``) only on a fact it observed. When it cannot observe (a command
failed or printed garbage, GitHub refused or was unreachable) it raises
``runner_health.observe.CannotObserve``; ``GitHubError``, ``CommandTimeout``,
``TargetUnreachable`` and testinfra's asserts on a command's exit status count the same
(``observe.UNOBSERVABLE``). The hook then records "unknown" with that one-line cause, runs no
fix and no rerun, and marks the condition unhealthy. The readers in ``runner_health``
(``disk.usage``, ``clock``, ``multipass.state``, ``bpf_lsm.active``, ``observe.read``) raise
it for you. A check that needs the admin token on a machine without one
(``github.use_token = false``) is skipped: the host or the workflow checks that side.

``mode = "report"`` and ``--no-remediate`` run no fix. A silenced check runs and is
reported ("silenced") but gets no fix and never counts toward the exit status.

Runs remember (``runner_health.state``): a fix that ran ``remediation.max_attempts`` times
within ``remediation.window_minutes`` is not run again until the window has passed (or
``--recover``): its failing check is "held" (exit 1, like failed). At the end of a run the
store turns the summary into events (unhealthy, held, flapping, recovered: changes only),
which go to the alert channels, and the metrics file and the history page are rewritten.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time, timezone
from itertools import takewhile
from pathlib import Path
from time import monotonic
from typing import Any

import pytest
import pytest_html
from testinfra.host import Host

from runner_health import (
    __version__,
    heartbeat,
    history,
    metrics,
    notify,
    observe,
    redact,
    reports,
    state,
    targets,
    verdict,
    vm_facts,
)
from runner_health import config as config_module
from runner_health import lock as run_lock
from runner_health.config import ConfigError, Settings, Silence
from runner_health.exitcodes import ExitCode
from runner_health.github import GitHub, NoToken
from runner_health.observe import UNOBSERVABLE, CannotObserve
from runner_health.runner import RunnerInstall
from runner_health.steps import RemediationFailed, RemediationRefused, Steps
from runner_health.targets import target as make_target

# Conditions in the order they are checked: later ones rely on earlier ones being healthy.
# A check module not listed here runs after these, in name order.
# mac_sleep reads the Mac itself: before vm, so the VM's one batched read is not made stale.
CHECK_ORDER = (
    "mac_sleep",
    "vm",
    "clock",
    "disk",
    "registration",
    "version",
    "service",
    "online",
    "queue",
    "hung_job",
    "oom",
    "os_updates",
    "bpf_lsm",
)
MARKERS = (
    "needs(*conditions): this check module's prerequisites; its fix waits until they are healthy",
    "remediation(fixture): the fixture that returns the fix for this check",
    "github: needs only the GitHub API (no access to the runner VM)",
)


NO_TOKEN = "GitHub side: checked from the host or the workflow (github.use_token = false)"


@dataclass
class CheckRecord:
    """One check's story in this run: what failed, what fixed it, how it ended."""

    nodeid: str
    condition: str
    outcome: str = "passed"  # passed | healed | failed | unknown | skipped | silenced | held
    remediation: str | None = None
    failure: str | None = None  # one line: the assert's message, the cause, the skip reason
    steps: list[str] = field(default_factory=list)
    fix_result: str | None = None  # done | refused | failed | dry run | not run: <why>
    name: str = ""  # the check function (with its parameters)
    failure_text: str | None = None  # the whole failure, scrubbed (never a traceback if unknown)
    duration_seconds: float = 0.0  # every attempt, and the fix
    measurements: dict[str, float | int | str] = field(default_factory=dict)  # record_property
    silence: dict[str, str] | None = None  # {"reason", "until"}

    def __post_init__(self) -> None:
        self.name = self.name or self.nodeid.split("::")[-1]


@dataclass
class Run:
    settings: Settings | None
    remediate: bool
    dry_run: bool
    mode: str = "heal"  # heal | report | dry-run | no-remediate
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    report_dir: Path | None = None
    records: dict[str, CheckRecord] = field(default_factory=dict)
    unhealthy: dict[str, str] = field(default_factory=dict)  # condition -> failed | unknown
    lock: run_lock.RunLock | None = None
    status: ExitCode | None = None
    summary: dict[str, Any] = field(default_factory=dict)  # what summary.json holds
    deferred: list[tuple[Host, str]] = field(default_factory=list)  # Steps.after_run
    warnings: list[str] = field(default_factory=list)  # silences, pruning, the state file
    store: state.Store | None = None  # what earlier runs left (None: collect-only)
    lines: list[str] = field(default_factory=list)  # events and alerts, for the terminal

    @property
    def silences(self) -> list[Silence]:
        """The silences in force (an expired one is warned about, never applied)."""
        assert self.settings is not None
        return [s for s in self.settings.silences if not s.expired(self.started_at)]


RUN = pytest.StashKey[Run]()
FIX = pytest.StashKey[tuple[str, Callable[[], None], Steps]]()
NO_FIX = pytest.StashKey["str | None"]()  # why this check's fix may not run, decided at its start
SILENCE = pytest.StashKey["Silence | None"]()


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
    # Checks record their measurements with record_property; junit.xml (xunit2) keeps them.
    config.addinivalue_line(
        "filterwarnings", "ignore:record_property is incompatible:pytest.PytestWarning"
    )
    if config.option.collectonly:
        config.stash[RUN] = Run(None, remediate=False, dry_run=False)
        return
    try:
        path = config_module.find_config(config.option.config)
        settings = config_module.load(path, target_override=config.option.hosts)
        token = config_module.resolve_token(settings)
    except ConfigError as exc:
        raise pytest.UsageError(f"runner-health config: {exc}") from None
    for secret in (token, *settings.alerts.secrets):  # the webhook and ping URLs too
        redact.register(secret)
    settings = replace(settings, token=token)
    run = Run(
        settings,
        remediate=not config.option.no_remediate and settings.mode == "heal",
        dry_run=config.option.dry_run,
        mode=_mode(settings, config),
    )
    run.lock = _take_lock(settings)
    config.stash[RUN] = run
    run.store, warnings = state.Store.open(_resolve(config, settings.state_file))
    run.warnings += warnings
    if config.option.recover and (lifted := run.store.reset_holds()):
        run.lines.append(f"--recover: lifted the hold on {', '.join(lifted)}")
    run.report_dir = _report_dir(config, settings)  # under the lock: run folders are numbered
    config.option.htmlpath = str(run.report_dir / "report.html")
    config.option.self_contained_html = True
    config.option.xmlpath = str(run.report_dir / "junit.xml")


def _mode(settings: Settings, config: pytest.Config) -> str:
    """How this run may act: the config's report mode wins over the command line's options."""
    if settings.mode == "report":
        return "report"
    if config.option.no_remediate:
        return "no-remediate"
    return "dry-run" if config.option.dry_run else "heal"


@pytest.hookimpl(optionalhook=True)
def pytest_metadata(metadata: dict[str, Any], config: pytest.Config) -> None:
    """The report's Environment table says what was checked, and how."""
    run = config.stash.get(RUN, None)
    if run is None or run.settings is None:
        return
    metadata["runner-health"] = __version__
    metadata["Target"] = run.settings.target
    metadata["Runner"] = f"{run.settings.runner.name} ({run.settings.github.runner_url})"
    metadata["Mode"] = verdict.MODE_WORDS[run.mode]


def _resolve(config: pytest.Config, path: Path) -> Path:
    """A configured path: relative ones are relative to the project, like pytest's own."""
    return path if path.is_absolute() else config.rootpath / path


def _report_dir(config: pytest.Config, settings: Settings) -> Path:
    """--reports-dir as given (never pruned around), else a new marked folder to prune later."""
    if config.option.reports_dir:
        path = Path(config.option.reports_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    base = _resolve(config, settings.reports_directory)
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


def silence_for(run: Run, item: pytest.Item) -> Silence | None:
    """The silence in force for this check: by its condition or its function's name."""
    names = {condition_of(item), getattr(item, "originalname", item.name)}
    return next((s for s in run.silences if s.check in names), None)


@pytest.hookimpl(tryfirst=True)  # before -m deselects: a silence for a deselected check is known
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = config.stash.get(RUN, None)
    if run is None:
        return

    def rank(item: pytest.Item) -> tuple[int, str]:
        name = condition_of(item)
        return (CHECK_ORDER.index(name) if name in CHECK_ORDER else len(CHECK_ORDER), name)

    items.sort(key=rank)
    if run.settings is not None:
        run.warnings += _silence_warnings(run, items)


def _silence_warnings(run: Run, items: list[pytest.Item]) -> list[str]:
    """An expired silence is no longer applied, and one naming no check never was: say so."""
    assert run.settings is not None
    known = set(CHECK_ORDER)
    for item in items:
        known |= {condition_of(item), getattr(item, "originalname", item.name)}
    warnings = []
    for silence in run.settings.silences:
        if silence.expired(run.started_at):
            warnings.append(
                f"silence for {silence.check} expired {when(silence.until)}: {silence.reason}"
            )
        elif silence.check not in known:
            warnings.append(f"silence for {silence.check} names no known check or condition")
    return warnings


def when(moment: datetime) -> str:
    """A silence's end as written: a date (the end of that day, UTC), else date and time."""
    if moment.time() == time.max:
        return moment.date().isoformat()
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Decide, as the check starts, whether its fix may run; only then may it be rerun."""
    run = item.config.stash.get(RUN, None)
    if run is None or run.settings is None:
        return
    item.stash[SILENCE] = silence_for(run, item)
    item.stash[NO_FIX] = _why_no_fix(run, item)
    if (
        run.remediate
        and item.stash[NO_FIX] is None
        and item.get_closest_marker("remediation")
        and not item.get_closest_marker("flaky")
    ):
        reruns = 0 if run.dry_run else 1
        item.add_marker(pytest.mark.flaky(reruns=reruns, rerun_except=list(UNOBSERVABLE)))


def _why_no_fix(run: Run, item: pytest.Item) -> str | None:
    """Why this check's fix may not run (a silence, an unhealthy prerequisite, a spent
    budget: "held: ..."), or None."""
    if item.stash[SILENCE] is not None:
        return "silenced"
    needs = [needed for m in item.iter_markers("needs") for needed in m.args]
    unhealthy = next((needed for needed in needs if needed in run.unhealthy), None)
    if unhealthy is not None:
        return f"prerequisite '{unhealthy}' is unhealthy"
    marker = item.get_closest_marker("remediation")
    if marker is None or run.store is None or run.settings is None:
        return None
    budget = run.settings.remediation
    return run.store.hold_reason(
        marker.args[0], datetime.now(timezone.utc), budget.max_attempts, budget.window_minutes
    )


def _held(item: pytest.Item) -> bool:
    return (item.stash.get(NO_FIX, None) or "").startswith("held: ")


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest) -> Settings:
    """The validated config of this run."""
    run = request.config.stash.get(RUN, None)
    if run is None or run.settings is None:
        pytest.skip("runner-health settings exist only in a `pytest checks` run")
    return run.settings


@pytest.fixture(scope="session")
def github(settings: Settings, request: pytest.FixtureRequest) -> GitHub:
    """The GitHub API client (the one place that talks to GitHub); without a token
    (``github.use_token = false``) only GitHub's clock can be read. Its ETags live in the
    state store: the next cron run's requests get 304s."""
    store = request.config.stash[RUN].store
    return GitHub(settings.github, settings.token, etags=None if store is None else store.etags)


@pytest.fixture(scope="session")
def previous_run_at(request: pytest.FixtureRequest) -> datetime | None:
    """When the last completed run started (None: the first run, or the store was reset):
    checks that report events since then (an OOM kill) read from here."""
    store = request.config.stash[RUN].store
    return None if store is None else store.last_run_at


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
    """Have a check's fix ready unless something stops it; a check that needs a VM that is
    down reads nothing from it (unknown, not run)."""
    run = request.config.stash.get(RUN, None)
    if run is None or run.settings is None or not isinstance(request.node, pytest.Function):
        return
    item = request.node
    needs = {needed for m in item.iter_markers("needs") for needed in m.args}
    if "vm" in needs and "vm" in run.unhealthy:
        raise CannotObserve(VM_DOWN[run.unhealthy["vm"]])
    marker = item.get_closest_marker("remediation")
    if marker and run.remediate and item.stash.get(NO_FIX, None) is None and FIX not in item.stash:
        name = marker.args[0]
        item.stash[FIX] = (name, request.getfixturevalue(name), request.getfixturevalue("steps"))
    if "vm" in needs and not item.get_closest_marker("github"):
        _read_the_vm_at_once(request)


def _read_the_vm_at_once(request: pytest.FixtureRequest) -> None:
    """What the checks read on the VM, in one round trip (``targets.prefetch``) instead of two
    dozen ``multipass exec`` or ssh commands; ``targets.run`` answers from it until any other
    command runs (a fix's step, a read it lacks): a rerun after a fix reads afresh."""
    target = request.getfixturevalue("target")
    if targets.current_prefetch(target) is None:
        settings, install = (request.getfixturevalue(f) for f in ("settings", "runner_install"))
        vm_facts.read(target, settings, install)


VM_DOWN = {
    "failed": "the VM is down or does not answer (see the vm check)",
    "unknown": "the VM's state could not be read (see the vm check)",
}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """What a check raises, in the plugin's terms: no token here is a skip (the host asks
    GitHub), testinfra's assert on a command's exit status is a reading that failed."""
    try:
        return (yield)
    except NoToken:
        if RUN not in item.config.stash:
            raise
        pytest.skip(NO_TOKEN)
    except AssertionError as exc:
        unobserved = observe.testinfra_failure(exc) if RUN in item.config.stash else None
        if unobserved is None:
            raise
        raise unobserved from None


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
    report.runner_health = record  # for the HTML report's rows
    record.duration_seconds += report.duration
    unobserved = report.failed and (report.when != "call" or _unobserved(call))
    final = unobserved or _is_final_attempt(item)
    if unobserved:
        _say_unobserved(report, call, record)
    elif report.when == "call" and report.failed:
        record.failure_text = _failure_text(report)
        record.failure = record.failure_text.splitlines()[0] if record.failure_text else ""
        if call.excinfo is not None and call.excinfo.errisinstance(AssertionError):
            report.longrepr = record.failure_text  # what the check said; a bug keeps its traceback
        if FIX in item.stash and (not final or run.dry_run):
            started = monotonic()
            _run_fix(item, report, record)
            record.duration_seconds += monotonic() - started
        elif (
            (run.remediate or _held(item))  # held says so in every mode: --status too
            and item.stash.get(NO_FIX, None)
            and (marker := item.get_closest_marker("remediation"))
        ):
            record.remediation = marker.args[0]
            record.fix_result = f"not run: {item.stash[NO_FIX]}"
    if report.when == "call" or not report.passed:
        _finish(run, item, record, report, final, unobserved)
    return report


def _unobserved(call: pytest.CallInfo[None]) -> bool:
    return call.excinfo is not None and isinstance(call.excinfo.value, UNOBSERVABLE)


def _say_unobserved(
    report: pytest.TestReport, call: pytest.CallInfo[None], record: CheckRecord
) -> None:
    """The cause in words, on one line: no traceback or repr, wherever the report is read."""
    error = call.excinfo.value if call.excinfo else None
    if isinstance(error, UNOBSERVABLE):
        text = redact.scrub(str(error).strip()) or type(error).__name__
    else:  # a fixture broke: the check never got to look
        text = f"could not run: {_summary_line(report)}"
    record.failure = " ".join(text.split())
    record.failure_text = text
    report.longrepr = record.failure


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
    run = item.config.stash[RUN]
    if not steps.dry_run:
        _count_attempt(run, name, record.fix_result)
    run.deferred += steps.deferred
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


def _count_attempt(run: Run, fix: str, result: str) -> None:
    """A fix that really ran counts toward its budget, saved at once: a run killed later
    (the timer's timeout) must not give it another try."""
    assert run.store is not None
    run.store.record_attempt(fix, result, datetime.now(timezone.utc))
    try:
        run.store.save()
    except (OSError, state.StateError) as exc:
        run.warnings.append(f"state file not saved: {exc}")


def _finish(
    run: Run,
    item: pytest.Item,
    record: CheckRecord,
    report: pytest.TestReport,
    final: bool,
    unobserved: bool,
) -> None:
    if report.skipped:
        record.outcome = "skipped"
        record.failure = _summary_line(report)
    elif report.failed and (final or report.when != "call"):
        record.outcome = "unknown" if unobserved else "held" if _held(item) else "failed"
        run.unhealthy.setdefault(record.condition, "unknown" if unobserved else "failed")
    elif report.passed and report.when == "call":
        record.outcome = "healed" if record.fix_result == "done" else "passed"
    record.measurements = {
        name: value if isinstance(value, (int, float, str)) else str(value)
        for name, value in item.user_properties
        if not name.startswith("remediation")
    }
    silence = item.stash.get(SILENCE, None)
    if silence is not None:
        record.outcome = "silenced"
        record.silence = {"reason": silence.reason, "until": silence.until.isoformat()}


def _summary_line(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return redact.scrub(str(report.longrepr[2]).removeprefix("Skipped: "))
    message = _failure_text(report)
    return message.splitlines()[0] if message else ""


def _failure_text(report: pytest.TestReport) -> str:
    """The failure's whole message, scrubbed: what the check said, without the traceback and
    without pytest's assert explanation (``assert … + where … = Settings(…)``: fixtures' reprs)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = text.removeprefix("AssertionError: ").splitlines()
    said = list(takewhile(lambda line: not line.startswith("assert "), lines))
    return redact.scrub("\n".join(said or lines[:1]))


def _scrub(report: pytest.TestReport) -> None:
    """Keep secrets out of failure text and captured output, whichever writer reads them."""
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = str(report.longrepr)
        if redact.scrub(text) != text:
            report.longrepr = redact.scrub(text)
    report.sections = [(title, redact.scrub(body)) for title, body in report.sections]


# -- the end of the run ------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before pytest-html writes report.html, which shows the verdict
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(RUN, None)
    if run is None or run.settings is None:
        return
    run.status = _status(run, exitstatus)
    session.exitstatus = run.status
    assert run.report_dir is not None
    reports.record_outcome(run.report_dir, run.status.label)
    if not session.config.option.reports_dir:  # cron runs every 5 minutes: keep the evidence
        run.warnings += reports.prune(
            run.report_dir.parent,
            keep=run.settings.reports_keep,
            keep_days=run.settings.reports_keep_days,
            keep_max=run.settings.reports_keep_max,
        )
    finished = datetime.now(timezone.utc)
    run.summary = {
        "runner_health_version": __version__,
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "duration_seconds": round((finished - run.started_at).total_seconds(), 3),
        "status": run.status.label,
        "exit_code": int(run.status),
        "target": run.settings.target,
        "report": str(run.report_dir.resolve() / "report.html"),  # where a person looks next
        "runner": run.settings.runner.name,
        "mode": run.mode,
        "silences": [
            {
                "check": s.check,
                "reason": s.reason,
                "until": s.until.isoformat(),
                "expired": s.expired(run.started_at),
            }
            for s in run.settings.silences
        ],
        "warnings": run.warnings,
        "checks": [
            {**asdict(r), "duration_seconds": round(r.duration_seconds, 3)}
            for r in run.records.values()
        ],
    }
    now = datetime.now(timezone.utc)
    events = _guarded(run, "state", lambda: run.store.record_run(run.summary, now, run.settings))
    run.summary["events"] = [asdict(event) for event in events or []]
    run.lines += [f"event: {event.kind}: {event.text}" for event in events or []]
    text = redact.scrub(json.dumps(run.summary, indent=2))
    (run.report_dir / "summary.json").write_text(text + "\n")
    _tell(session.config, run, events or [])


def _tell(config: pytest.Config, run: Run, events: list[state.Event]) -> None:
    """What the run leaves for later runs, monitoring and people; each step may fail alone
    (a warning line), never the run."""
    assert run.store is not None and run.settings is not None and run.report_dir is not None
    settings, store, summary = run.settings, run.store, run.summary
    _guarded(run, "state file", store.save)
    metrics_file = _resolve(config, settings.metrics_textfile)
    _guarded(
        run,
        "metrics",
        lambda: metrics.write(metrics_file, summary, store.history(), store.remediation_counts()),
    )
    if not config.option.reports_dir:
        base = run.report_dir.parent
        _guarded(run, "history page", lambda: history.write_index(base, store.history()))
    github = GitHub(settings.github, settings.token, etags=store.etags) if settings.token else None
    run.lines += (
        _guarded(run, "alerts", lambda: notify.send(events, summary, settings, github)) or []
    )
    run.lines += _guarded(run, "heartbeat", lambda: heartbeat.beat(summary, settings, github)) or []


def _guarded(run: Run, what: str, step: Callable[[], Any]) -> Any:
    """``step()``, or None and a warning line when it fails: the run's verdict stands."""
    try:
        return step()
    except Exception as exc:  # whatever breaks here must not change the run's status
        run.lines.append(redact.scrub(f"warning: {what}: {type(exc).__name__}: {exc}"))
        return None


def _status(run: Run, exitstatus: int) -> ExitCode:
    """The run's verdict from its checks: unhealthy > unknown > healed > healthy. A silenced
    check never counts; pytest's other statuses (interrupted, no checks) stand."""
    if exitstatus not in (ExitCode.HEALTHY, ExitCode.UNHEALTHY):
        return ExitCode(exitstatus)
    outcomes = {r.outcome for r in run.records.values()}
    for outcome, status in (
        ("failed", ExitCode.UNHEALTHY),
        ("held", ExitCode.UNHEALTHY),
        ("unknown", ExitCode.UNKNOWN),
        ("healed", ExitCode.HEALED),
    ):
        if outcome in outcomes:
            return status
    if exitstatus == ExitCode.UNHEALTHY and "silenced" not in outcomes:
        return ExitCode.UNHEALTHY  # something pytest counted that no check recorded
    return ExitCode.HEALTHY


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
    if run.mode != "heal":
        terminalreporter.write_line(f"mode: {verdict.MODE_WORDS[run.mode]}")
    for record in run.records.values():
        terminalreporter.write_line(redact.scrub(_check_line(record)))
    for silence in run.silences:
        terminalreporter.write_line(
            f"silence: {silence.check} until {when(silence.until)}: {silence.reason}"
        )
    for warning in run.warnings:
        terminalreporter.write_line(f"warning: {warning}")
    for line in run.lines:
        terminalreporter.write_line(redact.scrub(line))
    status = run.status if run.status is not None else ExitCode(exitstatus)
    terminalreporter.write_line(
        f"status: {status.label} (exit {int(status)}); reports: {run.report_dir}"
    )


def _check_line(record: CheckRecord) -> str:
    """One line per check: its outcome, its fix, and why, in words."""
    line = f"{record.outcome.upper():8} {record.name}"
    if record.remediation:
        line += f"  [{record.remediation}: {record.fix_result}]"
    if record.silence is not None:
        until = datetime.fromisoformat(record.silence["until"])
        line += f"  until {when(until)}: {record.silence['reason']}"
        line += f" (still failing: {record.failure})" if record.failure else " (passes now)"
    elif record.outcome != "passed" and record.failure:
        line += f"  {record.failure}"
    return line


# -- report.html -------------------------------------------------------------------------


def pytest_html_report_title(report: Any) -> None:
    report.title = "runner-health report"


def pytest_html_results_summary(
    prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
) -> None:
    """The page opens with the verdict: the same summary summary.json holds."""
    run = session.config.stash.get(RUN, None)
    if run is not None and run.summary:
        prefix.insert(0, verdict.html(run.summary))


def pytest_html_results_table_header(cells: list[str]) -> None:
    cells.insert(0, "<th>Verdict</th>")


def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    """Each row says the check's outcome in runner-health's words. A healed check is one row
    (healed), not pytest-rerunfailures' "Rerun" then "Passed": its failure and fix are in it."""
    record: CheckRecord | None = getattr(report, "runner_health", None)
    if record is not None and record.outcome == "healed" and report.outcome == "rerun":
        cells.clear()
        return
    if record is None:
        said = ""
    elif report.outcome == "rerun":
        said = "before the fix"
    else:
        said = record.outcome
    cells.insert(0, f'<td class="col-verdict">{html.escape(said)}</td>')


def pytest_html_results_table_html(report: pytest.TestReport, data: list[str]) -> None:
    """A row's text in words: a skip's reason without pytest's tuple, a silence's reason, and
    for a healed check the failure its fix healed."""
    record: CheckRecord | None = getattr(report, "runner_health", None)
    if record is None:
        return
    if report.skipped and data:
        data[0] = html.escape(f"skipped: {record.failure}") + "\n"
    if record.outcome == "healed" and report.passed:
        data.insert(0, html.escape(f"failed before the fix:\n{record.failure_text}") + "\n")
    if record.silence is not None:
        until = datetime.fromisoformat(record.silence["until"])
        data.insert(
            0, html.escape(f"silenced until {when(until)}: {record.silence['reason']}") + "\n"
        )
