"""Settings: one TOML file, validated before anything is touched.

>>> settings = load(Path("runner-health.toml"))
>>> settings.runner.name
'assay-bpf-runner'

Every problem becomes one ``ConfigError`` naming the key and what it expects, so the
plugin can stop the run with a usage error.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ENV_VAR = "RUNNER_HEALTH_CONFIG"
DEFAULT_PATHS = (Path("runner-health.toml"), Path("/etc/runner-health/config.toml"))
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class ConfigError(Exception):
    """A missing or invalid setting; the message names the key."""


@dataclass(frozen=True)
class GitHubSettings:
    repository: str | None  # "owner/repo" for a repository runner
    organization: str | None  # "org" for an organisation runner
    api_url: str
    server_url: str  # what config.sh --url is built from
    token_file: Path | None
    timeout_seconds: float

    @property
    def scope_path(self) -> str:
        """The API prefix runner endpoints hang off."""
        if self.repository:
            return f"/repos/{self.repository}"
        return f"/orgs/{self.organization}"

    @property
    def runner_url(self) -> str:
        """The URL the runner is registered against (config.sh --url)."""
        return f"{self.server_url}/{self.repository or self.organization}"


@dataclass(frozen=True)
class RunnerSettings:
    name: str
    labels: tuple[str, ...]
    directory: str
    user: str


@dataclass(frozen=True)
class Thresholds:
    disk_free_gib: float
    disk_free_percent: float
    max_clock_offset_seconds: float
    max_queue_wait_minutes: float


@dataclass(frozen=True)
class RemediationSettings:
    apply_bpf_lsm_fix: bool
    lsm: str
    command_timeout_seconds: float
    online_wait_seconds: float


@dataclass(frozen=True)
class Settings:
    path: Path
    target: str  # a testinfra host spec: local://, ssh://user@host, multipass://NAME
    multipass_vm: str
    github: GitHubSettings
    runner: RunnerSettings
    thresholds: Thresholds
    remediation: RemediationSettings
    reports_directory: Path
    reports_keep: int
    lock_file: Path
    token: str | None = field(default=None, repr=False)

    @property
    def multipass_name(self) -> str | None:
        """The Multipass instance the target lives in, or None when it is not one."""
        spec = urlparse(self.target)
        if spec.scheme != "multipass":
            return None
        return spec.netloc or self.multipass_vm


def find_config(option: str | None) -> Path:
    """The config path: --config, then $RUNNER_HEALTH_CONFIG, then the default places."""
    chosen = option or os.environ.get(ENV_VAR)
    if chosen:
        return Path(chosen)
    for candidate in DEFAULT_PATHS:
        if candidate.exists():
            return candidate
    raise ConfigError(
        "no config file: pass --config PATH, set RUNNER_HEALTH_CONFIG, or create "
        + " or ".join(str(p) for p in DEFAULT_PATHS)
        + " (see runner-health.example.toml)"
    )


def load(path: Path, *, target_override: str | None = None) -> Settings:
    """Read and validate the config file; raise ConfigError on the first bad key."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    table = _Table(raw, "")
    target = table.string("target", "local://")
    settings = Settings(
        path=path,
        target=target_override or target,
        multipass_vm=_name(table.sub("multipass"), "vm", "assay-bpf-runner"),
        github=_github(table.sub("github")),
        runner=_runner(table.sub("runner")),
        thresholds=_thresholds(table.sub("thresholds")),
        remediation=_remediation(table.sub("remediation")),
        reports_directory=Path(table.sub("reports").string("directory", "reports")),
        reports_keep=int(table.sub("reports").number("keep", 50, minimum=1)),
        lock_file=Path(table.string("lock_file", "/tmp/runner-health.lock")),
    )
    _check_target(settings.target)
    table.reject_unknown()
    return settings


