"""Config errors name the key and what it expects; good configs give frozen settings."""

import os
import pwd
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from runner_health import config as config_module
from runner_health.config import ConfigError, Settings, find_config, load, resolve_token

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
    assert "self-hosted" in settings.runner.labels


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


def config_with(key: str, value: str) -> str:
    """MINIMAL with one setting (``table.name``, or ``name`` at the top) set to a TOML value."""
    tables: dict[str, dict[str, str]] = {"": {}, "github": {}, "runner": {}}
    table, _, name = key.rpartition(".")
    tables.setdefault(table, {})[name] = value
    tables["github"].setdefault("repository", '"acme/kernel-ci"')
    if "organization" in tables["github"]:
        del tables["github"]["repository"]
    tables["runner"].setdefault("name", '"assay-bpf-runner"')
    return "".join(
        (f"[{table}]\n" if table else "") + "".join(f"{k} = {v}\n" for k, v in keys.items())
        for table, keys in tables.items()
    )


# Hostile or careless values: each must stop the run with a ConfigError naming its key.
HOSTILE = [
    # numbers: finite, bounded, whole where whole is meant
    ("github.timeout_seconds", "inf"),
    ("github.timeout_seconds", "1e9"),
    ("github.timeout_seconds", "0.5"),
    ("thresholds.disk_free_gib", "nan"),
    ("thresholds.disk_free_percent", "nan"),
    ("thresholds.disk_free_percent", "120"),
    ("thresholds.max_clock_offset_seconds", "'soon'"),
    ("thresholds.max_clock_offset_seconds", "inf"),
    ("thresholds.max_queue_wait_minutes", "-inf"),
    ("remediation.command_timeout_seconds", "inf"),
    ("remediation.online_wait_seconds", "nan"),
    ("remediation.online_wait_seconds", "1e308"),
    ("reports.keep", "inf"),
    ("reports.keep", "2.5"),
    ("reports.keep", "0"),
    ("reports.keep", "true"),
    ("remediation.apply_bpf_lsm_fix", "'yes'"),
    # GitHub names and URLs
    ("github.repository", '"acme"'),
    ("github.repository", '"acme/.."'),
    ("github.organization", '"-acme"'),
    ("github.api_url", '"ftp://x"'),
    ("github.api_url", '"https://api.github.com?x=1"'),
    ("github.server_url", '"https://user:pw@github.com"'),
    ("github.server_url", '"https://github.com:99999"'),
    ("github.token_file", '"token"'),
    ("github.token_file", '"/etc/runner-health/../token"'),
    ("github.token_file", '"/etc/runner-health/tok\\nen"'),
    # the runner
    ("runner.name", '"bad name"'),
    ("runner.name", '"-oops"'),
    ("runner.labels", "'x'"),
    ("runner.labels", "[]"),
    ("runner.labels", '["gpu,large"]'),
    ("runner.labels", '["-x"]'),
    ("runner.labels", '[" x"]'),
    ("runner.labels", '["a\\tb"]'),
    ("runner.labels", '["kernel-6.6", "' + "x" * 257 + '"]'),
    ("runner.labels", str([f"l{i}" for i in range(101)]).replace("'", '"')),
    ("runner.directory", "'relative'"),
    ("runner.directory", "'/'"),
    ("runner.directory", "'//'"),
    ("runner.directory", "'//opt/actions-runner'"),
    ("runner.directory", "'/opt/../etc'"),
    ("runner.directory", "'/opt/./actions-runner'"),
    ("runner.directory", '"/opt/actions-runner\\n"'),
    ("runner.user", '"root;id"'),
    ("runner.user", '"-oops"'),
    ("runner.user", '"a b"'),
    ("runner.user", '"' + "u" * 33 + '"'),
    # where the runner lives
    ("target", '"docker://x"'),
    ("target", '"local://x"'),
    ("target", '"multipass://x;touch pwned"'),
    ("target", '"multipass://-vm"'),
    ("target", '"multipass://1vm"'),
    ("target", '"multipass://vm-"'),
    ("target", '"multipass://vm/x"'),
    ("target", '"ssh://vm?ssh_config=/tmp/evil"'),
    ("target", '"ssh://-oProxyCommand=id"'),
    ("target", '"ssh://me:secret@vm"'),
    ("target", '"ssh://vm:0"'),
    ("target", '"ssh://vm:65536"'),
    ("target", '"ssh://vm/path"'),
    ("target", '"ssh://a;id@vm"'),
    ("target", '"ssh://%2Doops"'),
    ("multipass.vm", '"vm;id"'),
    ("multipass.vm", '"vm_1"'),
    # remediation and reports
    ("remediation.lsm", "'yama,apparmor'"),
    ("remediation.lsm", "'yama;touch /tmp/pwned,bpf'"),
    ("remediation.lsm", "'bpf,yama&'"),
    ("remediation.lsm", "'yama,,bpf'"),
    ("remediation.lsm", "'YAMA,bpf'"),
    ("reports.directory", "'/'"),
    ("reports.directory", "'../reports'"),
    ("reports.directory", '"reports\\u0000x"'),
    # a typo is not silently ignored
    ("runnner", "{ name = 'x' }"),
]


