#!/usr/bin/env bash
# health_check.sh: the seed's interface, a thin wrapper over `pytest checks`.
# Runs on the runner VM (target local://, the timer/cron default) or on the Mac
# (target multipass://assay-bpf-runner). Written for bash 3.2 too: macOS ships it.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: health_check.sh [--status | --recover | --dry-run] [-- PYTEST-ARGS...]
       health_check.sh --install-cron | --install-timer | --uninstall | --help

  (no option)      check the runner and heal what fails (pytest checks)
  --status         read-only: report one line per check, change nothing (--no-remediate)
  --recover        force the full recovery: re-register and restart the runner
  --dry-run        print the remediation each failing check would run; change nothing
  --install-cron   add a crontab line running this script every 5 minutes (idempotent)
  --install-timer  install runner-health.service + runner-health.timer (every 5 minutes;
                   the better choice where systemd runs) (idempotent)
  --uninstall      remove the cron line and the timer
  -- ARGS          pass the rest to pytest (e.g. -- --config /etc/runner-health/config.toml)

The config comes from --config, $RUNNER_HEALTH_CONFIG, ./runner-health.toml or
/etc/runner-health/config.toml (see runner-health.example.toml).

Exit status (pytest's): 0 healthy, 1 unhealthy, 4 usage or config error (an unsafe lock file
too), 6 another run holds the lock, 7 something failed and was healed, 8 the lock is held longer
than a run can last (stale: no run can heal anything).

Environment: RUNNER_HEALTH_VENV (default: .venv next to this script), RUNNER_HEALTH_LOG (cron
log, default /var/log/runner-health.log), SYSTEMD_DIR (default /etc/systemd/system).
EOF
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
VENV=${RUNNER_HEALTH_VENV:-$HERE/.venv}
LOG=${RUNNER_HEALTH_LOG:-/var/log/runner-health.log}
SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
UNIT=runner-health
CRON_MARK="# runner-health health_check"
USAGE_ERROR=4

die_usage() {
	echo "health_check.sh: $*" >&2
	echo "Try 'health_check.sh --help'." >&2
	exit "$USAGE_ERROR"
}

die() {
	echo "health_check.sh: $*" >&2
	exit 1
}

say() { echo "health_check.sh: $*"; }

# cron and systemd start us with a bare PATH; multipass lives in /usr/local/bin or
# /opt/homebrew/bin on a Mac, /snap/bin on Linux.
extend_path() {
	local dir
	for dir in /usr/local/bin /opt/homebrew/bin /snap/bin /usr/sbin /sbin; do
		case ":$PATH:" in
		*":$dir:"*) ;;
		*) [ -d "$dir" ] && PATH="$PATH:$dir" ;;
		esac
	done
	export PATH
}

ensure_venv() {
	if [ -x "$VENV/bin/pytest" ]; then
		return
	fi
	if [ "$VENV" != "$HERE/.venv" ]; then
		echo "health_check.sh: no pytest in RUNNER_HEALTH_VENV=$VENV" >&2
		exit "$USAGE_ERROR"
	fi
	say "creating $VENV (first run): make .venv/.installed" >&2
	if ! make -C "$HERE" --no-print-directory .venv/.installed >&2; then
		echo "health_check.sh: could not create $VENV (needs make and python3-venv)" >&2
		exit "$USAGE_ERROR"
	fi
}

run_checks() {
	ensure_venv
	extend_path
	cd "$HERE"
	# exec: pytest's exit status is ours, and a signal reaches pytest itself.
	exec "$VENV/bin/pytest" checks "$@"
}

# -- cron --------------------------------------------------------------------------------

current_crontab() {
	# `crontab -l` fails when there is no crontab yet: that is an empty one.
	crontab -l 2>/dev/null || true
}

without_our_lines() {
	grep -v -F "$CRON_MARK" || true
}

