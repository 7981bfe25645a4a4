"""Runner log lines map to causes, only when the runner wrote them; the latest cause is last.

Real lines in their real place: the journal holds what the listener printed, as it printed it
(RunnerService.js copies its stdout/stderr); _diag/Runner_*.log holds "[time LEVEL Component]"
lines, a printed error as "[... ERR  Terminal] WRITE ERROR: <text>" (Terminal.cs,
HostTraceListener.cs). A job's name reaches both only inside "Running job: <name>" and
"Job <name> completed with result: <result>" (JobDispatcher.cs).
"""

import pytest

from runner_health.runner import CAUSES, RunnerLog, diagnose

T = "2026-11-28 10:05:02Z"

# What the listener prints (to the journal, and echoed to _diag as WRITE ERROR), by cause.
PRINTED = [
    (
        "registration_gone",
        "Failed to create a session. The runner registration has been deleted from the server, "
        "please re-configure. Runner registrations are automatically deleted for runners that "
        "have not connected to the service recently.",
    ),
    (
        "registration_gone",
        "The runner no longer exists on the server. Please reconfigure the runner.",
    ),
    (
        "clock",
        "The local machine's clock may be out of sync with the server time by more than five "
        "minutes. Please sync your clock with your domain or internet time and try again.",
    ),
    ("clock", "Stopped retrying OAuth token request exception after 1800 seconds."),
    (
        "clock",
        f"{T}: Runner connect error: The bearer token expired on 11/28/2026 07:05:02. Current "
        "server time is 11/28/2026 10:05:02.. Retrying until reconnected.",
    ),
    (
        "deprecated",
        "An error occurred: Runner version v2.296.2 is deprecated and cannot receive messages.",
    ),
    ("session_conflict", "A session for this runner already exists."),
    ("session_conflict", "Stop retry on SessionConflictException after retried for 240 seconds."),
    (  # a 401 on session create (VssHttpMessageHandler.cs:330, CommonResources VssUnauthorized)
        "auth_failed",
        "Failed to create session. You are not authorized to access "
        "https://pipelines.actions.githubusercontent.com.",
    ),
    ("auth_failed", "An error occurred: Get next message failed with non-retryable error."),
    (
        "network",
        f"{T}: Runner connect error: Name or service not known (pipelines.actions."
        "githubusercontent.com:443). Retrying until reconnected.",
    ),
    ("disk_full", "An error occurred: No space left on device : '/opt/actions-runner/.runner'"),
    (
        "token_expired",
        "Http response code: NotFound from 'POST https://api.github.com/actions/runner-registration' "
        "(Request Id: D4D9:3FFD74:646B4F8:1A91A34E:697840D8)",
    ),
]

# Exceptions the runner traces into _diag only ("[... ERR  <Component>] <Type>: <message>").
TRACED = [
    (
        "registration_gone",
        "BrokerServer",  # actions-runner-controller#4307
        "GitHub.Services.OAuth.VssOAuthTokenRequestException: Registration "
        "5a6d0ab5-3af5-42a2-9700-26c7857ff066 was not found.",
    ),
    (
        "clock",
        "MessageListener",
        "GitHub.Services.OAuth.VssOAuthTokenRequestException: The bearer token is not valid "
        "until 11/28/2026 13:05:02. Current server time is 11/28/2026 10:05:02.",
    ),
    (
        "disk_full",
        "Runner",
        "System.IO.IOException: No space left on device : '/opt/actions-runner/.runner'",
    ),
]

# Trace.Info lines of the listener's own classes, _diag only ("[... INFO  <Component>] ...").
INFO = [
    (
        "auth_failed",
        "MessageListener",
        "Runner OAuth token has been revoked. Session creation failed.",
    ),
    (
        "auth_failed",
        "BrokerMessageListener",
        "Runner OAuth token has been revoked. Unable to pull message.",
    ),
    ("auth_failed", "Runner", "Runner OAuth token has been revoked. Shutting down."),
]

