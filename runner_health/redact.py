"""One scrubber every report writer goes through.

>>> register("s3cret-value")
>>> scrub("token=s3cret-value")
'token=***'

Known secrets (the API token, every registration/remove token fetched this run) are
replaced wherever they appear; token-shaped strings, token options and fields, and
Authorization headers are replaced even when nobody registered them. A token shape starts
where no letter or digit comes before it, so digests and ids in a report stay readable.
"""

from __future__ import annotations

import re

MASK = "***"
_secrets: set[str] = set()
# Whole strings that are tokens by their shape alone.
_TOKENS = re.compile(
    r"""
    (?<![A-Za-z0-9])  # a token starts where no letter or digit comes before it
    (?: gh[pousr]_[A-Za-z0-9_]{20,}  # classic PAT, OAuth, user, installation, refresh tokens
      | github_pat_[A-Za-z0-9_]{40,}  # fine-grained PAT: github_pat_<22>_<59>
      | eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*  # JWT: base64url of '{"' first
      | (?=[0-9]*[A-Z])[A-Z0-9]{29}(?![A-Za-z0-9])  # registration/remove token, not a number
    )""",
    re.VERBOSE,
)
# A prefix that announces a secret (group 1, kept) and the secret after it (masked). A quote
# before the value may be JSON-escaped (summary.json is scrubbed as text).
_ANNOUNCED = (
    re.compile(
        r"(?i)(authorization\\?['\"]?\s*[:=]\s*\\?['\"]?)(?:bearer|token|basic|remoteauth)?\s*[^\s'\"\\,}]+"
    ),
    re.compile(
        r"(?i)((?:ACTIONS_RUNNER_INPUT_TOKEN|[\w-]*token)\\?['\"]?\s*[:=]\s*\\?['\"]?)[^\s'\"\\,}]{8,}"
    ),
    re.compile(r"(--(?:token|pat)(?:[ \t]+|=)\\?['\"]?)[^\s'\"\\]+"),  # config.sh's options
)


def register(secret: str | None) -> None:
    """Remember a secret so that it is masked wherever it shows up later."""
    if secret and len(secret) >= 4:
        _secrets.add(secret)


def scrub(text: str) -> str:
    """``text`` with every known secret and token-shaped string masked."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _TOKENS.sub(MASK, text)
    for pattern in _ANNOUNCED:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text