@pytest.mark.parametrize(("key", "value"), HOSTILE)
def test_hostile_values_are_refused_naming_their_key(tmp_path, key, value):
    with pytest.raises(ConfigError) as error:
        load(write(tmp_path, config_with(key, value)))
    assert str(error.value).startswith(f"{key}:"), str(error.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("github.timeout_seconds", "2.5"),
        ("reports.keep", "1"),
        ("runner.labels", '["self-hosted", "Linux", "X64", "kernel-6.6", "gpu:a100", "bpf_lsm"]'),
        ("runner.directory", "'/opt/actions-runner/'"),
        ("runner.user", "'ubuntu'"),
        ("target", "'ssh://ubuntu@10.0.0.5:2222'"),
        ("target", "'ssh://runner-vm.example.org'"),
        ("target", "'ssh://[fe80::1]:22'"),
        ("target", "'multipass://vm-1'"),
        ("remediation.lsm", "'landlock,lockdown,yama,integrity,apparmor,bpf'"),
        ("reports.directory", "'/var/tmp/runner-health-reports'"),
        ("github.token_file", "'/etc/runner-health/token'"),
        ("github.api_url", "'https://ghe.corp:8443/api/v3'"),
    ],
)
def test_ordinary_values_are_accepted(tmp_path, key, value):
    load(write(tmp_path, config_with(key, value)))


def test_trailing_slash_of_the_runner_directory_is_dropped(tmp_path):
    settings = load(write(tmp_path, config_with("runner.directory", "'/opt/actions-runner/'")))
    assert settings.runner.directory == "/opt/actions-runner"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")


def test_find_config_prefers_option_then_env(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNNER_HEALTH_CONFIG", "/from/env.toml")
    assert find_config("/from/option.toml") == Path("/from/option.toml")
    assert find_config(None) == Path("/from/env.toml")


def with_token_file(tmp_path: Path, token_file: Path) -> Settings:
    return load(write(tmp_path, config_with("github.token_file", f'"{token_file}"')))


def private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_token_sources_in_order(tmp_path, monkeypatch):
    settings = load(write(tmp_path, MINIMAL))
    monkeypatch.setenv("GITHUB_TOKEN", "from-github-token")
    monkeypatch.setenv("GH_TOKEN", "from-gh-token")
    assert resolve_token(settings) == "from-github-token"
    monkeypatch.delenv("GITHUB_TOKEN")
    assert resolve_token(settings) == "from-gh-token"
    with_file = with_token_file(tmp_path, private_file(tmp_path / "token", "from-file\n"))
    assert resolve_token(with_file) == "from-file"


def test_empty_token_file_is_an_error(tmp_path):
    settings = with_token_file(tmp_path, private_file(tmp_path / "token", "\n"))
    with pytest.raises(ConfigError, match=r"github.token_file: .* is empty"):
        resolve_token(settings)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660], ids=oct)
