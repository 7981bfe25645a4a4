"""One scrubber every report writer goes through.

>>> register("s3cret-value")
>>> scrub("token=s3cret-value")
'token=***'

Known secrets (the API token, every registration/remove token fetched this run) are
replaced wherever they appear; token-shaped strings and Authorization headers are
replaced even when nobody registered them.
"""

from __future__ import annotations

import re

MASK = "***"
_secrets: set[str] = set()
_PATTERNS = (
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    re.compile(
        r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(?:bearer|token|basic|remoteauth)?\s*[^\s'\",}]+"
    ),
    re.compile(
        r"(?i)((?:ACTIONS_RUNNER_INPUT_TOKEN|[\w-]*token)['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]{8,}"
    ),
)


def register(secret: str | None) -> None:
    """Remember a secret so that it is masked wherever it shows up later."""
    if secret and len(secret) >= 4:
        _secrets.add(secret)


def scrub(text: str) -> str:
    """``text`` with every known secret and token-shaped string masked."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _PATTERNS[0].sub(MASK, text)
    for pattern in _PATTERNS[1:]:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text
