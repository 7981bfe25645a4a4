"""Settings: one TOML file, validated before anything is touched.

>>> settings = load(Path("runner-health.toml"))
>>> settings.runner.name
'assay-bpf-runner'

Every problem becomes one ``ConfigError`` naming the key and what it expects, so the
plugin can stop the run with a usage error.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from runner_health import lock

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (Ubuntu 22.04): the same parser, from PyPI
    import tomli as tomllib

ENV_VAR = "RUNNER_HEALTH_CONFIG"
DEFAULT_PATHS = (Path("runner-health.toml"), Path("/etc/runner-health/config.toml"))
# Each pattern is what the value's consumer accepts, and never a shell or option character:
# values end up in commands root runs. A leading '-' would read as an option.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,255}"  # runner names, GitHub logins
_REPOSITORY = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}/(?!\.\.?$)[A-Za-z0-9._-]{1,100}"
_USER = r"[A-Za-z_][A-Za-z0-9_.-]{0,31}"  # a login name as useradd takes it
# Multipass instance names are host names: a letter first, letters, digits, '-', no '-' last.
_INSTANCE = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# host[:port]: a host name, an IPv4 address or a bracketed IPv6 address (see _port_in_range).
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[1-9][0-9]{0,4}))?"
_URL = rf"https?://{_HOST}(?:/[A-Za-z0-9._~/-]*)?"  # no credentials, query or fragment
_TARGET = rf"local://|multipass://(?:{_INSTANCE})?|ssh://(?:{_USER}@)?{_HOST}"
# config.sh --labels splits on ',' and drops a value starting with '-': visible ASCII but ','.
_LABEL = r"(?!-)[!-+\--~]{1,256}"
# The kernel's lsm= list; also the only thing bpf_lsm writes to GRUB (parsed again at boot).
LSM_LIST = r"[a-z0-9_]+(?:,[a-z0-9_]+)*"
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"


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
    repositories: tuple[str, ...] = ()  # an organisation runner's repositories (its queue)
    use_token: bool = True  # False: no admin token here; the host or the workflow asks GitHub

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
    disk_free_inodes_percent: float = 10  # free inodes on / and the work folder's filesystem
    dpkg_lock_max_minutes: float = 30  # an apt/dpkg lock held longer is reported
    max_job_minutes: float = 360  # a Runner.Worker older than this is a hung job (GitHub's limit)


@dataclass(frozen=True)
class RemediationSettings:
    apply_bpf_lsm_fix: bool
    lsm: str
    command_timeout_seconds: float
    online_wait_seconds: float
    reconcile_identity: bool = False  # re-register when the config's name differs from .runner's
    max_attempts: int = 3  # runs of one fix within window_minutes before its check is held
    window_minutes: float = 60
    reboot_when_required: bool = False  # reboot the VM for /var/run/reboot-required, idle only
    tmp_max_age_days: float = 7  # free_disk.sh removes files in /tmp older than this
    kill_hung_worker: bool = False  # kill a hung job's Runner.Worker once GitHub says it ended
    reinstall_runner: bool = True  # reinstall a runner a failed self-update broke (idle only)


@dataclass(frozen=True)
class AlertSettings:
    """Where changes are told ([alerts]); every URL here is a secret (redacted everywhere)."""

    webhook_url: str | None = field(default=None, repr=False)  # JSON POST, Slack-style "text"
    webhook_timeout_seconds: float = 5
    webhook_retries: int = 2
    github_issue: bool = False  # one issue per runner from this machine (issues: write)
    repository: str | None = None  # the issue's and heartbeat's repository (default: github's)
    label: str = "runner-health"
    issue_author: str | None = None  # whose issues/comments carry state (default: the token's)
    ping_url: str | None = field(default=None, repr=False)  # healthchecks.io-style heartbeat
    heartbeat_variable: str | None = None  # a repository Actions variable the workflow reads
    heartbeat_interval_minutes: float = 5  # how often runs are expected (stale after 3x)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(url for url in (self.webhook_url, self.ping_url) if url)


@dataclass(frozen=True)
class Silence:
    """A known issue: the check still runs and is reported, but gets no fix and no alert."""

    check: str  # a condition ("disk") or a check function's name
    reason: str
    until: datetime  # aware, UTC

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(timezone.utc)) >= self.until


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
    mode: str = "heal"  # "report": observe only, no fix runs (a first week of observing)
    silences: tuple[Silence, ...] = ()
    reports_keep_days: float = 14
    reports_keep_max: int = 1000
    state_file: Path = Path("state.json")  # what runs remember (runner_health.state)
    metrics_textfile: Path = Path("runner_health.prom")  # node_exporter's textfile collector
    alerts: AlertSettings = field(default_factory=AlertSettings)
    token: str | None = field(default=None, repr=False)
    multipass_exec_timeout_seconds: float = 30  # a Running VM that doesn't answer is unreachable
    multipass_restart_daemon: bool = False  # opt-in: restart multipassd when it doesn't answer

    @property
    def multipass_name(self) -> str | None:
        """The Multipass instance the target lives in, or None when it is not one."""
        spec = urlparse(self.target)
        if spec.scheme != "multipass":
            return None
        return spec.netloc or self.multipass_vm


def is_repository(value: str) -> bool:
    """Whether ``value`` is an ``owner/repo`` GitHub accepts (and nothing a URL path could abuse)."""
    return re.fullmatch(_REPOSITORY, value) is not None


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
    reports = table.sub("reports")
    reports_directory = Path(
        _path(reports, "directory", reports.string("directory", "reports"), absolute=False)
    )
    state_file = _optional_path(table, "state_file") or default_state_file(reports_directory)
    github = _github(table.sub("github"))
    multipass = table.sub("multipass")
    settings = Settings(
        path=path,
        target=target_override or target,
        multipass_vm=_matching(
            multipass, "vm", _INSTANCE, "a Multipass instance name", "assay-bpf-runner"
        ),
        multipass_exec_timeout_seconds=multipass.number(
            "exec_timeout_seconds", 30, minimum=1, maximum=600
        ),
        multipass_restart_daemon=multipass.boolean("restart_daemon", False),
        github=github,
        runner=_runner(table.sub("runner")),
        thresholds=_thresholds(table.sub("thresholds")),
        remediation=_remediation(table.sub("remediation")),
        reports_directory=reports_directory,
        reports_keep=int(reports.number("keep", 50, minimum=1, maximum=10_000, whole=True)),
        reports_keep_days=reports.number("keep_days", 14, minimum=0, maximum=3660),
        reports_keep_max=int(
            reports.number("keep_max", 1000, minimum=1, maximum=100_000, whole=True)
        ),
        lock_file=Path(table.string("lock_file", str(lock.default_path()))),
        mode=_choice(table, "mode", ("heal", "report"), "heal"),
        silences=_silences(table.get("silences")),
        state_file=state_file,
        metrics_textfile=_optional_path(table.sub("metrics"), "textfile")
        or default_metrics_textfile(state_file),
        alerts=_alerts(table.sub("alerts"), github),
    )
    _check_target(settings.target)
    table.reject_unknown()
    return settings


def default_state_file(reports_directory: Path) -> Path:
    """Root keeps its memory in /var/lib/runner-health; a user-level install next to its reports."""
    if os.geteuid() == 0:
        return Path("/var/lib/runner-health/state.json")
    return reports_directory / "state.json"


# Where Debian's and Ubuntu's prometheus-node-exporter reads textfiles (its --collector.textfile.directory).
NODE_EXPORTER_TEXTFILES = Path("/var/lib/prometheus/node-exporter")


def default_metrics_textfile(state_file: Path) -> Path:
    """node_exporter's textfile folder when root has one (node_exporter can read it), else
    next to the state file (only its owner can read that folder: set [metrics] textfile)."""
    if os.geteuid() == 0 and NODE_EXPORTER_TEXTFILES.is_dir():
        return NODE_EXPORTER_TEXTFILES / "runner_health.prom"
    return state_file.parent / "runner_health.prom"


def default_token_file() -> Path:
    """Where setup puts the token: root's /etc/runner-health, else the user's config folder."""
    if os.geteuid() == 0:
        return Path("/etc/runner-health/token")
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "runner-health" / "token"


def resolve_token(settings: Settings) -> str | None:
    """The GitHub token: token_file, $GITHUB_TOKEN / $GH_TOKEN, the default token file, then
    `gh auth token`. None when ``github.use_token = false``: this machine holds no admin token."""
    if not settings.github.use_token:
        return None
    if settings.github.token_file:
        return _read_token_file(settings.github.token_file)
    for var in ("GITHUB_TOKEN", "GH_TOKEN"):
        if os.environ.get(var, "").strip():
            return os.environ[var].strip()
    if os.path.lexists(default_token_file()):
        return _read_token_file(default_token_file())
    try:
        gh = subprocess.run(
            ["gh", "auth", "token"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        gh = None
    if gh is not None and gh.returncode == 0 and gh.stdout.strip():
        return gh.stdout.strip()
    raise ConfigError(
        f"no GitHub token: set github.token_file, or GITHUB_TOKEN / GH_TOKEN, write it to "
        f"{default_token_file()} (mode 600), or log in with `gh auth login` (a PAT with "
        "repository Administration read/write); on a machine that must hold no admin token, "
        "set github.use_token = false"
    )


def _read_token_file(path: Path) -> str:
    """The token in ``path``, refused (as ssh refuses a private key) unless only we can read it.

    Opened without following a link and without waiting on a FIFO; the checks look at the
    opened file itself, so it cannot be swapped between check and read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(
                f"github.token_file: {path} is a symbolic link; name the file itself"
            ) from None
        raise ConfigError(f"github.token_file: cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        me = os.geteuid()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"github.token_file: {path} is not a regular file")
        if info.st_uid != me:
            raise ConfigError(
                f"github.token_file: {path} belongs to uid {info.st_uid}, not to uid {me} "
                f"running runner-health: chown {me} {path}"
            )
        if info.st_mode & 0o077:
            raise ConfigError(
                f"github.token_file: {path} is open to others (mode "
                f"{stat.S_IMODE(info.st_mode):o}): chmod 600 {path}"
            )
        try:
            token = handle.read().decode().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"github.token_file: cannot read {path}: {exc}") from None
    if not token:
        raise ConfigError(f"github.token_file: {path} is empty")
    return token


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
        if not isinstance(value, str) or not value.strip() or re.search(_CONTROL, value):
            raise ConfigError(
                f"{self.key(name)}: expected a non-empty string without control characters, got {value!r}"
            )
        return value.strip()

    def optional_string(self, name: str) -> str | None:
        return None if self.get(name) is None else self.string(name)

    def number(
        self, name: str, default: float, *, minimum: float, maximum: float, whole: bool = False
    ) -> float:
        """A number in [minimum, maximum]: never nan or inf (no comparison holds for nan)."""
        value = self.get(name)
        if value is None:
            return default
        kinds = int if whole else int | float
        if (
            isinstance(value, bool)
            or not isinstance(value, kinds)
            or not minimum <= value <= maximum
        ):
            kind = "a whole number" if whole else "a number"
            raise ConfigError(
                f"{self.key(name)}: expected {kind} from {minimum} to {maximum}, got {value!r}"
            )
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