def test_token_file_others_can_open_is_refused(tmp_path, mode):
    token_file = private_file(tmp_path / "token", "ghp_secret\n")
    token_file.chmod(mode)
    with pytest.raises(ConfigError, match=r"^github.token_file: .* chmod 600 "):
        resolve_token(with_token_file(tmp_path, token_file))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away takes root")
def test_token_file_owned_by_another_user_is_refused(tmp_path):
    token_file = private_file(tmp_path / "token", "ghp_secret\n")
    stranger = next(
        uid for uid in range(54321, 60000) if uid not in {u.pw_uid for u in pwd.getpwall()}
    )
    os.chown(token_file, stranger, -1)
    with pytest.raises(ConfigError, match=rf"^github.token_file: .* uid {stranger}.* chown "):
        resolve_token(with_token_file(tmp_path, token_file))


def test_token_file_through_a_symlink_is_refused(tmp_path):
    link = tmp_path / "token"
    link.symlink_to(private_file(tmp_path / "real-token", "ghp_secret\n"))
    with pytest.raises(ConfigError, match=r"^github.token_file: .* symbolic link"):
        resolve_token(with_token_file(tmp_path, link))


def test_token_file_that_is_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "token"
    os.mkfifo(fifo, 0o600)
    # A writer turning up late frees a reader stuck opening the FIFO: the test fails, not hangs.
    late_writer = threading.Timer(5, fifo.write_text, ["late-token\n"])
    late_writer.start()
    try:
        with pytest.raises(ConfigError, match=r"^github.token_file: .* not a regular file"):
            resolve_token(with_token_file(tmp_path, fifo))
    finally:
        late_writer.cancel()


def test_new_keys_default_to_the_safe_choice(tmp_path):
    settings = load(write(tmp_path, MINIMAL))
    assert settings.mode == "heal"
    assert settings.silences == ()
    assert settings.remediation.reconcile_identity is False
    assert settings.github.use_token is True
    assert settings.github.repositories == ()
    assert (settings.reports_keep, settings.reports_keep_days, settings.reports_keep_max) == (
        50,
        14,
        1000,
    )


def test_observe_only_mode(tmp_path):
    assert load(write(tmp_path, 'mode = "report"\n' + MINIMAL)).mode == "report"
    with pytest.raises(ConfigError, match=r"^mode: expected one of heal, report, got 'observe'"):
        load(write(tmp_path, 'mode = "observe"\n' + MINIMAL))


def test_silences_last_until_the_end_of_their_day(tmp_path):
    text = MINIMAL + (
        '[[silences]]\ncheck = "disk"\nreason = "JIRA-12: disk grows on Monday"\n'
        "until = 2026-12-01\n"
        '[[silences]]\ncheck = "test_runner_online_at_github"\nreason = "migration"\n'
        "until = 2026-12-01T08:30:00+01:00\n"
    )
    disk, online = load(write(tmp_path, text)).silences
    assert (disk.check, disk.reason) == ("disk", "JIRA-12: disk grows on Monday")
    assert not disk.expired(datetime(2026, 12, 1, 23, 59, tzinfo=timezone.utc))
    assert disk.expired(datetime(2026, 12, 2, 0, 0, tzinfo=timezone.utc))
    assert online.until == datetime(2026, 12, 1, 7, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('check = "disk"\nuntil = 2026-12-01', r"silences\[0\]\.reason: missing"),
        (
            'check = "disk"\nreason = "x"\nuntil = "tomorrow"',
            r"silences\[0\]\.until: expected a TOML date",
        ),
        ('check = "disk"\nreason = "x"', r"silences\[0\]\.until: expected a TOML date"),
        ('check = "$(id)"\nreason = "x"\nuntil = 2026-12-01', r"silences\[0\]\.check: expected"),
        (
            'check = "disk"\nreason = "x"\nuntil = 2026-12-01\nuntill = 1',
            r"silences\[0\]\.untill: unknown",
        ),
    ],
)
def test_a_bad_silence_is_refused_naming_its_key(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, MINIMAL + "[[silences]]\n" + entry + "\n"))