token_note() {
	local config
	for config in "${RUNNER_HEALTH_CONFIG:-}" "$HERE/runner-health.toml" /etc/runner-health/config.toml; do
		if [ -z "$config" ] || [ ! -f "$config" ]; then continue; fi
		if ! grep -Eq '^[[:space:]]*token_file[[:space:]]*=' "$config"; then
			say "note: $config sets no github.token_file; scheduled runs don't see your" \
				"shell's GITHUB_TOKEN, so set token_file (mode 600) or log in with gh"
		fi
		return
	done
	say "note: no config found yet: copy runner-health.example.toml to $HERE/runner-health.toml" \
		"or /etc/runner-health/config.toml"
}

install_cron() {
	command -v crontab >/dev/null || die_usage "crontab is not installed (try --install-timer)"
	# shellcheck source=provision/cron.sh
	. "$HERE/provision/cron.sh"
	local command line current
	command="cd $(sh_word "$HERE") && ./$(sh_word "$(basename "$SELF")") >> $(sh_word "$LOG") 2>&1 $CRON_MARK"
	line="*/5 * * * * $(cron_escape "$command")"
	# Checked before it is installed: cron would run exactly this command, and sh parses it.
	cron_runs "$line" 5 "$command" sh ||
		die_usage "no cron line runs $SELF as written (a newline or a backslash in its path or $LOG?)"
	current=$(current_crontab)
	if printf '%s\n' "$current" | grep -qxF -- "$line"; then
		say "cron already installed, nothing changed: $line"
		return
	fi
	if [ -n "$current" ]; then
		current=$(printf '%s\n' "$current" | without_our_lines)
	fi
	{
		[ -z "$current" ] || printf '%s\n' "$current"
		printf '%s\n' "$line"
	} | crontab -
	current_crontab | grep -qxF -- "$line" || die "crontab -l does not show the line just installed: $line"
	say "cron installed for $(id -un): $line"
	[ "$(id -u)" = 0 ] || say "note: not root; the checks use sudo -n on the VM for remediations"
	token_note
}

uninstall_cron() {
	command -v crontab >/dev/null || return 0
	local current
	current=$(current_crontab)
	if ! printf '%s\n' "$current" | grep -qF "$CRON_MARK"; then
		say "no runner-health cron line"
		return
	fi
	printf '%s\n' "$current" | without_our_lines | crontab -
	say "cron line removed"
}

# -- systemd timer -----------------------------------------------------------------------

# $1 for a unit file setting that takes a path: % doubled (systemd reads %x as a specifier).
unit_path() {
	printf '%s' "$1" | sed 's/%/%%/g'
}

# $1 as one argument on an Exec*= line: double-quoted with \ and " escaped, % doubled, and $
# doubled (systemd substitutes $VAR and ${VAR}).
exec_arg() {
	printf '"%s"' "$(printf '%s' "$1" | sed 's/[\\"]/\\&/g; s/%/%%/g; s/\$/$$/g')"
}

# The script is an argument, not the executable: systemd refuses an executable path that holds
# a quote or a backslash, and it runs from its own directory (no WorkingDirectory=).
service_unit() {
	cat <<EOF
# Installed by health_check.sh --install-timer
[Unit]
Description=runner-health: check and heal the self-hosted GitHub Actions runner
Wants=network-online.target
After=network-online.target
# Until a config exists (provisioned but not yet registered) a run would only fail: skip it.
ConditionPathExists=|/etc/runner-health/config.toml
ConditionPathExists=|$(unit_path "$HERE")/runner-health.toml

[Service]
Type=oneshot
ExecStart=/usr/bin/env bash $(exec_arg "$SELF")
# 6: another run holds the lock; 7: something failed and was healed. 1 (unhealthy) and 8 (a
# stale lock: no run can heal) stay failures, so systemctl --failed shows them.
SuccessExitStatus=6 7
TimeoutStartSec=20min
EOF
}