EVERY_TEXT = (
    [text for _, text in PRINTED] + [text for _, _, text in TRACED] + [text for _, _, text in INFO]
)


def diag_line(text: str, level: str = "ERR ", component: str = "Terminal") -> str:
    return f"[{T} {level} {component}] {text}"


@pytest.mark.parametrize(("cause", "text"), PRINTED)
def test_printed_lines_count_in_the_journal_and_in_diag(cause, text):
    assert [f.cause for f in diagnose(RunnerLog(journal=text + "\n"))] == [cause]
    assert [f.cause for f in diagnose(RunnerLog(diag=diag_line(f"WRITE ERROR: {text}")))] == [cause]


@pytest.mark.parametrize(("cause", "component", "text"), TRACED)
def test_traced_exceptions_count_in_diag(cause, component, text):
    assert [f.cause for f in diagnose(RunnerLog(diag=diag_line(text, component=component)))] == [
        cause
    ]


@pytest.mark.parametrize(("cause", "component", "text"), INFO)
def test_traced_info_of_the_listener_counts_in_diag_only(cause, component, text):
    assert [f.cause for f in diagnose(RunnerLog(diag=diag_line(text, "INFO", component)))] == [
        cause
    ]
    assert diagnose(RunnerLog(journal=text + "\n")) == []  # never printed: not the runner's


def test_every_cause_has_a_real_line_here():
    found = {cause for cause, _ in PRINTED} | {cause for cause, _, _ in TRACED + INFO}
    assert found == set(CAUSES)


@pytest.mark.parametrize("name", [*EVERY_TEXT, diag_line(f"WRITE ERROR: {EVERY_TEXT[0]}")])
def test_a_job_named_like_a_failure_line_is_no_finding(name):
    journal = f"{T}: Running job: {name}\n{T}: Job {name} completed with result: Succeeded\n"
    diag = "\n".join(
        diag_line(f"WRITE LINE: {line}", level="INFO") for line in journal.splitlines()
    )
    assert diagnose(RunnerLog(diag=diag, journal=journal)) == []


@pytest.mark.parametrize("separator", ["\r", "\u2028", "\x0b", "\x1c", "\x85"])
def test_a_line_separator_in_a_job_name_does_not_start_a_line(separator):
    """journald and the _diag file end lines at "\\n" only; str.splitlines would cut more."""
    name = f"build{separator}A session for this runner already exists."
    journal = f"{T}: Running job: {name}\n"
    diag = diag_line(f"WRITE LINE: {T}: Running job: {name}", level="INFO")
    assert diagnose(RunnerLog(diag=diag, journal=journal)) == []


@pytest.mark.parametrize(
    "line",
    [
        # the bare "was not found." needle matched all of these
        diag_line(
            "System.IO.FileNotFoundException: The file /tmp/x was not found.", "ERR ", "Runner"
        ),
        diag_line(  # a GitHub incident's transient answer, not a deleted registration (runner#3470)
            "GitHub.Services.OAuth.VssOAuthTokenRequestException: Registration was not found or is "
            "not medium trust. ClientType: 1",
            component="MessageListener",
        ),
        diag_line("WRITE LINE: The file was not found.", "INFO"),
        diag_line(  # an INFO trace is not an error the runner hit
            "GitHub.Services.OAuth.VssOAuthTokenRequestException: Registration "
            "5a6d0ab5-3af5-42a2-9700-26c7857ff066 was not found.",
            "INFO",
            "MessageListener",
        ),
    ],
)
def test_only_the_real_registration_gone_line_counts(line):
    assert diagnose(RunnerLog(diag=line)) == []


def test_diag_lines_without_the_header_are_continuations_and_never_count():
    diag = (
        diag_line("GitHub.Services.OAuth.VssOAuthTokenRequestException: boom", component="Runner")
        + "\n   at GitHub.Runner.Listener.MessageListener.CreateSessionAsync()\n"
        + "A session for this runner already exists.\n"
        + "WRITE ERROR: A session for this runner already exists.\n"
    )
    assert diagnose(RunnerLog(diag=diag)) == []