def test_organisation_queue_repositories(tmp_path):
    org = MINIMAL.replace('repository = "acme/kernel-ci"', 'organization = "acme"')
    settings = load(
        write(tmp_path, org.replace("[runner]", 'repositories = ["acme/a", "acme/b"]\n[runner]'))
    )
    assert settings.github.repositories == ("acme/a", "acme/b")
    with pytest.raises(ConfigError, match=r"^github\.repositories: only for an organisation"):
        load(write(tmp_path, MINIMAL.replace("[runner]", 'repositories = ["acme/a"]\n[runner]')))
    with pytest.raises(ConfigError, match=r"^github\.repositories: expected a list"):
        load(write(tmp_path, org.replace("[runner]", 'repositories = ["../x"]\n[runner]')))


def test_a_machine_without_the_admin_token_resolves_none(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_would_be_used")
    settings = load(write(tmp_path, MINIMAL.replace("[runner]", "use_token = false\n[runner]")))
    assert resolve_token(settings) is None


def test_the_default_token_file_is_roots_or_the_users(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setattr(config_module.os, "geteuid", lambda: 0)
    assert config_module.default_token_file() == Path("/etc/runner-health/token")
    monkeypatch.setattr(config_module.os, "geteuid", lambda: 1000)
    assert config_module.default_token_file() == tmp_path / "cfg/runner-health/token"


def test_the_default_token_file_comes_after_the_environment(tmp_path, monkeypatch):
    token = private_file(tmp_path / "token", "from-default-file\n")
    monkeypatch.setattr(config_module, "default_token_file", lambda: token)
    monkeypatch.setenv("GITHUB_TOKEN", "from-env")
    monkeypatch.delenv("GH_TOKEN", raising=False)
    settings = load(write(tmp_path, MINIMAL))
    assert resolve_token(settings) == "from-env"
    monkeypatch.delenv("GITHUB_TOKEN")
    assert resolve_token(settings) == "from-default-file"
    token.chmod(0o644)  # the same checks as github.token_file
    with pytest.raises(ConfigError, match="chmod 600"):
        resolve_token(settings)


def test_the_examples_commented_out_mode_and_silence_are_valid(tmp_path):
    text = (Path(__file__).parents[2] / "runner-health.example.toml").read_text()
    for key in ("mode", "[[silences]]", "check", "reason", "until"):
        text = re.sub(rf"(?m)^# ({re.escape(key)})(?=\s)", r"\1", text)
    settings = load(write(tmp_path, text))
    assert settings.mode == "report"
    assert [s.check for s in settings.silences] == ["disk"]


def test_memory_and_alerts_default_to_quiet_and_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    settings = load(write(tmp_path, MINIMAL))
    assert settings.state_file == Path("reports/state.json")  # next to a user's reports
    assert settings.metrics_textfile == Path("reports/runner_health.prom")
    assert (settings.remediation.max_attempts, settings.remediation.window_minutes) == (3, 60)
    alerts = settings.alerts
    assert (alerts.webhook_url, alerts.ping_url, alerts.heartbeat_variable) == (None, None, None)
    assert not alerts.github_issue
    assert alerts.repository == "acme/kernel-ci"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(config_module, "NODE_EXPORTER_TEXTFILES", tmp_path / "none")
    root = load(write(tmp_path, MINIMAL))
    assert root.state_file == Path("/var/lib/runner-health/state.json")
    assert root.metrics_textfile == Path("/var/lib/runner-health/runner_health.prom")
    # Where Debian's node_exporter reads textfiles, when it is installed: it can read them there.
    monkeypatch.setattr(config_module, "NODE_EXPORTER_TEXTFILES", tmp_path)
    assert load(write(tmp_path, MINIMAL)).metrics_textfile == tmp_path / "runner_health.prom"


SECRET_URL = "https://hooks.example.com/services/T000/B000/s3cr3tPart?key=abc"


def test_alert_urls_are_read_and_known_as_secrets(tmp_path):
    text = (
        MINIMAL + f'[alerts]\nwebhook_url = "{SECRET_URL}"\nping_url = "https://hc-ping.com/u-1"\n'
    )
    alerts = load(write(tmp_path, text)).alerts
    assert alerts.secrets == (SECRET_URL, "https://hc-ping.com/u-1")
    assert SECRET_URL not in repr(alerts)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/s3cr3tPart",
        "https://hooks.example.com/s3cr3tPart#frag",
        "https://hooks.example.com/s3cr3t Part",
        "file:///etc/shadow/s3cr3tPart",
    ],
)
def test_a_bad_alert_url_is_refused_without_showing_it(tmp_path, url):
    with pytest.raises(ConfigError, match=r"alerts\.webhook_url") as error:
        load(write(tmp_path, MINIMAL + f'[alerts]\nwebhook_url = "{url}"\n'))
    assert "s3cr3t" not in str(error.value)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('heartbeat_variable = "GITHUB_HEARTBEAT"', "alerts.heartbeat_variable"),
        ('heartbeat_variable = "1BEAT"', "alerts.heartbeat_variable"),
        ('heartbeat_variable = "beat;rm"', "alerts.heartbeat_variable"),
        ('repository = "../../x"', "alerts.repository"),
        ('issue_author = "-x"', "alerts.issue_author"),
        ("heartbeat_interval_minutes = 0", "alerts.heartbeat_interval_minutes"),
        ("webhook_retries = 9", "alerts.webhook_retries"),
        ("webhook_timeout_seconds = inf", "alerts.webhook_timeout_seconds"),
    ],
)
def test_bad_alert_settings_are_refused_naming_their_key(tmp_path, lines, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(write(tmp_path, MINIMAL + f"[alerts]\n{lines}\n"))


def test_github_alerts_need_a_repository_and_a_token(tmp_path):
    org = '[github]\norganization = "acme"\n[runner]\nname = "r"\n'
    with pytest.raises(ConfigError, match=r"alerts\.repository: an organisation runner"):
        load(write(tmp_path, org + "[alerts]\ngithub_issue = true\n"))
    settings = load(
        write(tmp_path, org + '[alerts]\ngithub_issue = true\nrepository = "acme/ops"\n')
    )
    assert settings.alerts.repository == "acme/ops"
    no_token = MINIMAL.replace("[github]\n", "[github]\nuse_token = false\n")
    with pytest.raises(ConfigError, match=r"alerts\.heartbeat_variable: needs a GitHub token"):
        load(write(tmp_path, no_token + '[alerts]\nheartbeat_variable = "BEAT"\n'))


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("remediation.max_attempts", "0"),
        ("remediation.max_attempts", "2.5"),
        ("remediation.window_minutes", "nan"),
        ("state_file", '"../state.json"'),
        ("metrics.textfile", '"/"'),
    ],
)
def test_bad_memory_settings_are_refused_naming_their_key(tmp_path, lines, message):
    with pytest.raises(ConfigError, match=re.escape(lines)):
        load(write(tmp_path, config_with(lines, message)))


def test_the_examples_commented_out_alerts_are_valid(tmp_path):
    text = (Path(__file__).parents[2] / "runner-health.example.toml").read_text()
    keys = ("state_file", "webhook_url", "repository", "issue_author", "ping_url")
    for key in (*keys, "heartbeat_variable", "textfile"):
        text = re.sub(rf"(?m)^# ({re.escape(key)})(?=\s)", r"\1", text)
    settings = load(write(tmp_path, text))
    assert settings.alerts.webhook_url and settings.alerts.ping_url
    assert settings.alerts.heartbeat_variable == "RUNNER_HEALTH_HEARTBEAT"
    assert settings.metrics_textfile.name == "runner_health.prom"
