"""Config errors name the key and what it expects; good configs give frozen settings."""

from pathlib import Path

import pytest

from runner_health.config import ConfigError, find_config, load, resolve_token

MINIMAL = '[github]\nrepository = "acme/kernel-ci"\n[runner]\nname = "assay-bpf-runner"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runner-health.toml"
    path.write_text(text)
    return path


def test_minimal_config_gets_the_documented_defaults(tmp_path):
    settings = load(write(tmp_path, MINIMAL))
    assert settings.target == "local://"
    assert settings.runner.directory == "/opt/actions-runner"
    assert settings.runner.user == "github-runner"
    assert settings.multipass_vm == "assay-bpf-runner"
    assert settings.github.api_url == "https://api.github.com"
    assert settings.github.runner_url == "https://github.com/acme/kernel-ci"
    assert settings.github.scope_path == "/repos/acme/kernel-ci"


def test_example_config_is_valid():
    settings = load(Path(__file__).parents[2] / "runner-health.example.toml")
    assert "kernel-6.6" in settings.runner.labels


def test_enterprise_server_url_is_derived_from_the_api_url(tmp_path):
    settings = load(
        write(
            tmp_path, MINIMAL.replace("[runner]", 'api_url = "https://ghe.corp/api/v3"\n[runner]')
        )
    )
    assert settings.github.server_url == "https://ghe.corp"


def test_organisation_runner(tmp_path):
    settings = load(
        write(tmp_path, MINIMAL.replace('repository = "acme/kernel-ci"', 'organization = "acme"'))
    )
    assert settings.github.scope_path == "/orgs/acme"


def test_multipass_target_defaults_to_the_configured_vm(tmp_path):
    settings = load(write(tmp_path, 'target = "multipass://"\n' + MINIMAL))
    assert settings.multipass_name == "assay-bpf-runner"
    assert (
        load(write(tmp_path, MINIMAL), target_override="multipass://other").multipass_name
        == "other"
    )
    assert load(write(tmp_path, MINIMAL)).multipass_name is None


def test_hosts_option_overrides_the_configured_target(tmp_path):
    config = write(tmp_path, 'target = "multipass://vm1"\n' + MINIMAL)
    assert load(config, target_override="ssh://ubuntu@vm").target == "ssh://ubuntu@vm"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (MINIMAL.replace("acme/kernel-ci", "acme"), "github.repository"),
        (MINIMAL + "[thresholds]\ndisk_free_percent = 120\n", "thresholds.disk_free_percent"),
        (
            MINIMAL + "[thresholds]\nmax_clock_offset_seconds = 'soon'\n",
            "thresholds.max_clock_offset_seconds",
        ),
        (MINIMAL.replace('name = "assay-bpf-runner"', 'name = "bad name"'), "runner.name"),
        (MINIMAL.replace("[runner]", "[runner]\nlabels = 'x'"), "runner.labels"),
        (MINIMAL.replace("[runner]", "[runner]\ndirectory = 'relative'"), "runner.directory"),
        (MINIMAL + "[remediation]\nlsm = 'yama,apparmor'\n", "remediation.lsm"),
        (MINIMAL + "[remediation]\napply_bpf_lsm_fix = 'yes'\n", "remediation.apply_bpf_lsm_fix"),
        ('target = "docker://x"\n' + MINIMAL, "target"),
        (MINIMAL + "[runnner]\nname = 'x'\n", "runnner"),
    ],
)
def test_invalid_values_name_their_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as error:
        load(write(tmp_path, text))
    assert str(error.value).startswith(f"{key}:")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")


def test_find_config_prefers_option_then_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNNER_HEALTH_CONFIG", "/from/env.toml")
    assert find_config("/from/option.toml") == Path("/from/option.toml")
    assert find_config(None) == Path("/from/env.toml")


def test_token_sources_in_order(tmp_path, monkeypatch):
    settings = load(write(tmp_path, MINIMAL))
    monkeypatch.setenv("GITHUB_TOKEN", "from-github-token")
    monkeypatch.setenv("GH_TOKEN", "from-gh-token")
    assert resolve_token(settings) == "from-github-token"
    monkeypatch.delenv("GITHUB_TOKEN")
    assert resolve_token(settings) == "from-gh-token"
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    with_file = load(
        write(tmp_path, MINIMAL.replace("[runner]", f'token_file = "{token_file}"\n[runner]'))
    )
    assert resolve_token(with_file) == "from-file"


def test_empty_token_file_is_an_error(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    settings = load(
        write(tmp_path, MINIMAL.replace("[runner]", f'token_file = "{token_file}"\n[runner]'))
    )
    with pytest.raises(ConfigError, match=r"github.token_file: .* is empty"):
        resolve_token(settings)
