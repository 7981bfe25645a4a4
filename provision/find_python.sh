#!/usr/bin/env bash
# provision/find_python.sh: print the Python that builds runner-health's .venv, or say why
# there is none. Used by health_check.sh and the Makefile; bash 3.2 too (macOS ships it).
#
# The first that is >= 3.10 and has its venv module: $PYTHON if set (only that one), else
# python3, python3.13 ... python3.10 on PATH and in Homebrew's folders (a Mac's stock
# /usr/bin/python3 is 3.9; cron's PATH has no /opt/homebrew/bin).
set -euo pipefail

for dir in /opt/homebrew/bin /usr/local/bin; do
	case ":$PATH:" in *":$dir:"*) ;; *) PATH="$PATH:$dir" ;; esac
done

# "VERSION ok|old|novenv" for interpreter $1; nothing when it does not run.
probe() {
	"$1" -c '
import sys
v = sys.version_info
print("%d.%d.%d" % v[:3], end=" ")
if v < (3, 10):
    print("old")
    sys.exit()
try:
    import ensurepip, venv
except ImportError:
    print("novenv")
else:
    print("ok")' </dev/null 2>/dev/null || true
}

# How to get a suitable interpreter here.
fix() {
	if [ "$(uname -s)" = Darwin ]; then
		echo "brew install python@3.12, or set PYTHON=/path/to/python3.10+"
	else
		echo "install python3 >= 3.10 with its venv module (Debian/Ubuntu: apt install python3" \
			"python3-venv), or set PYTHON=/path/to/python3.10+"
	fi
}

main() {
	local found="" name path answer version
	if [ -n "${PYTHON:-}" ]; then set -- "$PYTHON"; else set -- python3 python3.13 python3.12 python3.11 python3.10; fi
	for name in "$@"; do
		path=$(command -v "$name") || continue
		answer=$(probe "$path")
		version=${answer% *}
		case $answer in
		*" ok")
			echo "$path"
			return 0
			;;
		*" old") found="$found, $name $version at $path" ;;
		*" novenv") found="$found, $name $version at $path without its venv module (apt install python${version%.*}-venv)" ;;
		*) found="$found, $name at $path (does not run)" ;;
		esac
	done
	if [ -z "$found" ]; then
		if [ -n "${PYTHON:-}" ]; then found=", PYTHON=$PYTHON (not a command)"; else found=", no python3 on PATH"; fi
	fi
	echo "runner-health needs Python >= 3.10; found ${found#, }: $(fix)" >&2
	return 1
}

main