timer_unit() {
	cat <<'EOF'
# Installed by health_check.sh --install-timer
[Unit]
Description=runner-health every 5 minutes

[Timer]
OnCalendar=*:0/5
AccuracySec=30s
Persistent=true

[Install]
WantedBy=timers.target
EOF
}

# Write $2 to file $1 if it differs; say whether it changed (exit 0) or not (exit 1).
write_if_changed() {
	if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then
		return 1
	fi
	printf '%s\n' "$2" >"$1.tmp.$$"
	mv -f "$1.tmp.$$" "$1"
	return 0
}

install_timer() {
	command -v systemctl >/dev/null || die_usage "systemctl not found: no systemd here (try --install-cron)"
	[ -d "$SYSTEMD_DIR" ] || die_usage "$SYSTEMD_DIR does not exist"
	case $SELF in
	*[[:cntrl:]]*) die_usage "a unit file cannot name $SELF: its path holds a newline or control character" ;;
	esac
	local changed=0
	write_if_changed "$SYSTEMD_DIR/$UNIT.service" "$(service_unit)" && changed=1
	write_if_changed "$SYSTEMD_DIR/$UNIT.timer" "$(timer_unit)" && changed=1
	if [ "$changed" = 1 ]; then
		systemctl daemon-reload
	fi
	if [ "$changed" = 0 ] && systemctl is-enabled --quiet "$UNIT.timer" 2>/dev/null &&
		systemctl is-active --quiet "$UNIT.timer" 2>/dev/null; then
		say "timer already installed and enabled, nothing changed ($SYSTEMD_DIR/$UNIT.timer)"
		return
	fi
	systemctl enable --now "$UNIT.timer"
	say "timer installed: $UNIT.timer runs $SELF every 5 minutes" \
		"(journalctl -u $UNIT.service for its output)"
	token_note
}

uninstall_timer() {
	local had=0
	if [ -f "$SYSTEMD_DIR/$UNIT.timer" ] || [ -f "$SYSTEMD_DIR/$UNIT.service" ]; then
		had=1
		if command -v systemctl >/dev/null; then
			systemctl disable --now "$UNIT.timer" 2>/dev/null || true
		fi
		rm -f "$SYSTEMD_DIR/$UNIT.timer" "$SYSTEMD_DIR/$UNIT.service"
		if command -v systemctl >/dev/null; then
			systemctl daemon-reload || true
		fi
	fi
	if [ "$had" = 1 ]; then
		say "timer removed"
	else
		say "no runner-health timer"
	fi
}

# -- main --------------------------------------------------------------------------------

main() {
	local mode="" action="check"
	local -a pytest_args=(-q)
	while [ $# -gt 0 ]; do
		case $1 in
		--status | --recover | --dry-run)
			[ -z "$mode" ] || die_usage "$mode and $1 don't go together"
			mode=$1
			;;
		--install-cron | --install-timer | --uninstall)
			[ "$action" = check ] || die_usage "one of --install-cron, --install-timer, --uninstall"
			action=${1#--}
			;;
		-h | --help)
			usage
			exit 0
			;;
		--)
			shift
			break
			;;
		*) die_usage "unknown argument '$1' (pytest options go after --)" ;;
		esac
		shift
	done
	if [ "$action" != check ]; then
		if [ -n "$mode" ] || [ $# -gt 0 ]; then die_usage "--$action takes no other arguments"; fi
		case $action in
		install-cron) install_cron ;;
		install-timer) install_timer ;;
		uninstall)
			uninstall_cron
			uninstall_timer
			;;
		esac
		exit 0
	fi
	case $mode in
	--status) pytest_args+=(--no-remediate --tb=no -rN) ;;
	--recover) pytest_args+=(--recover --tb=short) ;;
	--dry-run) pytest_args+=(--dry-run --tb=short) ;;
	*) pytest_args+=(--tb=short) ;;
	esac
	run_checks "${pytest_args[@]}" "$@"
}

main "$@"
