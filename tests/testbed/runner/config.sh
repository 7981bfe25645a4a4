#!/bin/bash
# Stand-in for actions/runner's config.sh (test infrastructure only; see bin/Runner.Listener).
# Like src/Misc/layoutroot/config.sh: refuse root unless RUNNER_ALLOW_RUNASROOT is set, source
# env.sh from the runner root (it writes .path and .env from this user's environment), then
# hand over to the listener ("remove" as is, anything else as "configure", which also writes
# svc.sh). The .NET dependency checks of the real script have no equivalent here.

if [ "$(id -u)" -eq 0 ] && [ -z "$RUNNER_ALLOW_RUNASROOT" ]; then
    echo "Must not run with sudo"
    exit 1
fi

SOURCE="${BASH_SOURCE[0]}"
while [ -h "$SOURCE" ]; do
    DIR="$(cd -P "$(dirname "$SOURCE")" && pwd)"
    SOURCE="$(readlink "$SOURCE")"
    [[ $SOURCE != /* ]] && SOURCE="$DIR/$SOURCE"
done
DIR="$(cd -P "$(dirname "$SOURCE")" && pwd)"
cd "$DIR" || exit 1

# shellcheck source-path=SCRIPTDIR
source ./env.sh

shopt -s nocasematch
if [[ "$1" == "remove" ]]; then
    exec ./bin/Runner.Listener "$@"
else
    exec ./bin/Runner.Listener configure "$@"
fi
