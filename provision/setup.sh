#!/usr/bin/env bash
# setup.sh: turn a cloud VM or an existing Ubuntu VM into the kernel-matrix runner, as root:
# the runner user, actions/runner (pinned, SHA-256 checked), its registration and service,
# runner-health with its timer, and the hourly free_disk cleanup. Safe to run again: every
# step checks first, changes only what differs, and says which.
#
# What it installs is listed in $RUNNER_HEALTH_DIR/.installed-files, which health_check.sh
# --uninstall reads: one "KIND PATH" a line, KIND "remove" (runner-health itself and its
# schedules: removed on uninstall) or "purge" (the config, the token, their folder and the
# logs: removed with --purge only). The runner's own files (its directory, registration,
# service, the runner user) are the runner's: never listed.
set -euo pipefail

# Pinned actions/runner release (https://github.com/actions/runner/releases/tag/v2.334.0);
# the SHA-256 values are the ones the release notes publish.
RUNNER_VERSION_PINNED=2.334.0
RUNNER_SHA256_X64=048024cd2c848eb6f14d5646d56c13a4def2ae7ee3ad12122bee960c56f3d271
RUNNER_SHA256_ARM64=f44255bd3e80160eb25f71bc83d06ea025f6908748807a584687b3184759f7e4

usage() {
	cat <<'EOF'
Usage: GITHUB_TOKEN=... RUNNER_NAME=... REPO_URL=... provision/setup.sh [--help]
       RUNNER_NAME=... REPO_URL=... provision/setup.sh --no-admin-token
       provision/setup.sh --upgrade          (from a newer checkout; needs no token)
       provision/setup.sh --free-disk-cron   (only the hourly cleanup; needs no token)

Run on the VM as root (cloud VM or existing Ubuntu VM). Installs and registers the runner,
its service, runner-health (/opt/runner-health) with its 5-minute timer, and the hourly
free_disk.sh cron. Running it again changes nothing that is already right, and says so.
It also keeps the OS away from jobs (provision/guards.sh): needrestart never restarts the
runner's or Docker's service, unattended-upgrades never reboots, the apt timers wait while a
job runs; the runner's unit gets OOMScoreAdjust=-500 and OOMPolicy=continue, is checked
enabled at boot, and its .env names runner-health's job-completed hook.

The admin token is stored (0600 root, CONFIG_DIR/token) only when the runner user is not
root-equivalent: not uid 0, not in the docker group, no sudo rules. Otherwise any job could
read it: it is not stored, and the config says use_token = false. This VM then fixes what it
can locally (service, disk, clock); check the GitHub side (online, labels, queue) from a
separate host or the workflow. STORE_ADMIN_TOKEN=1 stores it anyway, if you accept that risk.

  --no-admin-token  runner-health, its config (use_token = false) and schedules; no token, no
                    download, no registration (the runner is there already: register it
                    with register_local.sh and a registration token, valid for one hour)
  --upgrade         install this checkout over the installed runner-health, rebuild its
                    .venv, refresh its schedules, print the old -> new version. Config,
                    token, the runner and its registration are left as they are.

Required (full setup):
  GITHUB_TOKEN   PAT (or App token) with repository Administration read/write (organisation:
                 admin:org): fetches the registration token, and runner-health's checks use it
  RUNNER_NAME    the runner's name at GitHub, e.g. assay-bpf-runner
  REPO_URL       https://github.com/OWNER/REPO (or https://github.com/ORG for an org runner)

Optional:
  RUNNER_LABELS        custom labels (default: bpf-lsm,kernel-X.Y of this VM's kernel);
                       config.sh adds self-hosted, Linux and the architecture (x64, arm64)
  RUNNER_DOCKER=1      add the runner user to the docker group, for jobs that run Docker. That
                       is root-equivalent: any job can then read and change every file of
                       root's, the token included (so the token is then not stored)
  STORE_ADMIN_TOKEN=1  store the admin token even when the runner user is root-equivalent
  FREE_DISK_BELOW_PERCENT  the hourly cleanup frees disk only when / or the runner's work
                       folder has less free than this percentage (default 15) ...
  FREE_DISK_BELOW_GIB  ... or less than this many GiB (default 10)
  RUNNER_DIR           default /opt/actions-runner
  RUNNER_USER          default github-runner
  RUNNER_VERSION       default the pinned release; with another version set RUNNER_SHA256 too
  RUNNER_SHA256        the tarball's SHA-256 (default: the pinned release's, per architecture)
  RUNNER_TARBALL_URL   where to download it (default: the GitHub release; file:// works)
  API_URL              default https://api.github.com (GitHub Enterprise: https://HOST/api/v3)
  RUNNER_HEALTH_DIR    where runner-health is installed (default /opt/runner-health)
  CONFIG_DIR           runner-health config and token (default /etc/runner-health)
  CRON_DIR             the free_disk cron file goes here (default /etc/cron.d)
  SKIP_PACKAGES=1      don't apt-get install the few tools this script needs
A later run (--upgrade too) keeps the RUNNER_DIR, RUNNER_USER, CONFIG_DIR, CRON_DIR and
FREE_DISK_* an earlier one recorded in RUNNER_HEALTH_DIR/.setup-settings, unless set again.

Exit status: 0 done, 1 a step failed, 2 missing or bad input.
EOF
}

say() { echo "setup.sh: $*"; }
step() { echo; echo "== $*"; }
die() {
	echo "setup.sh: $*" >&2
	exit 1
}
die_usage() {
	echo "setup.sh: $*" >&2
	echo "Try 'setup.sh --help'." >&2
	exit 2
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_DIR=$(dirname "$HERE")
# shellcheck source=provision/cron.sh
. "$HERE/cron.sh"
# shellcheck source=provision/guards.sh
. "$HERE/guards.sh"

RUNNER_HEALTH_DIR=${RUNNER_HEALTH_DIR:-/opt/runner-health}
SETTINGS_FILE=$RUNNER_HEALTH_DIR/.setup-settings
MANIFEST=$RUNNER_HEALTH_DIR/.installed-files
RECORDED="RUNNER_DIR RUNNER_USER CONFIG_DIR CRON_DIR FREE_DISK_BELOW_PERCENT FREE_DISK_BELOW_GIB"
API_URL=${API_URL:-}
STORE_TOKEN=0 # set by admin_token: 1 when the token may be stored here
DOCKER_GRANTS="the docker group is root-equivalent: any job can start a container with / mounted and read or change every file of root's, the admin token included"

# Setting $1: the environment's, else what an earlier run recorded, else the default $2.
setting() {
	local value=${!1:-}
	if [[ -z $value && -f $SETTINGS_FILE ]]; then
		value=$(sed -n "s/^$1=//p" "$SETTINGS_FILE" | head -n 1)
	fi
	printf -v "$1" '%s' "${value:-$2}"
}
setting RUNNER_DIR /opt/actions-runner
setting RUNNER_USER github-runner
setting CONFIG_DIR /etc/runner-health
setting CRON_DIR /etc/cron.d
setting FREE_DISK_BELOW_PERCENT 15
setting FREE_DISK_BELOW_GIB 10

check_inputs() {
	local missing=() var
	for var in "$@"; do
		[[ -n ${!var:-} ]] || missing+=("$var")
	done
	if ((${#missing[@]})); then
		die_usage "missing ${missing[*]} (required: $*)"
	fi
	[[ $REPO_URL =~ ^(https?://[^/]+)/([^/]+)(/([^/]+))?/?$ ]] ||
		die_usage "REPO_URL must look like https://github.com/OWNER/REPO, got '$REPO_URL'"
	SERVER_URL=${BASH_REMATCH[1]}
	OWNER=${BASH_REMATCH[2]}
	REPO=${BASH_REMATCH[4]%.git}
	REPO_URL=$SERVER_URL/$OWNER${REPO:+/$REPO}
	if [[ -n $REPO ]]; then SCOPE_PATH=/repos/$OWNER/$REPO; else SCOPE_PATH=/orgs/$OWNER; fi
	if [[ -z $API_URL ]]; then
		if [[ $SERVER_URL == https://github.com ]]; then API_URL=https://api.github.com; else API_URL=$SERVER_URL/api/v3; fi
	fi
	API_URL=${API_URL%/}
	[[ $RUNNER_NAME =~ ^[A-Za-z0-9._-]+$ ]] || die_usage "RUNNER_NAME: letters, digits, '.', '_' or '-', got '$RUNNER_NAME'"
	[[ $(id -u) == 0 ]] || die_usage "run as root (sudo -E provision/setup.sh)"
	# This VM's kernel, as the kernel-matrix jobs ask for it; an explicit RUNNER_LABELS wins.
	RUNNER_LABELS=${RUNNER_LABELS:-bpf-lsm,kernel-$(uname -r | cut -d. -f1,2)}
	export RUNNER_DIR RUNNER_USER RUNNER_NAME RUNNER_LABELS REPO_URL RUNNER_HEALTH_DIR
}

packages() {
	step "packages"
	local need=() cmd
	for cmd in curl tar sha256sum make python3 sudo; do
		command -v "$cmd" >/dev/null || need+=("$cmd")
	done
	python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
	if ((${#need[@]} == 0)); then
		say "curl, tar, make, python3-venv, sudo present"
		return
	fi
	if [[ ${SKIP_PACKAGES:-0} == 1 ]]; then
		die "missing ${need[*]} and SKIP_PACKAGES=1"
	fi
	local pkgs=()
	for cmd in "${need[@]}"; do
		case $cmd in sha256sum | tar) pkgs+=(coreutils tar) ;; python3) pkgs+=(python3 python3-venv) ;; *) pkgs+=("$cmd") ;; esac
	done
	say "installing ${pkgs[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
}

in_group() { [[ " $(id -nG "$RUNNER_USER") " == *" $1 "* ]]; }

runner_user() {
	step "runner user $RUNNER_USER"
	if id "$RUNNER_USER" >/dev/null 2>&1; then
		say "user $RUNNER_USER exists"
	else
		useradd --create-home --shell /bin/bash "$RUNNER_USER"
		say "created user $RUNNER_USER"
	fi
	if [[ ${RUNNER_DOCKER:-0} == 1 ]]; then
		getent group docker >/dev/null || die "RUNNER_DOCKER=1, but there is no docker group: install Docker first"
		if in_group docker; then
			say "$RUNNER_USER is in the docker group (RUNNER_DOCKER=1)"
		else
			usermod -aG docker "$RUNNER_USER"
			say "added $RUNNER_USER to the docker group (RUNNER_DOCKER=1)"
		fi
		say "note: $DOCKER_GRANTS"
	elif in_group docker; then
		say "note: $RUNNER_USER is in the docker group (not added by setup.sh): $DOCKER_GRANTS"
	elif getent group docker >/dev/null; then
		say "$RUNNER_USER is not in the docker group (RUNNER_DOCKER=1 adds it; $DOCKER_GRANTS)"
	fi
}

# Why the runner user, and so every job, can read any file of root's; nothing when it can't.
root_equivalence() {
	if [[ ${RUNNER_DOCKER:-0} == 1 ]]; then
		echo "RUNNER_DOCKER=1 puts it in the docker group"
	elif [[ $(id -u "$RUNNER_USER") == 0 ]]; then
		echo "it is uid 0"
	elif in_group docker; then
		echo "it is in the docker group"
	elif [[ $(LC_ALL=C sudo -n -l -U "$RUNNER_USER" 2>/dev/null) == *"may run the following"* ]]; then
		echo "it has sudo rules: sudo -l -U $RUNNER_USER"
	fi
}

# The admin token is stored only where no job can read it, unless STORE_ADMIN_TOKEN=1 says so.
admin_token() {
	step "admin token"
	local why
	why=$(root_equivalence)
	if [[ -z $why ]]; then
		STORE_TOKEN=1
		say "$RUNNER_USER is not root-equivalent (not uid 0, not in docker, no sudo rules): the token is stored for root only"
	elif [[ ${STORE_ADMIN_TOKEN:-0} == 1 ]]; then
		STORE_TOKEN=1
		say "WARNING: storing the admin token although $RUNNER_USER is root-equivalent ($why): any job on this runner can read it (STORE_ADMIN_TOKEN=1)"
	else
		say "not storing the admin token: $RUNNER_USER is root-equivalent ($why), so any job could read it"
		say "the config says use_token = false: this VM's timer fixes the service, disk and clock;"
		say "check the GitHub side (online, labels, queue) from a separate host that holds the token"
		say "(target = \"ssh://...\") or from the workflow. STORE_ADMIN_TOKEN=1 stores it anyway, if you accept the risk."
	fi
}

runner_arch() {
	case $(uname -m) in
	x86_64 | amd64) echo x64 ;;
	aarch64 | arm64) echo arm64 ;;
	*) die "no actions/runner build for $(uname -m)" ;;
	esac
}

install_runner() {
	step "actions/runner in $RUNNER_DIR"
	if [[ -x $RUNNER_DIR/config.sh && -e $RUNNER_DIR/bin/Runner.Listener ]]; then
		say "already installed, not downloaded again (the runner updates itself)"
		return
	fi
	local arch version sha url tarball
	arch=$(runner_arch)
	version=${RUNNER_VERSION:-$RUNNER_VERSION_PINNED}
	if [[ -n ${RUNNER_SHA256:-} ]]; then
		sha=$RUNNER_SHA256
	elif [[ $version == "$RUNNER_VERSION_PINNED" ]]; then
		if [[ $arch == x64 ]]; then sha=$RUNNER_SHA256_X64; else sha=$RUNNER_SHA256_ARM64; fi
	else
		die_usage "RUNNER_VERSION=$version: set RUNNER_SHA256 to its published SHA-256 too"
	fi
	url=${RUNNER_TARBALL_URL:-https://github.com/actions/runner/releases/download/v$version/actions-runner-linux-$arch-$version.tar.gz}
	mkdir -p "$RUNNER_DIR"
	tarball=$RUNNER_DIR/.actions-runner-$version.tar.gz
	say "downloading $url"
	curl -fsSL --retry 3 -o "$tarball" "$url"
	if ! echo "$sha  $tarball" | sha256sum --check --status; then
		rm -f "$tarball"
		die "SHA-256 mismatch for $url (expected $sha): not unpacked"
	fi
	say "SHA-256 verified ($sha)"
	tar -xzf "$tarball" -C "$RUNNER_DIR"
	rm -f "$tarball"
	chown -R "$RUNNER_USER:" "$RUNNER_DIR"
	if [[ -x $RUNNER_DIR/bin/installdependencies.sh ]]; then
		"$RUNNER_DIR/bin/installdependencies.sh" >/dev/null
	fi
	say "unpacked actions/runner $version"
}

# POST with the token in a curl config on stdin: never in curl's argv.
github_post() {
	printf 'header = "Authorization: Bearer %s"\n' "$GITHUB_TOKEN" |
		curl -fsS --config - -X POST -H "Accept: application/vnd.github+json" \
			-H "X-GitHub-Api-Version: 2022-11-28" "$API_URL$1"
}

register() {
	step "registration"
	if "$HERE/register_local.sh" --check >/dev/null; then
		say "already registered as $RUNNER_NAME at $REPO_URL"
		"$HERE/register_local.sh" </dev/null
		return
	fi
	local answer token
	if ! answer=$(github_post "$SCOPE_PATH/actions/runners/registration-token"); then
		die "could not get a registration token from $API_URL$SCOPE_PATH (GITHUB_TOKEN needs Administration: read/write)"
	fi
	token=$(printf '%s' "$answer" | sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
	[[ -n $token ]] || die "GitHub's answer had no registration token"
	printf '%s\n' "$token" | "$HERE/register_local.sh"
}

# runner-health's version in the tree at $1 (empty when it has none).
version_of() {
	sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$1/runner_health/__init__.py" 2>/dev/null | head -n 1 || true
}

# Copy this checkout into $RUNNER_HEALTH_DIR (root-owned, whoever owns the checkout) and make
# its .venv; "rebuild" ($1) makes the .venv afresh.
install_runner_health() {
	step "runner-health in $RUNNER_HEALTH_DIR"
	local src dest
	src=$(cd "$SOURCE_DIR" && pwd -P)
	mkdir -p "$RUNNER_HEALTH_DIR"
	dest=$(cd "$RUNNER_HEALTH_DIR" && pwd -P)
	if [[ $src != "$dest" ]]; then
		local item changed=0
		for item in checks remediations runner_health provision conftest.py pyproject.toml \
			requirements.lock Makefile health_check.sh runner-health.example.toml README.md; do
			[[ -e $src/$item ]] || continue
			# Caches Python and pytest write in the installed copy are not differences.
			if ! diff -rq --exclude=__pycache__ --exclude='*.pyc' --exclude=.pytest_cache \
				"$src/$item" "$dest/$item" >/dev/null 2>&1; then
				rm -rf "${dest:?}/$item"
				cp -R --preserve=mode,timestamps "$src/$item" "$dest/$item"
				changed=1
			fi
		done
		if ((changed)); then say "copied from $src"; else say "up to date with $src"; fi
	fi
	if [[ ${1:-} == rebuild ]]; then
		say "rebuilding its .venv"
		rm -rf "${dest:?}/.venv"
	elif [[ -x $dest/.venv/bin/pytest && $dest/.venv/.installed -nt $dest/requirements.lock ]]; then
		say "its .venv is up to date"
		return
	fi
	make -C "$dest" --no-print-directory .venv/.installed
}

config() {
	step "runner-health config in $CONFIG_DIR"
	mkdir -p "$CONFIG_DIR"
	chown 0:0 "$CONFIG_DIR" # only root may replace the token file in it
	chmod 755 "$CONFIG_DIR"
	local auth
	if ((STORE_TOKEN)); then
		put_file "$CONFIG_DIR/token" "$GITHUB_TOKEN" 600
		auth="token_file = \"$CONFIG_DIR/token\""
	else
		auth="use_token = false                 # no admin token on this VM: the GitHub side is checked elsewhere"
		if [[ -e $CONFIG_DIR/token || -L $CONFIG_DIR/token ]]; then
			rm -f "$CONFIG_DIR/token"
			say "removed $CONFIG_DIR/token: no admin token is kept on this VM"
		fi
	fi
	local labels scope
	# config.sh's default labels (self-hosted, Linux, the architecture) plus ours.
	labels="\"self-hosted\", \"linux\", \"$(runner_arch)\", "
	labels+=$(printf '%s' "$RUNNER_LABELS" | sed 's/[^,][^,]*/"&"/g; s/,/, /g')
	if [[ -n $REPO ]]; then scope="repository = \"$OWNER/$REPO\""; else scope="organization = \"$OWNER\""; fi
	local wanted
	wanted=$(
		cat <<EOF
# Written by provision/setup.sh; see $RUNNER_HEALTH_DIR/runner-health.example.toml.
target = "local://"

[github]
$scope
api_url = "$API_URL"
server_url = "$SERVER_URL"
$auth

[runner]
name = "$RUNNER_NAME"
labels = [$labels]
directory = "$RUNNER_DIR"
user = "$RUNNER_USER"
EOF
	)
	if [[ -f $CONFIG_DIR/config.toml ]] && [[ $(cat "$CONFIG_DIR/config.toml") != "$wanted" ]] &&
		! grep -q '^# Written by provision/setup.sh' "$CONFIG_DIR/config.toml"; then
		say "$CONFIG_DIR/config.toml was edited by hand: kept as it is"
		return
	fi
	put_file "$CONFIG_DIR/config.toml" "$wanted" 644
}

# The hourly cleanup; provision/cloud-init.yaml writes the same file (keep the two alike). It
# frees disk only below the thresholds: tool caches and workspaces stay while there is room.
free_disk_cron() {
	if ! [[ $FREE_DISK_BELOW_PERCENT =~ ^[0-9]{1,3}$ ]] || ((10#$FREE_DISK_BELOW_PERCENT > 100)); then
		die_usage "FREE_DISK_BELOW_PERCENT must be a whole percentage (0-100), got '$FREE_DISK_BELOW_PERCENT'"
	fi
	[[ $FREE_DISK_BELOW_GIB =~ ^[0-9]{1,6}$ ]] ||
		die_usage "FREE_DISK_BELOW_GIB must be a whole number of GiB, got '$FREE_DISK_BELOW_GIB'"
	local script command line file=$CRON_DIR/runner-health-free-disk
	script=$(sh_word "$RUNNER_HEALTH_DIR/remediations/free_disk.sh")
	command="[ -f $script ] && bash $script --runner-dir $(sh_word "$RUNNER_DIR")"
	command+=" --if-free-below-percent $((10#$FREE_DISK_BELOW_PERCENT)) --if-free-below-gib $((10#$FREE_DISK_BELOW_GIB))"
	command+=" >>/var/log/runner-health-free-disk.log 2>&1"
	line="0 * * * * root $(cron_escape "$command")"
	# Checked before it is written: cron would run exactly this command, and bash parses it.
	cron_runs "$line" 6 "$command" bash ||
		die_usage "no cron line runs free_disk.sh as written (a newline or a backslash in RUNNER_HEALTH_DIR or RUNNER_DIR?)"
	put_file "$file" "# Hourly disk cleanup on the runner VM (runner-health), only below the free-space thresholds; never touches a running job.
SHELL=/bin/bash
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
$line" 644
	grep -qxF -- "$line" "$file" || die "$file does not hold the line just written: $line"
}

# What keeps OS updates away from jobs (guards.sh), in every mode: --upgrade brings it to
# existing installs.
os_updates() {
	step "OS updates and the runner's jobs"
	os_update_guards
}

# The runner's unit, once registered (register_local.sh does it on registration): protected
# from the OOM killer before jobs, enabled at boot, with the job-completed hook.
runner_service() {
	step "the runner's service"
	if [[ -e $RUNNER_DIR/.service || -L $RUNNER_DIR/.service ]]; then
		protect_runner_service
	else
		say "no runner service yet: register_local.sh protects it when it installs it"
	fi
}

uses_timer() { [[ -d /run/systemd/system || -n ${SYSTEMD_DIR:-} ]]; }

schedules() {
	step "schedules"
	free_disk_cron
	if uses_timer; then
		RUNNER_HEALTH_CONFIG=$CONFIG_DIR/config.toml "$RUNNER_HEALTH_DIR/health_check.sh" --install-timer
	else
		"$RUNNER_HEALTH_DIR/health_check.sh" --install-cron
	fi
}

# The settings later runs reuse, and the list health_check.sh --uninstall removes.
record() {
	step "record of this install"
	local var settings="# provision/setup.sh's settings; its later runs (--upgrade too) reuse them unless set"
	for var in $RECORDED; do
		[[ ${!var} != *$'\n'* ]] || die_usage "$var holds a newline"
		settings+=$'\n'"$var=${!var}"
	done
	put_file "$SETTINGS_FILE" "$settings" 644
	local systemd=$SYSTEMD_DIR path unit
	local installed="# Installed by provision/setup.sh: \"remove PATH\" goes on uninstall, \"purge PATH\" with --purge,"
	installed+=" \"hook PATH\": uninstall takes the job-completed hook line out of that runner's .env"
	installed+=$'\n'"remove $RUNNER_HEALTH_DIR"
	installed+=$'\n'"remove $CRON_DIR/runner-health-free-disk"
	for path in "$NEEDRESTART_CONF_DIR/runner-health.conf" "$APT_CONF_DIR/52runner-health" \
		"$systemd"/apt-daily{,-upgrade}.service.d/runner-health.conf \
		"$systemd/apt-daily-upgrade.timer.d/runner-health.conf"; do
		installed+=$'\n'"remove $path"
	done
	if unit=$(runner_unit 2>/dev/null); then
		installed+=$'\n'"remove $systemd/$unit.d/runner-health.conf"
	fi
	# Only where the line is ours (job_completed_hook wrote it, or found it there).
	local env=$RUNNER_DIR/.env line=$HOOK_KEY=$RUNNER_HEALTH_DIR/remediations/job_completed.sh
	if [[ -f $env && ! -L $env && $'\n'$(timeout 10 head -c 65536 "$env")$'\n' == *$'\n'"$line"$'\n'* ]]; then
		installed+=$'\n'"hook $env"
	fi
	if uses_timer; then
		installed+=$'\n'"remove $systemd/runner-health.timer"$'\n'"remove $systemd/runner-health.service"
	fi
	for path in "$CONFIG_DIR/config.toml" "$CONFIG_DIR/token"; do
		[[ ! -e $path ]] || installed+=$'\n'"purge $path"
	done
	installed+=$'\n'"purge $CONFIG_DIR"
	installed+=$'\n'"purge /var/log/runner-health-free-disk.log"
	installed+=$'\n'"purge /var/log/runner-health.log"
	put_file "$MANIFEST" "$installed" 644
}

upgrade() {
	[[ $(id -u) == 0 ]] || die_usage "run as root (sudo provision/setup.sh --upgrade)"
	[[ -f $RUNNER_HEALTH_DIR/health_check.sh ]] ||
		die_usage "no runner-health in $RUNNER_HEALTH_DIR: set RUNNER_HEALTH_DIR to where setup.sh installed it"
	local old new
	old=$(version_of "$RUNNER_HEALTH_DIR")
	say "upgrading runner-health in $RUNNER_HEALTH_DIR; its config, token, the runner and its registration stay as they are"
	install_runner_health rebuild
	os_updates
	runner_service
	schedules
	record
	new=$(version_of "$RUNNER_HEALTH_DIR")
	echo
	say "upgraded runner-health ${old:-(no version)} -> ${new:-(no version)}. Check it: $RUNNER_HEALTH_DIR/health_check.sh --status"
}

main() {
	case ${1:-} in
	-h | --help)
		usage
		exit 0
		;;
	--free-disk-cron)
		[[ $(id -u) == 0 ]] || die_usage "run as root"
		free_disk_cron
		exit 0
		;;
	--upgrade)
		upgrade
		exit 0
		;;
	--no-admin-token)
		check_inputs RUNNER_NAME REPO_URL
		say "runner-health for $RUNNER_NAME at $REPO_URL, without an admin token"
		packages
		runner_user
		install_runner_health
		os_updates
		runner_service
		config
		schedules
		record
		echo
		say "done. This VM fixes what it can locally (use_token = false); register the runner with"
		say "register_local.sh and a registration token, and check the GitHub side from the host"
		exit 0
		;;
	"") ;;
	*) die_usage "unknown argument '$1' (settings come from the environment)" ;;
	esac
	check_inputs GITHUB_TOKEN RUNNER_NAME REPO_URL
	say "runner $RUNNER_NAME for $REPO_URL (API $API_URL)"
	packages
	runner_user
	install_runner
	install_runner_health # before register: the runner's .env names its job-completed hook
	os_updates
	register
	admin_token
	config
	schedules
	record
	echo
	say "done. Check it: $RUNNER_HEALTH_DIR/health_check.sh --status"
}

main "$@"