def test_causes_in_order_of_their_latest_line():
    gone, clock = PRINTED[0][1], PRINTED[2][1]
    diag = "\n".join(
        [
            diag_line(f"WRITE ERROR: {gone}"),
            diag_line(f"WRITE ERROR: {clock}"),
            diag_line(f"WRITE LINE: {T}: Running job: {gone}", level="INFO"),
        ]
    )
    findings = diagnose(RunnerLog(diag=diag, journal=f"{clock}\n"))
    assert [f.cause for f in findings] == ["registration_gone", "clock"]
    assert findings[-1].line == diag_line(f"WRITE ERROR: {clock}")  # its echo is its latest


def test_quiet_log_has_no_findings():
    log = RunnerLog(
        diag=diag_line(f"WRITE LINE: {T}: Listening for Jobs", level="INFO"),
        journal=f"Current runner version: '2.334.0'\n{T}: Listening for Jobs\n",
    )
    assert diagnose(log) == []


# -- auth failures: re-registration only for the real lines -----------------------------------


@pytest.mark.parametrize(
    "line",
    [
        # a warning on the way out, not the failure (MessageListener.cs:213)
        diag_line(
            "Runner OAuth token has been revoked. Skip deleting session.", "WARN", "MessageListener"
        ),
        # another class's trace, or a job's echo, that merely says so
        diag_line("Runner OAuth token has been revoked. Shutting down.", "INFO", "JobDispatcher"),
        diag_line(
            f"WRITE LINE: {T}: Running job: Runner OAuth token has been revoked. Shutting down.",
            "INFO",
        ),
        diag_line("Runner OAuth token has been revoked. Shutting down. Or not", "INFO", "Runner"),
        # printed text that only looks like the listener's
        diag_line("WRITE LINE: Failed to create sessions for nothing", "INFO"),
        diag_line("WRITE ERROR: Get next message failed with non-retryable error.", "ERR "),
    ],
)
def test_lookalikes_of_the_auth_failure_lines_are_no_finding(line):
    assert diagnose(RunnerLog(diag=line)) == []


@pytest.mark.parametrize(
    ("cause", "given_up"),
    [
        (
            "session_conflict",
            "Stop retry on SessionConflictException after retried for 240 seconds.",
        ),
        ("clock", "Stopped retrying OAuth token request exception after 1800 seconds."),
        (
            "registration_gone",
            "The runner no longer exists on the server. Please reconfigure the runner.",
        ),
    ],
)
def test_failed_to_create_session_after_a_cause_the_listener_gave_up_on_is_that_cause(
    cause, given_up
):
    """MessageListener.cs:519-560 prints its own line, then :175 "Failed to create session.
    <the exception's message>": a conflict given up is no auth failure to re-register for."""
    failed = "Failed to create session. A session for this runner already exists."
    journal = f"{given_up}\n{failed}\nRunner listener exited with error code 5\n"
    diag = "\n".join(
        [
            diag_line(
                "GitHub.DistributedTask.WebApi.TaskAgentSessionConflictException: x",
                component="MessageListener",
            ),
            diag_line(f"WRITE ERROR: {given_up}"),
            diag_line("Non-retriable exception: x", "INFO", "MessageListener"),
            diag_line(f"WRITE ERROR: {failed}"),
        ]
    )
    for log in (
        RunnerLog(journal=journal),
        RunnerLog(diag=diag),
        RunnerLog(diag=diag, journal=journal),
    ):
        assert [f.cause for f in diagnose(log)] == [cause]


def test_a_401_after_a_connect_error_is_an_auth_failure():
    network = next(text for cause, text in PRINTED if cause == "network")
    unauthorized = next(
        text for cause, text in PRINTED if text.startswith("Failed to create session.")
    )
    journal = f"{network}\n{unauthorized}\nRunner listener exited with error code 1\n"
    assert [f.cause for f in diagnose(RunnerLog(journal=journal))] == ["network", "auth_failed"]


# -- a connect error lasts until the listener says it reconnected ------------------------------