def _matching(
    table: _Table, key: str, pattern: str, expected: str, default: str | None = None
) -> str:
    value = table.string(key, default)
    if not re.fullmatch(pattern, value):
        raise ConfigError(f"{table.key(key)}: expected {expected}, got {value!r}")
    return value


def _port_in_range(match: re.Match[str] | None) -> bool:
    """Whether a full match of a pattern containing _HOST has no port or one up to 65535."""
    return match is not None and int(match["port"] or 1) <= 65535


def _url(table: _Table, key: str, default: str | None) -> str:
    value = table.string(key, default).rstrip("/")
    if not _port_in_range(re.fullmatch(_URL, value)):
        raise ConfigError(
            f"{table.key(key)}: expected an http(s) URL without credentials, query or fragment, got {value!r}"
        )
    return value


def _path(table: _Table, key: str, value: str, *, absolute: bool) -> str:
    """``value`` as a normalised path other than '/' (no '.', '..' or '//'), without a trailing '/'."""
    path = value.rstrip("/") or "/"
    if absolute and not path.startswith("/"):
        raise ConfigError(f"{table.key(key)}: expected an absolute path, got {value!r}")
    if (
        path == "/"
        or path.startswith("//")
        or posixpath.normpath(path) != path
        or ".." in path.split("/")
    ):
        raise ConfigError(
            f"{table.key(key)}: expected a normalised path other than '/' (no '.', '..' or '//'), got {value!r}"
        )
    return path


