"""Secrets are masked wherever they show up: registered values and token-shaped strings."""

from runner_health import redact


def test_registered_secret_is_masked_everywhere():
    redact.register("reg-token-ABCDEFGH1234")
    assert redact.scrub("x reg-token-ABCDEFGH1234 y reg-token-ABCDEFGH1234") == "x *** y ***"


def test_token_shaped_strings_are_masked_unregistered():
    classic = "ghp_" + "a" * 36
    fine_grained = "github_pat_" + "B" * 60
    assert classic not in redact.scrub(f"token {classic}")
    assert fine_grained not in redact.scrub(fine_grained)


def test_authorization_headers_and_token_fields_are_masked():
    assert redact.scrub("Authorization: Bearer abcdefghijkl") == "Authorization: ***"
    assert (
        redact.scrub('{"token": "AABBCCDDEEFF", "expires_at": "x"}')
        == '{"token": "***", "expires_at": "x"}'
    )
    assert redact.scrub("ACTIONS_RUNNER_INPUT_TOKEN=QWERTYUIOP") == "ACTIONS_RUNNER_INPUT_TOKEN=***"


def test_ordinary_text_is_left_alone():
    text = "github.token_file: cannot read /etc/x; 3 runners online"
    assert redact.scrub(text) == text
