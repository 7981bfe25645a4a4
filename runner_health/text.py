"""Untrusted text (a runner log line, a command's answer) made fit for a report."""


def printable(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, each non-printable one (escape sequences,
    line breaks) replaced by "?": a job writes what the runner logs, and a terminal reading
    the report must not obey it."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])
