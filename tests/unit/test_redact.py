"""Secrets are masked wherever they show up: registered values and token-shaped strings."""

import json

import pytest

from runner_health import redact

# Shapes nobody registered: each must vanish from any text around it.
REGISTRATION = "LLBF3JGZDX3P5PMEXLND6TS6FCWO6"  # GitHub's documented example: 29 characters
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJydW5uZXIiLCJleHAiOjE3MDAwMDAwMDB9"
    ".c2lnbmF0dXJlLWJ5dGVzLW5vdC1yZWFs_-Q"
)
UNREGISTERED = [
    "ghp_" + "a1B2" * 9,
    "gho_" + "Z" * 36,
    "ghu_" + "x9" * 18,
    "ghs_" + "s" * 36,
    "ghr_" + "r" * 76,
    "ghs_" + "abc_" * 10,  # underscores inside
    "github_pat_11ABCDEFG0123456789_" + "q" * 59,
    REGISTRATION,
    JWT,
]


@pytest.mark.parametrize("secret", UNREGISTERED, ids=lambda s: s[:6])
@pytest.mark.parametrize(
    "text",
    [
        "{}",
        "token {}",
        "x={}.",
        "FOO_{}",
        "./config.sh --url https://github.com/acme/ci --token {} --unattended",
        "curl -H 'Bearer {}' https://api.github.com",
        "https://x-access-token:{}@github.com/acme/ci.git",
        "({})\n",
    ],
)
def test_token_shapes_are_masked_wherever_they_appear(secret, text):
    scrubbed = redact.scrub(text.format(secret))
    assert secret not in scrubbed
    assert secret[-12:] not in scrubbed, scrubbed
    assert redact.MASK in scrubbed


def test_token_after_a_token_option_is_masked_whatever_its_shape():
    assert redact.scrub("config.sh remove --token s3cr3t --unattended") == (
        "config.sh remove --token *** --unattended"
    )
    assert redact.scrub("config.sh --pat=s3cr3t") == "config.sh --pat=***"
    assert redact.scrub("--token 's3cr3t'") == "--token '***'"


def test_masking_inside_json_keeps_it_json():
    text = json.dumps({"steps": [f"./config.sh --token {REGISTRATION}", 'token="s3cr3t-value"']})
    scrubbed = redact.scrub(text)
    assert "s3cr3t-value" not in scrubbed
    assert REGISTRATION not in scrubbed
    assert json.loads(scrubbed)["steps"] == ["./config.sh --token ***", 'token="***"']


def test_registered_secret_is_masked_everywhere():
    redact.register("reg-token-ABCDEFGH1234")
    assert redact.scrub("x reg-token-ABCDEFGH1234 y reg-token-ABCDEFGH1234") == "x *** y ***"


def test_authorization_headers_and_token_fields_are_masked():
    assert redact.scrub("Authorization: Bearer abcdefghijkl") == "Authorization: ***"
    assert (
        redact.scrub('{"token": "AABBCCDDEEFF", "expires_at": "x"}')
        == '{"token": "***", "expires_at": "x"}'
    )
    assert redact.scrub("ACTIONS_RUNNER_INPUT_TOKEN=QWERTYUIOP") == "ACTIONS_RUNNER_INPUT_TOKEN=***"


@pytest.mark.parametrize(
    "text",
    [
        "github.token_file: cannot read /etc/x; 3 runners online",
        # digests and ids stay readable: they are how a report points at things
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08  image.tar",
        "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904 (HEAD -> main)",
        "runner 0F8FAD5B-D9CB-469F-A165-70867728950E registered",
        "12345678901234567890123456789 bytes",  # 29 digits: a number, not a token
        "CONFIG_BPF_LSM=y CONFIG_DEBUG_INFO_BTF=y ACTIONS_RUNNER_INPUT_UNATTENDED=true",
        "Runner.Listener: Running job: build (ubuntu-22.04, LINUX_X64_KERNEL_6_6)",
        "ghp_short and github_pat_ alone",
        "eyJhbGciOiJub25lIn0 is a base64 header, no token",
        "docs at https://github.com/actions/runner/blob/main/docs/start/envlinux.md",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact.scrub(text) == text
