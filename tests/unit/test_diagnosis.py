"""Runner log lines map to causes; the latest cause is last."""

from runner_health.runner import diagnose

LOG = """\
[2026-11-28 10:00:01Z INFO Runner] Starting
[2026-11-28 10:00:02Z ERR  MessageListener] The local machine's clock may be out of sync with the server time by more than five minutes.
[2026-11-28 10:05:02Z ERR  MessageListener] Failed to create a session. The runner registration has been deleted from the server, please re-configure.
"""


def test_causes_in_order_of_their_latest_line():
    assert [f.cause for f in diagnose(LOG)] == ["clock", "registration_gone"]


def test_deprecated_and_disk_lines():
    causes = {
        f.cause
        for f in diagnose(
            "Runner version v2.300.0 is deprecated and cannot receive messages.\n"
            "You are running out of disk space. The runner will stop working when the machine runs out of disk space. Free space left: 12 MB\n"
        )
    }
    assert causes == {"deprecated", "disk_full"}


def test_quiet_log_has_no_findings():
    assert diagnose("[INFO] Listening for Jobs\n") == []