def resolve_token(settings: Settings) -> str:
    """The GitHub token: token_file, then $GITHUB_TOKEN / $GH_TOKEN, then `gh auth token`."""
    if settings.github.token_file:
        try:
            token = settings.github.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"github.token_file: cannot read {exc.filename}: {exc.strerror}"
            ) from None
        if not token:
            raise ConfigError(f"github.token_file: {settings.github.token_file} is empty")
        return token
    for var in ("GITHUB_TOKEN", "GH_TOKEN"):
        if os.environ.get(var, "").strip():
            return os.environ[var].strip()
    try:
        gh = subprocess.run(
            ["gh", "auth", "token"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        gh = None
    if gh is not None and gh.returncode == 0 and gh.stdout.strip():
        return gh.stdout.strip()
    raise ConfigError(
        "no GitHub token: set github.token_file, or GITHUB_TOKEN / GH_TOKEN, or log in with "
        "`gh auth login` (a PAT with repository Administration read/write)"
    )


class _Table:
    """A TOML table that knows its dotted path, for error messages, and what was read."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a table, got {type(raw).__name__}")
        self.raw = raw
        self.path = path
        self.seen: set[str] = set()
        self.children: list[_Table] = []

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str) -> Any:
        self.seen.add(name)
        return self.raw.get(name)

    def sub(self, name: str) -> _Table:
        for child in self.children:
            if child.path == self.key(name):
                return child
        child = _Table(self.get(name) or {}, self.key(name))
        self.children.append(child)
        return child

    def string(self, name: str, default: str | None = None) -> str:
        value = self.get(name)
        if value is None:
            if default is None:
                raise ConfigError(f"{self.key(name)}: missing; expected a string")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.key(name)}: expected a non-empty string, got {value!r}")
        return value.strip()

    def optional_string(self, name: str) -> str | None:
        return None if self.get(name) is None else self.string(name)

    def number(self, name: str, default: float, *, minimum: float = 0) -> float:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise ConfigError(f"{self.key(name)}: expected a number >= {minimum}, got {value!r}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected true or false, got {value!r}")
        return value

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.raw) - self.seen)
        if unknown:
            raise ConfigError(f"{self.key(unknown[0])}: unknown setting (a typo?)")
        for child in self.children:
            child.reject_unknown()


def _name(table: _Table, key: str, default: str | None = None) -> str:
    value = table.string(key, default)
    if not _NAME.match(value):
        raise ConfigError(f"{table.key(key)}: expected letters, digits, '.', '_' or '-'")
    return value


def _url(table: _Table, key: str, default: str | None) -> str:
    value = table.string(key, default).rstrip("/")
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{table.key(key)}: expected an http(s) URL, got {value!r}")
    return value


def _github(table: _Table) -> GitHubSettings:
    repository = table.optional_string("repository")
    organization = table.optional_string("organization")
    if bool(repository) == bool(organization):
        raise ConfigError(
            "github.repository: set exactly one of github.repository ('owner/repo') "
            "or github.organization ('org')"
        )
    if repository and not re.match(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", repository):
        raise ConfigError(f"github.repository: expected 'owner/repo', got {repository!r}")
    if organization and not _NAME.match(organization):
        raise ConfigError(
            f"github.organization: expected an organisation login, got {organization!r}"
        )
    api_url = _url(table, "api_url", "https://api.github.com")
    token_file = table.optional_string("token_file")
    return GitHubSettings(
        repository=repository,
        organization=organization,
        api_url=api_url,
        server_url=_url(table, "server_url", _server_url_for(api_url)),
        token_file=Path(token_file) if token_file else None,
        timeout_seconds=table.number("timeout_seconds", 10, minimum=1),
    )


def _server_url_for(api_url: str) -> str:
    """github.com for api.github.com; the host itself for GitHub Enterprise Server's /api/v3."""
    if urlparse(api_url).netloc == "api.github.com":
        return "https://github.com"
    return api_url.removesuffix("/api/v3")


def _runner(table: _Table) -> RunnerSettings:
    labels = table.get("labels")
    if labels is None:
        labels = ["self-hosted"]
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise ConfigError(f"runner.labels: expected a list of strings, got {labels!r}")
    directory = table.string("directory", "/opt/actions-runner")
    if not directory.startswith("/"):
        raise ConfigError(f"runner.directory: expected an absolute path, got {directory!r}")
    return RunnerSettings(
        name=_name(table, "name"),
        labels=tuple(labels),
        directory=directory.rstrip("/"),
        user=_name(table, "user", "github-runner"),
    )


def _thresholds(table: _Table) -> Thresholds:
    percent = table.number("disk_free_percent", 10)
    if percent > 100:
        raise ConfigError(f"thresholds.disk_free_percent: expected 0-100, got {percent}")
    return Thresholds(
        disk_free_gib=table.number("disk_free_gib", 5),
        disk_free_percent=percent,
        max_clock_offset_seconds=table.number("max_clock_offset_seconds", 30, minimum=1),
        max_queue_wait_minutes=table.number("max_queue_wait_minutes", 15),
    )


def _remediation(table: _Table) -> RemediationSettings:
    lsm = table.string("lsm", "lockdown,capability,landlock,yama,apparmor,bpf")
    if "bpf" not in lsm.split(","):
        raise ConfigError(f"remediation.lsm: the LSM list must include 'bpf', got {lsm!r}")
    return RemediationSettings(
        apply_bpf_lsm_fix=table.boolean("apply_bpf_lsm_fix", False),
        lsm=lsm,
        command_timeout_seconds=table.number("command_timeout_seconds", 300, minimum=1),
        online_wait_seconds=table.number("online_wait_seconds", 90, minimum=0),
    )


def _check_target(target: str) -> None:
    scheme = urlparse(target).scheme if "://" in target else ""
    if scheme not in ("local", "ssh", "multipass"):
        raise ConfigError(
            f"target: expected local://, ssh://[user@]host[:port] or multipass://[NAME], got {target!r}"
        )