def _github(table: _Table) -> GitHubSettings:
    repository = table.optional_string("repository")
    organization = table.optional_string("organization")
    if bool(repository) == bool(organization):
        raise ConfigError(
            "github.repository: set exactly one of github.repository ('owner/repo') "
            "or github.organization ('org')"
        )
    if repository and not re.fullmatch(_REPOSITORY, repository):
        raise ConfigError(f"github.repository: expected 'owner/repo', got {repository!r}")
    if organization and not re.fullmatch(_NAME, organization):
        raise ConfigError(
            f"github.organization: expected an organisation login, got {organization!r}"
        )
    api_url = _url(table, "api_url", "https://api.github.com")
    repositories = table.get("repositories")
    if repositories is None:
        repositories = []
    if (
        not isinstance(repositories, list)
        or len(repositories) > 100
        or not all(isinstance(x, str) and re.fullmatch(_REPOSITORY, x) for x in repositories)
    ):
        raise ConfigError(
            f"github.repositories: expected a list of up to 100 'owner/repo', got {repositories!r}"
        )
    if repositories and not organization:
        raise ConfigError(
            "github.repositories: only for an organisation runner (github.organization); "
            "a repository runner's queue is github.repository's"
        )
    token_file = table.optional_string("token_file")
    if token_file:
        token_file = _path(table, "token_file", token_file, absolute=True)
    return GitHubSettings(
        repository=repository,
        organization=organization,
        api_url=api_url,
        server_url=_url(table, "server_url", _server_url_for(api_url)),
        token_file=Path(token_file) if token_file else None,
        timeout_seconds=table.number("timeout_seconds", 10, minimum=1, maximum=300),
        repositories=tuple(repositories),
        use_token=table.boolean("use_token", True),
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
    if (
        not isinstance(labels, list)
        or not 1 <= len(labels) <= 100
        or not all(isinstance(x, str) and re.fullmatch(_LABEL, x) for x in labels)
    ):
        raise ConfigError(
            "runner.labels: expected 1-100 labels of 1-256 visible ASCII characters, without ',' "
            f"(config.sh --labels splits on it) and not starting with '-', got {labels!r}"
        )
    directory = table.string("directory", "/opt/actions-runner")
    return RunnerSettings(
        name=_matching(
            table, "name", _NAME, "letters, digits, '.', '_' or '-' (a letter or digit first)"
        ),
        labels=tuple(labels),
        directory=_path(table, "directory", directory, absolute=True),
        user=_matching(table, "user", _USER, "a login name", "github-runner"),
    )


def _thresholds(table: _Table) -> Thresholds:
    return Thresholds(
        disk_free_gib=table.number("disk_free_gib", 5, minimum=0, maximum=100_000),
        disk_free_percent=table.number("disk_free_percent", 10, minimum=0, maximum=100),
        max_clock_offset_seconds=table.number(
            "max_clock_offset_seconds", 30, minimum=1, maximum=3600
        ),
        max_queue_wait_minutes=table.number(
            "max_queue_wait_minutes", 15, minimum=0, maximum=7 * 24 * 60
        ),
        disk_free_inodes_percent=table.number(
            "disk_free_inodes_percent", 10, minimum=0, maximum=100
        ),
        dpkg_lock_max_minutes=table.number(
            "dpkg_lock_max_minutes", 30, minimum=1, maximum=7 * 24 * 60
        ),
        max_job_minutes=table.number("max_job_minutes", 360, minimum=1, maximum=7 * 24 * 60),
    )


def _remediation(table: _Table) -> RemediationSettings:
    lsm = _matching(
        table,
        "lsm",
        LSM_LIST,
        "a comma-separated list of LSM names (a-z, 0-9, '_')",
        "lockdown,capability,landlock,yama,apparmor,bpf",
    )
    if "bpf" not in lsm.split(","):
        raise ConfigError(f"remediation.lsm: the LSM list must include 'bpf', got {lsm!r}")
    return RemediationSettings(
        apply_bpf_lsm_fix=table.boolean("apply_bpf_lsm_fix", False),
        lsm=lsm,
        command_timeout_seconds=table.number(
            "command_timeout_seconds", 300, minimum=1, maximum=3600
        ),
        online_wait_seconds=table.number("online_wait_seconds", 90, minimum=0, maximum=3600),
        reconcile_identity=table.boolean("reconcile_identity", False),
        max_attempts=int(table.number("max_attempts", 3, minimum=1, maximum=100, whole=True)),
        window_minutes=table.number("window_minutes", 60, minimum=1, maximum=7 * 24 * 60),
        reboot_when_required=table.boolean("reboot_when_required", False),
        tmp_max_age_days=table.number("tmp_max_age_days", 7, minimum=1, maximum=3660),
        kill_hung_worker=table.boolean("kill_hung_worker", False),
        reinstall_runner=table.boolean("reinstall_runner", True),
    )


def _optional_path(table: _Table, key: str) -> Path | None:
    """A file path (absolute, or relative to where pytest runs), or None when not set."""
    value = table.optional_string(key)
    if value is None:
        return None
    return Path(_path(table, key, value, absolute=value.startswith("/")))


# A secret URL (webhook, ping): http(s), no credentials or fragment; a query is allowed (some
# services put their key there). Errors never echo the value.
_SECRET_URL = (
    rf"https?://{_HOST}(?:/[A-Za-z0-9._~/%:@!$&'()*+,;=-]*)?(?:\?[A-Za-z0-9._~/%:@!$&'()*+,;=?-]*)?"
)
# GitHub's rule for variable names; GITHUB_ is reserved.
_VARIABLE = r"(?!GITHUB_)[A-Z_][A-Z0-9_]{0,99}"


def _secret_url(table: _Table, key: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _port_in_range(re.fullmatch(_SECRET_URL, value.strip())):
        raise ConfigError(
            f"{table.key(key)}: expected an http(s) URL without credentials or fragment "
            "(the value is a secret: not shown)"
        )
    return value.strip()


def _alerts(table: _Table, github: GitHubSettings) -> AlertSettings:
    repository = table.optional_string("repository")
    if repository is not None and not re.fullmatch(_REPOSITORY, repository):
        raise ConfigError(f"alerts.repository: expected 'owner/repo', got {repository!r}")
    author = table.optional_string("issue_author")
    if author is not None and not re.fullmatch(
        r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:\[bot\])?", author
    ):
        raise ConfigError(f"alerts.issue_author: expected a GitHub login, got {author!r}")
    variable = table.optional_string("heartbeat_variable")
    if variable is not None and not re.fullmatch(_VARIABLE, variable):
        raise ConfigError(
            "alerts.heartbeat_variable: expected a variable name (A-Z, 0-9, '_', not a digit "
            f"first, not GITHUB_...), got {variable!r}"
        )
    alerts = AlertSettings(
        webhook_url=_secret_url(table, "webhook_url"),
        webhook_timeout_seconds=table.number("webhook_timeout_seconds", 5, minimum=1, maximum=60),
        webhook_retries=int(table.number("webhook_retries", 2, minimum=0, maximum=5, whole=True)),
        github_issue=table.boolean("github_issue", False),
        repository=repository or github.repository,
        label=_matching(table, "label", _LABEL, "a GitHub label", "runner-health"),
        issue_author=author,
        ping_url=_secret_url(table, "ping_url"),
        heartbeat_variable=variable,
        heartbeat_interval_minutes=table.number(
            "heartbeat_interval_minutes", 5, minimum=1, maximum=24 * 60
        ),
    )
    uses_github = [
        k
        for k, on in (("github_issue", alerts.github_issue), ("heartbeat_variable", variable))
        if on
    ]
    if uses_github and alerts.repository is None:
        raise ConfigError(
            f"alerts.repository: an organisation runner's alerts.{uses_github[0]} needs the "
            "repository to write to ('owner/repo')"
        )
    if uses_github and not github.use_token:
        raise ConfigError(
            f"alerts.{uses_github[0]}: needs a GitHub token on this machine, but "
            "github.use_token = false"
        )
    return alerts


def _choice(table: _Table, key: str, choices: tuple[str, ...], default: str) -> str:
    value = table.string(key, default)
    if value not in choices:
        raise ConfigError(f"{table.key(key)}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _silences(raw: Any) -> tuple[Silence, ...]:
    """[[silences]] tables: check, reason, until (a TOML date: to the end of that day, UTC)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("silences: expected [[silences]] tables with check, reason and until")
    silences = []
    for index, entry in enumerate(raw):
        table = _Table(entry, f"silences[{index}]")
        check = _matching(table, "check", r"[A-Za-z0-9_]{1,100}", "a check or condition name")
        reason = table.string("reason")
        until = table.get("until")
        if isinstance(until, datetime):
            until = until if until.tzinfo else until.replace(tzinfo=timezone.utc)
        elif isinstance(until, date):
            until = datetime.combine(until, time.max, tzinfo=timezone.utc)
        else:
            raise ConfigError(
                f"{table.key('until')}: expected a TOML date or date-time "
                f"(until = 2026-12-31, unquoted), got {until!r}"
            )
        table.reject_unknown()
        silences.append(Silence(check, reason, until.astimezone(timezone.utc)))
    return tuple(silences)


def _check_target(target: str) -> None:
    if not _port_in_range(re.fullmatch(_TARGET, target)):
        raise ConfigError(
            "target: expected local://, ssh://[user@]host[:port] or multipass://[NAME] "
            f"(NAME: letters, digits and '-', a letter first), got {target!r}"
        )