def test_a_connect_error_ends_when_the_listener_reconnects():
    network = next(text for cause, text in PRINTED if cause == "network")
    retrying = f"Current runner version: '2.334.0'\n{T}: Listening for Jobs\n{network}\n"
    assert [f.cause for f in diagnose(RunnerLog(journal=retrying))] == ["network"]
    back = retrying + f"{T}: Runner reconnected.\n"
    assert diagnose(RunnerLog(journal=back)) == []
    echoed = (
        diag_line(f"WRITE ERROR: {network}")
        + "\n"
        + diag_line(f"WRITE LINE: {T}: Runner reconnected.", "INFO")
    )
    assert diagnose(RunnerLog(diag=echoed)) == []


def test_a_clock_skew_in_a_connect_error_is_the_clock_not_the_network():
    clocked = next(text for cause, text in PRINTED if "Current server time is" in text)
    assert [f.cause for f in diagnose(RunnerLog(journal=clocked))] == ["clock"]


def test_the_connect_error_of_a_conflict_is_the_conflict():
    """The first retry of a conflict prints "Runner connect error: <its message>" after the
    conflict line (MessageListener.cs:529 then :185): a conflict, not a network error."""
    connect = f"{T}: Runner connect error: Error: Conflict. Retrying until reconnected."
    journal = f"A session for this runner already exists.\n{connect}\n"
    assert [f.cause for f in diagnose(RunnerLog(journal=journal))] == ["session_conflict"]
    diag = diag_line("WRITE ERROR: A session for this runner already exists.") + "\n"
    diag += diag_line(f"WRITE ERROR: {connect}")
    assert [f.cause for f in diagnose(RunnerLog(diag=diag))] == ["session_conflict"]


def test_listening_for_jobs_ends_a_connect_error_too():
    """A broker listener that exits 2 after poll errors is started again by runsvc.sh in the
    same unit run (RunnerService.js): its "Listening for Jobs" (Runner.cs:491) means it has
    its session, so the earlier connect error is over (review 7, item 5)."""
    network = next(text for cause, text in PRINTED if cause == "network")
    journal = f"{network}\nRunner listener exited with error code 2\n{T}: Listening for Jobs\n"
    assert diagnose(RunnerLog(journal=journal)) == []


def test_a_newer_diag_only_finding_outranks_an_older_printed_line():
    """Every printed line is echoed to _diag (Terminal.cs): its place among _diag's own lines
    is its echo's, so a later traced-only revocation is the latest cause (review 7, item 5)."""
    network = next(text for cause, text in PRINTED if cause == "network")
    diag = "\n".join(
        [
            diag_line(f"WRITE ERROR: {network}"),
            diag_line("Runner OAuth token has been revoked. Shutting down.", "INFO", "Runner"),
        ]
    )
    findings = diagnose(RunnerLog(diag=diag, journal=f"{network}\n"))
    assert [f.cause for f in findings] == ["network", "auth_failed"]


@pytest.mark.parametrize(
    "message",
    [
        "The bearer token expired on 11/28/2026 07:05:02.",
        "The token is not valid until 11/29/2026 10:35:02.",
    ],
)
def test_a_session_refused_for_the_clock_is_the_clock_not_an_auth_failure(message):
    """A clock error without "Current server time is" still ends in "Failed to create
    session. <message>" (MessageListener.cs:175): the clock, no re-registration (item 6)."""
    journal = f"Failed to create session. {message}\n"
    assert [f.cause for f in diagnose(RunnerLog(journal=journal))] == ["clock"]


def test_a_finding_line_is_cut_and_printable():
    """_diag is runner-user writable: a line reaches the report cut, control bytes replaced."""
    journal = "Failed to create session. \x1b[2J\x07" + "x" * 5000 + "\n"
    (finding,) = diagnose(RunnerLog(journal=journal))
    assert finding.cause == "auth_failed"
    assert len(finding.line) <= 300
    assert finding.line.isprintable()
    assert finding.line.startswith("Failed to create session. ?[2J?x")
