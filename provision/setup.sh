#!/usr/bin/env bash
# setup.sh: turn a cloud VM or an existing Ubuntu VM into the kernel-matrix runner, as root:
# the runner user, actions/runner (pinned, SHA-256 checked), its registration and service,
# runner-health with its timer, and the hourly free_disk cleanup. Safe to run again: every
# step checks first, changes only what differs, and says which.
set -euo pipefail

# Pinned actions/runner release (https://github.com/actions/runner/releases/tag/v2.334.0);
# the SHA-256 values are the ones the release notes publish.
RUNNER_VERSION_PINNED=2.334.0
RUNNER_SHA256_X64=048024cd2c848eb6f14d5646d56c13a4def2ae7ee3ad12122bee960c56f3d271
RUNNER_SHA256_ARM64=f44255bd3e80160eb25f71bc83d06ea025f6908748807a584687b3184759f7e4

usage() {
	cat <<'EOF'
Usage: GITHUB_TOKEN=... RUNNER_NAME=... REPO_URL=... provision/setup.sh [--help]
       provision/setup.sh --free-disk-cron     (only the hourly cleanup; needs no token)

Run on the VM as root (cloud VM or existing Ubuntu VM). Installs and registers the runner,
its service, runner-health (/opt/runner-health) with its 5-minute timer, and the hourly
free_disk.sh cron. Running it again changes nothing that is already right, and says so.

Required:
  GITHUB_TOKEN   PAT (or App token) with repository Administration read/write (organisation:
                 admin:org): fetches the registration token, and runner-health's checks use it
  RUNNER_NAME    the runner's name at GitHub, e.g. assay-bpf-runner
  REPO_URL       https://github.com/OWNER/REPO (or https://github.com/ORG for an org runner)

Optional:
  RUNNER_LABELS        extra labels (default: bpf-lsm,kernel-X.Y of this kernel)
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

RUNNER_DIR=${RUNNER_DIR:-/opt/actions-runner}
RUNNER_USER=${RUNNER_USER:-github-runner}
RUNNER_HEALTH_DIR=${RUNNER_HEALTH_DIR:-/opt/runner-health}
CONFIG_DIR=${CONFIG_DIR:-/etc/runner-health}
CRON_DIR=${CRON_DIR:-/etc/cron.d}
API_URL=${API_URL:-}

check_inputs() {
	local missing=() var
	for var in GITHUB_TOKEN RUNNER_NAME REPO_URL; do
		[[ -n ${!var:-} ]] || missing+=("$var")
	done
	if ((${#missing[@]})); then
		die_usage "missing ${missing[*]} (required: GITHUB_TOKEN, RUNNER_NAME, REPO_URL)"
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
	RUNNER_LABELS=${RUNNER_LABELS:-bpf-lsm,kernel-$(uname -r | cut -d. -f1,2)}
	export RUNNER_DIR RUNNER_USER RUNNER_NAME RUNNER_LABELS REPO_URL
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

runner_user() {
	step "runner user $RUNNER_USER"
	if id "$RUNNER_USER" >/dev/null 2>&1; then
		say "user $RUNNER_USER exists"
	else
		useradd --create-home --shell /bin/bash "$RUNNER_USER"
		say "created user $RUNNER_USER"
	fi
	if getent group docker >/dev/null && ! id -nG "$RUNNER_USER" | grep -qw docker; then
		usermod -aG docker "$RUNNER_USER"
		say "added $RUNNER_USER to the docker group"
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
				cp -a "$src/$item" "$dest/$item"
				changed=1
			fi
		done
		if ((changed)); then say "copied from $src"; else say "up to date with $src"; fi
	fi
	if [[ -x $dest/.venv/bin/pytest && $dest/.venv/.installed -nt $dest/requirements.lock ]]; then
		say "its .venv is up to date"
	else
		make -C "$dest" --no-print-directory .venv/.installed
	fi
}

# Write $2 to $1, root-owned with mode $3, unless it already is exactly that; say which. The
# content goes to a new file of mktemp's (0600, created afresh, never through a link) that then
# replaces $1 in one rename: nobody ever sees it half-written or more open than $3.
put_file() {
	if [[ -f $1 && ! -L $1 && $(stat -c '%a %u %g' "$1") == "$3 0 0" ]] && [[ $(cat "$1") == "$2" ]]; then
		say "$1 unchanged"
		return
	fi
	local tmp
	tmp=$(mktemp "$1.XXXXXX")
	printf '%s\n' "$2" >"$tmp"
	chown 0:0 "$tmp"
	chmod "$3" "$tmp"
	mv -f "$tmp" "$1"
	say "wrote $1"
}

config() {
	step "runner-health config in $CONFIG_DIR"
	mkdir -p "$CONFIG_DIR"
	chown 0:0 "$CONFIG_DIR" # only root may replace the token file in it
	chmod 755 "$CONFIG_DIR"
	put_file "$CONFIG_DIR/token" "$GITHUB_TOKEN" 600
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
token_file = "$CONFIG_DIR/token"

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

# The hourly cleanup; provision/cloud-init.yaml writes the same file (keep the two alike).
free_disk_cron() {
	local script command line file=$CRON_DIR/runner-health-free-disk
	script=$(sh_word "$RUNNER_HEALTH_DIR/remediations/free_disk.sh")
	command="[ -f $script ] && bash $script --runner-dir $(sh_word "$RUNNER_DIR") >>/var/log/runner-health-free-disk.log 2>&1"
	line="0 * * * * root $(cron_escape "$command")"
	# Checked before it is written: cron would run exactly this command, and bash parses it.
	cron_runs "$line" 6 "$command" bash ||
		die_usage "no cron line runs free_disk.sh as written (a newline or a backslash in RUNNER_HEALTH_DIR or RUNNER_DIR?)"
	put_file "$file" "# Hourly disk cleanup on the runner VM (runner-health); never touches a running job.
SHELL=/bin/bash
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
$line" 644
	grep -qxF -- "$line" "$file" || die "$file does not hold the line just written: $line"
}

schedules() {
	step "schedules"
	free_disk_cron
	if [[ -d /run/systemd/system ]] || [[ -n ${SYSTEMD_DIR:-} ]]; then
		RUNNER_HEALTH_CONFIG=$CONFIG_DIR/config.toml "$RUNNER_HEALTH_DIR/health_check.sh" --install-timer
	else
		"$RUNNER_HEALTH_DIR/health_check.sh" --install-cron
	fi
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
	"") ;;
	*) die_usage "unknown argument '$1' (settings come from the environment)" ;;
	esac
	check_inputs
	say "runner $RUNNER_NAME for $REPO_URL (API $API_URL)"
	packages
	runner_user
	install_runner
	register
	install_runner_health
	config
	schedules
	echo
	say "done. Check it: $RUNNER_HEALTH_DIR/health_check.sh --status"
}

main "$@"
